// Image-folder datasets (folder:DIR, torchvision's ImageFolder layout): DIR/train/<class>/*, and
// DIR/val/<class>/*, DIR/test/<class>/* when there. Every image is decoded once, when the dataset
// is opened (in parallel, a chunk at a time, with progress), into an ImageList: converted to the
// model's channels and resized as DatasetOptions::preprocess says (the eval transform's resize;
// batches cut the centre, or a random resized crop), kept in the image cache (data/cache.hpp) and
// mapped from it when there is a cache directory, else in memory. Unreadable images stop it, or
// are skipped and listed (DatasetOptions::skip_bad).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/numbers.hpp"
#include "data/cache.hpp"
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

// Whether text can be JSON text (well-formed UTF-8), as a checkpoint's class names must: what
// nlohmann's writer, which writes them, checks.
bool json_text(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

// The class folders of a split directory, sorted by name (byte order). Their names become the
// checkpoint's class names, JSON text: a name that is not UTF-8 is refused here, before training.
std::vector<std::string> class_folders(const fs::path& split) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(split, ec)) {
    if (!hidden(e.path()) && e.is_directory(ec)) names.push_back(e.path().filename().string());
  }
  VIT_CHECK(!ec, "cannot list '" + split.string() + "': " + ec.message());
  for (const std::string& name : names) {
    VIT_CHECK(json_text(name), "class folder '" + (split / name).string() +
                                   "': its name, the class's, is not UTF-8 text (as a checkpoint "
                                   "stores class names); rename it");
  }
  std::sort(names.begin(), names.end());
  return names;
}

struct Listing {
  std::vector<std::string> files;
  std::vector<int32_t> labels;
};

// Every image file of split/<class>/ (below it too, as torchvision walks, following links to
// folders), by class then name, for the class folders split has (train/'s classes, numbered by
// `index`). A folder reached twice (a link back up the tree, a loop torchvision would follow
// until the path is too long, or two links to one folder) is a vit::Error naming the link: its
// images would count again, under this class.
Listing list_split(const fs::path& split, const std::map<std::string, int>& index) {
  Listing l;
  for (const std::string& name : class_folders(split)) {
    const fs::path dir = split / name;
    const int k = index.at(name);
    std::vector<std::string> found;
    std::error_code ec;
    std::map<fs::path, fs::path> folders{{fs::canonical(dir, ec), dir}};  // real path: first way in
    auto it =
        fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (hidden(it->path())) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_directory(ec)) {
        const auto [first, fresh] = folders.emplace(fs::canonical(it->path(), ec), it->path());
        if (!ec && !fresh) {
          fs::path link = it->path();  // the link on the way: the innermost one
          std::error_code link_ec;
          while (link != dir && !fs::is_symlink(link, link_ec)) link = link.parent_path();
          throw Error("'" + it->path().string() + "' is '" + first->second.string() +
                      "' again, through the link '" + link.string() +
                      "' (a loop, or a second way in): its images would count twice; remove "
                      "the link");
        }
      }
      if (image_file_name(it->path().string()) && it->is_regular_file(ec)) {
        found.push_back(it->path().string());
      }
    }
    VIT_CHECK(!ec, "cannot list '" + dir.string() + "': " + ec.message());
    VIT_CHECK(!found.empty(), "class folder '" + dir.string() + "' holds no image file (" +
                                  image_extensions() +
                                  "); "
                                  "remove it or add its images");
    std::sort(found.begin(), found.end());
    for (std::string& f : found) {
      l.files.push_back(std::move(f));
      l.labels.push_back(int32_t(k));
    }
  }
  return l;
}

// Where decoded images go, in the listing's order: an in-memory list or a cache file.
struct Sink {
  std::function<void(const uint8_t* planar, int w, int h, int32_t label)> add;
  std::function<void(const std::string& reason)> error;
};

// The reason a file could not be read, as a run that stops reports it.
std::string stop_reason(const std::string& error) {
  return error +
         "; replace or remove the file, or leave unreadable images out with "
         "`skip_bad_images`";
}

