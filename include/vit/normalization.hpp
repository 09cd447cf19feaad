// What a checkpoint keeps of its training data's preprocessing: per-channel normalisation
// statistics, the input style, and how an image file becomes the model's input (the crop and the
// resampling filter). vit/transforms.hpp computes and applies them. It depends only on the field
// lists, so checkpoints can keep it without depending on datasets or transforms.
#pragma once

#include <string>
#include <vector>

#include "vit/fields.hpp"

namespace vit {

// Per-channel mean and standard deviation of pixel / 255 (over a training split; see
// vit::compute_normalization).
struct Normalization {
  std::vector<float> mean, std;

  // Where a run's statistics come from: its training images (compute_normalization), or the
  // constants pretrained models expect: ImageNet's (timm's IMAGENET_DEFAULT_MEAN / _STD),
  // Inception's (0.5 for every channel) or OpenAI CLIP's (OPENAI_CLIP_MEAN / _STD), all for
  // 3-channel images.
  enum Source { kData, kImagenet, kInception, kClip };
  // The constants of kImagenet, kInception or kClip for `channels` channels; vit::Error for
  // another number of channels than 3, or for kData (which needs the data).
  static Normalization preset(Source source, int channels);
};

// The background a dataset's images share: dark (objects light on black: MNIST, Fashion-MNIST),
// light (dark ink on paper), or none (kMixed: photos, whose borders vary), where prediction never
// inverts an image.
enum class Background { kDark, kLight, kMixed };

// How a dataset's images look, which a checkpoint records for prediction: their background and
// whether they went through MNIST's own preprocessing (the digit's bounding box scaled to fit
// 20 x 20, keeping its aspect, and centred by its centre of mass in 28 x 28).
struct InputStyle {
  Background background = Background::kMixed;
  bool fit_mnist = false;
};

// The resampling filters of Pillow's Image.resize that torchvision and timm use: triangle
// (bilinear) and cubic convolution with a = -0.5 (bicubic), each widened by the scale when
// shrinking (antialiased), and nearest (the sample at each output pixel's centre).
enum class Interpolation { kBilinear, kBicubic, kNearest };
// How an image becomes a square of the model's size S (timm's crop_mode): kCenter resizes its
// shorter side to floor(S / crop_pct) keeping the aspect and cuts the centred S x S; kSquash
// resizes both sides to floor(S / crop_pct), then cuts the centre; kBorder resizes the longer side
// to floor(S / crop_pct) keeping the aspect, then pads with the mean colour to S x S where it is
// smaller and cuts the centre where larger.
enum class CropMode { kCenter, kSquash, kBorder };

// An image file's way to the model's input at evaluation and prediction, timm's eval transform
// (pretrained_cfg's crop_pct, crop_mode and interpolation). A recipe holds one for its run, and a
// checkpoint keeps the one its model expects.
struct Preprocess {
  double crop_pct = 0.875;  // timm's default for new models; 1 keeps the whole image (center)
  CropMode crop_mode = CropMode::kCenter;
  Interpolation interpolation = Interpolation::kBicubic;
  // JPEGs turned upright by their EXIF orientation (phone photos); timm, reading with PIL, does
  // not, so timm's models are read with exif false.
  bool exif = true;

  // The side an image is resized to before the crop: floor(size / crop_pct), as timm computes it.
  int scale_size(int size) const;

  template <class Self, class Visitor>
  static void visit_fields(Self& p, Visitor&& v) {
    v(Field{.name = "crop_pct",
            .help = "Share of an image file's shorter side the model sees (timm's crop_pct): "
                    "resized to size / crop_pct, then the centre cut",
            .lo = 0,
            .hi = 1,
            .lo_open = true,
            .optional = true},
      p.crop_pct);
    v(Field{.name = "crop_mode",
            .help = "How an image file is made square: center (keep the aspect, cut), squash "
                    "(stretch) or border (keep the aspect, pad)",
            .words = {"center", "squash", "border"},
            .optional = true},
      p.crop_mode);
    v(Field{.name = "interpolation",
            .help = "Resampling filter for image files (Pillow's; bilinear and bicubic "
                    "antialiased)",
            .words = {"bilinear", "bicubic", "nearest"},
            .optional = true},
      p.interpolation);
    v(Field{.name = "exif",
            .help = "Turn JPEG files upright by their EXIF orientation (timm does not: off for "
                    "timm's models)",
            .optional = true},
      p.exif);
  }
  std::string to_json() const;
  static Preprocess from_json(const std::string& json);  // fields left out keep their defaults
};

}  // namespace vit
