// Preprocessing, separate from decoding (vit/image.hpp) and from datasets' storage
// (vit/dataset.hpp): converting and resizing decoded images to the model's input (timm's eval
// transform), normalisation statistics, seeded per-sample augmentation, batch assembly, Mixup and
// CutMix, and the other seeded draws of training (epoch order, patch dropout's kept patches,
// drop-path's factors).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vit/dataset.hpp"
#include "vit/image.hpp"
#include "vit/normalization.hpp"

namespace vit {

// Converts a decoded image to `channels` (1: luminance with weights (77, 150, 29) / 256, 2: +
// alpha, 3: RGB, 4: RGBA; alpha 255 where the image has none) and resizes the whole of it to
// size x size with Pillow's bilinear filter (antialiased), returning uint8 [channels, size, size].
// invert turns dark-on-light drawings into MNIST's light-on-dark.
std::vector<uint8_t> resize_image(const Image& image, int channels, int size, bool invert = false);

// The width and height a w x h image is resized to before the crop to size x size
// (Preprocess::crop_mode): kCenter the shorter side to s = p.scale_size(size) and the longer to
// floor(s * longer / shorter) (torchvision's Resize); kSquash s x s; kBorder the longer side to s
// and the shorter to round(shorter * s / longer) (timm's ResizeKeepRatio, halves to even).
struct Extent {
  int width = 0, height = 0;
};
// scale > 0: that side instead of p.scale_size(size) (a training split stored larger).
Extent resized_extent(int w, int h, int size, const Preprocess& p, int scale = 0);

// Where the centred size x size window starts in a side of n pixels: round((n - size) / 2) with
// halves to even (torchvision's CenterCrop) when n >= size, else minus the padding before it,
// (size - n) / 2 rounded down (timm's CenterCropOrPad).
int centre_offset(int n, int size);

// timm's eval transform of an image already in the model's channels: resized to resized_extent
// with p.interpolation (Pillow's filter, bit for bit), then the centred size x size cut out, or,
// where the image is smaller (kBorder), padded with fill[c]. Returns uint8 [C, size, size].
std::vector<uint8_t> eval_transform(const Image& image, int size, const Preprocess& p,
                                    const std::vector<uint8_t>& fill);

// The border colour of kBorder for a normalisation: round(255 * mean[c]) (halves to even, as timm).
std::vector<uint8_t> border_fill(const Normalization& norm);

// An image in `channels` channels (1 gray, 3 RGB; 2 and 4 keep or add alpha): colour to gray by
// luminance, gray to colour by repeating it, and for 1 or 3 channels transparent pixels composited
// over the gray level `background`.
Image convert_image(const Image& image, int channels, uint8_t background = 255);
// The same, taking the image: one already in `channels` channels is handed back, not copied.
Image convert_image(Image&& image, int channels, uint8_t background = 255);

// A file decoded (decode_image) and squashed to size x size (resize_image): no crop, inversion
// rule or normalisation, as the fuzz harness reads files. A model's input as `vit predict` makes it
// is vit::ModelInput's (vit/model_input.hpp). Unreadable or undecodable files are a vit::Error.
std::vector<uint8_t> load_image(const std::string& path, int channels, int size,
                                bool invert = false);

// ---- Everyday images for prediction (vit predict): drawings, scans and photos made to look like
// the training data before resizing.

enum class Invert { kAuto, kOn, kOff };

struct PrepareOptions {
  // kAuto: invert when the image's border (its background) is light and the training data's is
  // dark, or the other way round; never when the training data's is mixed (photos).
  Invert invert = Invert::kAuto;
  // Follow InputStyle::fit_mnist (-1), or not (0), or fit whatever the style says (1).
  int fit_mnist = -1;
  // Gray level that transparent pixels are composited over (alpha is never dropped).
  uint8_t background = 255;
  // Without MNIST's fit (which crops to the ink): the resize and crop (eval_transform), padding
  // with border_fill (kBorder).
  Preprocess preprocess{.crop_pct = 1.0};
  std::vector<uint8_t> border_fill;  // one per channel; empty: 0
};

struct PreparedImage {
  std::vector<uint8_t> pixels;  // uint8 [channels, size, size]
  bool inverted = false;        // what kAuto decided (or kOn)
  bool fitted = false;          // MNIST's fit applied (false also when the image was blank)
};

// An image file's pixels made into a model's input: alpha composited over options.background,
// inverted as options.invert says, then either made size x size by eval_transform with
// options.preprocess or, with MNIST's fit, levelled (the background, the median of the border, to 0
// and the strongest ink to 255, so that grey paper and faint ink look like the training data), cut
// to the ink's bounding box, scaled to fit 20/28 of the side keeping its aspect and placed with its
// centre of mass at the centre. The fit needs a one-channel model (vit::Error otherwise); a blank
// image is resized whole.
PreparedImage prepare_image(const Image& image, int channels, int size, const InputStyle& style,
                            const PrepareOptions& options = {});

// Per-channel mean and standard deviation of pixel / 255 over a dataset (the training split).
Normalization compute_normalization(const Dataset& d);

// Normalises uint8 pixels [C, S, S] into floats: (p / 255 - mean[c]) / std[c]. vit::Error unless
// norm has a finite mean and a positive std for each channel.
void normalize_image(const uint8_t* pixels, int channels, int size, const Normalization& norm,
                     float* out);
// The inverse, for showing a model's input: (x * std[c] + mean[c]) * 255, rounded, clamped to
// [0, 255] (a normalised image made from pixels gives those pixels back).
std::vector<uint8_t> denormalize_image(const float* x, int channels, int size,
                                       const Normalization& norm);

struct AugmentOptions {
  // RandomResizedCrop (torchvision's, as timm trains): a random box of scale in [rrc_scale, 1]
  // of the image's area and aspect ratio (log-uniform) in [1 / rrc_ratio, rrc_ratio], resized to
  // the model's size with `interpolation` (the run's Preprocess filter). First in the chain.
  bool rrc = false;
  float rrc_scale = 0.08f, rrc_ratio = 4.0f / 3.0f;
  Interpolation interpolation = Interpolation::kBicubic;  // not a field: the run's Preprocess's
  int crop_padding = 0;  // random crop of the image zero-padded by this many pixels per side
  bool hflip = false;    // horizontal flip with probability 1/2
  // timm's RandAugment after the crop and flip, as its config string ("rand-m9-mstd0.5-inc1";
  // empty: off); its affine ops resample with `interpolation` and fill with the mean colour.
  std::string rand_augment;
  float erase_prob = 0.0f;  // random erasing (a rectangle set to the mean) with this probability
  bool enabled() const {
    return rrc || crop_padding > 0 || hflip || !rand_augment.empty() || erase_prob > 0.0f;
  }
  // Mixup and CutMix of whole batches (mix_batch; timm's Mixup in its default 'batch' mode):
  // Beta(alpha, alpha) for each (0: off); with both, each mixed batch is CutMix with probability
  // 1/2; a batch is mixed with probability mix_prob.
  float mixup_alpha = 0.0f, cutmix_alpha = 0.0f, mix_prob = 1.0f;
  bool mixes() const { return (mixup_alpha > 0.0f || cutmix_alpha > 0.0f) && mix_prob > 0.0f; }
};

// What mix_batch did to a batch: image j now holds lam of itself and 1 - lam of image B - 1 - j
// (the batch reversed), so its target is lam of its label and 1 - lam of that image's (lam 1:
// nothing was mixed). CutMix pasted the box [top, top + height) x [left, left + width).
struct Mixed {
  float lam = 1.0f;
  bool cutmix = false;
  int top = 0, left = 0, height = 0, width = 0;
};

// CutMix's box for lam in an S x S image centred at (cy, cx) (timm's rand_bbox): sides
// int(S * sqrt(1 - lam)), clipped to the image; and the lam its area leaves, 1 - area / S^2.
Mixed cutmix_box(int S, double lam, int cy, int cx);

// timm's Mixup in 'batch' mode on normalised images [B, C, S, S], drawn from (seed, epoch, step):
// with probability aug.mix_prob, lam ~ Beta(alpha, alpha) and either mixup (every image becomes
// lam x + (1 - lam) x reversed) or CutMix (the box of cutmix_box at a uniform centre pasted from
// the reversed batch, lam corrected to what it leaves); with both alphas, CutMix half the time.
Mixed mix_batch(float* images, int B, int C, int S, const AugmentOptions& aug, uint64_t seed,
                int64_t epoch, int64_t step);

// RandomResizedCrop's box in a width x height image (torchvision's get_params): up to 10 tries of
// area = width * height * uniform(scale, 1) and aspect = exp(uniform(-log(ratio), log(ratio))),
// w = round(sqrt(area * aspect)), h = round(sqrt(area / aspect)); the first that fits is placed at
// a uniform position (top = below(height - h + 1), then left = below(width - w + 1)); else the
// centred box of the whole image clamped to the ratio range.
struct CropBox {
  int left = 0, top = 0, width = 0, height = 0;
};
// The random draws a box takes, in order: a source of them (a seeded stream, or a test's list).
struct CropDraws {
  virtual ~CropDraws() = default;
  virtual double uniform(double lo, double hi) = 0;  // in [lo, hi)
  virtual int64_t below(int64_t n) = 0;              // in [0, n)
};
CropBox random_resized_crop_box(int width, int height, double scale, double ratio,
                                CropDraws& draws);

// Fills images [B, C, S, S] (normalised floats) and labels [B] with the samples idx[0..B) of d,
// whose samples must all be C x S x S (d.shape()); an ImageArray or ImageList is read in place (an
// ImageList's images cut to their centred S x S, padded with the normalisation's mean colour,
// unless a random resized crop takes its box from the whole image), any other dataset through
// read(). With augmentation, sample idx[i] gets its own random stream derived
// from (seed, epoch, idx[i]), so a batch is the same whatever the thread count and whether or not
// training was resumed.
// threads > 0: at most that many threads (the same batch for any number).
void make_batch(const Dataset& d, const int64_t* idx, int B, const Normalization& norm,
                const AugmentOptions& aug, uint64_t seed, int64_t epoch, float* images,
                int32_t* labels, int threads = 0);

// Patch dropout's draw for a batch: keep [B, num_keep] gets, for sample idx[b], num_keep distinct
// patch indices out of [0, num_patches) in increasing order, from a stream of (seed, epoch, idx[b])
// independent of the augmentation's (the same on resume and for any thread count).
void sample_kept_patches(const int64_t* idx, int B, int num_patches, int num_keep, uint64_t seed,
                         int64_t epoch, int32_t* keep);

// Drop-path's draw for a batch: factors [B, depth, 2] for sample idx[b], from a stream of (seed,
// epoch, idx[b]) of their own. Block l's attention and MLP branches are each kept with
// probability 1 - p_l, p_l = rate * l / (depth - 1) (timm's torch.linspace(0, rate, depth)), as
// the factor 1 / (1 - p_l), else dropped: 0 (Model::forward's drop_path).
void sample_drop_path(const int64_t* idx, int B, int depth, float rate, uint64_t seed,
                      int64_t epoch, float* factors);

// The order of an epoch's samples: a permutation of [0, n) determined by (seed, epoch).
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch);

}  // namespace vit