// Decodes every file into its resized pixels [C, h, w], a chunk at a time in parallel, handing
// them to the sink in order, and telling o.progress how far it is (from the first thread only).
// A file that cannot be read stops it with the file's name and the reason (the first such file in
// the listing's order) or, with o.skip_bad, goes to the sink as a reason.
void decode_all(const Listing& l, const DatasetOptions& o, int scale, int64_t* done, int64_t total,
                const Sink& sink) {
  const int channels = o.shape.channels, size = o.shape.height;
  const Preprocess& pre = o.preprocess;
  const int64_t n = int64_t(l.files.size());
  // Images decoded before they are handed on: bounded memory, and buffers that later chunks
  // reuse. Each buffer's first use faults its pages in: 256 of them took 11,500 more page faults
  // than 64 and ran 385-504 against 542-687 img/s (a first decode of 1,040 photos on one core,
  // three runs each); 16 a thread keeps every thread busy.
  const int64_t kChunk = std::max(64, 16 * omp_get_max_threads());
  std::vector<std::vector<uint8_t>> decoded(static_cast<size_t>(kChunk));
  std::vector<Extent> extents(static_cast<size_t>(kChunk));
  std::vector<std::string> errors(static_cast<size_t>(kChunk));
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    if (o.stop && o.stop()) {
      throw Stopped("stopped while decoding the images (" + std::to_string(*done + c0) + " of " +
                    std::to_string(total) + " done); nothing was kept");
    }
    const int64_t m = std::min(kChunk, n - c0);
    std::exception_ptr error;
    std::atomic<bool> failed{false};
    std::atomic<int64_t> finished{0};
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t j = 0; j < m; ++j) {
      errors[size_t(j)].clear();
      if (failed.load(std::memory_order_relaxed)) continue;
      try {
        // DCT-domain scaling may shrink a JPEG while its shorter side stays at the resize's.
        const Image image = convert_image(
            decode_image(l.files[size_t(c0 + j)], {.min_side = scale, .exif = o.preprocess.exif}),
            channels);
        const Extent e = resized_extent(image.width, image.height, size, pre, scale);
        if (std::max(e.width, e.height) > data::kMaxStoredSide) {
          throw Error("'" + l.files[size_t(c0 + j)] + "' is " + std::to_string(image.width) +
                      " x " + std::to_string(image.height) + " pixels: resized for the model, it " +
                      "would be " + std::to_string(e.width) + " x " + std::to_string(e.height) +
                      ", over the " + std::to_string(data::kMaxStoredSide) +
                      " pixels a side a dataset's image may have; crop it");
        }
        std::vector<uint8_t>& px = decoded[size_t(j)];
        px.resize(size_t(channels) * size_t(e.width) * size_t(e.height));
        data::resize_planes(data::Planes::interleaved(image), e.width, e.height, pre.interpolation,
                            px.data());
        extents[size_t(j)] = e;
      } catch (const Error& e) {
        errors[size_t(j)] = e.what();
        if (!o.skip_bad) failed = true;
      } catch (...) {
#pragma omp critical(vit_folder_error)
        if (!error) error = std::current_exception();
        failed = true;
      }
      const int64_t f = finished.fetch_add(1, std::memory_order_relaxed) + 1;
      if (o.progress && omp_get_thread_num() == 0 && f % 16 == 0) o.progress(*done + f, total);
    }
    if (error) std::rethrow_exception(error);
    for (int64_t j = 0; j < m; ++j) {
      if (!errors[size_t(j)].empty()) {
        VIT_CHECK(o.skip_bad, stop_reason(errors[size_t(j)]));
        sink.error(errors[size_t(j)]);
        continue;
      }
      const Extent e = extents[size_t(j)];
      sink.add(decoded[size_t(j)].data(), e.width, e.height, l.labels[size_t(c0 + j)]);
    }
    *done += m;
    if (o.progress) o.progress(*done, total);
  }
}

// What a split's cached pixels depend on, hashed: the cache's format, the model's channels and
// size, the preprocessing, and every file's path, size, modification time and label.
uint64_t split_key(const Listing& l, const DatasetOptions& o, int scale) {
  std::string d = "vitcpp folder cache 1\n";
  char buf[160];
  std::snprintf(buf, sizeof buf, "%d %d %s %d %d %d%s\n", o.shape.channels, o.shape.height,
                general_text(o.preprocess.crop_pct, 17).c_str(), int(o.preprocess.crop_mode),
                int(o.preprocess.interpolation), scale, o.preprocess.exif ? "" : " no-exif");
  d += buf;
  for (size_t i = 0; i < l.files.size(); ++i) {
    std::error_code ec;
    const auto size = fs::file_size(l.files[i], ec);
    const auto time = fs::last_write_time(l.files[i], ec).time_since_epoch().count();
    std::snprintf(buf, sizeof buf, "\t%llu\t%lld\t%d\n", (unsigned long long)size, (long long)time,
                  int(l.labels[i]));
    d += l.files[i] + buf;
  }
  return data::fnv1a(d);
}

