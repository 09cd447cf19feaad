// Exact GELU (the erf form of nn.GELU()), forward and backward, on the vectorisable erf and exp of
// vmath.hpp (within 1.2e-7 of the exact function).
#include "ops/cpu/vmath.hpp"
#include "ops/ops.hpp"

namespace vit::ops {

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
inline float phi_cdf(float x) {
  return 0.5f * (1.0f + vmath::erf(x * kInvSqrt2));
}
}  // namespace

void gelu_forward(float* out, float* cdf, const float* x, int64_t n) {
  if (cdf) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float c = phi_cdf(x[i]);
      cdf[i] = c;
      out[i] = x[i] * c;
    }
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * phi_cdf(x[i]);
  }
}

void apply_epilogue(const Epilogue& e, float* C, int64_t ldc, int64_t i0, int j0, int m, int n) {
  for (int i = 0; i < m; ++i) {
    float* c = C + i * ldc;
    const int64_t off = (i0 + i) * e.ld + j0;
    if (e.kind == Epilogue::kGelu && e.cdf) {
      float* cdf = e.cdf + off;
      float* out = e.out + off;
#pragma omp simd
      for (int j = 0; j < n; ++j) {
        const float p = phi_cdf(c[j]);
        cdf[j] = p;
        out[j] = c[j] * p;
      }
    } else if (e.kind == Epilogue::kGelu) {
      float* out = e.out + off;  // may be C itself
#pragma omp simd
      for (int j = 0; j < n; ++j) out[j] = c[j] * phi_cdf(c[j]);
    } else if (e.kind == Epilogue::kGeluGrad) {
      const float* x = e.x + off;
      const float* xc = e.xcdf + off;
#pragma omp simd
      for (int j = 0; j < n; ++j) {
        const float pdf = kInvSqrt2Pi * vmath::exp(-0.5f * x[j] * x[j]);
        c[j] *= xc[j] + x[j] * pdf;
      }
    }
  }
}

void gelu_from_cdf(float* out, const float* x, const float* cdf, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * cdf[i];
}

void gelu_backward(float* dx, const float* dout, const float* x, const float* cdf, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float c = cdf ? cdf[i] : phi_cdf(v);
    const float pdf = kInvSqrt2Pi * vmath::exp(-0.5f * v * v);
    dx[i] = dout[i] * (c + v * pdf);
  }
}

}  // namespace vit::ops
