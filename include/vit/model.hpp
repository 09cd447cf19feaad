// vit::Model: a Vision Transformer's parameters (one arena, timm names), its training forward and
// explicit backward, and an inference path that keeps only one block's activations.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vit/config.hpp"
#include "vit/tensor.hpp"

namespace vit {

struct AttentionProbs;  // vit/attention.hpp

namespace detail {
struct ModelImpl;
struct ModelAccess;
}  // namespace detail

struct ParamInfo {
  std::string name;            // timm name, e.g. "blocks.0.attn.qkv.weight"
  std::vector<int64_t> shape;  // as timm stores it, e.g. cls_token [1, 1, D]
  size_t offset = 0;           // in floats, into the parameter (and gradient) arena
  int64_t numel = 0;
  bool trainable = true;  // false for the fixed sin/cos pos_embed
  bool decay = false;     // AdamW weight decay applies (matrix weights only)
};

// The precision of matrix products: inference's (Model::set_inference_dtype) and training's
// (Model::set_training_dtype).
enum class Dtype { kF32, kBf16 };
const char* dtype_name(Dtype dtype);         // "fp32", "bf16"
Dtype parse_dtype(const std::string& name);  // those names; vit::Error naming them otherwise

// Whether a parameter belongs to a classifier head (head.*, head_dist.*): what a linear probe
// trains, and what a backbone without a head lacks.
bool is_head_param(const std::string& name);

class Model {
 public:
  // Validates cfg and allocates the parameter arena (zeros; call init() or load values).
  explicit Model(const Config& cfg);
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  const Config& config() const;

  // timm-like initialisation, fully determined by seed: weights (patch embedding, qkv, proj, fc1,
  // fc2, head), cls_token and a learned pos_embed ~ normal(0, 0.02) truncated at 2 std; biases 0;
  // LayerNorm weights 1; a sincos pos_embed gets its fixed table. InitOptions departs from timm
  // where that trains faster on small datasets (see the tiny28 preset).
  //
  // scheme kTorch instead gives every layer PyTorch's default initialisation, as code that builds a
  // ViT from nn.Linear / nn.Conv2d / nn.LayerNorm without re-initialising it has (the tutorial of
  // the `seed` preset): weights and biases uniform in +-1/sqrt(fan_in) (fan_in: the weight's
  // inputs, C*P*P for the patch embedding), LayerNorms 1 and 0, the class token uniform in [0, 1)
  // (the tutorial's torch.rand); a learned pos_embed is drawn as in kTimm (PyTorch has no default
  // for it).
  struct InitOptions {
    enum Scheme { kTimm, kTorch } scheme = kTimm;
    float qkv_std =
        0.02f;  // kTimm: std of the qkv weights: larger makes the first attention peaked
    bool sincos_pos = false;  // a learned pos_embed starts from the sin/cos table
  };
  // dtype kBf16: for bf16 inference alone, as load() (a benchmark's random model in half the
  // memory).
  void init(uint64_t seed, const InitOptions& options, Dtype dtype = Dtype::kF32);
  void init(uint64_t seed) { init(seed, InitOptions{}); }

  // The parameters cfg implies (names, shapes, offsets), without allocating them: what a
  // checkpoint must hold, checked before any memory is committed to it.
  static std::vector<ParamInfo> layout(const Config& cfg);

  // Parameters, in timm order. Names are unique; param() throws vit::Error for an unknown name.
  const std::vector<ParamInfo>& params() const;
  const ParamInfo& param_info(const std::string& name) const;
  TensorView param(const std::string& name);
  int64_t num_params() const;  // all elements, trainable or not

  // Fills every parameter in params() order: read(p, dst) writes p.numel floats to dst (the
  // parameter's memory, zeros in a new model; a staging buffer of zeros for a weight converted to
  // bf16: what read leaves unwritten stays zero). With dtype kBf16 it loads the
  // model for bf16 inference alone: each linear weight predict() runs (as set_inference_dtype
  // lists them) is converted into its bf16 copy as soon as it is read, and its fp32 memory handed
  // back to the system, so that the model never holds more than one fp32 weight (ViT-B/16: peak
  // memory about half of its fp32 size). Such a model serves predict() and nothing that needs the
  // fp32 weights: param_data(), param(), forward(), training, forward_attention() and
  // set_inference_dtype(kF32) are then vit::Errors saying to load it again (predict() too, when
  // read threw part way); load() and init() write every parameter again. vit::Error, before
  // anything is read, where set_inference_dtype(kBf16) would refuse (CPU, VIT_ISA).
  void load(const std::function<void(const ParamInfo&, float*)>& read, Dtype dtype = Dtype::kF32);
  // Whether load() released the fp32 weights (bf16 inference alone).
  bool fp32_released() const;

  // The whole parameter arena: params()[i] lives at param_data() + params()[i].offset.
  float* param_data();
  const float* param_data() const;
  size_t arena_floats() const;  // arena size including alignment padding (padding stays zero)

