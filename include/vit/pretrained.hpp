// Models from timm and the Hugging Face hub: a timm model folder (config.json with its
// pretrained_cfg, and model.safetensors, as timm's push_to_hf_hub writes them) or a bare timm state
// dict (.safetensors), read into a vitcpp model with their preprocessing, normalisation and class
// names. Only local files: nothing is downloaded.
#pragma once

#include <optional>
#include <string>

#include "vit/checkpoint.hpp"
#include "vit/safetensors.hpp"

namespace vit {

// timm's VisionTransformer sizes (vision_transformer.py's and deit.py's model definitions), by the
// size word of an architecture's name: vit_huge_patch14_224 is "huge", 1280 wide in 32 blocks of
// 16 heads (not 1280 / 64); SigLIP's so400m is 1152 wide with 16 heads (not 18).
struct TimmSize {
  const char* name;
  int dim, depth, heads;
};
// The size named `word` ("tiny", "small", "medium", "base", "large", "huge", "giant",
// "gigantic", "so400m", "giantopt"); a vit::Error for another word.
const TimmSize& timm_size(const std::string& word);
// The size an architecture's name says (vit_*, deit_*, deit3_*; a "timm/" prefix and a
// ".tag" suffix allowed), or null when it names none. vit_base_patch16_gap_224 is base's width
// with 16 heads, as timm defines it.
const TimmSize* timm_size_of(const std::string& architecture);

// What config.json or `--arch` tells that a timm file's tensors cannot: the number of heads (0:
// the size's below; else the heads of timm's size of the tensors' width, else width / 64, every
// other timm ViT's head size: load_timm's metadata "heads_assumed" then says so), the MLP's
// activation, LayerNorm's eps, and no_embed_class where pos_embed's rows could be read either way.
struct TimmHints {
  int heads = 0;
  // config.json's architecture's size, when it names one: its heads where the width is its width
  // and nothing else gives them.
  const TimmSize* size = nullptr;
  Act act = Act::kGelu;
  float ln_eps = 1e-6f;
  std::optional<bool> no_embed_class;
  // global_pool 'avg' (true) or 'token' (false), from config.json or the architecture: what tells
  // a class token with `norm` read as the token (timm's default) from one beside average pooling.
  std::optional<bool> avg_pool;
  // A file without a classifier head (head.weight) is read with a placeholder head of 2 classes
  // instead of refused: timm's DINOv2 and other backbones, for fine-tuning only.
  bool headless_ok = false;
  // The model as the user named it (a folder keeps its config.json), for the advice in errors;
  // empty: the file's path.
  std::string model_path;
};

// The vitcpp config of a timm VisionTransformer's tensors (timm's names): patch size, channels and
// width from patch_embed.proj.weight, the image size from pos_embed's grid, the depth from the
// blocks, the MLP width, qkv bias, the pooling (a class token with `norm`: global_pool token,
// unless hints.avg_pool says avg; `fc_norm`, or no class token: avg, with the final norm after
// the average (`fc_norm`) or before it (`norm`, timm fc_norm=False), and the class token kept
// beside it if there is one), the classes from head.weight, and the variants from their tensors:
// register tokens (reg_token), DeiT's distillation token (dist_token, head_dist), LayerScale
// (ls1.gamma), norm_pre, qk_norm (attn.q_norm), and no_embed_class from pos_embed's rows. A feature
// the graph does not have (relative positions, SwiGLU, conv stems, attention pooling), a model
// without a head, or a Hugging Face transformers checkpoint, is a vit::Error naming the tensor and
// the feature.
Config timm_config(const SafetensorsReader& file, const TimmHints& hints = {});

// A named timm architecture (`--arch`, vit::preset_arch): its shape, and the normalisation and
// preprocessing its pretrained weights expect when a file does not say.
struct TimmArch {
  std::string name;
  Config config;  // num_classes aside, the tensors must have this shape
  Normalization normalize;
  Preprocess preprocess;
};

// A timm model folder (config.json + model.safetensors) or a bare timm .safetensors. From
// config.json: num_classes, global_pool, model_args.num_heads, .no_embed_class and .act_layer, the
// architecture's name (its size's heads where model_args has none, CLIP's LayerNorm eps 1e-5,
// QuickGELU), label_names (or id2label) and
// pretrained_cfg's input_size, mean, std, crop_pct, crop_mode and interpolation, each checked
// against the tensors; a bare file gets timm's ViT defaults (mean and std 0.5, crop_pct 0.9,
// bicubic). 1,000 classes without names are ImageNet's. A folder with only pytorch_model.bin is
// a vit::Error saying how to convert it. A Hugging Face transformers ViT or DeiT folder (tensors
// under vit.*, deit.* or embeddings.*) is read from its config.json and preprocessor_config.json,
// its tensors renamed to timm's.
// With arch: its heads, and its normalisation and preprocessing where config.json does not give
// them; tensors of another shape are a vit::Error.
// headless_ok: a model without a head (timm's num_classes 0: DINOv2, backbones) loads for
// fine-tuning, with a zero placeholder head of 2 classes and metadata "headless" = "true", which
// fine-tuning replaces whatever the classes; without it such a file is a vit::Error.
// dtype kBf16: loaded for bf16 inference alone (Model::load: no fp32 weights kept).
LoadedModel load_timm(const std::string& path, const TimmArch* arch = nullptr,
                      bool headless_ok = false, Dtype dtype = Dtype::kF32);

// Whether path is a timm model: a folder with config.json, or a .safetensors file without
// vitcpp's metadata.
bool is_timm_model(const std::string& path);

// timm's resample_abs_pos_embed: pos_embed [1, prefix + g_old^2, D] to [1, prefix + g_new^2, D],
// the prefix tokens' rows kept, the grid resized as D planes with `filter` (antialiased: torch's
// F.interpolate(antialias=True), as timm calls it), for a model fine-tuned at another image size.
void resample_pos_embed(const float* in, int prefix, int g_old, int g_new, int D, float* out,
                        Interpolation filter = Interpolation::kBicubic);

// Writes m as a timm model folder in dir (made when missing): model.safetensors (its tensors under
// timm's names, F32) and config.json (architecture, num_classes, num_features, global_pool,
// label_names, model_args that rebuild the shape with timm's VisionTransformer, and a
// pretrained_cfg with input_size, interpolation, crop_pct, crop_mode, mean and std), each written
// atomically; load_timm reads it back to the same model. A model timm cannot express (LayerNorm eps
// other than 1e-6, an MLP width that is no whole mlp_ratio of the width) is a vit::Error.
void export_timm(LoadedModel& m, const std::string& dir);

// Any model `--model` takes: a vitcpp checkpoint, a run directory (its best, else last,
// checkpoint), a timm folder or a bare timm .safetensors; dtype as load_timm's.
LoadedModel load_any_model(const std::string& path, const TimmArch* arch = nullptr,
                           bool headless_ok = false, Dtype dtype = Dtype::kF32);

}  // namespace vit
