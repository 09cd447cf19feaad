// Charts as SVG text (vit/plot.hpp): nice ticks, axes, gridlines, curves and legends, and a run's
// training curves from its metrics.jsonl.
#include "vit/plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/fields_json.hpp"
#include "core/numbers.hpp"
#include "report/colormaps.hpp"
#include "report/markup.hpp"
#include "vit/error.hpp"

namespace vit {
namespace {

namespace fs = std::filesystem;

// Tableau 10 (matplotlib's tab10), the categorical palette of its published table.
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

using report::escape;

std::string num(double v) {
  return fixed_text(v, 2);
}

// A tick's label: as few digits as tell the ticks apart (step), %g beyond 1e4 or below 1e-3.
std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-6) v = 0;
  const double a = std::fabs(v);
  if (a != 0 && (a >= 1e4 || a < 1e-3)) return general_text(v, 3);
  return fixed_text(v, std::max(0, int(std::ceil(-std::log10(step) - 1e-9))));
}

// An SVG document's opening, width x height pixels, on white; close it with "</svg>\n".
std::string svg_open(const std::string& width, const std::string& height) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + width + "\" height=\"" + height +
         "\" viewBox=\"0 0 " + width + " " + height +
         "\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"11\">\n"
         "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
}

// The characters (UTF-8 sequences) of text.
size_t text_chars(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += (uint8_t(c) & 0xC0) != 0x80;
  return n;
}

// text cut to at most max_chars characters, its last an ellipsis when cut.
std::string shorten_text(const std::string& text, size_t max_chars) {
  if (text_chars(text) <= max_chars) return text;
  size_t chars = 0, end = 0;
  while (end < text.size()) {
    if ((uint8_t(text[end]) & 0xC0) != 0x80 && ++chars == max_chars) break;
    ++end;
  }
  return text.substr(0, end) + "\u2026";
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int count, double min_step) {
  VIT_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi && count >= 2 && min_step >= 0,
            "nice_ticks: needs finite lo <= hi, at least 2 ticks and min_step >= 0");
  if (hi - lo < 1e-12 * std::max(1.0, std::fabs(hi))) {
    const double d = hi != 0 ? 0.5 * std::fabs(hi) : 0.5;  // a constant learning rate of 1e-3
    lo -= d, hi += d;
  }
  const double raw = std::max((hi - lo) / (count - 1), min_step);
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * p;
  for (double m : {1.0, 2.0, 5.0}) {
    if (m * p >= raw * (1 - 1e-9)) {
      step = m * p;
      break;
    }
  }
  std::vector<double> t;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (double v = first; v < hi + step * (1 - 1e-9); v += step) t.push_back(v);
  if (t.size() < 2) t.push_back(t.back() + step);
  return t;
}

