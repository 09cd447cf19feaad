// Reading a model's weights from a safetensors file, shared by vitcpp's own checkpoints
// (checkpoint.cpp) and timm's files (timm.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "vit/model.hpp"
#include "vit/normalization.hpp"
#include "vit/safetensors.hpp"

namespace vit {

// The model of config c with every parameter read from file (by its timm name): each tensor the
// config needs must be there with its shape, and the file may hold no other tensor except those
// whose names start with extra_prefix (non-empty); checked before the model is allocated, so a
// config claiming a huge model cannot make it allocate more than the file holds. A non-finite
// weight is a vit::Error naming the tensor. headless: the classifier heads (head.*, head_dist.*)
// may be missing, and are then zeros (a pretrained backbone, for fine-tuning). dtype kBf16: for
// bf16 inference alone (Model::load).
Model read_weights(const SafetensorsReader& file, const Config& c,
                   const std::string& extra_prefix = "", bool headless = false,
                   Dtype dtype = Dtype::kF32);

// How a model's training images looked (ModelMeta::input) as JSON, in a checkpoint's "input"
// metadata and an export's config.json ("vitcpp_input"): {"background": "dark" | "light" |
// "mixed", "fit": "mnist" | "none"}; and back, a vit::Error naming `where` for anything else.
nlohmann::json input_style_json(const InputStyle& style);
InputStyle input_style_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace vit
