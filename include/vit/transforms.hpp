// Preprocessing, separate from decoding (vit/image.hpp) and from datasets' storage
// (vit/dataset.hpp): converting and resizing decoded images to the model's input, normalisation
// statistics, seeded per-sample augmentation, batch assembly, and the other seeded draws of
// training (epoch order, patch dropout's kept patches).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vit/dataset.hpp"
#include "vit/image.hpp"
#include "vit/normalization.hpp"

namespace vit {

// Converts a decoded image to `channels` (1: luminance with weights (77, 150, 29) / 256, 2: +
// alpha, 3: RGB, 4: RGBA; alpha 255 where the image has none) and resizes it to size x size (a
// triangle filter: area averaging when shrinking, bilinear when enlarging), returning uint8
// [channels, size, size]. invert turns dark-on-light drawings into MNIST's light-on-dark.
std::vector<uint8_t> resize_image(const Image& image, int channels, int size, bool invert = false);

// `vit predict`'s input: decode_image(path), then resize_image. Unreadable or undecodable files
// are a vit::Error.
std::vector<uint8_t> load_image(const std::string& path, int channels, int size,
                                bool invert = false);

// ---- Everyday images for prediction (vit predict): drawings, scans and photos made to look like
// the training data before resizing.

enum class Invert { kAuto, kOn, kOff };
// How an image that is not square becomes one: its centred square (the shorter side whole, as
// timm's evaluation crop with crop_pct 1), or the whole image squashed.
enum class Crop { kCenter, kSquash };

struct PrepareOptions {
  // kAuto: invert when the image's border (its background) is light and the training data's is
  // dark, or the other way round.
  Invert invert = Invert::kAuto;
  // Follow InputStyle::fit_mnist (-1), or not (0), or fit whatever the style says (1).
  int fit_mnist = -1;
  // Gray level that transparent pixels are composited over (alpha is never dropped).
  uint8_t background = 255;
  Crop crop = Crop::kCenter;  // without MNIST's fit (which crops to the ink)
};

struct PreparedImage {
  std::vector<uint8_t> pixels;  // uint8 [channels, size, size]
  bool inverted = false;        // what kAuto decided (or kOn)
  bool fitted = false;          // MNIST's fit applied (false also when the image was blank)
};

// An image file's pixels made into a model's input: alpha composited over options.background,
// inverted as options.invert says, then either cropped as options.crop says and resized (as
// resize_image) or, with MNIST's
// fit, levelled (the background, the median of the border, to 0 and the strongest ink to 255, so
// that grey paper and faint ink look like the training data), cut to the ink's bounding box,
// scaled to fit 20/28 of the side keeping its aspect and placed with its centre of mass at the
// centre. The fit needs a one-channel model (vit::Error otherwise); a blank image is resized whole.
PreparedImage prepare_image(const Image& image, int channels, int size, const InputStyle& style,
                            const PrepareOptions& options = {});

// Per-channel mean and standard deviation of pixel / 255 over a dataset (the training split).
Normalization compute_normalization(const Dataset& d);

// Normalises uint8 pixels [C, S, S] into floats: (p / 255 - mean[c]) / std[c].
void normalize_image(const uint8_t* pixels, int channels, int size, const Normalization& norm,
                     float* out);

struct AugmentOptions {
  int crop_padding = 0;     // random crop of the image zero-padded by this many pixels per side
  bool hflip = false;       // horizontal flip with probability 1/2
  float erase_prob = 0.0f;  // random erasing (a rectangle set to the mean) with this probability
  bool enabled() const { return crop_padding > 0 || hflip || erase_prob > 0.0f; }
};

// Fills images [B, C, S, S] (normalised floats) and labels [B] with the samples idx[0..B) of d,
// whose samples must all be C x S x S (d.shape()); an ImageArray is read in place, any other
// dataset through read(). With augmentation, sample idx[i] gets its own random stream derived
// from (seed, epoch, idx[i]), so a batch is the same whatever the thread count and whether or not
// training was resumed.
void make_batch(const Dataset& d, const int64_t* idx, int B, const Normalization& norm,
                const AugmentOptions& aug, uint64_t seed, int64_t epoch, float* images,
                int32_t* labels);

// Patch dropout's draw for a batch: keep [B, num_keep] gets, for sample idx[b], num_keep distinct
// patch indices out of [0, num_patches) in increasing order, from a stream of (seed, epoch, idx[b])
// independent of the augmentation's (the same on resume and for any thread count).
void sample_kept_patches(const int64_t* idx, int B, int num_patches, int num_keep, uint64_t seed,
                         int64_t epoch, int32_t* keep);

// The order of an epoch's samples: a permutation of [0, n) determined by (seed, epoch).
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch);

}  // namespace vit
