// Exact GELU (the erf form of nn.GELU()), forward and backward, on the vectorisable erf and exp of
// vmath.hpp (within 1.6e-7 of the exact function on [-6, 6]).
#include <algorithm>

#include "ops/cpu/vmath.hpp"
#include "ops/ops.hpp"

namespace vit::ops {

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
// For j < n: out[j] = x[j] Phi(x[j]) and cdf[j] = Phi(x[j]), each when non-null; out may be x.
void gelu_span(float* out, float* cdf, const float* x, int64_t n) {
#ifdef __AVX512F__
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + j);
    const __m512 half = _mm512_set1_ps(0.5f);
    const __m512 c =
        _mm512_fmadd_ps(vmath::erf(_mm512_mul_ps(v, _mm512_set1_ps(kInvSqrt2))), half, half);
    if (cdf) _mm512_mask_storeu_ps(cdf + j, m, c);
    if (out) _mm512_mask_storeu_ps(out + j, m, _mm512_mul_ps(v, c));
  }
#else
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float c = 0.5f * (1.0f + vmath::erf(x[j] * kInvSqrt2));  // Phi(x)
    if (cdf) cdf[j] = c;
    if (out) out[j] = x[j] * c;
  }
#endif
}

// For j < n: out[j] = dout[j] (Phi(x[j]) + x[j] phi(x[j])), the GELU derivative at x times dout,
// with cdf = Phi(x) given; out may be dout.
void gelu_grad_span(float* out, const float* dout, const float* x, const float* cdf, int64_t n) {
#ifdef __AVX512F__
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - j)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + j);
    const __m512 pdf =
        _mm512_mul_ps(_mm512_set1_ps(kInvSqrt2Pi),
                      vmath::exp(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(-0.5f), v), v)));
    const __m512 slope = _mm512_fmadd_ps(v, pdf, _mm512_maskz_loadu_ps(m, cdf + j));
    _mm512_mask_storeu_ps(out + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dout + j), slope));
  }
#else
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float pdf = kInvSqrt2Pi * vmath::exp(-0.5f * x[j] * x[j]);
    out[j] = dout[j] * (cdf[j] + x[j] * pdf);
  }
#endif
}
}  // namespace

void gelu_forward(float* out, float* cdf, const float* x, int64_t n) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t j = c * kChunk;
    gelu_span(out + j, cdf ? cdf + j : nullptr, x + j, std::min(kChunk, n - j));
  }
}

void apply_epilogue(const Epilogue& e, float* C, int64_t ldc, int64_t i0, int j0, int m, int n) {
  for (int i = 0; i < m; ++i) {
    float* c = C + i * ldc;
    const int64_t off = (i0 + i) * e.ld + j0;
    if (e.kind == Epilogue::kGelu) {
      gelu_span(e.out + off, e.cdf ? e.cdf + off : nullptr, c, n);  // out may be C itself
    } else if (e.kind == Epilogue::kGeluGrad) {
      gelu_grad_span(c, c, e.x + off, e.xcdf + off, n);
    }
  }
}

void gelu_from_cdf(float* out, const float* x, const float* cdf, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * cdf[i];
}

void gelu_backward(float* dx, const float* dout, const float* x, const float* cdf, int64_t n) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t j0 = ch * kChunk, len = std::min(kChunk, n - j0);
    float phi[kChunk];  // Phi(x) of this chunk when the caller has not kept it
    const float* c = cdf ? cdf + j0 : phi;
    if (!cdf) gelu_span(nullptr, phi, x + j0, len);
    gelu_grad_span(dx + j0, dout + j0, x + j0, c, len);
  }
}

}  // namespace vit::ops
