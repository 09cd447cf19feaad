// libFuzzer harness: the image path of `vit predict` (decode with libjpeg-turbo, libpng, libwebp,
// our PGM/PPM reader or stb_image for BMP; convert channels; resize) on arbitrary bytes, for 1- and
// 3-channel models.

#include <cstdint>
#include <string>

#include "temp_file.hpp"
#include "vit/error.hpp"
#include "vit/transforms.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const TempFile file("image", data, size);
  for (int channels : {1, 3}) {
    try {
      auto px = vit::load_image(file.path, channels, 28, channels == 1);
      if (px.size() != size_t(channels) * 28 * 28) __builtin_trap();
    } catch (const vit::Error&) {
    }
  }
  return 0;
}
