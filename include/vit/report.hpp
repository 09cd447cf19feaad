// What a run learned, for people: the pictures `vit eval --errors` and `vit attention` write, and
// one self-contained HTML page of a run (vit report) that holds them all with the curves, the
// configuration and the metrics.
#pragma once

#include <string>

#include "vit/attention.hpp"
#include "vit/checkpoint.hpp"
#include "vit/dataset.hpp"
#include "vit/train.hpp"

namespace vit {

// r.mistakes as a PNG grid, 4 to a row: each image as the model saw it (split's eval transform,
// then back from the normalisation), enlarged to about 112 pixels a side, captioned "TRUE as
// PREDICTED (P%)"; what names the split in the title. vit::Error without cairo (png_panels).
std::string mistakes_png(const EvalResult& r, const Dataset& split, const ModelMeta& meta,
                         const std::string& what);

// One image's attention as a PNG: pixels (the prepared input, uint8 [C, S, S], enlarged to about
// 224 pixels a side) beside a heat map per map of `maps` (4 to a row for heads), captioned with
// the prediction (class name and probability); name (a file name) starts the title, which also
// says whose attention it is.
std::string attention_png(const Config& config, const uint8_t* pixels, const AttentionMaps& maps,
                          AttentionMethod method, const std::string& predicted, double prob,
                          const std::string& name);

struct ReportInputs {
  std::string run_dir;           // its metrics.jsonl gives the curves and the epochs' table
  LoadedModel* model = nullptr;  // the run's checkpoint (its best, else last); evaluated
  std::string checkpoint;        // that checkpoint's path, as shown
  // The split to evaluate on (null: the page has no evaluation sections, and says why:
  // no_data_reason) and its name.
  const Dataset* data = nullptr;
  std::string split = "test";
  std::string no_data_reason = "the dataset was not available";
  int mistakes = 16;         // images in the misclassified section
  int attention_images = 4;  // the split's first images, with their attention rollout
};

// The page: the run's model and recipe, its curves (inline SVG), the last and best epochs, then
// on data the accuracy, the confusion matrix (inline SVG), per-class accuracy, the most confident
// mistakes and attention rollouts of a few images (PNG, inlined as data: URLs; left out, saying
// why, without cairo). One file: no script, no external resource.
std::string report_html(const ReportInputs& in);

}  // namespace vit
