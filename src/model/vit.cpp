// The Vision Transformer: parameter layout (timm names), initialisation, the forward (written once,
// forward_graph: training runs it in buffers that keep every block's activations, inference in one
// block's buffers reused by all, plan_forward planning both), and its explicit backward (the ops in
// reverse, by hand).
//
// The forward, per image batch (shapes with B batch, N tokens, D width, M MLP width):
//   x0 = pos_embed + [prefix;] patch_embed(images)                         [B, N, D]
//        (with a convolutional stem: patch_embed(GELU(conv3x3/2(images))))
//        (prefix: cls_token, dist_token, reg_token rows, those present; with no_embed_class the
//        positions are added to the patches before the prefix is prepended)
//   x0 = norm_pre(x0)                                                      (CLIP only)
//   for each block l:  xmid = x_l + ls1 * proj(attention(qkv(norm1(x_l))))
//                      x_l+1 = xmid + ls2 * fc2(act(fc1(norm2(xmid))))
//        (ls1, ls2: LayerScale, else 1; attention's q and k LayerNormed per head with qk_norm;
//        act GELU or QuickGELU)
//   pooled = x_L[:, 0] (cls) or mean of x_L's patch tokens (mean);  logits = head(norm(pooled))
//        DeiT distilled: logits = (head(norm(x_L[:, 0])) + head_dist(norm(x_L[:, 1]))) / 2
// (For cls pooling timm normalises every token and then takes token 0; LayerNorm is per token,
// so normalising token 0 alone gives the same logits.)
#include "vit/model.hpp"

#include <omp.h>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "core/arena.hpp"
#include "core/parallel.hpp"
#include "core/rng.hpp"
#include "model/executor.hpp"
#include "ops/context.hpp"
#include "ops/ops.hpp"
#include "ops/packed.hpp"
#include "vit/attention.hpp"
#include "vit/error.hpp"
#include "vit/isa.hpp"
#include "vit/threads.hpp"

namespace vit {
namespace {

constexpr size_t kNone = std::numeric_limits<size_t>::max();

// LayerScale's initial gamma when a model starts from scratch (timm's init_values: 1e-5 for
// DINOv2, 1e-6 for DeiT III's smaller models); pretrained models bring theirs.
constexpr float kLayerScaleInit = 1e-5f;

// Offsets of one block's parameters in the parameter arena (the gradient arena has the same
// layout). kNone marks an absent tensor (qkv bias when qkv_bias is false, the variants' tensors).
struct BlockOffsets {
  size_t norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, norm2_w, norm2_b, fc1_w, fc1_b, fc2_w,
      fc2_b;
  size_t qn_w = kNone, qn_b = kNone, kn_w = kNone, kn_b = kNone, ls1 = kNone, ls2 = kNone;
};

// One block's buffers: in training, what it saves for its backward; in inference, what it works
// in (shared by every block; what only the backward reads is null).
struct BlockActs {
  // g: the GELU's output (fc2's input); slope: GELU' at fc1's output h, which is not kept.
  float *ln1, *mean1, *rstd1, *qkv, *att, *attn, *xmid, *ln2, *mean2, *rstd2, *g, *slope;
  // qk_norm: the projection before the norm and the heads' statistics [B*N, 2H] (training).
  float *qkv_raw = nullptr, *qk_mean = nullptr, *qk_rstd = nullptr;
  // LayerScale: proj's and fc2's outputs before the scale (kept for ls1's and ls2's gradients).
  float *y1 = nullptr, *y2 = nullptr;
  // Training in bf16: ln1, ln2 and g as their layers' weight gradients read them (the bf16 panels
  // of ops::input_panels_bf16), saved instead of the fp32 rows, which the blocks then share.
  uint16_t *ln1_bf16 = nullptr, *ln2_bf16 = nullptr, *g_bf16 = nullptr;
};

// Where one forward of the network (forward_graph) reads and writes, planned by plan_forward for
// training (every block's activations kept) or inference (one block's buffers reused by all).
struct ForwardBuffers {
  float* cols =
      nullptr;  // patch_embed.proj's im2col [B*Np, patch_dim()] (fewer rows when dropping)
  // The convolutional stem: its im2col [B*Ss*Ss, C*9], output g = GELU(h) [B*Ss*Ss, Cs] (channels
  // last) and, training, GELU'(h); with patch dropout, the kept patches' rows alone.
  float *stem_cols = nullptr, *stem_g = nullptr, *stem_slope = nullptr;
  float* patches = nullptr;  // [B*Np, D] (cls pooling only; otherwise the output is x[0])
  // norm_pre: its input [B, N, D] and statistics [B*N] (training).
  float *prex = nullptr, *pre_mean = nullptr, *pre_rstd = nullptr;
  std::vector<float*> x;  // depth + 1 residual-stream states [B, N, D] (inference: one)
  std::vector<BlockActs> blocks;
  // pooled, normed [T, B, D] and pool_mean, pool_rstd [T*B]: T = 2 pooled tokens for DeiT
  // distilled, else 1; logits_dist [B, K] its second head's.
  float *pooled = nullptr, *pool_mean = nullptr, *pool_rstd = nullptr, *normed = nullptr,
        *logits = nullptr, *logits_dist = nullptr;
  // mean_after_norm: the final LayerNorm of every token [B, N, D] and its statistics [B*N]
  // (training), averaged into normed.
  float *tok_normed = nullptr, *tok_mean = nullptr, *tok_rstd = nullptr;
  // Drop-path without LayerScale: a branch's output [B, N, D] before its scaled join (a lane's
  // gradient scratch, free during the forward; null outside lanes).
  float* branch = nullptr;
};

// One set of training activations and gradient scratch, for batches of up to `capacity` images.
struct Lane {
  int capacity = 0;
  bool bf16 = false;          // planned for training in bf16 (plan_forward's kTrainingBf16)
  int last_batch = 0;         // B of the last forward, 0 when there is nothing to backpropagate
  std::vector<int32_t> keep;  // the last forward's patch dropout indices [B, num_keep]
  int num_keep = 0;           // 0: the last forward kept every token
  std::vector<float> drop;    // the last forward's drop-path factors [depth, 2, B]
  bool dropping = false;      // false: the last forward had no drop-path
  Arena acts;
  ForwardBuffers fwd;
  // Gradient scratch, shared by all blocks.
  float *dx = nullptr, *dln = nullptr, *dqkv = nullptr, *dg = nullptr, *dpooled = nullptr,
        *dnormed = nullptr, *dpatches = nullptr, *dhalf = nullptr, *dstem = nullptr;
};

}  // namespace

struct detail::ModelImpl {
  Config cfg;
  std::vector<ParamInfo> params;
  std::unordered_map<std::string, size_t> index;
  Arena weights, grads;

  size_t cls = kNone, dist = kNone, reg = kNone, pos = kNone, patch_w = kNone, patch_b = kNone;
  size_t stem_w = kNone, stem_b = kNone;
  size_t pre_w = kNone, pre_b = kNone;
  std::vector<BlockOffsets> blocks;
  size_t norm_w = kNone, norm_b = kNone, head_w = kNone, head_b = kNone;
  size_t head_dist_w = kNone, head_dist_b = kNone;

  // Training activations: the model's own (forward/backward), sized for max_batch, and the lanes
  // of parallel micro-batches with their gradient buffers (enable_lanes).
  Lane main;
  int max_batch = 0;
  std::vector<Lane> lanes;  // all of the same capacity
  Arena grad_buffers;
  std::vector<size_t> grad_buffer_offsets;

  bool frozen = false;  // freeze_backbone: the backward stops after the heads

  // Inference workspaces (one block's buffers each), sized for infer_batch images: one per thread
  // running micro-batches at once.
  int infer_batch = 0;
  Arena infer;
  std::vector<ForwardBuffers> infer_spaces;

  // The scratch of the ops the model runs, per thread of its parallel regions.
  ops::CpuContext cpu;

  // predict()'s weights converted once (set_inference_dtype): a bf16 copy, or the fp32 weights
  // rearranged in place into the GEMM's panels, which restore_weights() puts back before anything
  // else reads them. Declared after weights, so destroyed first. Null: the weights as they are.
  std::unique_ptr<ops::PackedWeights> packed;
  Dtype packed_dtype = Dtype::kF32;
  // load() for bf16 alone handed the linear weights' fp32 memory back (they read as zeros).
  bool f32_released = false;
  // Training in bf16 (set_training_dtype): each linear weight's two bf16 copies, made again from
  // the fp32 weights before each step (convert_for_training). Null in fp32.
  std::unique_ptr<ops::PackedWeights> train_packs;

  ~ModelImpl() {
    if (packed) packed->forget();  // the weights go too: no need to rearrange them back
  }
  ModelImpl() = default;
  ModelImpl(const ModelImpl&) = delete;
  ModelImpl& operator=(const ModelImpl&) = delete;

