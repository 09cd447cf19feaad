// Per-channel normalisation statistics: what a checkpoint keeps and preprocessing applies
// (vit/transforms.hpp computes and applies them). It depends on nothing else in vitcpp, so
// checkpoints can keep it without depending on datasets or transforms.
#pragma once

#include <vector>

namespace vit {

// Per-channel mean and standard deviation of pixel / 255 (over a training split; see
// vit::compute_normalization).
struct Normalization {
  std::vector<float> mean, std;
};

}  // namespace vit
