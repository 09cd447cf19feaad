// Exact GELU (the erf form of nn.GELU()), forward and backward, on the vectorisable erf and exp of
// vmath.hpp (within 1.6e-7 of the exact function on [-6, 6]). Training keeps the slope GELU'(x)
// computed in the forward (where x is in cache, straight out of the GEMM), so the backward is one
// multiply per element and reads one array instead of x and Phi(x).
#include <algorithm>
#include <cstdint>

#include "ops/cpu/kernels.hpp"
#include "ops/cpu/vmath.hpp"

namespace vit::ops::VIT_ISA_NS {

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

// For j < n: out[j] = x[j] Phi(x[j]) and slope[j] = Phi(x[j]) + x[j] phi(x[j]), each when
// non-null; out may be x. stream: full aligned lines of the slope go straight to memory (a
// streaming store) instead of being read into the cache first, for a slope too large to stay
// cached until the backward reads it.
void gelu_span(float* out, float* slope, const float* x, int64_t n, bool stream) {
#if VIT_SIMD
  using namespace simd;
  for (int64_t j = 0; j < n; j += kLanes) {
    const int w = int(std::min<int64_t>(kLanes, n - j));
    const Vec v = load_first(x + j, w);
    const Vec half = set1(0.5f);
    const Vec c = fmadd(vmath::erf(mul(v, set1(kInvSqrt2))), half, half);
    if (slope) {
      const Vec pdf = mul(set1(kInvSqrt2Pi), vmath::exp(mul(mul(set1(-0.5f), v), v)));
      const Vec sl = fmadd(v, pdf, c);
      if (stream && w == kLanes &&
          (reinterpret_cast<uintptr_t>(slope + j) & (sizeof(Vec) - 1)) == 0) {
        simd::stream(slope + j, sl);
      } else {
        store_first(slope + j, w, sl);
      }
    }
    if (out) store_first(out + j, w, mul(v, c));
  }
#else
  (void)stream;  // no streaming stores in this form
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float v = x[j];
    const float c = 0.5f * (1.0f + vmath::erf(v * kInvSqrt2));  // Phi(x)
    if (slope) slope[j] = c + v * (kInvSqrt2Pi * vmath::exp(-0.5f * v * v));
    if (out) out[j] = v * c;
  }
#endif
}

constexpr int64_t kChunk = 4096;

// Splits [0, n) into chunks of kChunk (the same whatever the thread count) over the threads.
template <typename F>
void for_chunks(const Context& ctx, int64_t n, F&& f) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1) num_threads(ctx.threads)
  for (int64_t c = 0; c < chunks; ++c) f(c * kChunk, std::min(kChunk, n - c * kChunk));
}
}  // namespace

void gelu_forward(const Context& ctx, float* out, float* slope, const float* x, int64_t n) {
  for_chunks(ctx, n, [&](int64_t j, int64_t len) {
    gelu_span(out + j, slope ? slope + j : nullptr, x + j, len, false);
  });
}

void gelu_backward(const Context& ctx, float* dx, const float* dout, const float* x,
                   const float* slope, int64_t n) {
  for_chunks(ctx, n, [&](int64_t j, int64_t len) {
    float computed[kChunk];  // the chunk's slope when the caller has not kept it
    const float* s = slope ? slope + j : computed;
    if (!slope) gelu_span(nullptr, computed, x + j, len, false);
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) dx[j + i] = dout[j + i] * s[i];
  });
}

void apply_epilogue(const Epilogue& e, float* C, int64_t ldc, int64_t i0, int j0, int m, int n) {
  if (e.kind == Epilogue::kResidualNorm) return residual_norm_rows(e, C, ldc, i0, m, n);
  for (int i = 0; i < m; ++i) {
    float* c = C + i * ldc;
    const int64_t off = (i0 + i) * e.ld + j0;
    if (e.kind == Epilogue::kGelu) {
      gelu_span(e.out + off, e.slope ? e.slope + off : nullptr, c, n, e.stream);  // out may be C
    } else if (e.kind == Epilogue::kScale) {
      const float* s = e.scale + off;
#pragma omp simd
      for (int j = 0; j < n; ++j) c[j] *= s[j];
    }
  }
}

}  // namespace vit::ops::VIT_ISA_NS
