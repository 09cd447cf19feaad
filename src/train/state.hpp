// The resume state: what last.train.safetensors holds besides its tensors (weights, AdamW
// moments), each field listed once (visit_fields); it is written and read as the file's metadata,
// under the keys runs have always used.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "vit/fields.hpp"
#include "vit/train.hpp"

namespace vit {

// Where training is inside the current epoch (all zero at an epoch boundary).
struct EpochPosition {
  int64_t step = 0;  // batches done
  double loss_sum = 0, seconds = 0;
  double data_seconds = 0;  // of those, the steps waiting for their images
  double wait_seconds = 0;  // and waiting for the other ranks (a distributed run)
  int64_t correct = 0, seen = 0;
};

struct TrainState {
  int64_t epochs_done = 0;     // finished epochs
  int64_t step = 0;            // steps over the whole run
  int64_t optimizer_step = 0;  // the optimizer's step count (its bias correction)
  Recipe recipe;
  std::string data_spec, data_dir;  // the dataset (load_dataset's spec) and where it was read
  bool skip_bad_images = false;     // unreadable images left out (DatasetOptions::skip_bad)
  double best_acc = -1;             // the best validation accuracy so far (-1: none yet)
  int best_epoch = 0;
  double best_test_acc = 0;  // the test accuracy of that epoch
  EpochPosition pos;

  template <class Self, class Visitor>
  static void visit_fields(Self& s, Visitor&& v) {
    v(Field{.name = "epoch"}, s.epochs_done);
    v(Field{.name = "step"}, s.step);
    v(Field{.name = "optimizer_step"}, s.optimizer_step);
    v(Field{.name = "recipe"}, s.recipe);
    v(Field{.name = "data"}, s.data_spec);
    v(Field{.name = "data_dir"}, s.data_dir);
    v(Field{.name = "skip_bad_images", .optional = true}, s.skip_bad_images);
    v(Field{.name = "best_acc"}, s.best_acc);
    v(Field{.name = "best_epoch"}, s.best_epoch);
    v(Field{.name = "best_test_acc", .optional = true}, s.best_test_acc);
    v(Field{.name = "epoch_step"}, s.pos.step);
    v(Field{.name = "epoch_loss_sum"}, s.pos.loss_sum);
    v(Field{.name = "epoch_correct"}, s.pos.correct);
    v(Field{.name = "epoch_seen"}, s.pos.seen);
    v(Field{.name = "epoch_seconds"}, s.pos.seconds);
    v(Field{.name = "epoch_data_seconds", .optional = true}, s.pos.data_seconds);
    v(Field{.name = "epoch_wait_seconds", .optional = true}, s.pos.wait_seconds);
  }

  // The file's metadata: "kind" = "train-state" and every field as text (integers in decimal,
  // doubles with 17 significant digits, so they read back exactly; the recipe as its JSON).
  std::map<std::string, std::string> to_metadata() const;
  // The inverse; vit::Error naming `path` and the key when the kind is wrong or a key is missing
  // (one that is not optional) or malformed.
  static TrainState from_metadata(const std::map<std::string, std::string>& md,
                                  const std::string& path);
};

}  // namespace vit