std::string svg_charts(const std::vector<Chart>& charts, int width, int height) {
  VIT_CHECK(!charts.empty() && width >= 200 && height >= 150,
            "svg_charts: needs a chart and at least 200 x 150 pixels each");
  const int total = width * int(charts.size());
  std::string s = svg_open(std::to_string(total), std::to_string(height));
  // The plot area inside each chart.
  const double left = 56, right = 12, top = 28, bottom = 44;
  for (size_t c = 0; c < charts.size(); ++c) {
    const Chart& ch = charts[c];
    const double x0 = double(c) * width + left, x1 = double(c + 1) * width - right;
    const double y0 = height - bottom, y1 = top;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (const Curve& cv : ch.curves) {
      VIT_CHECK(cv.x.size() == cv.y.size(), "svg_charts: a curve's x and y differ in length");
      for (size_t i = 0; i < cv.x.size(); ++i) {
        if (!std::isfinite(cv.x[i]) || !std::isfinite(cv.y[i])) continue;
        xlo = std::min(xlo, cv.x[i]), xhi = std::max(xhi, cv.x[i]);
        ylo = std::min(ylo, cv.y[i]), yhi = std::max(yhi, cv.y[i]);
      }
    }
    if (!std::isfinite(xlo)) xlo = 0, xhi = 1, ylo = 0, yhi = 1;  // nothing to draw
    // x that are whole numbers (epochs) get whole ticks: not 1.2, 1.4... over two epochs.
    bool whole_x = true;
    for (const Curve& cv : ch.curves) {
      for (double x : cv.x) whole_x = whole_x && (!std::isfinite(x) || x == std::round(x));
    }
    const std::vector<double> xt = nice_ticks(xlo, xhi, 6, whole_x ? 1 : 0),
                              yt = nice_ticks(ylo, yhi, 5);
    const double ax = xt.front(), bx = xt.back(), ay = yt.front(), by = yt.back();
    auto X = [&](double v) { return x0 + (v - ax) / (bx - ax) * (x1 - x0); };
    auto Y = [&](double v) { return y0 + (v - ay) / (by - ay) * (y1 - y0); };
    s += "<g>\n<text x=\"" + num((x0 + x1) / 2) + "\" y=\"16\" text-anchor=\"middle\" " +
         "font-size=\"13\" font-weight=\"bold\">" + escape(ch.title) + "</text>\n";
    for (double v : yt) {
      s += "<line x1=\"" + num(x0) + "\" y1=\"" + num(Y(v)) + "\" x2=\"" + num(x1) + "\" y2=\"" +
           num(Y(v)) + "\" stroke=\"#e0e0e0\"/>\n";
      s += "<text x=\"" + num(x0 - 4) + "\" y=\"" + num(Y(v) + 4) + "\" text-anchor=\"end\">" +
           tick_label(v, yt[1] - yt[0]) + "</text>\n";
    }
    for (double v : xt) {
      s += "<line x1=\"" + num(X(v)) + "\" y1=\"" + num(y0) + "\" x2=\"" + num(X(v)) + "\" y2=\"" +
           num(y0 + 4) + "\" stroke=\"#333\"/>\n";
      s += "<text x=\"" + num(X(v)) + "\" y=\"" + num(y0 + 16) + "\" text-anchor=\"middle\">" +
           tick_label(v, xt[1] - xt[0]) + "</text>\n";
    }
    s += "<rect x=\"" + num(x0) + "\" y=\"" + num(y1) + "\" width=\"" + num(x1 - x0) +
         "\" height=\"" + num(y0 - y1) + "\" fill=\"none\" stroke=\"#333\"/>\n";
    s += "<text x=\"" + num((x0 + x1) / 2) + "\" y=\"" + num(height - 8.0) +
         "\" text-anchor=\"middle\">" + escape(ch.x_label) + "</text>\n";
    s += "<text transform=\"translate(" + num(x0 - 44) + " " + num((y0 + y1) / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + escape(ch.y_label) + "</text>\n";
    // Each curve, then the legend over them (top right, in a box).
    int entries = 0;
    size_t longest = 0;
    for (const Curve& cv : ch.curves) {
      if (!cv.label.empty()) ++entries, longest = std::max(longest, cv.label.size());
    }
    const double legend_w = 34 + 6.5 * double(longest);
    std::string legend_svg;
    if (entries > 0) {
      legend_svg += "<rect x=\"" + num(x1 - legend_w - 4) + "\" y=\"" + num(y1 + 2) +
                    "\" width=\"" + num(legend_w) + "\" height=\"" + num(14.0 * entries + 4) +
                    "\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n";
    }
    int legend = 0;
    for (const Curve& cv : ch.curves) {
      const std::string colour = kPalette[size_t(std::abs(cv.colour)) % 10];
      const char* dash = cv.style == 1   ? " stroke-dasharray=\"6 3\""
                         : cv.style == 2 ? " stroke-dasharray=\"1.5 2.5\""
                                         : "";
      // One polyline per run of finite points.
      std::string points;
      auto flush = [&] {
        if (!points.empty()) {
          s += "<polyline fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"1.8\"" + dash +
               " points=\"" + points + "\"/>\n";
        }
        points.clear();
      };
      // A dot on each point of a short curve (one point alone draws no line).
      const bool dots = cv.x.size() <= 30;
      for (size_t i = 0; i < cv.x.size(); ++i) {
        if (!std::isfinite(cv.x[i]) || !std::isfinite(cv.y[i])) {
          flush();
          continue;
        }
        if (!points.empty()) points += ' ';
        points += num(X(cv.x[i])) + "," + num(Y(cv.y[i]));
        if (dots) {
          s += "<circle cx=\"" + num(X(cv.x[i])) + "\" cy=\"" + num(Y(cv.y[i])) +
               "\" r=\"2.2\" fill=\"" + colour + "\"/>\n";
        }
      }
      flush();
      if (cv.label.empty()) continue;
      const double ly = y1 + 15 + 14 * legend++, lx = x1 - legend_w;
      legend_svg += "<line x1=\"" + num(lx) + "\" y1=\"" + num(ly - 4) + "\" x2=\"" + num(lx + 22) +
                    "\" y2=\"" + num(ly - 4) + "\" stroke=\"" + colour + "\" stroke-width=\"1.8\"" +
                    dash + "/>\n";
      legend_svg += "<text x=\"" + num(lx + 26) + "\" y=\"" + num(ly) + "\">" + escape(cv.label) +
                    "</text>\n";
    }
    s += legend_svg + "</g>\n";
  }
  return s + "</svg>\n";
}

std::string svg_confusion(const std::vector<std::vector<int64_t>>& confusion,
                          const std::vector<std::string>& class_names, const std::string& title) {
  const size_t K = confusion.size();
  VIT_CHECK(K >= 1 && class_names.size() == K,
            "svg_confusion: " + std::to_string(class_names.size()) + " class names for a " +
                std::to_string(K) + " x " + std::to_string(K) + " matrix");
  for (const auto& row : confusion) {
    VIT_CHECK(row.size() == K, "svg_confusion: the matrix is not square");
  }
  // Names are written in at most kNameChars characters (about 6.5 px each), longer ones cut with
  // an ellipsis, whole in their tooltip (ImageNet's run to 60: "German shepherd, German shepherd
  // dog, ...").
  constexpr size_t kNameChars = 23;
  std::vector<std::string> shown(K);
  size_t longest = 1;
  for (size_t k = 0; k < K; ++k) {
    shown[k] = shorten_text(class_names[k], kNameChars);
    longest = std::max(longest, text_chars(shown[k]));
  }
  const double cell = K <= 10 ? 40 : K <= 30 ? 22 : 10;  // counts are written from 22 px up
  const double names = 6.5 * double(longest) + 10;
  const double left = names + 30, top = 40, side = cell * double(K);
  // Wide enough for the title (bold 13 px: about 8 px a character).
  const double width = std::max(left + side + 90, 8.0 * double(text_chars(title)) + 24);
  const double height = top + side + names + 30;
  std::string s = svg_open(num(width), num(height));
  s += "<text x=\"" + num(std::max(left + side / 2, width / 2)) +
       "\" y=\"20\" text-anchor=\"middle\" font-size=\"13\" " + "font-weight=\"bold\">" +
       escape(title) + "</text>\n";
  for (size_t t = 0; t < K; ++t) {
    int64_t total = 0;
    for (int64_t v : confusion[t]) total += v;
    const double y = top + cell * double(t);
    for (size_t p = 0; p < K; ++p) {
      const int64_t v = confusion[t][p];
      const double share = total > 0 ? double(v) / double(total) : 0.0;
      const double x = left + cell * double(p);
      s += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(cell) + "\" height=\"" +
           num(cell) + "\" fill=\"" + report::colour_hex(report::kViridis, share) + "\"><title>" +
           escape(class_names[t]) + " as " + escape(class_names[p]) + ": " + std::to_string(v) +
           "</title></rect>\n";
      if (cell >= 22) {  // dark text on the light (yellow-green) end of viridis, else white
        s += "<text x=\"" + num(x + cell / 2) + "\" y=\"" + num(y + cell / 2 + 4) +
             "\" text-anchor=\"middle\" font-size=\"" + (cell >= 40 ? "11" : "8") + "\" fill=\"" +
             (share > 0.6 ? "black" : "white") + "\">" + std::to_string(v) + "</text>\n";
      }
    }
    const std::string name =
        "<title>" + escape(class_names[t]) + "</title>" + escape(shown[t]) + "</text>\n";
    s += "<text x=\"" + num(left - 4) + "\" y=\"" + num(y + cell / 2 + 4) +
         "\" text-anchor=\"end\">" + name;
    s += "<text transform=\"translate(" + num(left + cell * double(t) + cell / 2 + 4) + " " +
         num(top + side + 4) + ") rotate(-90)\" text-anchor=\"end\">" + name;
  }
  s += "<text transform=\"translate(14 " + num(top + side / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">true class</text>\n";
  s += "<text x=\"" + num(left + side / 2) + "\" y=\"" + num(height - 8) +
       "\" text-anchor=\"middle\">predicted class</text>\n";
  // The colour bar: share of the true class, 0 at the bottom to 1 at the top.
  const double bx = left + side + 20, bh = std::max(side, 100.0);
  for (int i = 0; i < 64; ++i) {
    s += "<rect x=\"" + num(bx) + "\" y=\"" + num(top + bh * (63 - i) / 64) +
         "\" width=\"14\" height=\"" + num(bh / 64 + 0.5) + "\" fill=\"" +
         report::colour_hex(report::kViridis, i / 63.0) + "\"/>\n";
  }
  for (double v : {0.0, 0.5, 1.0}) {
    s += "<text x=\"" + num(bx + 18) + "\" y=\"" + num(top + bh * (1 - v) + 4) + "\">" +
         tick_label(v, 0.5) + "</text>\n";
  }
  s += "<text transform=\"translate(" + num(bx + 52) + " " + num(top + bh / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">share of the true class</text>\n";
  return s + "</svg>\n";
}

std::string run_name(const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir).lexically_normal();
  const std::string name = dir.filename().string();  // empty for "runs/x/"
  return name.empty() ? dir.parent_path().filename().string() : name;
}

std::vector<EpochMetrics> read_metrics(const std::string& run_dir) {
  const fs::path path = fs::path(run_dir) / "metrics.jsonl";
  std::error_code ec;
  if (!fs::exists(path, ec) && (fs::exists(fs::path(run_dir) / "last.train.safetensors", ec) ||
                                fs::exists(fs::path(run_dir) / "last.safetensors", ec))) {
    return {};  // a run stopped in its first epoch: saved, but no epoch finished
  }
  std::ifstream in(path);
  VIT_CHECK(in.good(), "'" + run_dir + "' has no metrics.jsonl: not a training run directory");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  std::vector<EpochMetrics> epochs;
  for (size_t i = 0; i < lines.size(); ++i) {
    EpochMetrics m;
    try {
      fields_from_json(m, lines[i], "metrics.jsonl line " + std::to_string(i + 1), false);
    } catch (const Error& e) {
      if (i + 1 == lines.size()) break;  // a torn last line, as a crash leaves
      throw Error("'" + path.string() + "': " + e.what());
    }
    epochs.push_back(m);
  }
  return epochs;
}

std::string training_curves_svg(const std::vector<std::string>& run_dirs,
                                const std::vector<std::string>& names) {
  VIT_CHECK(!run_dirs.empty(), "training_curves_svg: no run directory");
  Chart loss{"Loss", "epoch", "cross-entropy", {}}, acc{"Accuracy", "epoch", "accuracy (%)", {}},
      lr{"Learning rate", "epoch", "learning rate (end of epoch)", {}};
  for (size_t r = 0; r < run_dirs.size(); ++r) {
    const std::vector<EpochMetrics> epochs = read_metrics(run_dirs[r]);
    VIT_CHECK(!epochs.empty(), "'" + run_dirs[r] +
                                   "' has no finished epoch in its metrics.jsonl yet: nothing to "
                                   "draw");
    std::string name = r < names.size() ? names[r] : "";
    if (name.empty()) name = run_name(run_dirs[r]);
    const std::string prefix = run_dirs.size() > 1 ? name + " " : "";
    const int colour = int(r);
    // Per split: train (solid), validation (dashed; runs without one have none), test (dotted).
    Curve l[3], a[3];
    const char* split[3] = {"train", "val", "test"};
    for (int k = 0; k < 3; ++k) {
      l[k] = {prefix + split[k], {}, {}, colour, k};
      a[k] = {prefix + split[k], {}, {}, colour, k};
    }
    Curve rate{prefix.empty() ? "lr" : name, {}, {}, colour, 0};
    bool has_val = false;
    for (const EpochMetrics& m : epochs) {
      const double x = m.epoch;
      has_val |= m.val_loss.has_value();
      // The epochs without a split's numbers (no validation split; those eval_every skips) add no
      // point to its curve, which joins the epochs that have them.
      const std::optional<double> ls[3] = {m.train_loss, m.val_loss, m.test_loss};
      const std::optional<double> as[3] = {m.train_acc, m.val_acc, m.test_acc};
      for (int k = 0; k < 3; ++k) {
        if (ls[k]) l[k].x.push_back(x), l[k].y.push_back(*ls[k]);
        if (as[k]) a[k].x.push_back(x), a[k].y.push_back(100 * *as[k]);
      }
      rate.x.push_back(x), rate.y.push_back(m.lr);
    }
    for (int k = 0; k < 3; ++k) {
      if (k == 1 && !has_val) continue;
      loss.curves.push_back(l[k]);
      acc.curves.push_back(a[k]);
    }
    lr.curves.push_back(rate);
  }
  return svg_charts({loss, acc, lr});
}

}  // namespace vit
