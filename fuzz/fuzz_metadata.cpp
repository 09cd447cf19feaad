// libFuzzer harness: checkpoint metadata. The input, split at NUL bytes, gives the config JSON,
// the class names and the normalisation of a checkpoint whose tensors are a fixed small model; the
// model config and training recipe parsers also see the first part on its own.

#include <cstdint>
#include <string>
#include <vector>

#include "temp_file.hpp"
#include "vit/checkpoint.hpp"
#include "vit/error.hpp"
#include "vit/safetensors.hpp"
#include "vit/train.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> parts(3);
  size_t k = 0;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && k < 2) {
      ++k;
    } else {
      parts[k].push_back(char(data[i]));
    }
  }
  try {
    vit::Config::from_json(parts[0]);
  } catch (const vit::Error&) {
  }
  try {
    vit::Recipe::from_json(parts[0]);
  } catch (const vit::Error&) {
  }
  // A valid small model's tensors with the fuzzed metadata.
  vit::Config c;
  c.image_size = 8;
  c.patch_size = 4;
  c.dim = 8;
  c.heads = 2;
  c.depth = 1;
  c.mlp_dim = 16;
  c.num_classes = 3;
  static vit::Model model(c);
  std::vector<vit::TensorToWrite> tensors;
  for (const vit::ParamInfo& p : model.params()) {
    tensors.push_back({p.name, p.shape, model.param_data() + p.offset});
  }
  const TempFile file("metadata");
  try {
    vit::write_safetensors(file.path, tensors,
                           {{"format", "vitcpp"},
                            {"config", parts[0]},
                            {"class_names", parts[1]},
                            {"normalize", parts[2]}});
    vit::load_model(file.path);
  } catch (const vit::Error&) {
  }
  return 0;
}
