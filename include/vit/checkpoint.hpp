// Checkpoints: model weights under timm names in safetensors, with the config, class names and
// normalisation in __metadata__, so PyTorch users can load_state_dict them as they are.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "vit/config.hpp"
#include "vit/model.hpp"
#include "vit/normalization.hpp"
#include "vit/safetensors.hpp"

namespace vit {

struct ModelMeta {
  Config config;
  std::vector<std::string> class_names;  // one per class
  Normalization normalize;               // one mean and std per channel
  // What it was trained on (as --data named it) and how those images look; empty / absent in
  // checkpoints written before they were recorded.
  std::string dataset;
  std::optional<InputStyle> input;
  // How an image file becomes its input (vit predict); checkpoints written before it was recorded
  // read as crop_pct 1 (the centred square), bilinear, as they were prepared then.
  Preprocess preprocess{.crop_pct = 1.0, .interpolation = Interpolation::kBilinear};
};

// Writes every parameter (F32, timm names) and __metadata__: format = "vitcpp", version,
// config (JSON, see Config::to_json), class_names (JSON array), normalize (JSON {"mean": [...],
// "std": [...]}), preprocess (Preprocess::to_json) and any `extra` keys, plus `extra_tensors` (a
// training state's optimizer moments). Atomic (see write_safetensors).
void save_model(const std::string& path, Model& model, const ModelMeta& meta,
                const std::map<std::string, std::string>& extra = {},
                const std::vector<TensorToWrite>& extra_tensors = {});

// The checkpoint a path names: the file itself, or for a run directory (vit train --out) its
// best.safetensors, else its last.safetensors; vit::Error when a directory holds neither.
std::string checkpoint_path(const std::string& path);

struct LoadedModel {
  Model model;
  ModelMeta meta;
  std::map<std::string, std::string> metadata;  // all of __metadata__
};

// Reads a checkpoint written by save_model: the metadata must parse and validate, and the tensors
// must be exactly the config's parameters with their shapes (missing, extra or misshapen tensors
// are each a vit::Error naming them). Names and shapes are checked against the file before the
// model is allocated, so a config claiming a huge model cannot make it allocate more than the
// file holds. Tensors whose names start with extra_prefix (non-empty) are allowed and skipped.
// dtype kBf16: loaded for bf16 inference alone (Model::load: no fp32 weights kept).
LoadedModel load_model(const SafetensorsReader& file, const std::string& extra_prefix = "",
                       Dtype dtype = Dtype::kF32);
LoadedModel load_model(const std::string& path, Dtype dtype = Dtype::kF32);

}  // namespace vit
