// libFuzzer harness: the IDX reader (raw and gzip) on arbitrary bytes. The input is split in two
// by its first byte into an images file and a labels file.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "vit/data.hpp"
#include "vit/error.hpp"

static std::string write_temp(const char* tag, const uint8_t* data, size_t size) {
  const std::string path = "/tmp/vit-fuzz-" + std::to_string(getpid()) + "-" + tag;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t split = std::min<size_t>(size - 1, size_t(data[0]) * 4);
  const std::string images = write_temp("images", data + 1, split);
  const std::string labels = write_temp("labels", data + 1 + split, size - 1 - split);
  try {
    vit::Dataset d = vit::read_idx(images, labels);
    // A dataset that loads is consistent.
    if (d.pixels.size() != size_t(d.size()) * d.image_pixels()) __builtin_trap();
  } catch (const vit::Error&) {
  }
  std::remove(images.c_str());
  std::remove(labels.c_str());
  return 0;
}
