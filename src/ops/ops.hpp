// The ops: forward/backward pairs the model is composed of. This header is the one contract: every
// op the model calls is declared here, today implemented for the CPU in src/ops/cpu/; a CUDA
// backend will implement the same functions on device pointers behind these declarations.
//
// The CPU kernels are compiled once per instruction set (scalar, AVX2, AVX-512), each build with
// VIT_ISA_NS set, which declares and defines these functions in vit::ops::VIT_ISA_NS instead of
// vit::ops. The plain vit::ops functions, which the rest of the library calls, are defined in
// src/ops/dispatch.cpp: each forwards to the variant vit::active_isa() names. That file includes
// this header once more per variant (VIT_OPS_DECLARE_AGAIN) to see them all.
//
// Conventions: every op's first argument is its execution context (below); then row-major
// tensors, last dimension contiguous: outputs first, then saved tensors, then inputs; gradients are
// prefixed `d`. Parameter gradients ACCUMULATE (+=) so several backward passes can sum into one
// gradient buffer; activation gradients OVERWRITE. A nullable gradient pointer means "not needed".
// Letters: B batch, N tokens, Np patches, D width, H heads, Dh = D / H, C channels, S image side, P
// patch side, R rows (B*N for token-wise ops), K classes.
#include <cstdint>

