// Image-folder datasets (folder:DIR, torchvision's ImageFolder layout): DIR/train/<class>/*, and
// DIR/val/<class>/*, DIR/test/<class>/* when there. Every image is decoded once, when the dataset
// is opened (in parallel, with progress), into an in-memory ImageList: converted to the model's
// channels and resized as DatasetOptions::preprocess says (the eval transform's resize; batches
// cut the centre, or a random resized crop). Unreadable images stop it, or are skipped and listed
// (DatasetOptions::skip_bad).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/resample.hpp"
#include "data/sources.hpp"
#include "vit/dataset.hpp"
#include "vit/error.hpp"
#include "vit/image.hpp"
#include "vit/transforms.hpp"

namespace vit {
namespace {

namespace fs = std::filesystem;

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

// The class folders of a split directory, sorted by name (byte order).
std::vector<std::string> class_folders(const fs::path& split) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(split, ec)) {
    if (!hidden(e.path()) && e.is_directory(ec)) names.push_back(e.path().filename().string());
  }
  VIT_CHECK(!ec, "cannot list '" + split.string() + "': " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

struct Listing {
  std::vector<std::string> files;
  std::vector<int32_t> labels;
};

// Every image file of split/<class>/ (below it too, as torchvision walks), by class then name,
// for the class folders split has (train/'s classes, numbered by `index`).
Listing list_split(const fs::path& split, const std::map<std::string, int>& index) {
  Listing l;
  for (const std::string& name : class_folders(split)) {
    const fs::path dir = split / name;
    const int k = index.at(name);
    std::vector<std::string> found;
    std::error_code ec;
    auto it =
        fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (hidden(it->path())) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (image_file_name(it->path().string()) && it->is_regular_file(ec)) {
        found.push_back(it->path().string());
      }
    }
    VIT_CHECK(!ec, "cannot list '" + dir.string() + "': " + ec.message());
    VIT_CHECK(!found.empty(), "class folder '" + dir.string() +
                                  "' holds no image file (.png, .jpg, .jpeg, .bmp, .pgm, .ppm); "
                                  "remove it or add its images");
    std::sort(found.begin(), found.end());
    for (std::string& f : found) {
      l.files.push_back(std::move(f));
      l.labels.push_back(int32_t(k));
    }
  }
  return l;
}

// Decodes every file into its resized pixels [C, h, w], in parallel, telling o.progress how far it
// is (from the first thread only). A file that cannot be read stops it with the file's name and
// the reason (the first such file in the listing's order, whichever thread met it) or, with
// o.skip_bad, is left out and listed in *skipped.
std::shared_ptr<ImageList> decode_all(const Listing& l, const DatasetOptions& o, int64_t* done,
                                      int64_t total, std::vector<std::string>* skipped) {
  const int channels = o.shape.channels, size = o.shape.height;
  const Preprocess& pre = o.preprocess;
  const int64_t n = int64_t(l.files.size());
  std::vector<std::vector<uint8_t>> decoded(static_cast<size_t>(n));
  std::vector<Extent> extents(static_cast<size_t>(n));
  std::vector<std::string> errors(static_cast<size_t>(n));  // per file: why it could not be read
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  std::atomic<int64_t> finished{0};
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < n; ++i) {
    if (failed.load(std::memory_order_relaxed)) continue;
    try {
      // DCT-domain scaling may shrink a JPEG while its shorter side stays at the resize's.
      const Image image = convert_image(
          decode_image(l.files[size_t(i)], {.min_side = pre.scale_size(size)}), channels);
      const Extent e = resized_extent(image.width, image.height, size, pre);
      std::vector<uint8_t>& px = decoded[size_t(i)];
      px.resize(size_t(channels) * size_t(e.width) * size_t(e.height));
      data::resize_planes(data::Planes::interleaved(image), e.width, e.height, pre.interpolation,
                          px.data());
      extents[size_t(i)] = e;
    } catch (const Error& e) {
      errors[size_t(i)] = e.what();
      if (!o.skip_bad) failed = true;
    } catch (...) {
#pragma omp critical(vit_folder_error)
      if (!error) error = std::current_exception();
      failed = true;
    }
    const int64_t f = finished.fetch_add(1, std::memory_order_relaxed) + 1;
    if (o.progress && omp_get_thread_num() == 0 && f % 64 == 0) o.progress(*done + f, total);
  }
  if (error) std::rethrow_exception(error);
  if (!o.skip_bad) {
    for (const std::string& e : errors) {
      if (!e.empty()) {
        throw Error(e +
                    "; replace or remove the file, or leave unreadable images out with "
                    "`skip_bad_images`");
      }
    }
  }
  *done += n;
  if (o.progress) o.progress(*done, total);
  // The images that were read, in order.
  auto list = std::make_shared<ImageList>();
  list->channels = channels;
  list->image_size = size;
  size_t bytes = 0;
  for (const auto& px : decoded) bytes += px.size();
  list->pixels.reserve(bytes);
  for (int64_t i = 0; i < n; ++i) {
    if (!errors[size_t(i)].empty()) {
      skipped->push_back(errors[size_t(i)]);
      continue;
    }
    const Extent e = extents[size_t(i)];
    list->add(decoded[size_t(i)].data(), e.width, e.height, l.labels[size_t(i)]);
    std::vector<uint8_t>().swap(decoded[size_t(i)]);
  }
  return list;
}

}  // namespace

