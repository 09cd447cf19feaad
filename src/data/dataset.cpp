// The table of named dataset sources, opening a dataset by name (with the checks every source
// shares: label range, split shapes, class names), and ImageArray's per-sample reads.
#include <algorithm>
#include <new>
#include <string>

#include "core/arena.hpp"

#include "data/resample.hpp"
#include "data/sources.hpp"
#include "vit/dataset.hpp"
#include "vit/error.hpp"
#include "vit/suggest.hpp"
#include "vit/transforms.hpp"

namespace vit {

namespace {
template <int K>
int fixed_classes(const std::string&, const std::string&) {
  return K;
}
}  // namespace

const std::vector<DatasetSource>& dataset_sources() {
  // One entry per source; a new source is one more line here.
  static const std::vector<DatasetSource> sources = {
      {"fashion-mnist", "fashion-mnist",
       "Fashion-MNIST, Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)", true,
       false, data::open_fashion_mnist, fixed_classes<10>},
      {"mnist", "mnist",
       "the MNIST digits scripts/setup-data.sh prepares ($VIT_DATA/mnist, ./data/mnist)", false,
       true, data::open_mnist, fixed_classes<10>},
      {"idx:", "idx:DIR", "the four MNIST-style IDX files (each optionally .gz) in DIR", false,
       false, data::open_idx_dir, nullptr},
      {"folder:", "folder:DIR",
       "images in DIR/train/<class>/ (and DIR/val/<class>/, DIR/test/<class>/), torchvision's "
       "ImageFolder layout",
       false, false, data::open_folder, data::folder_classes},
      {"cifar10:", "cifar10:DIR", "CIFAR-10's binary version (data_batch_1.bin ... test_batch.bin)",
       true, false, data::open_cifar10, fixed_classes<10>},
      {"cifar100:", "cifar100:DIR",
       "CIFAR-100's binary version (train.bin, test.bin), 100 fine labels", true, false,
       data::open_cifar100_fine, fixed_classes<100>},
      {"cifar100-coarse:", "cifar100-coarse:DIR", "CIFAR-100 with its 20 coarse labels", true,
       false, data::open_cifar100_coarse, fixed_classes<20>},
  };
  return sources;
}

const DatasetSource* find_dataset_source(const std::string& spec, std::string* arg) {
  for (const DatasetSource& source : dataset_sources()) {
    const std::string name = source.name;
    const bool prefix = name.ends_with(':');
    if (prefix ? spec.starts_with(name) : spec == name) {
      if (arg) *arg = prefix ? spec.substr(name.size()) : "";
      return &source;
    }
  }
  return nullptr;
}

std::string with_label_set(const std::string& spec, const std::string& labels) {
  VIT_CHECK(labels.empty() || labels == "fine" || labels == "coarse",
            "`labels` must be fine or coarse (got '" + labels + "')");
  if (labels != "coarse" || spec.starts_with("cifar100-coarse:")) return spec;
  VIT_CHECK(spec.starts_with("cifar100:"),
            "`labels` coarse is CIFAR-100's 20 superclasses; '" + spec + "' has no coarse labels");
  return "cifar100-coarse:" + spec.substr(std::string("cifar100:").size());
}

std::string dataset_names() {
  std::string s;
  for (const DatasetSource& source : dataset_sources()) {
    s += (s.empty() ? "" : ", ") + std::string(source.usage);
  }
  return s;
}

namespace {

// Planar pixels [C, S, S] as an interleaved Image [S, S, C]: what read() gives of in-memory
// samples.
void interleave(const uint8_t* planar, int channels, int S, Image& out) {
  const int64_t plane = int64_t(S) * S;
  out.width = out.height = S;
  out.channels = channels;
  out.pixels.resize(size_t(channels * plane));
  for (int c = 0; c < channels; ++c) {
    for (int64_t j = 0; j < plane; ++j)
      out.pixels[size_t(j * channels + c)] = planar[c * plane + j];
  }
}

// The images' background, from their borders' mean gray levels (over at most 1,000 evenly spaced
// samples): dark when nine in ten are under 64, light when nine in ten are over 191, else mixed.
// (Fashion-MNIST's: 90% under 24, 99% under 38; MNIST's all under 9.)
Background background(const Dataset& d) {
  const int64_t n = d.size(), step = std::max<int64_t>(1, n / 1000);
  std::vector<double> levels;
  Image im;
  for (int64_t i = 0; i < n; i += step) {
    d.read(i, im);
    const int w = im.width, h = im.height, c = im.channels;
    double sum = 0;
    int64_t count = 0;
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        if (y != 0 && y != h - 1 && x != 0 && x != w - 1) continue;
        const uint8_t* p = im.pixels.data() + (int64_t(y) * w + x) * c;
        sum += c >= 3 ? (p[0] * 77 + p[1] * 150 + p[2] * 29) / 256.0 : p[0];
        ++count;
      }
    }
    levels.push_back(sum / double(count));
  }
  if (levels.empty()) return Background::kMixed;
  std::sort(levels.begin(), levels.end());
  const size_t tenth = levels.size() / 10;
  if (levels[levels.size() - 1 - tenth] < 64) return Background::kDark;
  if (levels[tenth] > 191) return Background::kLight;
  return Background::kMixed;
}

}  // namespace

