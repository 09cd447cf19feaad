// The CPU instruction-set variants: which ones this CPU can run (cpuid and the OS's register
// state), which one is active (vit/isa.hpp), and ops.hpp's functions, each forwarding to the active
// variant's. The kernels in src/ops/cpu are compiled once per variant into vit::ops::isa_<name>
// (CMakeLists.txt); this file is compiled for the x86-64 baseline, so it runs anywhere.
//
// One rule keeps the variants from leaking into each other: the kernel sources instantiate nothing
// that the baseline code also instantiates (no std::string or std::vector there, for instance),
// since the linker keeps one copy of such an inline function and it could be one compiled for
// AVX-512. tests/isa_symbols.sh checks the variants' object files for that.
#include <atomic>
#include <cstdlib>
#include <string>

#include "vit/error.hpp"
#include "vit/isa.hpp"

// The plain declarations first, then each variant's (this header's VIT_OPS_DECLARE_AGAIN).
#include "ops/ops.hpp"
#define VIT_OPS_DECLARE_AGAIN
#define VIT_ISA_NS isa_scalar
#include "ops/ops.hpp"
#undef VIT_ISA_NS
#ifdef VIT_X86_VARIANTS
#define VIT_ISA_NS isa_avx2
#include "ops/ops.hpp"
#undef VIT_ISA_NS
#define VIT_ISA_NS isa_avx512
#include "ops/ops.hpp"
#undef VIT_ISA_NS
#endif
#undef VIT_OPS_DECLARE_AGAIN

#ifdef VIT_X86_VARIANTS
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace vit {
namespace {

// -1 until decided, then an Isa.
std::atomic<int> g_active{-1};

bool cpu_has(Isa isa) {
  if (isa == Isa::kScalar) return true;
#ifdef VIT_X86_VARIANTS
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
  if (!osxsave || !avx || !fma) return false;
  // The OS saves the registers on a context switch: XCR0's SSE and AVX state bits, and for AVX-512
  // the opmask and both halves of the upper ZMM state.
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  (void)xhi;
  if ((xlo & 0x6) != 0x6) return false;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool avx2 = b & (1u << 5);
  if (isa == Isa::kAvx2) return avx2;
  const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  return avx2 && f && dq && bw && vl && (xlo & 0xE0) == 0xE0;
#else
  return false;
#endif
}

// The variant the forwarders below use (decided on the first call).
inline Isa current() {
  const int v = g_active.load(std::memory_order_relaxed);
  return v >= 0 ? Isa(v) : active_isa();
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    default:
      return "scalar";
  }
}

bool cpu_has_bf16() {
#ifdef VIT_X86_VARIANTS
  // Asked once: in a virtual machine cpuid can cost tens of microseconds.
  static const bool has = [] {
    if (!cpu_has(Isa::kAvx512)) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return (a & (1u << 5)) != 0;  // CPUID.(EAX=7, ECX=1):EAX bit 5, AVX512_BF16
  }();
  return has;
#else
  return false;
#endif
}

bool bf16_active() {
  return active_isa() == Isa::kAvx512 && cpu_has_bf16();
}

bool cpu_has_amx() {
#ifdef VIT_X86_VARIANTS
  static const bool has = [] {
    if (!cpu_has_bf16()) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = d & (1u << 24), bf16 = d & (1u << 22);  // AMX-TILE, AMX-BF16
    if (!tile || !bf16) return false;
    // Linux hands out the tile registers' state (XTILEDATA, feature 18) only when asked:
    // ARCH_REQ_XCOMP_PERM, for the whole process.
    constexpr long kReqXcompPerm = 0x1023, kXtileData = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
  }();
  return has;
#else
  return false;
#endif
}

namespace {
// -1 until decided (VIT_AMX), then 0 or 1.
std::atomic<int> g_amx{-1};
}  // namespace

void set_amx(bool on) {
  VIT_CHECK(!on || cpu_has_amx(),
            "this CPU (or its operating system) cannot run AMX-BF16; bf16 products use VDPBF16PS");
  g_amx.store(on ? 1 : 0, std::memory_order_relaxed);
}

bool amx_active() {
  int v = g_amx.load(std::memory_order_relaxed);
  if (v < 0) {
    const char* env = std::getenv("VIT_AMX");
    const bool off = env && (std::string(env) == "0" || std::string(env) == "off");
    v = !off && cpu_has_amx() ? 1 : 0;
    g_amx.store(v, std::memory_order_relaxed);
  }
  return v == 1 && bf16_active();
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (cpu_has(isa)) out.push_back(isa);
  }
  return out;
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (name == isa_name(isa)) return isa;
  }
  throw Error("unknown instruction set '" + name + "': choose avx512, avx2 or scalar");
}

