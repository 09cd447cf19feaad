// CIFAR-10 and CIFAR-100 in their official binary versions (cifar10:DIR, cifar100:DIR,
// cifar100-coarse:DIR). A record is its label byte(s) then 3072 pixel bytes, the red, green and
// blue 32x32 planes row by row: already the [C, S, S] layout of an ImageArray.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/sources.hpp"
#include "vit/dataset.hpp"
#include "vit/error.hpp"

namespace vit {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kPixels = 3 * 32 * 32;
constexpr const char* kWhere =
    "; the binary versions (cifar-10-binary.tar.gz, cifar-100-binary.tar.gz) are at "
    "https://www.cs.toronto.edu/~kriz/cifar.html: unpack one and pass its directory";

// Appends the records of one file: label_bytes label bytes (the one kept is label_at), then the
// pixels. Every label must be below `classes`.
void read_records(const std::string& path, int label_bytes, int label_at, int classes,
                  ImageArray& out) {
  std::error_code ec;
  VIT_CHECK(!std::filesystem::is_directory(path, ec),
            "'" + path + "' is a folder, not a CIFAR batch file" + kWhere);
  std::ifstream f(path, std::ios::binary);
  VIT_CHECK(f.good(), "'" + path + "' not found" + kWhere);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), {});
  const int64_t record = label_bytes + kPixels, n = int64_t(bytes.size()) / record;
  VIT_CHECK(!bytes.empty() && int64_t(bytes.size()) % record == 0,
            "'" + path + "' is " + std::to_string(bytes.size()) + " bytes, not a whole number of " +
                std::to_string(record) +
                "-byte CIFAR records (truncated, or not the binary version?)");
  const size_t at = out.pixels.size();
  out.pixels.resize(at + size_t(n * kPixels));
  for (int64_t i = 0; i < n; ++i) {
    const char* r = bytes.data() + i * record;
    const int label = static_cast<unsigned char>(r[label_at]);
    VIT_CHECK(label < classes, "'" + path + "': record " + std::to_string(i) + " has label " +
                                   std::to_string(label) + ", outside the " +
                                   std::to_string(classes) + " classes");
    out.labels.push_back(int32_t(label));
    std::copy(r + label_bytes, r + record, out.pixels.begin() + int64_t(at) + i * kPixels);
  }
}

// Class names, one per line (blank lines skipped); `count` of them, else numbers.
std::vector<std::string> read_names(const std::string& path, int count) {
  std::ifstream f(path);
  std::vector<std::string> names;
  for (std::string line; std::getline(f, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (int(names.size()) != count) names.clear();  // load_dataset numbers the classes
  return names;
}

std::shared_ptr<ImageArray> new_array() {
  auto a = std::make_shared<ImageArray>();
  a->channels = 3;
  a->image_size = 32;
  return a;
}

}  // namespace

namespace data {

DatasetSplits open_cifar10(const std::string& dir, const DatasetOptions& o) {
  VIT_CHECK(!dir.empty(),
            "dataset 'cifar10:' needs a directory, e.g. cifar10:cifar-10-batches-bin");
  require_classes("cifar10:" + dir, 10, o);
  const fs::path root(dir);
  DatasetSplits s;
  auto train = new_array(), test = new_array();
  for (int b = 1; b <= 5; ++b) {
    read_records((root / ("data_batch_" + std::to_string(b) + ".bin")).string(), 1, 0, 10, *train);
  }
  read_records((root / "test_batch.bin").string(), 1, 0, 10, *test);
  s.train = train;
  s.test = test;
  s.class_names = read_names((root / "batches.meta.txt").string(), 10);
  return s;
}

DatasetSplits open_cifar100(const std::string& dir, const DatasetOptions& o, bool coarse) {
  const std::string name = coarse ? "cifar100-coarse:" : "cifar100:";
  VIT_CHECK(!dir.empty(),
            "dataset '" + name + "' needs a directory, e.g. " + name + "cifar-100-binary");
  const int classes = coarse ? 20 : 100;
  require_classes(name + dir, classes, o);
  const fs::path root(dir);
  DatasetSplits s;
  auto train = new_array(), test = new_array();
  // Each record: the coarse label, the fine label, the pixels.
  read_records((root / "train.bin").string(), 2, coarse ? 0 : 1, classes, *train);
  read_records((root / "test.bin").string(), 2, coarse ? 0 : 1, classes, *test);
  s.train = train;
  s.test = test;
  s.class_names = read_names(
      (root / (coarse ? "coarse_label_names.txt" : "fine_label_names.txt")).string(), classes);
  return s;
}

DatasetSplits open_cifar100_fine(const std::string& dir, const DatasetOptions& o) {
  return open_cifar100(dir, o, false);
}
DatasetSplits open_cifar100_coarse(const std::string& dir, const DatasetOptions& o) {
  return open_cifar100(dir, o, true);
}

}  // namespace data
}  // namespace vit
