// timm's RandAugment (timm.data.auto_augment.rand_augment_transform): its config strings, its
// fifteen operations on 8-bit images computed as Pillow 9 computes them (bit for bit: the same
// integer and float arithmetic, the same rounding), and the seeded draw of each sample's ops.
#pragma once

#include <cstdint>
#include <string>

#include "core/rng.hpp"
#include "vit/normalization.hpp"

namespace vit::data {

// timm's _RAND_TRANSFORMS, in its order; with `inc1` posterize, solarize and the four
// enhancements take their 'Increasing' arguments (_RAND_INCREASING_TRANSFORMS).
enum class AugOp {
  kAutoContrast,
  kEqualize,
  kInvert,
  kRotate,
  kPosterize,
  kSolarize,
  kSolarizeAdd,
  kColor,
  kContrast,
  kBrightness,
  kSharpness,
  kShearX,
  kShearY,
  kTranslateXRel,
  kTranslateYRel,
};
constexpr int kNumAugOps = 15;
const char* to_string(AugOp op);

// A RandAugment config string as timm writes it: "rand" then dash-separated sections in any
// order, m<int> magnitude (default 10), n<int> ops per image (2), p<float> each op's probability
// (0.5), mstd<float> the magnitude's standard deviation (0; above 100: uniform in [0, m]),
// mmax<int> the magnitude's upper clamp (10), inc<0|1> the increasing ops (0). DeiT's is
// "rand-m9-mstd0.5-inc1". Unlike timm, which reads any `inc` as on, `inc0` is off.
struct RandAugment {
  int magnitude = 10;
  int num_layers = 2;
  double prob = 0.5;
  double magnitude_std = 0;  // +inf: uniform
  int magnitude_max = 10;
  bool increasing = false;
  // vit::Error naming the section it cannot read (timm's transform sets `t...` are refused).
  static RandAugment parse(const std::string& spec);
};

// An image the ops work on: uint8 planar [C, h, w], C 1 (Pillow's mode "L") or 3 ("RGB").
struct PlanarImage {
  uint8_t* p = nullptr;
  int channels = 0, height = 0, width = 0;
};

// Applies one op with its argument (timm's level_to_arg output: degrees for kRotate, bits to keep
// for kPosterize, the threshold for kSolarize, the addend for kSolarizeAdd, the blend factor of
// the enhancements, the shear factor, the translation as a fraction of the side) in place. The
// geometric ops resample with `filter` (Pillow's transform filters: nearest, bilinear, bicubic)
// and fill what comes from outside the image with fill[c].
void apply_aug_op(AugOp op, double arg, Interpolation filter, const uint8_t* fill,
                  const PlanarImage& image);

// The argument timm's AugmentOp gives `op` at magnitude m (already noised and clamped), drawing
// its random sign from rng where timm does (_randomly_negate: negative when uniform > 0.5).
double aug_op_arg(AugOp op, bool increasing, double m, Rng& rng);

// One sample's RandAugment: ra.num_layers ops drawn uniformly with replacement; each applied with
// probability ra.prob at a magnitude drawn as ra says (N(m, mstd), or uniform, clamped to
// [0, magnitude_max]). All draws from rng.
void rand_augment(const RandAugment& ra, Interpolation filter, const uint8_t* fill, Rng& rng,
                  const PlanarImage& image);

}  // namespace vit::data
