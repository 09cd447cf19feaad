// libFuzzer harness: the safetensors reader (header validation and tensor reads) and the
// checkpoint loader on top of it (config, class names, normalisation, tensors against the config).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "vit/checkpoint.hpp"
#include "vit/error.hpp"
#include "vit/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = "/tmp/vit-fuzz-" + std::to_string(getpid()) + ".safetensors";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    vit::SafetensorsReader r(path);
    for (const vit::TensorInfo& t : r.tensors()) {
      if (t.numel() > (int64_t(1) << 20)) continue;  // valid but big: reading is not the point
      try {
        r.read_f32(t.name);
      } catch (const vit::Error&) {  // e.g. an integer dtype
      }
    }
    vit::load_model(r, "optimizer.");
  } catch (const vit::Error&) {
  }
  std::remove(path.c_str());
  return 0;
}
