// Test helper: writes IDX files (raw or gzip; the bytes from vit::idx_bytes) and small synthetic
// datasets a ViT can learn.
#pragma once

#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "vit/dataset.hpp"  // vit::idx_bytes

namespace vit::test {

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), unsigned(bytes.size()));
    gzclose(f);
  } else {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
}

// A learnable toy set of S x S images in 4 classes: a bright 3x3 square in the image's quadrant
// `label`, at a random spot inside it, over faint noise.
inline void make_quadrant_images(int n, int S, uint64_t seed, std::vector<uint8_t>* pixels,
                                 std::vector<uint8_t>* labels) {
  Rng rng(seed);
  pixels->assign(size_t(n) * S * S, 0);
  labels->resize(size_t(n));
  const int half = S / 2;
  for (int i = 0; i < n; ++i) {
    uint8_t* img = pixels->data() + size_t(i) * S * S;
    for (int p = 0; p < S * S; ++p) img[p] = uint8_t(rng.below(40));
    const int label = int(rng.below(4));
    (*labels)[size_t(i)] = uint8_t(label);
    const int y0 = (label / 2) * half + int(rng.below(uint64_t(half - 2)));
    const int x0 = (label % 2) * half + int(rng.below(uint64_t(half - 2)));
    for (int y = y0; y < y0 + 3; ++y) {
      for (int x = x0; x < x0 + 3; ++x) img[y * S + x] = 255;
    }
  }
}

// Writes a quadrant dataset as the four MNIST-style files in dir (train ones gzip-compressed).
inline void write_quadrant_dataset(const std::string& dir, int n_train, int n_test, int S) {
  std::filesystem::create_directories(dir);
  std::vector<uint8_t> px, lb;
  make_quadrant_images(n_train, S, 1, &px, &lb);
  write_bytes(dir + "/train-images-idx3-ubyte.gz",
              idx_bytes({uint32_t(n_train), uint32_t(S), uint32_t(S)}, px), true);
  write_bytes(dir + "/train-labels-idx1-ubyte.gz", idx_bytes({uint32_t(n_train)}, lb), true);
  make_quadrant_images(n_test, S, 2, &px, &lb);
  write_bytes(dir + "/t10k-images-idx3-ubyte",
              idx_bytes({uint32_t(n_test), uint32_t(S), uint32_t(S)}, px), false);
  write_bytes(dir + "/t10k-labels-idx1-ubyte", idx_bytes({uint32_t(n_test)}, lb), false);
}

// A fresh, empty directory under the system temp dir, removed by the destructor.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& tag) {
    path = (std::filesystem::temp_directory_path() /
            ("vitcpp-" + tag + "-" + std::to_string(::getpid())))
               .string();
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

}  // namespace vit::test