  // The weights as params() describes them: fp32 panels put back (a bf16 copy, beside them,
  // stays: it does not follow changes to them, as set_inference_dtype says).
  void restore_weights() {
    require_f32();
    if (packed && packed_dtype == Dtype::kF32) packed.reset();
  }
  // Anything that reads the fp32 weights, on a model loaded for bf16 inference alone.
  void require_f32() const {
    if (f32_released) {
      throw Error(
          "this model was loaded for bf16 inference alone, which keeps no fp32 weights; load it "
          "again without bf16 to read, train, save or run it in fp32");
    }
  }

  size_t add_param(const std::string& name, std::vector<int64_t> shape, bool decay,
                   bool trainable = true) {
    ParamInfo p;
    p.name = name;
    p.shape = std::move(shape);
    p.numel = 1;
    for (int64_t d : p.shape) p.numel *= d;
    p.offset = weights.add(size_t(p.numel));
    p.decay = decay;
    p.trainable = trainable;
    index[name] = params.size();
    params.push_back(std::move(p));
    return params.back().offset;
  }

  float* W(size_t off) { return weights.at(off); }
  float* G(size_t off) { return grads.at(off); }
  float* Wopt(size_t off) { return off == kNone ? nullptr : weights.at(off); }
  float* Gopt(size_t off) { return off == kNone ? nullptr : grads.at(off); }
};

using Impl = detail::ModelImpl;

namespace {

// The parameter list (timm names and order) and offsets of cfg, planned in m.weights without
// allocating.
void plan_parameters(Impl& m, const Config& cfg) {
  m.cfg = cfg;
  const int64_t D = cfg.dim, M = cfg.mlp_dim, K = cfg.num_classes;
  const bool learned = cfg.pos_embed == PosEmbed::kLearned;
  if (cfg.has_class_token()) m.cls = m.add_param("cls_token", {1, 1, D}, false);
  if (cfg.dist_token) m.dist = m.add_param("dist_token", {1, 1, D}, false);
  if (cfg.reg_tokens > 0) m.reg = m.add_param("reg_token", {1, cfg.reg_tokens, D}, false);
  m.pos = m.add_param("pos_embed", {1, cfg.pos_rows(), D}, false, learned);
  if (cfg.stem_channels > 0) {
    m.stem_w = m.add_param(
        "patch_embed.backbone.0.conv.weight",
        {cfg.stem_channels, cfg.channels, Config::kStemKernel, Config::kStemKernel}, true);
    m.stem_b = m.add_param("patch_embed.backbone.0.conv.bias", {cfg.stem_channels}, false);
  }
  m.patch_w = m.add_param("patch_embed.proj.weight",
                          {D, cfg.proj_channels(), cfg.proj_kernel(), cfg.proj_kernel()}, true);
  if (cfg.patch_bias) m.patch_b = m.add_param("patch_embed.proj.bias", {D}, false);
  if (cfg.norm_pre) {
    m.pre_w = m.add_param("norm_pre.weight", {D}, false);
    m.pre_b = m.add_param("norm_pre.bias", {D}, false);
  }
  const int64_t Dh = cfg.head_dim();
  for (int l = 0; l < cfg.depth; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    BlockOffsets b;
    b.norm1_w = m.add_param(p + "norm1.weight", {D}, false);
    b.norm1_b = m.add_param(p + "norm1.bias", {D}, false);
    b.qkv_w = m.add_param(p + "attn.qkv.weight", {3 * D, D}, true);
    b.qkv_b = cfg.qkv_bias ? m.add_param(p + "attn.qkv.bias", {3 * D}, false) : kNone;
    if (cfg.qk_norm) {
      b.qn_w = m.add_param(p + "attn.q_norm.weight", {Dh}, false);
      b.qn_b = m.add_param(p + "attn.q_norm.bias", {Dh}, false);
      b.kn_w = m.add_param(p + "attn.k_norm.weight", {Dh}, false);
      b.kn_b = m.add_param(p + "attn.k_norm.bias", {Dh}, false);
    }
    b.proj_w = m.add_param(p + "attn.proj.weight", {D, D}, true);
    b.proj_b = m.add_param(p + "attn.proj.bias", {D}, false);
    if (cfg.layer_scale) b.ls1 = m.add_param(p + "ls1.gamma", {D}, false);
    b.norm2_w = m.add_param(p + "norm2.weight", {D}, false);
    b.norm2_b = m.add_param(p + "norm2.bias", {D}, false);
    b.fc1_w = m.add_param(p + "mlp.fc1.weight", {M, D}, true);
    b.fc1_b = m.add_param(p + "mlp.fc1.bias", {M}, false);
    b.fc2_w = m.add_param(p + "mlp.fc2.weight", {D, M}, true);
    b.fc2_b = m.add_param(p + "mlp.fc2.bias", {D}, false);
    if (cfg.layer_scale) b.ls2 = m.add_param(p + "ls2.gamma", {D}, false);
    m.blocks.push_back(b);
  }
  // timm: the final LayerNorm is `norm` (on the tokens) for token pooling and `fc_norm` (after
  // the pooling) for average pooling, unless fc_norm=False put it on the tokens.
  const std::string norm = cfg.has_fc_norm() ? "fc_norm" : "norm";
  m.norm_w = m.add_param(norm + ".weight", {D}, false);
  m.norm_b = m.add_param(norm + ".bias", {D}, false);
  m.head_w = m.add_param("head.weight", {K, D}, true);
  m.head_b = m.add_param("head.bias", {K}, false);
  if (cfg.dist_token) {
    m.head_dist_w = m.add_param("head_dist.weight", {K, D}, true);
    m.head_dist_b = m.add_param("head_dist.bias", {K}, false);
  }
}

}  // namespace

Model::Model(const Config& cfg) : impl_(std::make_unique<detail::ModelImpl>()) {
  cfg.validate();
  plan_parameters(*impl_, cfg);
  impl_->weights.allocate();
}

std::vector<ParamInfo> Model::layout(const Config& cfg) {
  cfg.validate();
  Impl m;
  plan_parameters(m, cfg);
  return m.params;
}

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const Config& Model::config() const {
  return impl_->cfg;
}
const std::vector<ParamInfo>& Model::params() const {
  return impl_->params;
}
float* Model::param_data() {
  impl_->restore_weights();
  return impl_->weights.data();
}
const float* Model::param_data() const {
  impl_->restore_weights();
  return impl_->weights.data();
}
bool Model::fp32_released() const {
  return impl_->f32_released;
}
size_t Model::arena_floats() const {
  return impl_->weights.size();
}
int Model::max_batch() const {
  return impl_->max_batch;
}

int64_t Model::num_params() const {
  int64_t n = 0;
  for (const ParamInfo& p : impl_->params) n += p.numel;
  return n;
}

const ParamInfo& Model::param_info(const std::string& name) const {
  auto it = impl_->index.find(name);
  VIT_CHECK(it != impl_->index.end(), "the model has no parameter named '" + name + "'");
  return impl_->params[it->second];
}

TensorView Model::param(const std::string& name) {
  const ParamInfo& p = param_info(name);
  impl_->restore_weights();
  return {impl_->weights.at(p.offset), p.shape};
}

TensorView Model::grad(const std::string& name) {
  const ParamInfo& p = param_info(name);
  VIT_CHECK(impl_->grads.allocated(), "gradients exist only after enable_training()");
  return {impl_->grads.at(p.offset), p.shape};
}

float* Model::grad_data() {
  VIT_CHECK(impl_->grads.allocated(), "gradients exist only after enable_training()");
  return impl_->grads.data();
}

void Model::zero_grad() {
  if (impl_->grads.allocated()) {
    ops::fill_zero(ops::Context{num_threads()}, impl_->grads.data(), int64_t(impl_->grads.size()));
  }
}

void Model::freeze_backbone(bool frozen) {
  Impl& m = *impl_;
  m.frozen = frozen;
  for (ParamInfo& p : m.params) {
    const bool head = is_head_param(p.name);
    const bool fixed = p.offset == m.pos && m.cfg.pos_embed == PosEmbed::kSinCos;
    p.trainable = !fixed && (!frozen || head);
  }
}

bool is_head_param(const std::string& name) {
  return name.starts_with("head.") || name.starts_with("head_dist.");
}

bool Model::backbone_frozen() const {
  return impl_->frozen;
}

void Model::init(uint64_t seed, const InitOptions& options, Dtype dtype) {
  const float qkv_std = options.qkv_std;
  VIT_CHECK(std::isfinite(qkv_std) && qkv_std > 0.0f && qkv_std < 10.0f,
            "init: qkv_std must be in (0, 10) (got " + std::to_string(qkv_std) + ")");
  Impl& m = *impl_;
  const bool torch = options.scheme == InitOptions::kTorch;
  // Every parameter is written, through load(): each from a stream of its own (seed, its index),
  // so a tensor's values do not depend on which tensors precede it.
  load(
      [&](const ParamInfo& p, float* w) {
        const size_t i = m.index.at(p.name);
        Rng rng(seed, i);
        const bool is_norm_weight =
            p.name.ends_with("norm1.weight") || p.name.ends_with("norm2.weight") ||
            p.name == "norm.weight" || p.name == "fc_norm.weight" || p.name == "norm_pre.weight" ||
            p.name.ends_with("q_norm.weight") || p.name.ends_with("k_norm.weight");
        // kTorch: a layer's weight (decayed) or bias, uniform in +-1/sqrt(the weight's fan_in).
        const std::string weight_name =
            p.name.ends_with(".bias") ? p.name.substr(0, p.name.size() - 5) + ".weight" : p.name;
        const auto weight = m.index.find(weight_name);
        const bool layer = weight != m.index.end() && m.params[weight->second].decay;
        if (torch && p.offset == m.cls) {
          for (int64_t j = 0; j < p.numel; ++j) w[j] = float(rng.uniform());
        } else if ((torch && layer) || p.offset == m.stem_w || p.offset == m.stem_b) {
          // PyTorch's default for a layer; the stem's convolution has it always (timm leaves it).
          const ParamInfo& wp = m.params[weight->second];
          const double bound = 1.0 / std::sqrt(double(wp.numel / wp.shape[0]));
          for (int64_t j = 0; j < p.numel; ++j) w[j] = float((2.0 * rng.uniform() - 1.0) * bound);
        } else if (p.offset == m.pos && (!p.trainable || options.sincos_pos)) {
          ops::sincos_table(ops::Context{}, w, m.cfg.pos_rows(), m.cfg.dim);
        } else if (is_norm_weight) {
          std::fill(w, w + p.numel, 1.0f);
        } else if (p.name.ends_with(".gamma")) {
          std::fill(w, w + p.numel, kLayerScaleInit);
        } else if (p.offset == m.reg) {  // timm: normal(0, 1e-6)
          for (int64_t j = 0; j < p.numel; ++j) w[j] = float(1e-6 * rng.normal());
        } else if (p.decay || p.offset == m.cls || p.offset == m.dist || p.offset == m.pos) {
          const double std = p.name.ends_with("attn.qkv.weight") ? qkv_std : 0.02;
          for (int64_t j = 0; j < p.numel; ++j) w[j] = float(rng.trunc_normal(std));
        } else {
          std::fill(w, w + p.numel, 0.0f);  // biases and LayerNorm shifts
        }
      },
      dtype);
}

ops::ConvGeom stem_geom(const Config& c, int B, const int32_t* keep, int num_keep) {
  return {.B = B,
          .C = c.channels,
          .S = c.image_size,
          .k = Config::kStemKernel,
          .stride = Config::kStemStride,
          .pad = Config::kStemPad,
          .keep = keep,
          .count = num_keep,
          .ps = c.proj_kernel()};
}

namespace {

struct ActivationSlot {
  float** ptr;
  size_t off;
};
struct Bf16Slot {
  uint16_t** ptr;
  size_t off;
};

// Records, for buffers planned in an arena, where each pointer will point once it is allocated.
struct Planner {
  Arena& arena;
  std::vector<ActivationSlot> slots;
  std::vector<Bf16Slot> bf16_slots;
  size_t plan(float** ptr, int64_t n) {
    const size_t off = arena.add(size_t(n));
    slots.push_back({ptr, off});
    return off;
  }
  void plan_bf16(uint16_t** ptr, int64_t n) {  // n bf16 values, in the arena's floats
    bf16_slots.push_back({ptr, arena.add(size_t((n + 1) / 2))});
  }
  void alias(float** ptr, size_t off) { slots.push_back({ptr, off}); }
  void allocate() {
    arena.allocate();
    for (const ActivationSlot& s : slots) *s.ptr = arena.at(s.off);
    for (const Bf16Slot& s : bf16_slots) *s.ptr = reinterpret_cast<uint16_t*>(arena.at(s.off));
  }
};

// kTrainingBf16: training whose weight gradients read bf16 (ops::Context::bf16_grads).
// kAttention: inference's buffers, and one block's attention probabilities (att), which every
// block writes in turn (Model::forward_attention).
enum class Pass { kTraining, kTrainingBf16, kInference, kAttention };

// Plans forward_graph's buffers for batches of B images. Training: every block keeps its own
// activations, and with them what only the backward reads (LayerNorm statistics, attention
// probabilities, GELU slopes). Inference: one block's buffers serve every block, the residual
// stream is updated in place (x_l, xmid and x_l+1 are one buffer; ln1 and ln2 one), and what
// only the backward reads stays null. The pointers of blocks after the first are copied from the
// first by finish_forward once the arena is allocated. Training in bf16 saves ln1, ln2 and g as
// the bf16 panels their weight gradients read (half the bytes of fp32), and every block shares
// one buffer of fp32 rows for ln1 and ln2 (as inference does) and one for g, where the forward
// makes them in cache for the next product and its panels.
void plan_forward(const Config& c, int64_t B, Pass pass, Planner& p, ForwardBuffers& F) {
  const bool training = pass == Pass::kTraining || pass == Pass::kTrainingBf16;
  const bool bf16 = pass == Pass::kTrainingBf16;
  const int64_t N = c.num_tokens(), Np = c.num_patches(), D = c.dim, M = c.mlp_dim, H = c.heads,
                K = c.num_classes;
  const int64_t BN = B * N, BND = BN * D;
  auto saved = [&](float** ptr, int64_t n) {  // read by the backward alone
    if (training) p.plan(ptr, n);
  };
  const int64_t T = c.pooled_tokens();
  F = ForwardBuffers{};
  F.x.assign(c.depth + 1, nullptr);
  F.blocks.assign(c.depth, BlockActs{});
  p.plan(&F.cols, B * Np * c.patch_dim());
  if (c.stem_channels > 0) {
    const ops::ConvGeom stem = stem_geom(c, int(B));
    const int64_t rows = stem.rows();
    p.plan(&F.stem_cols, rows * stem.cols());
    p.plan(&F.stem_g, rows * c.stem_channels);
    saved(&F.stem_slope, rows * c.stem_channels);
  }
  if (c.num_prefix_tokens() > 0) p.plan(&F.patches, B * Np * D);
  if (c.norm_pre) {
    p.plan(&F.prex, BND);
    saved(&F.pre_mean, BN);
    saved(&F.pre_rstd, BN);
  }
  const size_t x0 = p.plan(&F.x[0], BND);
  for (int l = 1; l <= c.depth; ++l) {
    if (training) p.plan(&F.x[l], BND);
  }
  size_t shared_ln = 0, shared_g = 0;  // bf16 training's fp32 rows of ln1 and ln2, and of g
  for (int l = 0; l < (training ? c.depth : std::min(c.depth, 1)); ++l) {
    BlockActs& s = F.blocks[l];
    // A buffer of n floats: its own, or in bf16 training the first block's (first) after it.
    auto plan_shared = [&](float** ptr, int64_t n, size_t& first) {
      if (bf16 && l > 0) {
        p.alias(ptr, first);
      } else {
        first = p.plan(ptr, n);
      }
      return first;
    };
    const size_t ln1 = plan_shared(&s.ln1, BND, shared_ln);
    if (bf16) {
      p.plan_bf16(&s.ln1_bf16, ops::bf16_panels_size(int(BN), int(D)));
      p.plan_bf16(&s.ln2_bf16, ops::bf16_panels_size(int(BN), int(D)));
      p.plan_bf16(&s.g_bf16, ops::bf16_panels_size(int(BN), int(M)));
    }
    saved(&s.mean1, BN);
    saved(&s.rstd1, BN);
    p.plan(&s.qkv, 3 * BND);
    if (c.qk_norm) {  // inference normalises q and k in place
      saved(&s.qkv_raw, 3 * BND);
      saved(&s.qk_mean, 2 * BN * H);
      saved(&s.qk_rstd, 2 * BN * H);
    }
    if (training || pass == Pass::kAttention) p.plan(&s.att, B * H * N * N);
    p.plan(&s.attn, BND);
    if (c.layer_scale) {
      const size_t y1 = p.plan(&s.y1, BND);
      if (training) {
        p.plan(&s.y2, BND);
      } else {
        p.alias(&s.y2, y1);
      }
    }
    if (training) {
      p.plan(&s.xmid, BND);
      if (bf16) {
        p.alias(&s.ln2, ln1);
      } else {
        p.plan(&s.ln2, BND);
      }
    } else {
      p.alias(&s.xmid, x0);
      p.alias(&s.ln2, ln1);
    }
    saved(&s.mean2, BN);
    saved(&s.rstd2, BN);
    plan_shared(&s.g, BN * M, shared_g);
    saved(&s.slope, BN * M);
  }
  if (c.mean_after_norm) {
    p.plan(&F.tok_normed, BND);
    saved(&F.tok_mean, BN);
    saved(&F.tok_rstd, BN);
  }
  p.plan(&F.pooled, T * B * D);
  saved(&F.pool_mean, T * B);
  saved(&F.pool_rstd, T * B);
  p.plan(&F.normed, T * B * D);
  if (training) p.plan(&F.logits, B * K);  // inference writes into the caller's array
  if (c.dist_token) p.plan(&F.logits_dist, B * K);
}

// After allocation: an inference plan's blocks share the first block's buffers.
void finish_forward(ForwardBuffers& F) {
  if (F.x.size() > 1 && F.x[1] == nullptr) {
    for (float*& x : F.x) x = F.x[0];
    for (BlockActs& s : F.blocks) s = F.blocks[0];
  }
}

// Plans lane L's training activations (bf16: for training in bf16) and gradient scratch for batch
// B into arena `a` (offsets only: nothing is allocated).
void plan_activations(const Config& c, Lane& L, int64_t B, bool bf16, Planner& p) {
  const int64_t BND = B * c.num_tokens() * c.dim, BN = B * c.num_tokens();
  const int64_t Np = c.num_patches(), D = c.dim, M = c.mlp_dim, T = c.pooled_tokens();
  plan_forward(c, B, bf16 ? Pass::kTrainingBf16 : Pass::kTraining, p, L.fwd);
  p.plan(&L.dx, BND);
  p.plan(&L.dln, BND);
  p.plan(&L.dqkv, 3 * BND);
  p.plan(&L.dg, BN * M);
  p.plan(&L.dpooled, T * B * D);
  p.plan(&L.dnormed, T * B * D);
  if (c.num_prefix_tokens() > 0) p.plan(&L.dpatches, B * Np * D);
  if (c.stem_channels > 0) p.plan(&L.dstem, stem_geom(c, int(B)).rows() * c.stem_channels);
  if (c.dist_token) p.plan(&L.dhalf, B * c.num_classes);
}

// Allocates lane L's activations for batches of up to B images (bf16: for training in bf16).
void allocate_lane(const Config& c, Lane& L, int B, bool bf16) {
  Lane fresh;  // L is replaced only once the memory is there
  Planner p{fresh.acts, {}, {}};
  plan_activations(c, fresh, B, bf16, p);
  p.allocate();
  fresh.fwd.branch = fresh.dln;  // likewise
  fresh.capacity = B;
  fresh.bf16 = bf16;
  L = std::move(fresh);
}

// The context of the ops the calling thread runs for the model: split over every thread of the
// model's (num_threads()) outside a parallel region; inside one (run_on_lanes, each of whose
// threads runs micro-batches of its own), the calling thread alone with its scratch, made before
// the region (lanes::enable, predict).
ops::Context executor_context(Impl& m) {
  if (omp_in_parallel()) return m.cpu.on_thread(omp_get_thread_num());
  return m.cpu.with_threads(num_threads());
}

// Tokens the last forward's blocks saw in lane L: all, or the prefix and the kept patches.
int block_tokens(const Config& c, const Lane& L) {
  return L.num_keep ? c.num_prefix_tokens() + L.num_keep : c.num_tokens();
}

// The rows of the prefix tokens (cls_token, dist_token, reg_token's) in base, the parameter arena
// or a gradient arena of its layout; on the stack, as a step allocates nothing.
constexpr int kMaxPrefix = 2 + 256;  // Config: reg_tokens <= 256
template <class Float>
std::array<Float*, kMaxPrefix> prefix_rows(const Impl& m, Float* base) {
  std::array<Float*, kMaxPrefix> rows{};
  int n = 0;
  if (m.cls != kNone) rows[size_t(n++)] = base + m.cls;
  if (m.dist != kNone) rows[size_t(n++)] = base + m.dist;
  for (int r = 0; r < m.cfg.reg_tokens; ++r)
    rows[size_t(n++)] = base + m.reg + size_t(r) * m.cfg.dim;
  return rows;
}

// The patch embedding's convolution as ops::ConvGeom, for images [B, C, S, S]: on the images, or
// on the stem's output [B, Ss, Ss, Cs]; with patch dropout (keep) at the kept patches alone, whose
// stem rows come (b, j, dy, dx): B * num_keep images of P/2 x P/2 positions.
ops::ConvGeom proj_geom(const Config& c, int B, const int32_t* keep, int num_keep) {
  const int k = c.proj_kernel();
  if (c.stem_channels == 0) {
    return {.B = B,
            .C = c.channels,
            .S = c.image_size,
            .k = k,
            .stride = k,
            .keep = keep,
            .count = num_keep};
  }
  return {.B = keep ? B * num_keep : B,
          .C = c.stem_channels,
          .S = keep ? k : stem_geom(c, B).G(),
          .k = k,
          .stride = k,
          .channels_last = true};
}

// The network's forward, written once: images [B, C, S, S] to logits F.logits [B, K], in the
// buffers F that plan_forward laid out for training (each block's activations saved for the
// backward) or for inference (one block's buffers reused, nothing saved: the null pointers tell
// each op not to keep what only the backward reads). keep (training only) is patch dropout:
// image b's blocks see the prefix tokens and the patch tokens keep[b * num_keep + j]. drop
// (training only, with F.branch or LayerScale's buffers) is drop-path: block l's attention branch
// of image b is scaled by drop[2l * B + b] and its MLP branch by drop[(2l + 1) * B + b].
void forward_graph(const Impl& m, const ops::Context& ctx, ForwardBuffers& F, const float* images,
                   int B, const int32_t* keep, int num_keep, const float* drop,
                   AttentionProbs* probs = nullptr) {
  const Config& c = m.cfg;
  const int Np = c.num_patches(), D = c.dim, M = c.mlp_dim, H = c.heads;
  const int F0 = c.num_prefix_tokens();  // the class token or none
  const int N = keep ? F0 + num_keep : c.num_tokens();
  const int64_t BN = int64_t(B) * N;
  auto W = [&](size_t off) { return m.weights.at(off); };
  auto Wopt = [&](size_t off) { return off == kNone ? nullptr : W(off); };

  // The patch embedding, of every patch or, with patch dropout (keep), of the kept ones alone: Ne
  // rows per image in keep's order. Then the prefix tokens and the positions make the blocks'
  // input x0 (with norm_pre, its input F.prex).
  const int Ne = keep ? num_keep : Np;
  float* x0 = c.norm_pre ? F.prex : F.x[0];
  float* pe = F0 > 0 ? F.patches : x0;
  const ops::ConvGeom proj = proj_geom(c, B, keep, num_keep);
  if (c.stem_channels > 0) {
    const ops::ConvGeom stem = stem_geom(c, B, keep, num_keep);
    ops::im2col(ctx, F.stem_cols, images, stem);
    ops::linear_gelu_forward(ctx, F.stem_g, F.stem_slope, F.stem_cols, W(m.stem_w), W(m.stem_b),
                             stem.rows(), stem.cols(), c.stem_channels);
    ops::im2col(ctx, F.cols, F.stem_g, proj);
  } else {
    ops::im2col(ctx, F.cols, images, proj);
  }
  ops::linear_forward(ctx, pe, F.cols, W(m.patch_w), Wopt(m.patch_b), proj.rows(), c.patch_dim(),
                      D);
  if (c.no_embed_class) ops::pos_add_forward(ctx, pe, pe, W(m.pos), B, Ne, D, keep);
  if (F0 > 0) {
    const auto rows = prefix_rows(m, m.weights.data());
    ops::prefix_prepend_forward(ctx, x0, pe, rows.data(), B, F0, Ne, D);
  }
  if (!c.no_embed_class) ops::pos_add_forward(ctx, x0, x0, W(m.pos), B, N, D, keep, F0);
  if (c.norm_pre) {
    ops::layernorm_forward(ctx, F.x[0], F.pre_mean, F.pre_rstd, x0, W(m.pre_w), W(m.pre_b), BN, D,
                           c.ln_eps);
  }

  // Each residual add and the LayerNorm after it run in the epilogue of the linear layer before
  // them (proj: xmid and norm2; fc2: x_l+1 and the next block's norm1); block 0's norm1 runs
  // alone. In inference x_l, xmid and x_l+1 are one buffer: the adds are in place.
  if (c.depth > 0) {
    const BlockOffsets& p = m.blocks[0];
    BlockActs& s = F.blocks[0];
    ops::layernorm_forward(ctx, s.ln1, s.mean1, s.rstd1, F.x[0], W(p.norm1_w), W(p.norm1_b), BN, D,
                           c.ln_eps);
  }
  // LayerScale and drop-path unfuse the residual joins: linear, then the scaled add, then the
  // LayerNorm.
  const bool unfused = c.layer_scale || drop;
  for (int l = 0; l < c.depth; ++l) {
    const BlockOffsets& p = m.blocks[l];
    BlockActs& s = F.blocks[l];
    const float* ds1 = drop ? drop + int64_t(2 * l) * B : nullptr;
    const float* ds2 = drop ? drop + int64_t(2 * l + 1) * B : nullptr;
    float* y1 = c.layer_scale ? s.y1 : F.branch;
    float* y2 = c.layer_scale ? s.y2 : F.branch;
    const float* qkv_b = Wopt(p.qkv_b);
    if (s.ln1_bf16) ops::input_panels_bf16(ctx, s.ln1_bf16, s.ln1, BN, D);
    if (c.qk_norm) {
      float* raw = s.qkv_raw ? s.qkv_raw : s.qkv;  // inference: in place
      ops::linear_forward(ctx, raw, s.ln1, W(p.qkv_w), qkv_b, BN, D, 3 * D);
      ops::qk_norm_forward(ctx, s.qkv, s.qk_mean, s.qk_rstd, raw, W(p.qn_w), W(p.qn_b), W(p.kn_w),
                           W(p.kn_b), BN, D, H, c.ln_eps);
    } else {
      ops::linear_forward(ctx, s.qkv, s.ln1, W(p.qkv_w), qkv_b, BN, D, 3 * D);
    }
    ops::attention_forward(ctx, s.attn, s.att, s.qkv, B, N, D, H);
    if (probs) probs->add_block(l, s.att);
    if (unfused) {
      ops::linear_forward(ctx, y1, s.attn, W(p.proj_w), W(p.proj_b), BN, D, D);
      ops::scale_add_forward(ctx, s.xmid, F.x[l], y1, c.layer_scale ? W(p.ls1) : nullptr, ds1, N,
                             BN, D);
      ops::layernorm_forward(ctx, s.ln2, s.mean2, s.rstd2, s.xmid, W(p.norm2_w), W(p.norm2_b), BN,
                             D, c.ln_eps);
    } else {
      ops::linear_residual_norm_forward(ctx, s.xmid, s.ln2, s.mean2, s.rstd2, s.attn, W(p.proj_w),
                                        W(p.proj_b), F.x[l], W(p.norm2_w), W(p.norm2_b), BN, D, D,
                                        c.ln_eps);
    }
    if (s.ln2_bf16) ops::input_panels_bf16(ctx, s.ln2_bf16, s.ln2, BN, D);
    if (c.act == Act::kGelu) {
      ops::linear_gelu_forward(ctx, s.g, s.slope, s.ln2, W(p.fc1_w), W(p.fc1_b), BN, D, M);
    } else {
      ops::linear_forward(ctx, s.g, s.ln2, W(p.fc1_w), W(p.fc1_b), BN, D, M);
      if (c.act == Act::kQuickGelu) {
        ops::quick_gelu_forward(ctx, s.g, s.slope, s.g, BN * M);
      } else {
        ops::gelu_tanh_forward(ctx, s.g, s.slope, s.g, BN * M);
      }
    }
    if (s.g_bf16) ops::input_panels_bf16(ctx, s.g_bf16, s.g, BN, M);
    BlockActs next{};  // the next block's norm1 outputs (none after the last block)
    const float *norm_w = nullptr, *norm_b = nullptr;
    if (l + 1 < c.depth) {
      next = F.blocks[l + 1];
      norm_w = W(m.blocks[l + 1].norm1_w);
      norm_b = W(m.blocks[l + 1].norm1_b);
    }
    if (unfused) {
      ops::linear_forward(ctx, y2, s.g, W(p.fc2_w), W(p.fc2_b), BN, M, D);
      ops::scale_add_forward(ctx, F.x[l + 1], s.xmid, y2, c.layer_scale ? W(p.ls2) : nullptr, ds2,
                             N, BN, D);
      if (next.ln1) {
        ops::layernorm_forward(ctx, next.ln1, next.mean1, next.rstd1, F.x[l + 1], norm_w, norm_b,
                               BN, D, c.ln_eps);
      }
    } else {
      ops::linear_residual_norm_forward(ctx, F.x[l + 1], next.ln1, next.mean1, next.rstd1, s.g,
                                        W(p.fc2_w), W(p.fc2_b), s.xmid, norm_w, norm_b, BN, M, D,
                                        c.ln_eps);
    }
  }

  const float* xl = F.x[c.depth];
  const int T = c.pooled_tokens(), K = c.num_classes;
  if (c.mean_after_norm) {  // timm fc_norm=False: norm every token, then average the patches
    ops::layernorm_forward(ctx, F.tok_normed, F.tok_mean, F.tok_rstd, xl, W(m.norm_w), W(m.norm_b),
                           BN, D, c.ln_eps);
    ops::mean_pool_forward(ctx, F.normed, F.tok_normed, B, N, D, F0);
  } else {
    // The class token's (and dist token's) rows, or the average of the patches; then the norm.
    if (c.pool == Pool::kCls) {
      ops::prefix_pool_forward(ctx, F.pooled, xl, B, N, D, T);
    } else {
      ops::mean_pool_forward(ctx, F.pooled, xl, B, N, D, F0);
    }
    ops::layernorm_forward(ctx, F.normed, F.pool_mean, F.pool_rstd, F.pooled, W(m.norm_w),
                           W(m.norm_b), int64_t(T) * B, D, c.ln_eps);
  }
  ops::linear_forward(ctx, F.logits, F.normed, W(m.head_w), W(m.head_b), B, D, K);
  if (c.dist_token) {  // timm: (head(x[:, 0]) + head_dist(x[:, 1])) / 2
    ops::linear_forward(ctx, F.logits_dist, F.normed + int64_t(B) * D, W(m.head_dist_w),
                        W(m.head_dist_b), B, D, K);
    ops::add_into(ctx, F.logits, F.logits_dist, int64_t(B) * K, /*copy=*/false);
    ops::scale_inplace(ctx, F.logits, int64_t(B) * K, 0.5f);
  }
}

// The training forward of images [B, C, S, S] in lane L, saving what lane_backward needs.
// drop_path: [B, depth, 2] per image (Model::forward), kept as [depth, 2, B] (forward_graph's).
const float* lane_forward(Impl& m, Lane& L, const float* images, int B, const int32_t* keep,
                          int num_keep, const float* drop_path) {
  m.restore_weights();  // training reads the weights as they are
  if (keep) {
    L.keep.assign(keep, keep + int64_t(B) * num_keep);
    L.num_keep = num_keep;
  } else {
    L.num_keep = 0;
  }
  L.dropping = drop_path != nullptr;
  if (drop_path) {
    const int depth2 = 2 * m.cfg.depth;
    L.drop.resize(size_t(depth2) * size_t(B));  // grows once: a step allocates nothing after
    for (int b = 0; b < B; ++b) {
      for (int j = 0; j < depth2; ++j)
        L.drop[size_t(j) * B + b] = drop_path[int64_t(b) * depth2 + j];
    }
  }
  ops::Context ctx = executor_context(m);
  ctx.packed = m.train_packs.get();  // training in bf16: the weights' bf16 copies
  forward_graph(m, ctx, L.fwd, images, B, keep, num_keep, drop_path ? L.drop.data() : nullptr);
  L.last_batch = B;
  return L.fwd.logits;
}

// Where the gradient is final after stage s of the backward (lanes::ready_offsets): stage 0 is the
// heads and the final norm, stage s >= 1 block depth - s, whose first parameter is norm1's.
size_t ready_offset(const Impl& m, int s) {
  return s == 0 ? m.norm_w : m.blocks[size_t(m.cfg.depth - s)].norm1_w;
}

// The backward of lane L's last forward, accumulating the parameter gradients into grads (the
// gradient arena's layout), zeroed first a stage at a time when zero_first; ready as
// lanes::backward documents.
void lane_backward(Impl& m, Lane& L, const float* dlogits, float* grads,
                   const lanes::GradsReady& ready = nullptr, bool zero_first = false) {
  m.restore_weights();
  const Config& c = m.cfg;
  const int B = L.last_batch;
  const int Np = c.num_patches(), D = c.dim, M = c.mlp_dim, H = c.heads;
  const int F = c.num_prefix_tokens();
  const int N = block_tokens(c, L);
  const int64_t BN = int64_t(B) * N;
  const bool learned = c.pos_embed == PosEmbed::kLearned;
  auto G = [&](size_t off) { return grads + off; };
  auto Gopt = [&](size_t off) { return off == kNone ? nullptr : grads + off; };
  ops::Context ctx = executor_context(m);
  ctx.packed = m.train_packs.get();           // training in bf16: the weights' bf16 copies, and
  ctx.bf16_grads = m.train_packs != nullptr;  // the weight gradients' products in bf16
  // A layer's saved input: its bf16 panels where the lane keeps them (its fp32 rows then belong
  // to a later block), else its fp32 rows.
  auto saved = [](const float* rows, const uint16_t* panels) {
    return panels ? ops::LayerInput(nullptr, panels) : ops::LayerInput(rows);
  };

  // zero_first: each stage's range of grads (ready_offset's stages: the heads and the final
  // norm, each block, then the embeddings) is zeroed just before the stage adds into it, so that
  // the stage finds it in cache (zeroed whole before the forward, it was read back from memory).
  auto zero = [&](size_t from, size_t to) {
    if (zero_first) ops::fill_zero(ctx, grads + from, int64_t(to - from));
  };
  zero(ready_offset(m, 0), m.weights.size());

  const int K = c.num_classes, T = c.pooled_tokens();
  // A frozen backbone (a linear probe) needs the heads' gradients alone.
  float* dnormed = m.frozen ? nullptr : L.dnormed;
  if (c.dist_token) {  // logits = (head(normed[0]) + head_dist(normed[1])) / 2
    ops::add_into(ctx, L.dhalf, dlogits, int64_t(B) * K, /*copy=*/true);
    ops::scale_inplace(ctx, L.dhalf, int64_t(B) * K, 0.5f);
    ops::linear_backward(ctx, dnormed, G(m.head_w), G(m.head_b), L.dhalf, L.fwd.normed,
                         m.W(m.head_w), B, D, K);
    ops::linear_backward(ctx, dnormed ? dnormed + int64_t(B) * D : nullptr, G(m.head_dist_w),
                         G(m.head_dist_b), L.dhalf, L.fwd.normed + int64_t(B) * D,
                         m.W(m.head_dist_w), B, D, K);
  } else {
    ops::linear_backward(ctx, dnormed, G(m.head_w), G(m.head_b), dlogits, L.fwd.normed,
                         m.W(m.head_w), B, D, K);
  }
  if (m.frozen) {
    zero(0, ready_offset(m, 0));  // the backbone's gradients: none
    return;
  }
  if (c.mean_after_norm) {  // dln is free here
    ops::mean_pool_backward(ctx, L.dln, L.dnormed, B, N, D, F);
    ops::layernorm_backward(ctx, L.dx, G(m.norm_w), G(m.norm_b), L.dln, L.fwd.x[c.depth],
                            L.fwd.tok_mean, L.fwd.tok_rstd, m.W(m.norm_w), BN, D);
  } else {
    ops::layernorm_backward(ctx, L.dpooled, G(m.norm_w), G(m.norm_b), L.dnormed, L.fwd.pooled,
                            L.fwd.pool_mean, L.fwd.pool_rstd, m.W(m.norm_w), int64_t(T) * B, D);
    if (c.pool == Pool::kCls) {
      ops::prefix_pool_backward(ctx, L.dx, L.dpooled, B, N, D, T);
    } else {
      ops::mean_pool_backward(ctx, L.dx, L.dpooled, B, N, D, F);
    }
  }
  if (ready) ready(ready_offset(m, 0));

  // L.dx holds the gradient of the residual stream, flowing from the last block to the first.
  for (int l = c.depth - 1; l >= 0; --l) {
    const BlockOffsets& p = m.blocks[l];
    const BlockActs& s = L.fwd.blocks[l];
    const float* ds1 = L.dropping ? L.drop.data() + int64_t(2 * l) * B : nullptr;
    const float* ds2 = L.dropping ? L.drop.data() + int64_t(2 * l + 1) * B : nullptr;
    const bool ls = c.layer_scale;
    zero(p.norm1_w, ready_offset(m, c.depth - l - 1));  // the block's parameters
    // x_l+1 = xmid + ls2 * fc2(act(fc1(norm2(xmid)))) * drop; the slope is act's, GELU's or
    // QuickGELU's.
    const float* dy2 = L.dx;
    if (ls || L.dropping) {  // dln is free here
      ops::scale_add_backward(ctx, L.dln, ls ? G(p.ls2) : nullptr, L.dx, s.y2,
                              ls ? m.W(p.ls2) : nullptr, ds2, N, BN, D);
      dy2 = L.dln;
    }
    ops::linear_backward_gelu(ctx, L.dg, G(p.fc2_w), G(p.fc2_b), dy2, saved(s.g, s.g_bf16),
                              m.W(p.fc2_w), s.slope, BN, M, D);
    ops::linear_backward(ctx, L.dln, G(p.fc1_w), G(p.fc1_b), L.dg, saved(s.ln2, s.ln2_bf16),
                         m.W(p.fc1_w), BN, D, M);
    ops::layernorm_backward(ctx, L.dx, G(p.norm2_w), G(p.norm2_b), L.dln, s.xmid, s.mean2, s.rstd2,
                            m.W(p.norm2_w), BN, D, /*accumulate=*/true);  // + the skip path's
    // xmid = x_l + ls1 * proj(attention(qkv(norm1(x_l)))) * drop
    const float* dy1 = L.dx;
    if (ls || L.dropping) {  // dqkv is free until attention_backward
      ops::scale_add_backward(ctx, L.dqkv, ls ? G(p.ls1) : nullptr, L.dx, s.y1,
                              ls ? m.W(p.ls1) : nullptr, ds1, N, BN, D);
      dy1 = L.dqkv;
    }
    ops::linear_backward(ctx, L.dln, G(p.proj_w), G(p.proj_b), dy1, s.attn, m.W(p.proj_w), BN, D,
                         D);
    ops::attention_backward(ctx, L.dqkv, L.dln, s.qkv, s.att, s.attn, B, N, D, H);
    if (c.qk_norm) {
      ops::qk_norm_backward(ctx, L.dqkv, G(p.qn_w), G(p.qn_b), G(p.kn_w), G(p.kn_b), L.dqkv,
                            s.qkv_raw, s.qk_mean, s.qk_rstd, m.W(p.qn_w), m.W(p.kn_w), BN, D, H);
    }
    ops::linear_backward(ctx, L.dln, G(p.qkv_w), Gopt(p.qkv_b), L.dqkv, saved(s.ln1, s.ln1_bf16),
                         m.W(p.qkv_w), BN, D, 3 * D);
    ops::layernorm_backward(ctx, L.dx, G(p.norm1_w), G(p.norm1_b), L.dln, L.fwd.x[l], s.mean1,
                            s.rstd1, m.W(p.norm1_w), BN, D, /*accumulate=*/true);
    if (ready) ready(ready_offset(m, c.depth - l));
  }

  // dx0: the gradient of the blocks' input (before norm_pre).
  zero(0, ready_offset(m, c.depth));  // the embeddings' parameters
  float* dx0 = L.dx;
  if (c.norm_pre) {
    ops::layernorm_backward(ctx, L.dln, G(m.pre_w), G(m.pre_b), L.dx, L.fwd.prex, L.fwd.pre_mean,
                            L.fwd.pre_rstd, m.W(m.pre_w), BN, D);
    dx0 = L.dln;
  }
  // Back through the positions and the prefix tokens to the embedded patches (Ne per image).
  const int32_t* keep = L.num_keep ? L.keep.data() : nullptr;
  const int Ne = keep ? L.num_keep : Np;
  float* dpos = learned ? G(m.pos) : nullptr;
  if (!c.no_embed_class) ops::pos_add_backward(ctx, dx0, dpos, dx0, B, N, D, keep, F);
  float* dpe = dx0;
  if (F > 0) {
    const auto rows = prefix_rows(m, grads);
    ops::prefix_prepend_backward(ctx, L.dpatches, rows.data(), dx0, B, F, Ne, D);
    dpe = L.dpatches;
  }
  if (c.no_embed_class) ops::pos_add_backward(ctx, dpe, dpos, dpe, B, Ne, D, keep);
  // With a stem, the columns' gradient overwrites the columns (read first), then goes back
  // through col2im and the GELU to the stem's convolution.
  const bool stem = c.stem_channels > 0;
  const ops::ConvGeom proj = proj_geom(c, B, keep, L.num_keep);
  ops::linear_backward(ctx, stem ? L.fwd.cols : nullptr, G(m.patch_w), Gopt(m.patch_b), dpe,
                       L.fwd.cols, m.W(m.patch_w), proj.rows(), c.patch_dim(), D);
  if (stem) {
    const ops::ConvGeom sg = stem_geom(c, B, keep, L.num_keep);
    const int64_t n = sg.rows() * c.stem_channels;
    ops::col2im(ctx, L.dstem, L.fwd.cols, proj);
    ops::gelu_backward(ctx, L.dstem, L.dstem, nullptr, L.fwd.stem_slope, n);
    ops::linear_backward(ctx, nullptr, G(m.stem_w), G(m.stem_b), L.dstem, L.fwd.stem_cols,
                         m.W(m.stem_w), sg.rows(), sg.cols(), c.stem_channels);
  }
}

// Checks a forward's arguments against lane L (as Model::forward documents).
void check_forward(const Config& c, const Lane& L, int B, const int32_t* keep, int num_keep,
                   const float* drop_path) {
  VIT_CHECK(B >= 1 && B <= L.capacity, "forward: batch " + std::to_string(B) + " is outside [1, " +
                                           std::to_string(L.capacity) + "]");
  const int Np = c.num_patches();
  VIT_CHECK(keep || num_keep == 0, "forward: num_keep is " + std::to_string(num_keep) +
                                       " but no kept patch indices were given");
  if (keep) {
    VIT_CHECK(num_keep >= 1 && num_keep <= Np,
              "forward: patch dropout keeps " + std::to_string(num_keep) +
                  " patches; it must keep 1 to " + std::to_string(Np));
    for (int64_t i = 0; i < int64_t(B) * num_keep; ++i) {
      VIT_CHECK(keep[i] >= 0 && keep[i] < Np, "forward: kept patch index " +
                                                  std::to_string(keep[i]) + " is outside [0, " +
                                                  std::to_string(Np) + ")");
    }
  }
  if (drop_path) {
    // Each factor is 0 (dropped) or 1 / keep probability: finite and >= 1 when kept.
    for (int64_t i = 0; i < int64_t(B) * 2 * c.depth; ++i) {
      VIT_CHECK(drop_path[i] == 0.0f || (drop_path[i] >= 1.0f && std::isfinite(drop_path[i])),
                "forward: drop-path factor " + std::to_string(drop_path[i]) +
                    " is neither 0 (dropped) nor 1 / keep probability (>= 1)");
    }
  }
}

}  // namespace

namespace {
void convert_for_training(Impl& m);  // beside the inference conversions, below
}  // namespace

int64_t Model::training_bytes(const Config& config, int max_batch) {
  config.validate();
  VIT_CHECK(max_batch >= 1, "training_bytes: max_batch must be at least 1");
  Impl plan;
  plan_parameters(plan, config);
  const int threads = num_threads();
  auto activations = [&](int images) {  // the larger of the fp32 and bf16 plans
    int64_t most = 0;
    for (const bool bf16 : {false, true}) {
      Arena a;
      Planner p{a, {}, {}};
      plan_activations(config, plan.main, images, bf16, p);
      most = std::max(most, int64_t(a.size()));
    }
    return most;
  };
  // Parameters, gradients and the two AdamW moments: four arenas of the parameter layout; then
  // the activations of a forward over the whole batch or, if more, the lanes of micro-batches
  // and their gradient buffers (plan_lanes: a lane per thread and two buffers per thread where
  // every thread has a lane; else one of each).
  const int64_t params = int64_t(plan.weights.size());
  const int N = config.num_tokens();
  const int parts = micro_batch_count(max_batch, N, micro_batch_images(config, max_batch, N));
  int64_t acts = activations(max_batch);
  if (parts > 1) {
    const LanePlan lanes = plan_lanes(parts, threads);
    acts = std::max(acts, lanes.lanes * activations(micro_batch_largest(max_batch, parts)) +
                              lanes.buffers * params);
  }
  return int64_t(sizeof(float)) * (4 * params + acts);
}

int64_t Model::inference_bytes(const Config& config, int B) {
  config.validate();
  VIT_CHECK(B >= 1, "inference_bytes: the batch must be at least 1");
  Impl plan;
  plan_parameters(plan, config);
  const int N = config.num_tokens();
  const int per = micro_batch_images(config, B, N), parts = micro_batch_count(B, N, per);
  const int spaces = plan_lanes(parts, num_threads()).lanes;
  Arena a;
  Planner p{a, {}, {}};
  std::vector<ForwardBuffers> buffers(static_cast<size_t>(spaces));
  for (ForwardBuffers& F : buffers) plan_forward(config, per, Pass::kInference, p, F);
  return int64_t(sizeof(float)) * (int64_t(plan.weights.size()) + int64_t(a.size()));
}

void Model::enable_training(int max_batch) {
  VIT_CHECK(max_batch >= 1, "enable_training: max_batch must be at least 1 (got " +
                                std::to_string(max_batch) + ")");
  Impl& m = *impl_;
  if (!m.grads.allocated()) {
    for (const ParamInfo& p : m.params) m.grads.add(size_t(p.numel));
    m.grads.allocate();
  }
  // The model's own activations are allocated by the first forward() that needs them: training
  // in micro-batches (batch_gradients) uses the lanes' instead.
  m.max_batch = std::max(m.max_batch, max_batch);
}

void lanes::enable(Model& model, int lanes, int max_batch, int grad_buffers) {
  VIT_CHECK(lanes >= 1 && max_batch >= 1 && grad_buffers >= 0,
            "lanes::enable: lanes and max_batch must be at least 1, grad_buffers at least 0");
  Impl& m = detail::ModelAccess::impl(model);
  VIT_CHECK(m.grads.allocated(), "lanes::enable: call enable_training(max_batch) first");
  m.cpu.with_threads(std::max(lanes, num_threads()));  // scratch for each lane's thread
  const int capacity = m.lanes.empty() ? 0 : m.lanes.front().capacity;
  const bool bf16 = m.train_packs != nullptr;  // the plan follows the training dtype
  if (lanes > int(m.lanes.size()) || max_batch > capacity ||
      (!m.lanes.empty() && m.lanes.front().bf16 != bf16)) {
    const int n = std::max(lanes, int(m.lanes.size())), b = std::max(max_batch, capacity);
    m.lanes.clear();
    m.lanes.resize(size_t(n));
    for (Lane& L : m.lanes) allocate_lane(m.cfg, L, b, bf16);
  }
  if (grad_buffers > int(m.grad_buffer_offsets.size())) {
    Arena a;
    std::vector<size_t> offsets;
    for (int i = 0; i < grad_buffers; ++i) offsets.push_back(a.add(m.grads.size()));
    a.allocate();
    m.grad_buffers = std::move(a);
    m.grad_buffer_offsets = std::move(offsets);
  }
  convert_for_training(m);
}

float* lanes::grad_buffer(Model& model, int i) {
  Impl& m = detail::ModelAccess::impl(model);
  VIT_CHECK(i >= 0 && i < int(m.grad_buffer_offsets.size()),
            "lanes::grad_buffer: " + std::to_string(i) + " is outside [0, " +
                std::to_string(m.grad_buffer_offsets.size()) + "); see lanes::enable");
  return m.grad_buffers.at(m.grad_buffer_offsets[size_t(i)]);
}

const float* Model::forward(const float* images, int B, const int32_t* keep, int num_keep,
                            const float* drop_path) {
  Impl& m = *impl_;
  VIT_CHECK(m.max_batch > 0, "forward: call enable_training(max_batch) first (or use predict)");
  const bool bf16 = m.train_packs != nullptr;  // the plan follows the training dtype
  if (m.main.capacity < m.max_batch || m.main.bf16 != bf16) {
    allocate_lane(m.cfg, m.main, m.max_batch, bf16);
  }
  check_forward(m.cfg, m.main, B, keep, num_keep, drop_path);
  convert_for_training(m);
  return lane_forward(m, m.main, images, B, keep, num_keep, drop_path);
}

void Model::backward(const float* dlogits) {
  Impl& m = *impl_;
  VIT_CHECK(m.main.last_batch > 0, "backward: no forward to differentiate; call forward() first");
  lane_backward(m, m.main, dlogits, m.grads.data());
}

void lanes::check_forward(const Model& model, int lane, int B, const int32_t* keep, int num_keep,
                          const float* drop_path) {
  const Impl& m = detail::ModelAccess::impl(model);
  VIT_CHECK(lane >= 0 && lane < int(m.lanes.size()),
            "lane " + std::to_string(lane) + " is outside [0, " + std::to_string(m.lanes.size()) +
                "); see lanes::enable");
  check_forward(m.cfg, m.lanes[size_t(lane)], B, keep, num_keep, drop_path);
}

const float* lanes::forward(Model& model, int lane, const float* images, int B, const int32_t* keep,
                            int num_keep, const float* drop_path) {
  Impl& m = detail::ModelAccess::impl(model);
  return lane_forward(m, m.lanes[size_t(lane)], images, B, keep, num_keep, drop_path);
}

void lanes::backward(Model& model, int lane, const float* dlogits, float* grads,
                     const GradsReady& ready, bool zero_first) {
  Impl& m = detail::ModelAccess::impl(model);
  lane_backward(m, m.lanes[size_t(lane)], dlogits, grads, ready, zero_first);
}

std::vector<size_t> lanes::ready_offsets(const Model& model) {
  const Impl& m = detail::ModelAccess::impl(model);
  if (m.frozen) return {};
  std::vector<size_t> from;
  for (int s = 0; s <= m.cfg.depth; ++s) from.push_back(ready_offset(m, s));
  return from;
}

void Model::predict(const float* images, int B, float* logits) {
  Impl& m = *impl_;
  VIT_CHECK(B >= 1, "predict: batch must be at least 1 (got " + std::to_string(B) + ")");
  if (!m.packed) m.require_f32();  // a bf16 load that failed part way has neither
  const Config& c = m.cfg;
  const int N = c.num_tokens();
  // A micro-batch at a time, as in training (micro_batch_images): each op then finds its input
  // in the cache; as many as there are threads at once where there are enough, each thread with a
  // workspace of its own. An image's logits are the same bits whatever micro-batch it is in and
  // whichever thread runs it (on the AVX paths; docs/CONVENTIONS.md says why not on the scalar
  // one).
  const int per = micro_batch_images(c, B, N), parts = micro_batch_count(B, N, per);
  const int threads = num_threads();
  const int spaces = plan_lanes(parts, threads).lanes;

  // Each workspace: one block's buffers (plan_forward), for the largest micro-batch seen.
  if (per > m.infer_batch || spaces > int(m.infer_spaces.size())) {
    const int b = std::max(per, m.infer_batch);
    const int n = std::max(spaces, int(m.infer_spaces.size()));
    Arena arena;  // the old workspaces are replaced only once the memory is there
    std::vector<ForwardBuffers> spaces(static_cast<size_t>(n));
    Planner p{arena, {}, {}};
    for (ForwardBuffers& F : spaces) plan_forward(c, b, Pass::kInference, p, F);
    p.allocate();
    for (ForwardBuffers& F : spaces) finish_forward(F);
    m.infer = std::move(arena);
    m.infer_spaces = std::move(spaces);
    m.infer_batch = b;
  }
  const int64_t pixels = int64_t(c.channels) * c.image_size * c.image_size;
  auto run = [&](int w, int part) {
    ForwardBuffers& F = m.infer_spaces[size_t(w)];
    const int b0 = micro_batch_start(B, parts, part);
    const int bc = micro_batch_start(B, parts, part + 1) - b0;
    F.logits = logits + int64_t(b0) * c.num_classes;
    ops::Context ctx = executor_context(m);
    ctx.packed = m.packed.get();
    ctx.bf16 = inference_dtype() == Dtype::kBf16;
    forward_graph(m, ctx, F, images + b0 * pixels, bc, nullptr, 0, nullptr);
  };
  m.cpu.with_threads(threads);  // scratch for each thread, before the region
  run_on_lanes(parts, threads, run);
}

const char* dtype_name(Dtype dtype) {
  return dtype == Dtype::kBf16 ? "bf16" : "fp32";
}

Dtype parse_dtype(const std::string& name) {
  if (name == "fp32") return Dtype::kF32;
  if (name == "bf16") return Dtype::kBf16;
  throw Error("unknown dtype '" + name + "': choose fp32 or bf16");
}

// The linear layers' weights predict() runs (patch embedding, qkv, proj, fc1, fc2, the heads):
// f(offset, O, I, residual_norm) for each w [O, I], residual_norm where the product may end in the
// residual-and-LayerNorm epilogue (proj, fc2).
template <typename F>
void for_each_linear_weight(const Impl& m, F&& f) {
  const Config& c = m.cfg;
  const int D = c.dim, M = c.mlp_dim, K = c.num_classes;
  if (m.stem_w != kNone) f(m.stem_w, c.stem_channels, stem_geom(c, 1).cols(), false);
  f(m.patch_w, D, c.patch_dim(), false);
  for (const BlockOffsets& p : m.blocks) {
    f(p.qkv_w, 3 * D, D, false);
    f(p.proj_w, D, D, true);
    f(p.fc1_w, M, D, false);
    f(p.fc2_w, D, M, true);
  }
  f(m.head_w, K, D, false);
  if (m.head_dist_w != kNone) f(m.head_dist_w, K, D, false);
}

namespace {
// Where bf16 inference (or training) cannot run: vit::Error saying why.
// what: "inference" or "training"; advice: what to do instead, where the CPU lacks bf16.
void check_bf16_runs(const char* what, const char* advice) {
  if (!cpu_has_bf16()) {
    throw Error(std::string("bf16 ") + what +
                " needs a CPU with AVX512-BF16 (Intel Cooper Lake or Sapphire Rapids and "
                "later, AMD Zen 4 and later), which this one lacks (it runs: " +
                isa_list(supported_isas()) + "); " + advice);
  }
  if (active_isa() != Isa::kAvx512) {
    throw Error(std::string("bf16 ") + what + " runs on the avx512 kernels, and VIT_ISA chose " +
                isa_name(active_isa()) + "; unset VIT_ISA or set it to avx512");
  }
}
constexpr const char* kInferenceAdvice = "use fp32";
constexpr const char* kTrainingAdvice =
    "use fp32 (a run trained in bf16 goes on in fp32 when resumed in fp32)";

// Training in bf16: every linear weight converted both ways from the fp32 weights as they are now.
void convert_for_training(Impl& m) {
  if (!m.train_packs) return;
  check_bf16_runs("training", kTrainingAdvice);
  m.restore_weights();
  for_each_linear_weight(
      m, [&](size_t w, int O, int I, bool) { m.train_packs->add_bf16_training(m.W(w), O, I); });
}
}  // namespace

void Model::set_training_dtype(Dtype dtype) {
  Impl& m = *impl_;
  if (dtype == Dtype::kF32) {
    m.train_packs.reset();
    return;
  }
  check_bf16_runs("training", kTrainingAdvice);
  m.require_f32();
  m.train_packs = std::make_unique<ops::PackedWeights>();
}

Dtype Model::training_dtype() const {
  return impl_->train_packs ? Dtype::kBf16 : Dtype::kF32;
}

void Model::load(const std::function<void(const ParamInfo&, float*)>& read, Dtype dtype) {
  Impl& m = *impl_;
  m.packed.reset();  // every parameter is written again
  m.f32_released = false;
  std::unordered_map<size_t, std::pair<int, int>> linear;  // offset -> O, I
  std::unique_ptr<ops::PackedWeights> packs;
  if (dtype == Dtype::kBf16) {
    check_bf16_runs("inference", kInferenceAdvice);
    for_each_linear_weight(m, [&](size_t w, int O, int I, bool) { linear[w] = {O, I}; });
    packs = std::make_unique<ops::PackedWeights>();
    // Only the biases, LayerNorms and embeddings between the weights are written here.
    advise_small_pages(m.weights.data(), m.weights.size() * sizeof(float));
  }
  // From the first weight on, the fp32 weights are incomplete: if read throws, predict() and the
  // rest refuse the model instead of running on zeros.
  m.f32_released = !linear.empty();
  std::vector<float> staged;  // a linear weight on its way to bf16, never in the arena
  for (const ParamInfo& p : m.params) {
    float* w = m.W(p.offset);
    const auto it = linear.find(p.offset);
    if (it == linear.end()) {
      read(p, w);
      continue;
    }
    staged.assign(size_t(p.numel), 0.0f);
    read(p, staged.data());
    const auto [O, I] = it->second;
    packs->add_bf16(w, O, I, staged.data());
    release_pages(w, size_t(p.numel) * sizeof(float));  // a small arena's heap pages
  }
  if (packs) {
    m.packed = std::move(packs);
    m.packed_dtype = Dtype::kBf16;
  }
}

void Model::set_inference_dtype(Dtype dtype) {
  Impl& m = *impl_;
  if (m.f32_released && dtype == Dtype::kBf16) return;  // converted as it was loaded
  m.require_f32();
  m.packed.reset();  // the weights as they are, and no copy
  auto packs = std::make_unique<ops::PackedWeights>();
  if (dtype == Dtype::kF32) {
    // Each weight the kernels can read as panels, rearranged in place (no memory added).
    for_each_linear_weight(m, [&](size_t w, int O, int I, bool residual_norm) {
      const int width = ops::gemm_panel_width(O, I, residual_norm);
      if (width > 0) {
        packs->pack_f32(m.W(w), O, I, width, ops::gemm_pack_weight, ops::gemm_unpack_weight);
      }
    });
    if (!packs->entries.empty()) m.packed = std::move(packs);
    m.packed_dtype = Dtype::kF32;
    return;
  }
  check_bf16_runs("inference", kInferenceAdvice);
  for_each_linear_weight(m, [&](size_t w, int O, int I, bool) { packs->add_bf16(m.W(w), O, I); });
  m.packed = std::move(packs);
  m.packed_dtype = Dtype::kBf16;
}

Dtype Model::inference_dtype() const {
  return impl_->packed ? impl_->packed_dtype : Dtype::kF32;
}

void Model::forward_attention(const float* image, float* logits, AttentionProbs& probs) {
  Impl& m = *impl_;
  m.require_f32();
  const Config& c = m.cfg;
  if (!probs.fits(c)) probs = AttentionProbs(c);
  Arena arena;
  ForwardBuffers F;
  Planner p{arena, {}, {}};
  plan_forward(c, 1, Pass::kAttention, p, F);
  p.allocate();
  finish_forward(F);
  F.logits = logits;
  ops::Context ctx = executor_context(m);
  // fp32 panels give the same bits as the weights unpacked; a bf16 copy is predict()'s alone.
  if (m.packed_dtype == Dtype::kF32) ctx.packed = m.packed.get();
  forward_graph(m, ctx, F, image, 1, nullptr, 0, nullptr, &probs);
}

int micro_batch_images(const Config& config, int B, int N, int requested) {
  VIT_CHECK(B >= 1 && N >= 1, "micro_batch_images: batch and tokens must be at least 1");
  VIT_CHECK(requested >= 0, "the micro-batch size must be 0 (automatic) or more (got " +
                                std::to_string(requested) + ")");
  if (requested > 0) return std::min(B, requested);
  constexpr int64_t kBytes = int64_t(1) << 19, kMinTokens = 256;
  const int64_t widest = std::max(3 * config.dim, config.mlp_dim);
  const int64_t images = std::max<int64_t>(1, kBytes / (int64_t(N) * widest * 4));
  if (images * N < kMinTokens) return B;
  return int(std::min<int64_t>(B, images));
}

int micro_batch_count(int B, int N, int per) {
  VIT_CHECK(B >= 1 && N >= 1 && per >= 1, "micro_batch_count: B, N and per must be at least 1");
  constexpr int64_t kMinTokens = 256;
  const int parts = (B + per - 1) / per;
  if (parts == 1) return 1;
  for (int multiple : {4, 2}) {
    const int rounded = (parts + multiple - 1) / multiple * multiple;
    if (rounded <= B && int64_t(B / rounded) * N >= kMinTokens) return rounded;
  }
  return parts;
}

double cross_entropy(const float* logits, const int32_t* labels, int B, int K, float smoothing,
                     float* probs, float* dlogits) {
  const ops::Context ctx;  // one thread: a small array
  const double loss = ops::cross_entropy_forward(ctx, probs, logits, labels, B, K, smoothing);
  if (dlogits) ops::cross_entropy_backward(ctx, dlogits, probs, labels, B, K, smoothing);
  return loss;
}

}  // namespace vit