std::string isa_list(const std::vector<Isa>& isas) {
  std::string s;
  for (Isa isa : isas) s += (s.empty() ? "" : ", ") + std::string(isa_name(isa));
  return s;
}

void set_isa(Isa isa) {
  VIT_CHECK(cpu_has(isa), std::string("this CPU (or this build) cannot run the ") + isa_name(isa) +
                              " kernels; it can run: " + isa_list(supported_isas()));
  g_active.store(int(isa), std::memory_order_relaxed);
}

Isa active_isa() {
  int v = g_active.load(std::memory_order_relaxed);
  if (v >= 0) return Isa(v);
  if (const char* env = std::getenv("VIT_ISA"); env && *env) {
    try {
      set_isa(parse_isa(env));
    } catch (const Error& e) {
      throw Error(std::string("VIT_ISA=") + env + ": " + e.what());
    }
  } else {
    set_isa(supported_isas().back());
  }
  return Isa(g_active.load(std::memory_order_relaxed));
}

}  // namespace vit

namespace vit::ops {
namespace {

// The active variant's version of a function.
template <class F>
inline F pick([[maybe_unused]] F scalar, [[maybe_unused]] F avx2, [[maybe_unused]] F avx512) {
  switch (current()) {
    case Isa::kAvx512:
      return avx512;
    case Isa::kAvx2:
      return avx2;
    default:
      return scalar;
  }
}

}  // namespace

#ifdef VIT_X86_VARIANTS
#define VIT_PICK(name) pick(&isa_scalar::name, &isa_avx2::name, &isa_avx512::name)
#else
#define VIT_PICK(name) pick(&isa_scalar::name, &isa_scalar::name, &isa_scalar::name)
#endif

void gemm(const Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
          const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc,
          const float* bias, const Epilogue& epilogue) {
  VIT_PICK(gemm)
  (ctx, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, epilogue);
}

int gemm_panel_width(int O, int I, bool residual_norm) {
  return VIT_PICK(gemm_panel_width)(O, I, residual_norm);
}

void gemm_pack_weight(float* panels, const float* w, int O, int I) {
  return VIT_PICK(gemm_pack_weight)(panels, w, O, I);
}

void gemm_unpack_weight(float* w, const float* panels, int O, int I) {
  return VIT_PICK(gemm_unpack_weight)(w, panels, O, I);
}

void bf16_panels(uint16_t* panels, const float* B, int64_t ldb, bool trans_b, int K, int N) {
  return VIT_PICK(bf16_panels)(panels, B, ldb, trans_b, K, N);
}
void input_panels_bf16(const Context& ctx, uint16_t* panels, const float* x, int64_t R, int I) {
  return VIT_PICK(input_panels_bf16)(ctx, panels, x, R, I);
}
void weight_grad(const Context& ctx, float* dw, float* db, const float* dout, LayerInput x,
                 int64_t R, int I, int O) {
  return VIT_PICK(weight_grad)(ctx, dw, db, dout, x, R, I, O);
}

void im2col(const Context& ctx, float* cols, const float* in, const ConvGeom& g) {
  return VIT_PICK(im2col)(ctx, cols, in, g);
}
void col2im(const Context& ctx, float* din, const float* dcols, const ConvGeom& g) {
  return VIT_PICK(col2im)(ctx, din, dcols, g);
}

void prefix_prepend_forward(const Context& ctx, float* out, const float* tokens,
                            const float* const* prefix, int B, int F, int Np, int D) {
  return VIT_PICK(prefix_prepend_forward)(ctx, out, tokens, prefix, B, F, Np, D);
}

void prefix_prepend_backward(const Context& ctx, float* dtokens, float* const* dprefix,
                             const float* dout, int B, int F, int Np, int D) {
  return VIT_PICK(prefix_prepend_backward)(ctx, dtokens, dprefix, dout, B, F, Np, D);
}

void pos_add_forward(const Context& ctx, float* out, const float* x, const float* pos, int B, int N,
                     int D, const int32_t* keep, int F) {
  return VIT_PICK(pos_add_forward)(ctx, out, x, pos, B, N, D, keep, F);
}

void pos_add_backward(const Context& ctx, float* dx, float* dpos, const float* dout, int B, int N,
                      int D, const int32_t* keep, int F) {
  return VIT_PICK(pos_add_backward)(ctx, dx, dpos, dout, B, N, D, keep, F);
}

void sincos_table(const Context& ctx, float* out, int N, int D) {
  return VIT_PICK(sincos_table)(ctx, out, N, D);
}

void prefix_pool_forward(const Context& ctx, float* out, const float* x, int B, int N, int D,
                         int T) {
  return VIT_PICK(prefix_pool_forward)(ctx, out, x, B, N, D, T);
}

void prefix_pool_backward(const Context& ctx, float* dx, const float* dout, int B, int N, int D,
                          int T) {
  return VIT_PICK(prefix_pool_backward)(ctx, dx, dout, B, N, D, T);
}

void mean_pool_forward(const Context& ctx, float* out, const float* x, int B, int N, int D,
                       int first) {
  return VIT_PICK(mean_pool_forward)(ctx, out, x, B, N, D, first);
}

void mean_pool_backward(const Context& ctx, float* dx, const float* dout, int B, int N, int D,
                        int first) {
  return VIT_PICK(mean_pool_backward)(ctx, dx, dout, B, N, D, first);
}

void scale_add_forward(const Context& ctx, float* out, const float* residual, const float* y,
                       const float* gamma, const float* sample, int N, int64_t R, int D) {
  return VIT_PICK(scale_add_forward)(ctx, out, residual, y, gamma, sample, N, R, D);
}

void scale_add_backward(const Context& ctx, float* dy, float* dgamma, const float* dout,
                        const float* y, const float* gamma, const float* sample, int N, int64_t R,
                        int D) {
  return VIT_PICK(scale_add_backward)(ctx, dy, dgamma, dout, y, gamma, sample, N, R, D);
}

void qk_norm_forward(const Context& ctx, float* out, float* mean, float* rstd, const float* qkv,
                     const float* qw, const float* qb, const float* kw, const float* kb, int64_t R,
                     int D, int H, float eps) {
  return VIT_PICK(qk_norm_forward)(ctx, out, mean, rstd, qkv, qw, qb, kw, kb, R, D, H, eps);
}

void qk_norm_backward(const Context& ctx, float* dqkv, float* dqw, float* dqb, float* dkw,
                      float* dkb, const float* dout, const float* qkv, const float* mean,
                      const float* rstd, const float* qw, const float* kw, int64_t R, int D,
                      int H) {
  return VIT_PICK(qk_norm_backward)(ctx, dqkv, dqw, dqb, dkw, dkb, dout, qkv, mean, rstd, qw, kw, R,
                                    D, H);
}

void quick_gelu_forward(const Context& ctx, float* out, float* slope, const float* x, int64_t n) {
  return VIT_PICK(quick_gelu_forward)(ctx, out, slope, x, n);
}

void gelu_tanh_forward(const Context& ctx, float* out, float* slope, const float* x, int64_t n) {
  return VIT_PICK(gelu_tanh_forward)(ctx, out, slope, x, n);
}

void layernorm_forward(const Context& ctx, float* out, float* mean, float* rstd, const float* x,
                       const float* w, const float* b, int64_t R, int D, float eps) {
  return VIT_PICK(layernorm_forward)(ctx, out, mean, rstd, x, w, b, R, D, eps);
}

void layernorm_backward(const Context& ctx, float* dx, float* dw, float* db, const float* dout,
                        const float* x, const float* mean, const float* rstd, const float* w,
                        int64_t R, int D, bool accumulate) {
  return VIT_PICK(layernorm_backward)(ctx, dx, dw, db, dout, x, mean, rstd, w, R, D, accumulate);
}

void linear_forward(const Context& ctx, float* out, const float* x, const float* w, const float* b,
                    int64_t R, int I, int O) {
  return VIT_PICK(linear_forward)(ctx, out, x, w, b, R, I, O);
}

void linear_backward(const Context& ctx, float* dx, float* dw, float* db, const float* dout,
                     LayerInput x, const float* w, int64_t R, int I, int O) {
  return VIT_PICK(linear_backward)(ctx, dx, dw, db, dout, x, w, R, I, O);
}

void linear_residual_norm_forward(const Context& ctx, float* out, float* ln, float* mean,
                                  float* rstd, const float* x, const float* w, const float* b,
                                  const float* residual, const float* ln_w, const float* ln_b,
                                  int64_t R, int I, int O, float eps) {
  return VIT_PICK(linear_residual_norm_forward)(ctx, out, ln, mean, rstd, x, w, b, residual, ln_w,
                                                ln_b, R, I, O, eps);
}

void linear_gelu_forward(const Context& ctx, float* g, float* slope, const float* x, const float* w,
                         const float* b, int64_t R, int I, int O) {
  return VIT_PICK(linear_gelu_forward)(ctx, g, slope, x, w, b, R, I, O);
}

void linear_backward_gelu(const Context& ctx, float* dh, float* dw, float* db, const float* dout,
                          LayerInput g, const float* w, const float* slope, int64_t R, int I,
                          int O) {
  return VIT_PICK(linear_backward_gelu)(ctx, dh, dw, db, dout, g, w, slope, R, I, O);
}

void gelu_forward(const Context& ctx, float* out, float* slope, const float* x, int64_t n) {
  return VIT_PICK(gelu_forward)(ctx, out, slope, x, n);
}

void gelu_backward(const Context& ctx, float* dx, const float* dout, const float* x,
                   const float* slope, int64_t n) {
  return VIT_PICK(gelu_backward)(ctx, dx, dout, x, slope, n);
}

void attention_forward(const Context& ctx, float* out, float* att, const float* qkv, int B, int N,
                       int D, int H) {
  return VIT_PICK(attention_forward)(ctx, out, att, qkv, B, N, D, H);
}

void attention_backward(const Context& ctx, float* dqkv, const float* dout, const float* qkv,
                        const float* att, const float* out, int B, int N, int D, int H) {
  return VIT_PICK(attention_backward)(ctx, dqkv, dout, qkv, att, out, B, N, D, H);
}

double cross_entropy_forward(const Context& ctx, float* probs, const float* logits,
                             const int32_t* labels, int B, int K, float smoothing) {
  return VIT_PICK(cross_entropy_forward)(ctx, probs, logits, labels, B, K, smoothing);
}

void cross_entropy_backward(const Context& ctx, float* dlogits, const float* probs,
                            const int32_t* labels, int B, int K, float smoothing, float scale) {
  return VIT_PICK(cross_entropy_backward)(ctx, dlogits, probs, labels, B, K, smoothing, scale);
}

void adamw_update(const Context& ctx, float* p, float* m, float* v, const float* g, int64_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                  int64_t step) {
  return VIT_PICK(adamw_update)(ctx, p, m, v, g, n, lr, beta1, beta2, eps, weight_decay, decoupled,
                                step);
}

double sum_squares(const Context& ctx, const float* g, int64_t n) {
  return VIT_PICK(sum_squares)(ctx, g, n);
}

void resample_down_u8(const Context& ctx, uint8_t* out, int64_t out_ld, const uint8_t* in,
                      int64_t in_ld, int W, int O, const int* lo, const int* n, const int32_t* k,
                      int ksize) {
  return VIT_PICK(resample_down_u8)(ctx, out, out_ld, in, in_ld, W, O, lo, n, k, ksize);
}

void transpose_u8(const Context& ctx, uint8_t* out, int64_t out_ld, const uint8_t* in,
                  int64_t in_ld, int R, int W) {
  return VIT_PICK(transpose_u8)(ctx, out, out_ld, in, in_ld, R, W);
}

void transpose_rgb_u8(const Context& ctx, uint8_t* out, int64_t out_plane, int64_t out_ld,
                      const uint8_t* in, int64_t in_ld, int R, int W) {
  return VIT_PICK(transpose_rgb_u8)(ctx, out, out_plane, out_ld, in, in_ld, R, W);
}

void fill_zero(const Context& ctx, float* x, int64_t n) {
  return VIT_PICK(fill_zero)(ctx, x, n);
}

void add_into(const Context& ctx, float* dst, const float* src, int64_t n, bool copy) {
  return VIT_PICK(add_into)(ctx, dst, src, n, copy);
}

void scale_inplace(const Context& ctx, float* x, int64_t n, float s) {
  return VIT_PICK(scale_inplace)(ctx, x, n, s);
}
void vmath_forms(float* exp_vector, float* exp_scalar, float* erf_vector, float* erf_scalar,
                 const float* x, int64_t n) {
  VIT_PICK(vmath_forms)(exp_vector, exp_scalar, erf_vector, erf_scalar, x, n);
}

}  // namespace vit::ops