#ifndef VIT_OPS_TYPES_DECLARED
#define VIT_OPS_TYPES_DECLARED
namespace vit::ops {

// ---- The execution context, every op's first argument: what an op may use besides its tensors,
// given by its caller and never found in a global. A backend makes its contexts: the CPU's
// (src/ops/context.hpp, CpuContext) say how many threads an op may split its work over (1: the
// calling thread alone, as inside a lane that runs a micro-batch while other threads run others)
// and where each thread's scratch memory is. A context is used by one op at a time. A CUDA
// backend's would carry its stream and device scratch in the same place.
struct ScratchSet;     // the backend's; opaque here
struct PackedWeights;  // weights converted once for inference (below); opaque here
struct Context {
  int threads = 1;
  ScratchSet* scratch = nullptr;
  int thread = 0;  // with threads == 1: whose scratch the calling thread uses
  // Weights converted once for inference: a product whose op(B) is a weight found here runs on
  // its panels: bf16 ones (find_bf16: A rounded to bf16, sums in fp32) or fp32 ones rearranged in
  // place (find_f32: the same bits as unpacked). Null: every weight read as it is.
  const PackedWeights* packed = nullptr;
  // Inference in bf16 (set with bf16 packed weights, where the CPU runs AVX512-BF16): attention's
  // inference products, at head widths 32 and 64, round their inputs to bf16 too (sums in fp32).
  bool bf16 = false;
  // Training in bf16 (mixed precision, where the CPU runs AVX512-BF16; set with packed holding
  // each weight's two bf16 copies, PackedWeights::add_bf16_training): weight_grad rounds dout and
  // x to bf16 too (sums in fp32, added to the fp32 gradient).
  bool bf16_grads = false;
};

// ---- A product's op(B) [K, N] in the bf16 GEMM's panels (bf16_panels): for panel p (columns
// n = 32p .. 32p + 31, zero past N) and each pair of depths k = 2q, 2q + 1 (zero past K), the 32
// columns' pairs (op(B)[2q, n], op(B)[2q + 1, n]): data[((p * pairs + q) * 32 + n % 32) * 2 + k %
// 2], pairs = ceil(K / 32) * 16 (K's pairs padded with zeros to whole steps of AMX's 16). Rounded
// to nearest even. A linear layer's weight w [O, I] is converted once for inference as op(B) = w^T
// (K = I, N = O); training in bf16 converts it each step both ways (w^T for the forward, w for
// the input gradient dx = dout w). O and I are w's.
struct Bf16Panels {
  const uint16_t* data = nullptr;  // null: w is not packed
  int O = 0, I = 0;
};
// w's panels in packs as op(B) = w^T (trans_b) or w (either may be null: then none).
Bf16Panels find_bf16(const PackedWeights* packs, const float* w, bool trans_b = true);
// uint16 values bf16_panels writes for an op(B) [K, N] (whole panels and pairs).
inline int64_t bf16_panels_size(int K, int N) {
  return int64_t((N + 31) / 32) * ((K + 31) / 32 * 16) * 64;
}

// ---- A linear layer's input x [R, I] as its backward reads it (linear_backward, weight_grad): the
// fp32 rows, or in bf16 training (Context::bf16_grads) the bf16 panels input_panels_bf16 made of
// them in the forward (x as the weight gradient's op(B) [R, I], R its depth), which are all that
// product reads of x: the forward's fp32 rows then need not be kept. From a pointer: the fp32 rows.
struct LayerInput {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;  // [bf16_panels_size(R, I)]; non-null only with bf16_grads
  LayerInput(const float* rows) : f32(rows) {}  // NOLINT: implicit, as a plain x is the common case
  LayerInput(const float* rows, const uint16_t* panels) : f32(rows), bf16(panels) {}
};

// ---- A linear layer's weight w [O, I] rearranged in place, once, into the fp32 GEMM's panels
// (PackedWeights::pack_f32): in w's own memory, the panels the GEMM would otherwise pack from w on
// every call, laid out as it packs them (gemm_pack_weight: its column blocks, then its chunks of
// depth, then panels of width columns, depth by depth). The products are those of the unpacked
// weight, bit for bit. While packed, w's memory is not [O, I]: only the GEMM reads it, and it
// refuses (vit::Error) a product it cannot run on the panels.
struct F32Panels {
  const float* data = nullptr;  // null: w is not packed
  int O = 0, I = 0, width = 0;
};
F32Panels find_f32(const PackedWeights* packs, const float* w);

// ---- GEMM (src/ops/cpu/gemm.cpp): C[M,N] = alpha * op(A) op(B) + beta * C (+ bias[N] on every
// row when bias is non-null), row-major, where op(A) is A[M,K] or (trans_a) A[K,M] transposed;
// likewise op(B) is B[K,N] or B[N,K] transposed. An epilogue then transforms the finished C
// while it is still in cache (instead of another pass over memory):
//   kGelu:  C holds h; writes out = GELU(h) and, when slope is non-null, slope = GELU'(h)
//           (arrays with row stride ld; out may be C itself), with streaming stores when stream;
//   kScale: C *= scale, elementwise (row stride ld): the backward through a saved slope;
//   kResidualNorm: C += residual when non-null; then, when norm is non-null, norm = LayerNorm(C)
//           per row with norm_w, norm_b, eps, saving mean and rstd per row when non-null (arrays
//           with row stride ld). It needs whole rows of C, so it runs once a row block's every
//           column is done: a residual block's output and the next LayerNorm in one pass.
struct Epilogue {
  enum Kind { kNone, kGelu, kScale, kResidualNorm } kind = kNone;
  float* out = nullptr;
  float* slope = nullptr;
  const float* scale = nullptr;
  const float* residual = nullptr;
  float *norm = nullptr, *mean = nullptr, *rstd = nullptr;
  const float *norm_w = nullptr, *norm_b = nullptr;
  float eps = 0.0f;
  bool stream = false;
  int64_t ld = 0;
};

// ---- A convolution's geometry (im2col, col2im): B images of C channels and S x S pixels, read
// as [B, C, S, S] or (channels_last) [B, S, S, C], the layout of a convolution's output rows;
// a k x k kernel moved by stride, with pad zeros around the image: G x G output positions.
struct ConvGeom {
  int B = 0, C = 0, S = 0, k = 0, stride = 1, pad = 0;
  bool channels_last = false;
  // Patch dropout: only the positions of each image's kept patches, keep[b * count + j] (values
  // in [0, (G / ps)^2)), each patch a ps x ps block of positions (blocks in raster order); rows
  // ordered (b, j, dy, dx). Null: every position, rows (b, gy, gx).
  const int32_t* keep = nullptr;
  int count = 0, ps = 1;
  int G() const { return (S + 2 * pad - k) / stride + 1; }
  int64_t rows() const {  // im2col's rows
    return keep ? int64_t(B) * count * ps * ps : int64_t(B) * G() * G();
  }
  int cols() const { return C * k * k; }  // and columns
};

// vit::Error, naming the value, unless every label is in [0, K) and smoothing in [0, 1) (one
// definition, src/ops/shared.cpp, for every variant).
void check_loss_inputs(const int32_t* labels, int B, int K, float smoothing);

// The kernels' errors, built once (src/ops/shared.cpp): a kernel variant that built a vit::Error
// itself would instantiate std::string's and the Error's inline code in its own instruction set
// (tests/isa_symbols.sh).
[[noreturn]] void throw_error(const char* message);
// vit::Error from op `what` unless R rows fit the bf16 products' 32-bit counts of pairs.
void check_bf16_depth(const char* what, int64_t R);
// A weight [O, I] packed in panels of `width` asked for a product the kernels cannot run on them.
[[noreturn]] void throw_packed_mismatch(int O, int I, int width);
}  // namespace vit::ops
#endif