  // ---- Training. Allocates the gradient arena and sets the largest batch forward() takes (a
  // larger max_batch later raises it); forward() allocates its activations on first use, for
  // max_batch images (training in micro-batches, batch_gradients, uses the CPU executor's lanes
  // instead).
  void enable_training(int max_batch);
  int max_batch() const;
  // Bytes that training this config with batches of max_batch needs, at most: parameters,
  // gradients, AdamW moments and activations (the larger of a whole-batch forward's and the
  // micro-batch lanes', from the same plans as the allocations, without allocating anything;
  // with patch dropout the lanes hold more images each, but never more than the batch in all).
  static int64_t training_bytes(const Config& config, int max_batch);
  // Bytes that predict() on batches of B images needs, at most: parameters and the workspaces
  // (from the same plans as predict's allocation, with the current thread count).
  static int64_t inference_bytes(const Config& config, int B);
  // Forward of a batch images [B, C, S, S] (B <= max_batch), saving what the backward needs.
  // Returns logits [B, K], valid until the next forward. With keep (patch dropout, timm's
  // PatchDropout) the blocks see only the class token (if any) and, for image b, the patch tokens
  // keep[b * num_keep + j] (j < num_keep, values in [0, num_patches)), after the positional
  // embedding is added: fewer tokens, a faster step and a regulariser. With drop_path (timm's
  // DropPath, stochastic depth) [B, depth, 2], image b's attention branch of block l is scaled by
  // drop_path[(b * depth + l) * 2] and its MLP branch by the next factor: 0 drops the branch (the
  // block passes the residual stream on), 1 / keep probability keeps it (sample_drop_path draws
  // them).
  const float* forward(const float* images, int B, const int32_t* keep = nullptr, int num_keep = 0,
                       const float* drop_path = nullptr);
  // Backward of the last forward: dlogits [B, K]. Parameter gradients accumulate (+=) into the
  // gradient arena, so call zero_grad() between steps (or not, to accumulate).
  void backward(const float* dlogits);
  void zero_grad();
  // A linear probe: with frozen true only the classifier heads (head.*, head_dist.*) are
  // trainable, and the backward computes their gradients alone (the rest stay zero); false makes
  // every tensor trainable again (the fixed sin/cos pos_embed aside).
  void freeze_backbone(bool frozen);
  bool backbone_frozen() const;
  float* grad_data();  // same layout as param_data()
  // The precision of training's products (the recipe's dtype):
  // - kF32 (the default): every op in fp32.
  // - kBf16, mixed precision: each linear layer's three products (patch embedding, qkv, proj,
  //   fc1, fc2, the heads: the forward's x w^T, the input gradient's dout w, the weight gradient's
  //   dout^T x) round their inputs to bf16 and sum in fp32 (AVX512-BF16's VDPBF16PS). The weights
  //   (the master copy the optimizer updates), the gradients, the optimizer's moments, attention,
  //   LayerNorm, GELU, the loss and predict() stay fp32. forward() and lanes::enable() (once a
  //   step of batch_gradients) convert the weights to bf16 each time, so each step's products see
  //   the weights as the last update left them (the two bf16 copies take the fp32 weights' size
  //   again, which training_bytes does not count). vit::Error when this CPU lacks AVX512-BF16 or
  //   the AVX-512 kernels are not the active ones (VIT_ISA), now or at a later conversion.
  void set_training_dtype(Dtype dtype);
  Dtype training_dtype() const;
  TensorView grad(const std::string& name);

  // ---- Inference: logits [B, K] for images [B, C, S, S] with no saved activations; the
  // workspace holds one block's buffers and grows (once) to the largest B seen.
  void predict(const float* images, int B, float* logits);
  // Prepares predict()'s linear layers (patch embedding, qkv, proj, fc1, fc2, the heads) once,
  // for the precision given:
  // - kF32: each weight is rearranged in place into the panels the GEMM reads (no memory added),
  //   so that predict() no longer repacks them on every call (ViT-B/16 at batch 1: about 7%
  //   faster, ViT-Ti 14%); the logits are the same bits as without. Reading or changing the
  //   parameters afterwards (param_data(), param(), init(), forward(), training) first puts the
  //   weights back as they were and drops the packing (call again after such use; a pointer taken
  //   from param_data() before the call reads panels while they are packed). The scalar kernels
  //   (VIT_ISA=scalar) read weights as they are: nothing is packed for them.
  // - kBf16: their inputs rounded to bf16, sums in fp32 (AVX512-BF16's VDPBF16PS), the weights
  //   converted into a bf16 copy (half the fp32 weights' size, kept beside them); attention's two
  //   products likewise at head widths 32 and 64; LayerNorm, softmax, GELU and the residual
  //   stream stay fp32, and so do forward() and forward_attention(). vit::Error when this CPU
  //   lacks AVX512-BF16 or the AVX-512 kernels are not the active ones (VIT_ISA). The copy does
  //   not follow later changes to the weights (loading, training): call again after them.
  // A model starts with neither: predict() then packs each weight on every call. A model load()ed
  // for bf16 alone takes kBf16 (it has it already) and refuses kF32.
  void set_inference_dtype(Dtype dtype);
  Dtype inference_dtype() const;
  // One image [C, S, S] through the same graph (inference's buffers, one block's at a time),
  // giving logits [K] and each block's attention probabilities to probs.add_block as the block
  // makes them, for attention maps (vit/attention.hpp); probs is made for this model's shape
  // when it is not. One image's activations and one block's probabilities are allocated for the
  // call.
  void forward_attention(const float* image, float* logits, AttentionProbs& probs);

 private:
  friend struct detail::ModelAccess;  // the CPU executor's lanes (src/model/executor.hpp)
  std::unique_ptr<detail::ModelImpl> impl_;
};

// Softmax cross-entropy with label smoothing from logits [B, K] and labels in [0, K): returns
// the mean loss; when dlogits is non-null, writes the gradient of the mean loss there. probs is a
// [B, K] scratch (the softmax). Labels outside [0, K) throw vit::Error.
double cross_entropy(const float* logits, const int32_t* labels, int B, int K, float smoothing,
                     float* probs, float* dlogits);

}  // namespace vit
