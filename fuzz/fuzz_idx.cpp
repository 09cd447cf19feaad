// libFuzzer harness: the IDX reader (raw and gzip) on arbitrary bytes. The input is split in two
// by its first byte into an images file and a labels file.

#include <algorithm>
#include <cstdint>
#include <string>

#include "temp_file.hpp"
#include "vit/dataset.hpp"
#include "vit/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t split = std::min<size_t>(size - 1, size_t(data[0]) * 4);
  const TempFile images("images", data + 1, split);
  const TempFile labels("labels", data + 1 + split, size - 1 - split);
  try {
    vit::ImageArray d = vit::read_idx(images.path, labels.path);
    // A dataset that loads is consistent.
    if (d.pixels.size() != size_t(d.size()) * d.image_pixels()) __builtin_trap();
  } catch (const vit::Error&) {
  }
  return 0;
}