const DatasetSource& dataset_source(const std::string& spec, std::string* arg) {
  const DatasetSource* found = find_dataset_source(spec, arg);
  if (!found) {
    // A prefix source is compared by its name without the ':' ("cifar-10" is near "cifar10")
    // and suggested as a user writes it ("cifar10:DIR").
    std::vector<std::string> names;
    for (const DatasetSource& source : dataset_sources()) {
      std::string name = source.name;
      if (name.ends_with(':')) name.pop_back();
      names.push_back(name);
    }
    const std::string near = closest_name(spec.substr(0, spec.find(':')), names);
    std::string hint;
    for (const DatasetSource& source : dataset_sources()) {
      if (!near.empty() && std::string(source.name).starts_with(near) &&
          std::string(source.name).size() <= near.size() + 1) {
        hint = "; did you mean '" + std::string(source.usage) + "'?";
      }
    }
    throw Error("unknown dataset '" + spec + "'" + hint + " (the known ones: " + dataset_names() +
                ")");
  }
  return *found;
}

void data::require_classes(const std::string& spec, int classes, const DatasetOptions& options) {
  VIT_CHECK(options.num_classes == classes,
            "dataset '" + spec + "' has " + std::to_string(classes) + " classes but the model " +
                std::to_string(options.num_classes) + ": a model for this data has `num_classes` " +
                std::to_string(classes));
}

int dataset_classes(const std::string& spec, const std::string& data_dir) {
  std::string arg;
  const DatasetSource& source = dataset_source(spec, &arg);
  return source.classes ? source.classes(arg, data_dir) : 0;
}

DatasetSplits load_dataset(const std::string& spec, int num_classes, const std::string& data_dir,
                           const SampleShape& shape) {
  DatasetOptions options;
  options.num_classes = num_classes;
  options.data_dir = data_dir;
  options.shape = shape;
  return load_dataset(spec, options);
}

DatasetSplits load_dataset(const std::string& spec, const DatasetOptions& options) {
  const int num_classes = options.num_classes;
  VIT_CHECK(num_classes >= 2, "a dataset needs at least 2 classes");
  std::string arg;
  const DatasetSource* found = &dataset_source(spec, &arg);
  DatasetSplits s = found->open(arg, options);
  s.name = spec;
  // The splits asked for (a source may give more): a training and a test split unless the
  // caller reads neither.
  const unsigned want = options.splits;
  VIT_CHECK((s.train || !(want & kTrainSplit)) && (s.test || !(want & kTestSplit)),
            "dataset '" + spec + "' has no training or no test split");
  const std::pair<const Dataset*, const char*> splits[] = {
      {s.train.get(), "training"}, {s.val.get(), "validation"}, {s.test.get(), "test"}};
  const Dataset* first = nullptr;
  const char* first_what = "";
  for (const auto& [d, what] : splits) {
    if (!d) continue;
    if (!first) first = d, first_what = what;
    const SampleShape a = first->shape(), b = d->shape();
    VIT_CHECK(a.channels == b.channels && a.width == b.width && a.height == b.height,
              "dataset '" + spec + "': " + first_what + " images are " +
                  std::to_string(a.channels) + "x" + std::to_string(a.height) + "x" +
                  std::to_string(a.width) + " but " + what + " images " +
                  std::to_string(b.channels) + "x" + std::to_string(b.height) + "x" +
                  std::to_string(b.width));
    for (int64_t i = 0; i < d->size(); ++i) {
      const int32_t y = d->label(i);
      VIT_CHECK(y >= 0 && y < num_classes, "dataset '" + spec + "': label " + std::to_string(y) +
                                               " of " + what + " sample " + std::to_string(i) +
                                               " is outside the model's " +
                                               std::to_string(num_classes) + " classes");
    }
  }
  s.style.fit_mnist = found->fit_mnist;
  if (s.train) s.style.background = background(*s.train);
  s.class_names.resize(size_t(num_classes));
  for (int k = 0; k < num_classes; ++k) {
    if (s.class_names[size_t(k)].empty()) s.class_names[size_t(k)] = std::to_string(k);
  }
  return s;
}

