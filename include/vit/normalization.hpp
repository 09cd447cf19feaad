// Per-channel normalisation statistics and the input style: what a checkpoint keeps of its
// training data and preprocessing applies (vit/transforms.hpp computes and applies them). It
// depends on nothing else in vitcpp, so checkpoints can keep it without depending on datasets or
// transforms.
#pragma once

#include <vector>

namespace vit {

// Per-channel mean and standard deviation of pixel / 255 (over a training split; see
// vit::compute_normalization).
struct Normalization {
  std::vector<float> mean, std;

  // Where a run's statistics come from: its training images (compute_normalization), or the
  // constants pretrained models expect: ImageNet's (timm's IMAGENET_DEFAULT_MEAN / _STD) or
  // Inception's (0.5 for every channel), both for 3-channel images.
  enum Source { kData, kImagenet, kInception };
  // The constants of kImagenet or kInception for `channels` channels; vit::Error for another
  // number of channels than 3, or for kData (which needs the data).
  static Normalization preset(Source source, int channels);
};

// How a dataset's images look, which a checkpoint records for prediction: whether objects are
// light on a dark background (MNIST, Fashion-MNIST) and whether they went through MNIST's own
// preprocessing (the digit's bounding box scaled to fit 20 x 20, keeping its aspect, and centred
// by its centre of mass in 28 x 28).
struct InputStyle {
  bool dark_background = false;
  bool fit_mnist = false;
};

}  // namespace vit
