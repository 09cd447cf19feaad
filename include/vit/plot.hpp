// Pictures of training runs: charts of curves written as SVG text (no drawing library), and the
// training curves of run directories from their metrics.jsonl.
#pragma once

#include <string>
#include <vector>

#include "vit/train.hpp"

namespace vit {

// One curve: points (x[i], y[i]), non-finite ones left out (the line breaks there). style: 0 solid,
// 1 dashed, 2 dotted; colour: an index into the categorical palette (Tableau 10, matplotlib's
// tab10), taken modulo its 10 colours.
struct Curve {
  std::string label;
  std::vector<double> x, y;
  int colour = 0;
  int style = 0;
};

// A chart: axes with "nice" ticks (1, 2 or 5 times a power of ten; whole numbers where every x is
// one, as epochs) and gridlines covering every curve's points, the axis labels, a title and a
// legend of the curves' labels.
struct Chart {
  std::string title, x_label, y_label;
  std::vector<Curve> curves;
};

// About `count` (>= 2) nicely rounded tick values covering [lo, hi]: the first <= lo, the last
// >= hi, evenly spaced by 1, 2 or 5 times a power of ten, and by at least min_step. lo == hi gets
// a range around it of its own size (lo / 2 to 3 lo / 2; 0: -0.5 to 0.5).
std::vector<double> nice_ticks(double lo, double hi, int count = 5, double min_step = 0);

// A standalone SVG document of the charts side by side, each width x height pixels. Text is
// XML-escaped.
std::string svg_charts(const std::vector<Chart>& charts, int width = 420, int height = 300);

// A confusion matrix ([true class][predicted class] counts, K x K) as an SVG heat map: each cell
// coloured by its share of the true class's samples on the viridis map (its published table), its
// count written in it, the class names along both axes (cut to 23 characters with an ellipsis,
// whole in their tooltips), a colour bar, and the title above.
std::string svg_confusion(const std::vector<std::vector<int64_t>>& confusion,
                          const std::vector<std::string>& class_names, const std::string& title);

// A run's name: its directory's last path component ("runs/mnist/" -> "mnist").
std::string run_name(const std::string& run_dir);

// The epochs of a run directory's metrics.jsonl, in file order (a torn last line, as a crash can
// leave, is skipped); none for a run stopped in its first epoch (its last checkpoint and no
// metrics.jsonl). vit::Error when the directory holds no run or a line is not one.
std::vector<EpochMetrics> read_metrics(const std::string& run_dir);

// The training curves of runs against epochs: loss (train, validation when the run has one,
// test), accuracy in % (the same) and the learning rate; a colour per run, a line style per split
// (train solid, validation dashed, test dotted). names label the runs (default: each directory's
// last path component).
std::string training_curves_svg(const std::vector<std::string>& run_dirs,
                                const std::vector<std::string>& names = {});

}  // namespace vit