void ImageArray::read(int64_t i, Image& out) const {
  VIT_CHECK(i >= 0 && i < size(),
            "sample " + std::to_string(i) + " is outside the dataset's " + std::to_string(size()));
  interleave(image(i), channels, image_size, out);
}

void ImageList::add(const uint8_t* planar, int w, int h, int32_t label) {
  VIT_CHECK(w >= 1 && h >= 1, "an image list holds non-empty images");
  VIT_CHECK(!storage, "an image list with shared storage takes no more images");
  offsets.push_back(int64_t(pixels.size()));
  pixels.insert(pixels.end(), planar, planar + int64_t(channels) * w * h);
  widths.push_back(w);
  heights.push_back(h);
  labels.push_back(label);
}

void ImageList::reserve(int64_t bytes) {
  if (storage || bytes <= int64_t(pixels.capacity())) return;
  try {
    pixels.reserve(size_t(bytes));
  } catch (const std::bad_alloc&) {
    return;  // add() grows as it goes
  }
  advise_huge_pages(pixels.data(), pixels.capacity());
}

void ImageList::seal() {
  if (storage) return;
  auto held = std::make_shared<std::vector<uint8_t>>(std::move(pixels));
  storage = std::shared_ptr<const uint8_t>(held, held->data());  // aliasing: owns the vector
  pixels.clear();
}

std::shared_ptr<ImageList> ImageList::select(const std::vector<int64_t>& idx) const {
  auto out = std::make_shared<ImageList>();
  out->channels = channels;
  out->image_size = image_size;
  out->storage = storage;
  out->rescale = rescale;
  for (int64_t i : idx) {
    if (storage) {
      out->offsets.push_back(offsets[size_t(i)]);
      out->widths.push_back(widths[size_t(i)]);
      out->heights.push_back(heights[size_t(i)]);
      out->labels.push_back(labels[size_t(i)]);
    } else {
      out->add(image(i), widths[size_t(i)], heights[size_t(i)], labels[size_t(i)]);
    }
  }
  return out;
}

void ImageList::centre(int64_t i, const uint8_t* fill, uint8_t* out) const {
  int w = widths[size_t(i)], h = heights[size_t(i)];
  const int S = image_size;
  const uint8_t* pixels = image(i);
  thread_local std::vector<uint8_t> resized;
  if (rescale) {
    const Extent e = resized_extent(w, h, S, *rescale);
    resized.resize(size_t(channels) * size_t(e.width) * size_t(e.height));
    data::resize_planes(data::Planes::planar(pixels, channels, h, w), e.width, e.height,
                        rescale->interpolation, resized.data());
    pixels = resized.data();
    w = e.width;
    h = e.height;
  }
  const int ox = centre_offset(w, S), oy = centre_offset(h, S);
  const int64_t plane = int64_t(S) * S;
  for (int c = 0; c < channels; ++c) {
    const uint8_t* src = pixels + int64_t(c) * w * h;
    uint8_t* dst = out + c * plane;
    const uint8_t f = fill ? fill[c] : 0;
    for (int y = 0; y < S; ++y) {
      const int sy = y + oy;
      for (int x = 0; x < S; ++x) {
        const int sx = x + ox;
        dst[int64_t(y) * S + x] =
            sy >= 0 && sy < h && sx >= 0 && sx < w ? src[int64_t(sy) * w + sx] : f;
      }
    }
  }
}

void ImageList::read(int64_t i, Image& out) const {
  VIT_CHECK(i >= 0 && i < size(),
            "sample " + std::to_string(i) + " is outside the dataset's " + std::to_string(size()));
  const int S = image_size;
  const int64_t plane = int64_t(S) * S;
  thread_local std::vector<uint8_t> planar;
  planar.resize(size_t(channels * plane));
  centre(i, nullptr, planar.data());
  interleave(planar.data(), channels, S, out);
}

}  // namespace vit
