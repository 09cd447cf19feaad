// vit::Config: validation, parameter and FLOP counts, and the JSON form stored in checkpoints.
#include "vit/config.hpp"

#include <cmath>
#include <string>

#include "core/fields_json.hpp"
#include "model/executor.hpp"
#include "vit/error.hpp"

namespace vit {
namespace {

// Sizes above this are refused: they overflow the int indexing used in kernels long before
// they would fit in memory (the ranges in visit_fields).
constexpr int kMaxSize = 1 << 16;

}  // namespace

void Config::validate() const {
  validate_fields(*this, "config");
  VIT_CHECK(patch_size <= image_size, "config: `patch_size` must be in [1, image_size] (got " +
                                          std::to_string(patch_size) + ")");
  // A patch that does not divide the image leaves the last rows and columns unseen, as timm's
  // patch embedding does (SigLIP's 384 pixels in patches of 14); vitcpp's own stem needs whole
  // patches.
  VIT_CHECK(stem_channels == 0 || image_size % patch_size == 0,
            "config: a convolutional stem needs an image_size divisible by patch_size (got " +
                std::to_string(image_size) + " and " + std::to_string(patch_size) + ")");
  VIT_CHECK(stem_channels == 0 || patch_size % 2 == 0,
            "config: a convolutional stem (stem_channels " + std::to_string(stem_channels) +
                ") halves the image, so patch_size must be even (got " +
                std::to_string(patch_size) + ")");
  VIT_CHECK(heads <= dim,
            "config: `heads` must be in [1, dim] (got " + std::to_string(heads) + ")");
  VIT_CHECK(dim % heads == 0, "config: dim " + std::to_string(dim) + " is not divisible by heads " +
                                  std::to_string(heads) + "; each head needs dim/heads features");
  VIT_CHECK(!dist_token || pool == Pool::kCls,
            "config: a distillation token (DeiT distilled) needs the class token: pool cls");
  VIT_CHECK(pool == Pool::kMean || (!mean_class_token && !mean_after_norm),
            "config: `mean_class_token` and `mean_after_norm` are variants of pool mean");
  // Products used as buffer sizes and loop bounds must stay well inside int32.
  const int64_t g = image_size / patch_size;
  const int64_t tokens = g * g + num_prefix_tokens();
  VIT_CHECK(tokens <= kMaxSize, "config: " + std::to_string(tokens) +
                                    " tokens per image is too many; use a larger patch_size");
  VIT_CHECK(int64_t(patch_dim()) <= kMaxSize, "config: the patch embedding's input width " +
                                                  std::to_string(int64_t(patch_dim())) +
                                                  " is too large; use a smaller patch_size");
}

int64_t Config::num_params() const {
  const int64_t D = dim, M = mlp_dim, K = num_classes;
  int64_t n = int64_t(patch_dim()) * D + (patch_bias ? D : 0);     // patch_embed.proj
  n += int64_t(stem_channels) * (stem_geom(*this, 1).cols() + 1);  // patch_embed.backbone.0.conv
  n += int64_t(pos_rows()) * D + num_prefix_tokens() * D;          // pos_embed, cls/dist/reg tokens
  if (norm_pre) n += 2 * D;
  const int64_t block = 2 * D                                             // norm1
                        + 3 * D * D + (qkv_bias ? 3 * D : 0) + D * D + D  // attn
                        + (qk_norm ? 4 * int64_t(head_dim()) : 0)         // q_norm, k_norm
                        + 2 * D                                           // norm2
                        + M * D + M + D * M + D                           // mlp
                        + (layer_scale ? 2 * D : 0);                      // ls1, ls2
  n += depth * block;
  n += 2 * D + pooled_tokens() * (K * D + K);  // final norm, head (and head_dist)
  return n;
}

std::string Config::variants() const {
  std::string t;
  auto add = [&](const std::string& w) { t += (t.empty() ? "" : ", ") + w; };
  if (stem_channels) add("a " + std::to_string(stem_channels) + "-channel convolutional stem");
  if (dist_token) add("distillation token");
  if (mean_class_token) add("class token beside average pooling");
  if (mean_after_norm) add("norm before average pooling");
  if (reg_tokens) add(std::to_string(reg_tokens) + " register tokens");
  if (no_embed_class) add("positions for the patches only");
  if (layer_scale) add("LayerScale");
  if (norm_pre) add("norm_pre");
  if (!patch_bias) add("no patch bias");
  if (qk_norm) add("qk-norm");
  if (act == Act::kQuickGelu) add("QuickGELU");
  if (act == Act::kGeluTanh) add("GELU's tanh approximation");
  if (const int seen = grid() * patch_size; seen < image_size) {
    add("patches covering " + std::to_string(seen) + " x " + std::to_string(seen) +
        " pixels (the last " + std::to_string(image_size - seen) + " rows and columns unseen)");
  }
  return t;
}

int64_t Config::forward_flops() const {
  const int64_t N = num_tokens(), D = dim, M = mlp_dim;
  int64_t f = 2 * int64_t(num_patches()) * patch_dim() * D;  // patch embedding
  const ops::ConvGeom stem = stem_geom(*this, 1);
  f += 2 * stem.rows() * stem.cols() * stem_channels;  // its stem
  const int64_t block = 2 * N * D * 3 * D              // qkv
                        + 2 * N * N * D * 2            // QK^T and AV over all heads
                        + 2 * N * D * D                // proj
                        + 2 * N * D * M * 2;           // fc1, fc2
  f += depth * block;
  f += pooled_tokens() * 2 * D * num_classes;  // head (and head_dist)
  return f;
}

const char* to_string(PosEmbed p) {
  return p == PosEmbed::kLearned ? "learned" : "sincos";
}
const char* to_string(Act a) {
  return a == Act::kGelu ? "gelu" : a == Act::kQuickGelu ? "quick_gelu" : "gelu_tanh";
}
const char* to_string(Pool p) {
  return p == Pool::kCls ? "cls" : "mean";
}

std::string Config::to_json() const {
  return fields_to_json(*this).dump();
}

Config Config::from_json(const std::string& text) {
  Config c;
  fields_from_json(c, text, "model config", /*strict_keys=*/true);
  c.validate();
  return c;
}

}  // namespace vit
