// Optimizer kernels over flat parameter arrays: the AdamW update, and the deterministic sum of
// squares behind global gradient-norm clipping.
#include <algorithm>
#include <cmath>

#include "ops/cpu/kernels.hpp"

namespace vit::ops::VIT_ISA_NS {

// Split over ctx's threads, or on the calling thread alone with one: the same arithmetic on each
// element either way.
void adamw_update(const Context& ctx, float* p, float* m, float* v, const float* g, int64_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                  int64_t step) {
  // Bias corrections in double (beta2^t for t in the thousands), as PyTorch computes them.
  const double bc1 = 1.0 - std::pow(double(beta1), double(step));
  const double bc2 = 1.0 - std::pow(double(beta2), double(step));
  const float step_size = float(lr / bc1);
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  const float decay = decoupled ? 1.0f - lr * weight_decay : 1.0f;
  const float l2 = decoupled ? 0.0f : weight_decay;
  const float one_minus_b1 = 1.0f - beta1, one_minus_b2 = 1.0f - beta2;
  auto update = [&](int64_t i) {
    const float gi = g[i] + l2 * p[i];
    const float mi = beta1 * m[i] + one_minus_b1 * gi;
    const float vi = beta2 * v[i] + one_minus_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
  };
  if (ctx.threads > 1) {
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads)
    for (int64_t i = 0; i < n; ++i) update(i);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) update(i);
  }
}

double sum_squares(const Context& ctx, const float* g, int64_t n) {
  // Fixed chunks, each summed by one thread, then the partials added in chunk order.
  constexpr int64_t kChunk = 1 << 14;
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  double total = 0.0;
  // Partials in fixed-size groups, so no allocation scales with n.
  constexpr int64_t kGroup = 256;
  double partial[kGroup];
  for (int64_t c0 = 0; c0 < nchunks; c0 += kGroup) {
    const int64_t cn = std::min(kGroup, nchunks - c0);
#pragma omp parallel for schedule(static) if (n > kChunk) num_threads(ctx.threads)
    for (int64_t c = 0; c < cn; ++c) {
      const int64_t lo = (c0 + c) * kChunk, hi = std::min(n, lo + kChunk);
      double s = 0.0;
      for (int64_t i = lo; i < hi; ++i) s += double(g[i]) * g[i];
      partial[c] = s;
    }
    for (int64_t c = 0; c < cn; ++c) total += partial[c];
  }
  return total;
}

void scale_inplace(const Context& ctx, float* x, int64_t n, float s) {
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads)
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace vit::ops::VIT_ISA_NS