#if !defined(VIT_OPS_FUNCTIONS_DECLARED) || defined(VIT_OPS_DECLARE_AGAIN)
#define VIT_OPS_FUNCTIONS_DECLARED
#ifdef VIT_ISA_NS
namespace vit::ops::VIT_ISA_NS {
#else
namespace vit::ops {
#endif
void gemm(const Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
          const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc,
          const float* bias = nullptr, const Epilogue& epilogue = {});
// The panel width (ops.hpp's F32Panels) with which this variant's gemm runs C = A w^T on a
// weight w [O, I] packed in place, or 0 where it cannot: the scalar variant (OpenBLAS reads only
// [O, I]), O not a multiple of the width, or (residual_norm: the kResidualNorm epilogue, which
// needs whole rows in one column block) O wider than a block.
int gemm_panel_width(int O, int I, bool residual_norm);
// panels [O * I] = w [O, I] in the layout this variant's gemm reads (ops.hpp's F32Panels), for O
// a multiple of gemm_panel_width's width; gemm_unpack_weight is its inverse.
void gemm_pack_weight(float* panels, const float* w, int O, int I);
void gemm_unpack_weight(float* w, const float* panels, int O, int I);
// panels [bf16_panels_size(K, N)] = op(B) [K, N] rounded to bf16 in the layout ops.hpp's
// Bf16Panels describes, for B [K, N] (row stride ldb) or, trans_b, B [N, K] transposed. The
// AVX-512 variant converts with AVX512-BF16's VCVTNE2PS2BF16 (denormals to zero); the others round
// as vit::ops::to_bf16 does (the bf16 products, the AVX-512 variant's, read denormals as zero).
void bf16_panels(uint16_t* panels, const float* B, int64_t ldb, bool trans_b, int K, int N);
// panels [bf16_panels_size(R, I)] = x [R, I] as bf16 training's weight gradient reads it (op(B) =
// x, K = R, N = I: bf16_panels' values and layout), split over the context's threads: made by the
// forward while x is in cache, for linear_backward's LayerInput.
void input_panels_bf16(const Context& ctx, uint16_t* panels, const float* x, int64_t R, int I);
// A linear layer's parameter gradients: dw [O, I] += dout^T x and, when db is non-null,
// db [O] += colsum(dout), for dout [R, O] and x [R, I]; with our kernel, in one pass over dout.
// With bf16_grads, x's bf16 panels when it has them, else its fp32 rows (converted here); without,
// its fp32 rows (vit::Error when x has none).
void weight_grad(const Context& ctx, float* dw, float* db, const float* dout, LayerInput x,
                 int64_t R, int I, int O);

// ---- Convolutions (src/ops/cpu/conv.cpp): a Conv2d with weight [O, C, k, k] is im2col, then
// linear_forward on its rows (out [B*G*G, O] = cols @ weight^T + bias: every output position a
// row, channels last); its backward is linear_backward, then col2im of the columns' gradient.
// The patch embedding is the case k = stride = P, pad = 0.
// cols [rows(), C*k*k]: a row per output position (gy, gx) (g's order), column c*k*k + ky*k + kx
// (a Conv2d weight's flattened order) = in(b, c, gy*stride + ky - pad, gx*stride + kx - pad), 0
// outside the image.
void im2col(const Context& ctx, float* cols, const float* in, const ConvGeom& g);
// din (g's input layout) = im2col's adjoint applied to dcols [rows(), C*k*k]: each element the
// sum of the columns that read it (overwritten, 0 where none did), summed in one fixed order.
void col2im(const Context& ctx, float* din, const float* dcols, const ConvGeom& g);

// ---- Prefix tokens (src/ops/cpu/tokens.cpp): out [B, F+Np, D] = concat(prefix rows, tokens
// [B, Np, D]), prefix[f] pointing at row f's D values: the class token, DeiT's distillation token
// and register tokens, in that order (separate parameters, hence a pointer per row).
void prefix_prepend_forward(const Context& ctx, float* out, const float* tokens,
                            const float* const* prefix, int B, int F, int Np, int D);
// dtokens [B, Np, D] = dout[:, F:] (nullable); dprefix[f] [D] += sum_b dout[b, f] (b in order).
void prefix_prepend_backward(const Context& ctx, float* dtokens, float* const* dprefix,
                             const float* dout, int B, int F, int Np, int D);

// ---- Positional embedding: out [B, N, D] = x + pos [N, D]; out may alias x. With patch dropout
// (keep non-null; timm's PatchDropout, whose kept patches alone are embedded: ConvGeom::keep),
// x's rows are F prefix tokens and then each image's kept patches keep[b * (N - F) + j] (values
// in [0, Np), in the order given): row F + j reads pos[F + keep[b * (N - F) + j]] instead (pos
// [F + Np, D]).
void pos_add_forward(const Context& ctx, float* out, const float* x, const float* pos, int B, int N,
                     int D, const int32_t* keep = nullptr, int F = 0);
// dx = dout (nullable; may alias dout, then nothing is copied); dpos (nullable) += each row's
// gradient at the row of pos it read, summed per row of pos over the batch in order.
void pos_add_backward(const Context& ctx, float* dx, float* dpos, const float* dout, int B, int N,
                      int D, const int32_t* keep = nullptr, int F = 0);
// The fixed table of the seed: pe[i][j] = sin(i / 10000^(j/D)) for even j, and
// cos(i / 10000^((j-1)/D)) for odd j; out [N, D].
void sincos_table(const Context& ctx, float* out, int N, int D);

// ---- Pooling from x [B, N, D].
// Token pooling: out [T, B, D] = x[b, t] for the first T tokens (the class token; and DeiT's
// distillation token, T = 2), token-major so that each token's rows are one matrix for its head.
void prefix_pool_forward(const Context& ctx, float* out, const float* x, int B, int N, int D,
                         int T);
// dx [B, N, D] = dout's rows where they were taken from, zeros elsewhere.
void prefix_pool_backward(const Context& ctx, float* dx, const float* dout, int B, int N, int D,
                          int T);
// Average pooling: out [B, D] = mean of x[b, first:N] (timm averages the patch tokens only, after
// any prefix tokens).
void mean_pool_forward(const Context& ctx, float* out, const float* x, int B, int N, int D,
                       int first);
// dx [B, N, D] = dout / (N - first) on the averaged rows, zeros on the first ones.
void mean_pool_backward(const Context& ctx, float* dx, const float* dout, int B, int N, int D,
                        int first);

// ---- A residual join with a scaled branch (src/ops/cpu/variants.cpp): LayerScale (timm's ls1 /
// ls2, DeiT III and DINOv2) and drop-path (timm's DropPath: each image's branch kept and scaled,
// or dropped). out [R, D] = residual + (gamma [D] * y) * sample[r / N]; gamma null: 1; sample
// null: 1 (else one factor per image of N rows, 0 or 1 / keep probability); out may alias residual.
void scale_add_forward(const Context& ctx, float* out, const float* residual, const float* y,
                       const float* gamma, const float* sample, int N, int64_t R, int D);
// dy = gamma * dout * sample[r / N] (dy may alias dout); with dgamma, dgamma += sum_r dout * y *
// sample[r / N], each column summed in row order by one thread (thread-count independent).
void scale_add_backward(const Context& ctx, float* dy, float* dgamma, const float* dout,
                        const float* y, const float* gamma, const float* sample, int N, int64_t R,
                        int D);

// ---- qk-norm (src/ops/cpu/variants.cpp; timm's Attention(qk_norm=True)): qkv [R, 3D] laid out
// [q | k | v], H heads of Dh each. out = qkv with every head's q normalised by LayerNorm over Dh
// (weight qw, bias qb [Dh], shared by the heads) and every k likewise (kw, kb); v copied. mean,
// rstd [R, 2H] (q heads, then k heads) saved when non-null. out may alias qkv (inference).
void qk_norm_forward(const Context& ctx, float* out, float* mean, float* rstd, const float* qkv,
                     const float* qw, const float* qb, const float* kw, const float* kb, int64_t R,
                     int D, int H, float eps);
// The LayerNorm backward on each head's q and k (dout [R, 3D] the gradient of out), v's passed
// through: dqkv [R, 3D] (may alias dout); dqw, dqb, dkw, dkb [Dh] += (summed in row order).
void qk_norm_backward(const Context& ctx, float* dqkv, float* dqw, float* dqb, float* dkw,
                      float* dkb, const float* dout, const float* qkv, const float* mean,
                      const float* rstd, const float* qw, const float* kw, int64_t R, int D, int H);

// ---- QuickGELU (src/ops/cpu/variants.cpp; OpenAI CLIP's): y = x * sigmoid(1.702 x), slope
// (nullable) = s + 1.702 x s (1 - s) with s = sigmoid(1.702 x); out may alias x.
void quick_gelu_forward(const Context& ctx, float* out, float* slope, const float* x, int64_t n);

// ---- GELU's tanh approximation (src/ops/cpu/variants.cpp; PyTorch's gelu(approximate="tanh"),
// timm's gelu_tanh): y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed as
// x * sigmoid(2u) (the same function: 0.5 (1 + tanh(u)) = sigmoid(2u)); slope (nullable) =
// s + x s (1 - s) 2 u', s = sigmoid(2u), u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2); out may alias x.
void gelu_tanh_forward(const Context& ctx, float* out, float* slope, const float* x, int64_t n);

// ---- LayerNorm over the last dimension (src/ops/cpu/layernorm.cpp), x [R, D]:
// mean[r], rstd[r] = 1/sqrt(var[r] + eps) (biased variance), out = (x - mean) * rstd * w + b.
void layernorm_forward(const Context& ctx, float* out, float* mean, float* rstd, const float* x,
                       const float* w, const float* b, int64_t R, int D, float eps);
// xhat = (x - mean) * rstd, g = dout * w:
// dx = rstd * (g - mean_D(g) - xhat * mean_D(g * xhat)); dw += sum_r dout * xhat; db += sum_r dout.
// accumulate: dx += instead of dx =, the join of a residual y = x + f(LN(x)) done in the same pass
// (dx then holds the skip path's gradient on entry).
void layernorm_backward(const Context& ctx, float* dx, float* dw, float* db, const float* dout,
                        const float* x, const float* mean, const float* rstd, const float* w,
                        int64_t R, int D, bool accumulate = false);

// ---- Linear (src/ops/cpu/linear.cpp): out [R, O] = x [R, I] @ w[O, I]^T + b [O] (b nullable).
void linear_forward(const Context& ctx, float* out, const float* x, const float* w, const float* b,
                    int64_t R, int I, int O);
// dw += dout^T @ x; db (nullable) += colsum(dout); then dx (nullable) = dout @ w. dx may alias x:
// x is only read before dx is written.
void linear_backward(const Context& ctx, float* dx, float* dw, float* db, const float* dout,
                     LayerInput x, const float* w, int64_t R, int I, int O);

// ---- Linear + residual + LayerNorm, fused (the end of each half of a block): out [R, O] =
// residual + x @ w^T + b; then, when ln is non-null, ln = LayerNorm(out) with ln_w, ln_b, eps
// (mean, rstd [R] saved when non-null) - the next sublayer's input, made while out is in cache.
// residual may alias out (in-place inference); x must not.
void linear_residual_norm_forward(const Context& ctx, float* out, float* ln, float* mean,
                                  float* rstd, const float* x, const float* w, const float* b,
                                  const float* residual, const float* ln_w, const float* ln_b,
                                  int64_t R, int I, int O, float eps);

// ---- Linear + GELU, fused (the MLP): g = GELU(x @ w^T + b) and, when slope is non-null
// (training), slope = GELU'(x @ w^T + b), both [R, O]. The pre-activation is not kept: the backward
// needs only g (the next layer's input) and the slope.
void linear_gelu_forward(const Context& ctx, float* g, float* slope, const float* x, const float* w,
                         const float* b, int64_t R, int I, int O);
// The backward of the layer after the GELU (out = g @ w^T + b, g = GELU(h)): dw += dout^T @ g;
// db += colsum(dout); then dh = (dout @ w) * slope, the slope GELU'(h) from the forward. dh may
// alias g.
void linear_backward_gelu(const Context& ctx, float* dh, float* dw, float* db, const float* dout,
                          LayerInput g, const float* w, const float* slope, int64_t R, int I,
                          int O);

// ---- GELU, exact: y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (src/ops/cpu/gelu.cpp).
// slope (nullable) receives GELU'(x) = Phi(x) + x phi(x), all the backward needs: training keeps
// it instead of x.
void gelu_forward(const Context& ctx, float* out, float* slope, const float* x, int64_t n);
// dx = dout * GELU'(x): the slope from the forward when non-null, else computed from x; dx may
// alias dout.
void gelu_backward(const Context& ctx, float* dx, const float* dout, const float* x,
                   const float* slope, int64_t n);

// ---- Multi-head self-attention core (src/ops/cpu/attention.cpp).
// qkv [B, N, 3D] is the fused projection laid out [q | k | v], each split into H heads of Dh
// (timm). Per (b, h): att = softmax(q k^T / sqrt(Dh)) [N, N]; out[b, :, h*Dh:(h+1)*Dh] = att v.
// Work is split over ctx's threads, each with scratch of its own from ctx.
// Training (att non-null): att [B, H, N, N] is saved for the backward. Inference (att null):
// a few query rows at a time, so no N x N buffer exists; with ctx.bf16 at Dh 32 or 64 (on the
// AVX-512 kernels), q, k, the probabilities and v are rounded to bf16 for the two products.
void attention_forward(const Context& ctx, float* out, float* att, const float* qkv, int B, int N,
                       int D, int H);
// With s = 1/sqrt(Dh), dA = dout v^T, and the row term delta_i = sum_j att_ij dA_ij, which equals
// dout_i . out_i (out being the saved forward output):
// dS = att * (dA - delta); dq = s dS k; dk = s dS^T q; dv = att^T dout. dqkv is overwritten.
void attention_backward(const Context& ctx, float* dqkv, const float* dout, const float* qkv,
                        const float* att, const float* out, int B, int N, int D, int H);

// ---- Softmax cross-entropy from logits, with label smoothing eps (src/ops/cpu/loss.cpp).
// Target q = (1 - eps) onehot(label) + eps / K; loss_b = -sum_k q_k log softmax(logits_b)_k.
// Writes probs [B, K] (saved) and returns the mean loss over B (accumulated in double). Checks its
// inputs first with check_loss_inputs.
double cross_entropy_forward(const Context& ctx, float* probs, const float* logits,
                             const int32_t* labels, int B, int K, float smoothing);
// dlogits [B, K] = scale * (probs - q) / B: the gradient of scale * mean loss.
void cross_entropy_backward(const Context& ctx, float* dlogits, const float* probs,
                            const int32_t* labels, int B, int K, float smoothing,
                            float scale = 1.0f);

// ---- Optimizer kernels (src/ops/cpu/optim.cpp), over flat arrays of n floats.
// Adam(W) as PyTorch: with decoupled weight decay (torch.optim.AdamW) p *= 1 - lr*wd, else
// (torch.optim.Adam) g += wd * p; then m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), with t the 1-based step.
void adamw_update(const Context& ctx, float* p, float* m, float* v, const float* g, int64_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                  int64_t step);
// sum of g^2 in double, in fixed chunks summed in order: the same bits for any thread count.
double sum_squares(const Context& ctx, const float* g, int64_t n);
// ---- Buffers (src/ops/cpu/buffers.cpp), over n floats, in fixed chunks over ctx's threads:
// x = 0 (a gradient buffer before a backward accumulates into it); dst = src (copy) or
// dst += src (the micro-batches' gradients folded in order).
void fill_zero(const Context& ctx, float* x, int64_t n);
void add_into(const Context& ctx, float* dst, const float* src, int64_t n, bool copy);
void scale_inplace(const Context& ctx, float* x, int64_t n, float s);

// ---- Image resampling (src/ops/cpu/resample.cpp): Pillow's 8-bit fixed-point arithmetic, exact
// integers, so every variant gives the same bytes. One pass down the rows of in [*, W] (row
// stride in_ld) for O output rows: out[o, x] = clamp((2^21 + sum_{t < n[o]} in[lo[o] + t, x] *
// k[o * ksize + t]) >> 22, 0, 255) for x < W (out row stride out_ld). A pass across rows is this
// pass on the transposed image (transpose_u8).
void resample_down_u8(const Context& ctx, uint8_t* out, int64_t out_ld, const uint8_t* in,
                      int64_t in_ld, int W, int O, const int* lo, const int* n, const int32_t* k,
                      int ksize);
// out[x, y] = in[y, x] for in [R, W] (row stride in_ld) and out [W, R] (row stride out_ld).
void transpose_u8(const Context& ctx, uint8_t* out, int64_t out_ld, const uint8_t* in,
                  int64_t in_ld, int R, int W);
// out[c * out_plane + x * out_ld + y] = in[y * in_ld + 3 * x + c] for c < 3: an interleaved RGB
// image [R, W, 3] to its three planes, each transposed to [W, R] (the pass across rows' input).
void transpose_rgb_u8(const Context& ctx, uint8_t* out, int64_t out_plane, int64_t out_ld,
                      const uint8_t* in, int64_t in_ld, int R, int W);

// ---- For tests (src/ops/cpu/vmath.cpp): the variant's exp and erf (vmath.hpp) over x[0..n), in
// their vector forms (where the variant has vector registers; else the scalar ones again) and in
// their scalar forms, as that variant compiles them.
void vmath_forms(float* exp_vector, float* exp_scalar, float* erf_vector, float* erf_scalar,
                 const float* x, int64_t n);
}  // namespace vit::ops (or vit::ops::VIT_ISA_NS)
#endif
