// vit::Config: the shape of a Vision Transformer, and the checks that reject impossible ones.
#pragma once

#include <cstdint>
#include <string>

#include "vit/fields.hpp"

namespace vit {

enum class PosEmbed { kLearned, kSinCos };
enum class Pool { kCls, kMean };
// The MLP's activation: exact GELU (erf), QuickGELU (OpenAI CLIP's), or GELU's tanh approximation
// (timm's gelu_tanh: SigLIP 2's towers).
enum class Act { kGelu, kQuickGelu, kGeluTanh };

// A ViT as timm builds it (pre-norm blocks, fused qkv, GELU MLP, final LayerNorm), on square
// images. Letters used everywhere: B batch, C channels, P patch, N tokens, D width, H heads,
// Dh = D / H, M = MLP width, K classes.
struct Config {
  int image_size = 28;  // pixels per side; a multiple of patch_size but in timm's models (grid())
  int channels = 1;     // C
  int patch_size = 4;   // P
  // A convolutional stem (0: none): a kStemKernel x kStemKernel convolution of stride kStemStride
  // (padding kStemPad) from the C image channels to stem_channels, with bias and GELU, named as
  // layer 0 of timm's ConvStem (patch_embed.backbone.0.conv, without its BatchNorm);
  // patch_embed.proj is then a convolution of kernel = stride = P / 2 on the stem's output (P
  // even), so the tokens are the same P x P patches' (Xiao et al. 2021, "Early convolutions help
  // transformers see better").
  int stem_channels = 0;
  int dim = 64;          // D
  int depth = 6;         // number of encoder blocks
  int heads = 4;         // H; divides D
  int mlp_dim = 256;     // M (timm's mlp_ratio * D)
  int num_classes = 10;  // K
  PosEmbed pos_embed = PosEmbed::kLearned;
  // kCls: a class token is prepended and its final state is classified (timm global_pool='token').
  // kMean: the patch tokens are averaged (timm global_pool='avg'), without a class token and with
  // the final LayerNorm after the pooling as `fc_norm` unless the variants below say otherwise.
  Pool pool = Pool::kCls;
  bool qkv_bias = true;
  float ln_eps = 1e-6f;  // LayerNorm epsilon (timm's ViTs use 1e-6, CLIP's 1e-5)
  // The features of timm's ViT variants (the pretrained models vitcpp reads), all off by default.
  // The prefix tokens come in timm's order: [cls_token, dist_token, reg_token x reg_tokens].
  int reg_tokens = 0;       // register tokens (timm reg_tokens: vit_*_reg4_*)
  bool dist_token = false;  // DeiT's distillation token and head_dist (logits: both heads' mean)
  bool no_embed_class = false;  // pos_embed covers the patches only, added before the prefix
  bool layer_scale = false;     // LayerScale ls1 / ls2 (DeiT III, DINOv2)
  bool norm_pre = false;        // a LayerNorm before the blocks (CLIP image towers)
  // patch_embed.proj.bias. timm has none where norm_pre is set (CLIP's towers, `bias=not
  // pre_norm`); vitcpp's models had one everywhere before this field (and have it when it is
  // missing from a checkpoint).
  bool patch_bias = true;
  bool qk_norm = false;  // LayerNorm of each head's q and k over Dh
  Act act = Act::kGelu;  // the MLP's activation: exact (erf) GELU, or CLIP's QuickGELU
  // Average pooling's variants (pool kMean only): a class token beside it, not pooled (timm
  // class_token=True, global_pool='avg': EVA, MAE fine-tunes); the final LayerNorm on every token
  // before the average, named `norm`, instead of `fc_norm` after it (timm fc_norm=False: the
  // *_gap_* models).
  bool mean_class_token = false;
  bool mean_after_norm = false;

  // Throws vit::Error naming the first field that makes this configuration impossible.
  void validate() const;

  // Patches per side; when patch_size does not divide image_size, the last image_size % patch_size
  // rows and columns are not seen (timm's patch embedding: a convolution of stride patch_size).
  int grid() const { return image_size / patch_size; }
  int num_patches() const { return grid() * grid(); }  // Np
  bool has_class_token() const { return pool == Pool::kCls || mean_class_token; }
  // The final LayerNorm is timm's `norm` (before the pooling, where the class token is read) or
  // `fc_norm` (after the average).
  bool has_fc_norm() const { return pool == Pool::kMean && !mean_after_norm; }
  int num_prefix_tokens() const {
    return (has_class_token() ? 1 : 0) + (dist_token ? 1 : 0) + reg_tokens;
  }
  int pos_rows() const { return no_embed_class ? num_patches() : num_tokens(); }  // pos_embed's
  int pooled_tokens() const { return dist_token ? 2 : 1; }  // classified: cls (and dist) token
  int num_tokens() const { return num_patches() + num_prefix_tokens(); }  // N
  int head_dim() const { return dim / heads; }                            // Dh
  // patch_embed.proj: a convolution of kernel = stride = proj_kernel() on proj_channels()
  // channels (the image's, or the stem's output: src/model/executor.hpp's stem_geom).
  int proj_channels() const { return stem_channels > 0 ? stem_channels : channels; }
  int proj_kernel() const { return stem_channels > 0 ? patch_size / 2 : patch_size; }
  static constexpr int kStemKernel = 3, kStemStride = 2, kStemPad = 1;  // the stem's convolution
  int patch_dim() const { return proj_channels() * proj_kernel() * proj_kernel(); }  // C*P*P