namespace data {

int folder_classes(const std::string& dir, const std::string&) {
  const fs::path train = fs::path(dir) / "train";
  std::error_code ec;
  if (!fs::is_directory(train, ec)) return 0;
  return int(class_folders(train).size());
}

DatasetSplits open_folder(const std::string& dir, const DatasetOptions& options) {
  VIT_CHECK(!dir.empty(), "dataset 'folder:' needs a directory, e.g. folder:/data/flowers");
  const fs::path root(dir), train = root / "train";
  std::error_code ec;
  VIT_CHECK(fs::is_directory(train, ec),
            "folder dataset '" + dir + "' not found: it needs " + train.string() +
                "/<class>/<images> (and optionally val/<class>/ and test/<class>/)");
  const SampleShape want = options.shape;
  VIT_CHECK(want.channels >= 1 && want.height >= 1 && want.height == want.width,
            "a folder dataset is decoded at the model's square input size; none was given");
  DatasetSplits s;
  s.preprocessed = true;
  s.class_names = class_folders(train);
  const int K = int(s.class_names.size());
  VIT_CHECK(K >= 1, "'" + train.string() + "' holds no class folder (train/<class>/<images>)");
  require_classes("folder:" + dir, K, options);
  std::map<std::string, int> index;
  for (int k = 0; k < K; ++k) index[s.class_names[size_t(k)]] = k;
  // Every split listed first (the layout's errors before any decoding), then decoded.
  std::map<std::string, Listing> listings;
  int64_t total = 0, done = 0;
  for (const char* name : {"train", "val", "test"}) {
    const fs::path split = root / name;
    if (!fs::is_directory(split, ec)) continue;
    for (const std::string& c : class_folders(split)) {
      VIT_CHECK(index.count(c), "class folder '" + (split / c).string() +
                                    "' has no counterpart in train/; every class of " + name +
                                    "/ must be one the model trains on");
    }
    listings[name] = list_split(split, index);
    total += int64_t(listings[name].files.size());
  }
  auto open_split = [&](const char* name) -> std::shared_ptr<const Dataset> {
    if (!listings.count(name)) return nullptr;
    auto a = decode_all(listings[name], options, &done, total, &s.skipped);
    VIT_CHECK(a->size() > 0, "every image of '" + (root / name).string() + "' was unreadable");
    return a;
  };
  s.train = open_split("train");
  // val/ chooses the best epoch and test/ is reported; with only one of them, it is the test
  // split (reported, never choosing), and a validation split can come from `val_split`.
  std::shared_ptr<const Dataset> val = open_split("val"), test = open_split("test");
  if (val && test) {
    s.val = val;
    s.test = test;
  } else {
    s.test = val ? val : test;
  }
  VIT_CHECK(s.test != nullptr, "folder dataset '" + dir +
                                   "' has no val/ or test/ folder to evaluate on; add one "
                                   "(val/<class>/<images>)");
  return s;
}

}  // namespace data
}  // namespace vit
