// libFuzzer harness: the safetensors reader (header validation and tensor reads), the checkpoint
// loader on top of it (config, class names, normalisation, tensors against the config) and the timm
// loader's reading of a config from tensor names and shapes, and of the weights for it.

#include <cstdint>
#include <string>

#include "temp_file.hpp"
#include "vit/checkpoint.hpp"
#include "vit/error.hpp"
#include "vit/pretrained.hpp"
#include "vit/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const TempFile file("safetensors", data, size);
  try {
    vit::SafetensorsReader r(file.path);
    for (const vit::TensorInfo& t : r.tensors()) {
      if (t.numel() > (int64_t(1) << 20)) continue;  // valid but big: reading is not the point
      try {
        r.read_f32(t.name);
      } catch (const vit::Error&) {  // e.g. an integer dtype
      }
    }
    try {
      vit::load_model(r, "optimizer.");
    } catch (const vit::Error&) {
    }
    vit::load_timm(file.path);
  } catch (const vit::Error&) {
  }
  return 0;
}
