// libFuzzer harness: the image path of `vit predict` (decode with stb_image, convert channels,
// resize) on arbitrary bytes, for 1- and 3-channel models.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "vit/data.hpp"
#include "vit/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = "/tmp/vit-fuzz-" + std::to_string(getpid()) + ".img";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  for (int channels : {1, 3}) {
    try {
      auto px = vit::load_image(path, channels, 28, channels == 1);
      if (px.size() != size_t(channels) * 28 * 28) __builtin_trap();
    } catch (const vit::Error&) {
    }
  }
  std::remove(path.c_str());
  return 0;
}