  // Number of parameters, and forward multiply-adds x 2 for one image (every matmul counted as
  // 2*m*n*k, attention's QK^T and AV included; elementwise work is not counted).
  int64_t num_params() const;
  // The variants' fields that are on, as words ("4 register tokens, LayerScale"); "" for none.
  std::string variants() const;
  int64_t forward_flops() const;

  // The JSON object stored in checkpoints (its fields, by name, in visit_fields' order), and its
  // inverse, which rejects unknown or missing keys and validates the result.
  std::string to_json() const;
  static Config from_json(const std::string& json);

  // Every field once (include/vit/fields.hpp): JSON, validation and the CLI's options come from
  // here. Ranges are the static ones; validate() adds those between fields.
  template <class Self, class Visitor>
  static void visit_fields(Self& c, Visitor&& v) {
    v(Field{.name = "image_size", .help = "Image side in pixels", .lo = 1, .hi = 65536},
      c.image_size);
    v(Field{.name = "channels", .help = "Image channels", .lo = 1, .hi = 64}, c.channels);
    v(Field{.name = "patch_size",
            .help = "Patch side in pixels",
            .lo = 1,
            .hi = 65536,
            .flag = "patch"},
      c.patch_size);
    v(Field{.name = "dim", .help = "Width D", .lo = 1, .hi = 65536}, c.dim);
    v(Field{.name = "depth", .help = "Number of blocks", .lo = 1, .hi = 1024}, c.depth);
    v(Field{.name = "heads",
            .help = "Attention heads (a divisor of the width)",
            .lo = 1,
            .hi = 65536},
      c.heads);
    v(Field{.name = "mlp_dim", .help = "MLP width", .lo = 1, .hi = 16 * 65536, .cli = false},
      c.mlp_dim);
    v(Field{.name = "num_classes",
            .help = "Number of classes",
            .lo = 2,
            .hi = 65536,
            .flag = "classes"},
      c.num_classes);
    v(Field{.name = "pos_embed",
            .help = "Positional embedding",
            .words = {"learned", "sincos"},
            .flag = "pos"},
      c.pos_embed);
    v(Field{.name = "pool", .help = "Pooling", .words = {"cls", "mean"}}, c.pool);
    v(Field{.name = "qkv_bias", .help = "Bias in the qkv projection", .cli = false}, c.qkv_bias);
    v(Field{.name = "ln_eps",
            .help = "LayerNorm epsilon",
            .lo = 0,
            .hi = 1,
            .lo_open = true,
            .hi_open = true,
            .cli = false},
      c.ln_eps);
    // The variants' fields: missing from checkpoints written before they existed.
    v(Field{.name = "reg_tokens",
            .help = "Register tokens",
            .lo = 0,
            .hi = 256,
            .cli = false,
            .optional = true},
      c.reg_tokens);
    v(Field{.name = "dist_token",
            .help = "DeiT's distillation token and head",
            .cli = false,
            .optional = true},
      c.dist_token);
    v(Field{.name = "no_embed_class",
            .help = "Positions for the patches only",
            .cli = false,
            .optional = true},
      c.no_embed_class);
    v(Field{.name = "layer_scale", .help = "LayerScale", .cli = false, .optional = true},
      c.layer_scale);
    v(Field{.name = "norm_pre",
            .help = "A LayerNorm before the blocks",
            .cli = false,
            .optional = true},
      c.norm_pre);
    v(Field{.name = "patch_bias",
            .help = "A bias in the patch embedding",
            .cli = false,
            .optional = true},
      c.patch_bias);
    v(Field{.name = "qk_norm", .help = "LayerNorm of q and k", .cli = false, .optional = true},
      c.qk_norm);
    v(Field{.name = "act",
            .help = "MLP activation",
            .words = {"gelu", "quick_gelu", "gelu_tanh"},
            .cli = false,
            .optional = true},
      c.act);
    v(Field{.name = "mean_class_token",
            .help = "A class token beside average pooling",
            .cli = false,
            .optional = true},
      c.mean_class_token);
    v(Field{.name = "mean_after_norm",
            .help = "The final LayerNorm before average pooling",
            .cli = false,
            .optional = true},
      c.mean_after_norm);
    v(Field{.name = "stem_channels",
            .help = "Channels of a 3x3 convolutional stem before the patches (0: none)",
            .lo = 0,
            .hi = 4096,
            .flag = "stem",
            .optional = true},
      c.stem_channels);
  }

  bool operator==(const Config&) const = default;
};

const char* to_string(PosEmbed p);
const char* to_string(Pool p);
const char* to_string(Act a);

}  // namespace vit