// A split's images: from its cache file when there is a valid one for the same files and
// settings, else decoded (into a new cache file when there is a cache directory).
std::shared_ptr<const ImageList> load_split(const Listing& l, const DatasetOptions& o, int scale,
                                            int64_t* done, int64_t total,
                                            std::vector<std::string>* skipped) {
  const int channels = o.shape.channels, size = o.shape.height;
  // Stored larger than the eval resize: its samples resized again (ImageList::rescale).
  const auto rescale = scale != o.preprocess.scale_size(size)
                           ? std::make_shared<const Preprocess>(o.preprocess)
                           : nullptr;
  if (o.cache_dir.empty()) {
    auto list = std::make_shared<ImageList>();
    list->channels = channels;
    list->image_size = size;
    list->rescale = rescale;
    const int64_t files = int64_t(l.files.size());
    decode_all(l, o, scale, done, total,
               {[&](const uint8_t* p, int w, int h, int32_t y) {
                  // Room for every file at 1.5 times the first one's size (the shorter sides
                  // are all the same; untouched room costs nothing).
                  if (list->offsets.empty())
                    list->reserve(int64_t(channels) * w * h * files * 3 / 2);
                  list->add(p, w, h, y);
                },
                [&](const std::string& reason) { skipped->push_back(reason); }});
    list->seal();
    return list;
  }
  const uint64_t key = split_key(l, o, scale);
  const std::string path = data::cache_file(o.cache_dir, "folder", key);
  std::vector<std::string> reasons;
  std::shared_ptr<ImageList> cached = data::open_cache(path, key, channels, size, &reasons);
  if (!cached) {
    std::error_code ec;
    fs::create_directories(o.cache_dir, ec);
    VIT_CHECK(!ec, "cannot make the image cache directory '" + o.cache_dir + "': " + ec.message() +
                       "; point `cache_dir` somewhere writable");
    data::CacheWriter writer(path, key, channels, size);
    const int64_t before = *done;
    decode_all(l, o, scale, done, total,
               {[&](const uint8_t* p, int w, int h, int32_t y) { writer.add(p, w, h, y); },
                [&](const std::string& reason) { writer.add_error(reason); }});
    writer.commit();
    cached = data::open_cache(path, key, channels, size, &reasons);
    VIT_CHECK(cached, "the image cache '" + path + "' just written cannot be read back");
    *done = before;  // counted again below, once
  }
  for (const std::string& r : reasons) {
    VIT_CHECK(o.skip_bad, stop_reason(r));
    skipped->push_back(r);
  }
  *done += int64_t(l.files.size());
  if (o.progress) o.progress(*done, total);
  cached->rescale = rescale;
  return cached;
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
    VIT_CHECK(!listings[name].files.empty(), "'" + split.string() + "' holds no class folder (" +
                                                 name +
                                                 "/<class>/<images>); add them, or "
                                                 "remove the empty folder");
  }
  auto open_split = [&](const char* name) -> std::shared_ptr<const Dataset> {
    if (!listings.count(name)) return nullptr;
    // The eval resize for every split, or for the training split the side asked for.
    const bool larger = options.train_scale > 0 && std::string(name) == "train";
    const int scale = larger ? options.train_scale : options.preprocess.scale_size(want.height);
    auto a = load_split(listings[name], options, scale, &done, total, &s.skipped);
    VIT_CHECK(a->size() > 0, "every image of '" + (root / name).string() + "' was unreadable");
    return a;
  };
  // val/ chooses the best epoch and test/ is reported; with only one of them, it is the test
  // split (reported, never choosing), and a validation split can come from `val_split`.
  VIT_CHECK(listings.count("val") || listings.count("test"),
            "folder dataset '" + dir +
                "' has no val/ or test/ folder to evaluate on; add one (val/<class>/<images>)");
  const bool both = listings.count("val") && listings.count("test");
  const unsigned asked = options.splits;
  // Only the splits asked for are decoded, and counted in the progress.
  std::set<std::string> decode;
  if ((asked & kTrainSplit) || ((asked & kValSplit) && !both)) decode.insert("train");
  if ((asked & kValSplit) && both) decode.insert("val");
  if (asked & kTestSplit) decode.insert((both || listings.count("test")) ? "test" : "val");
  std::erase_if(listings, [&](const auto& split) { return !decode.count(split.first); });
  for (const auto& [name, listing] : listings) total += int64_t(listing.files.size());
  s.train = open_split("train");
  std::shared_ptr<const Dataset> val = open_split("val"), test = open_split("test");
  if (both) {
    s.val = val;
    s.test = test;
  } else {
    s.test = val ? val : test;
  }
  return s;
}

}  // namespace data
}  // namespace vit
