// LayerNorm over the last dimension, forward and backward. Row statistics are accumulated in
// double: with D up to thousands of values far from zero, float sums lose the variance.
#include <algorithm>
#include <cmath>

#include "ops/ops.hpp"

namespace vit::ops {

void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w,
                       const float* b, int64_t R, int D, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * D;
    double sum = 0.0;
    for (int d = 0; d < D; ++d) sum += xr[d];
    const double mu = sum / D;
    double var = 0.0;
    for (int d = 0; d < D; ++d) {
      const double c = xr[d] - mu;
      var += c * c;
    }
    const float m = float(mu);
    const float s = float(1.0 / std::sqrt(var / D + eps));
    float* o = out + r * D;
    for (int d = 0; d < D; ++d) o[d] = (xr[d] - m) * s * w[d] + b[d];
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = s;
  }
}

void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x,
                        const float* mean, const float* rstd, const float* w, int64_t R, int D) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * D;
    const float* gr = dout + r * D;
    const float m = mean[r], s = rstd[r];
    double sum_g = 0.0, sum_gx = 0.0;
    for (int d = 0; d < D; ++d) {
      const float g = gr[d] * w[d];
      sum_g += g;
      sum_gx += double(g) * ((xr[d] - m) * s);
    }
    const float mg = float(sum_g / D), mgx = float(sum_gx / D);
    float* o = dx + r * D;
    for (int d = 0; d < D; ++d) {
      const float xhat = (xr[d] - m) * s;
      o[d] = s * (gr[d] * w[d] - mg - xhat * mgx);
    }
  }
  // Parameter gradients: column blocks owned by one thread each, rows summed in order, so the
  // result is independent of the thread count (as in colsum_accumulate).
  constexpr int kBlock = 16;
  const int nblocks = (D + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (R * D > 32768)
  for (int blk = 0; blk < nblocks; ++blk) {
    const int j0 = blk * kBlock;
    const int wd = std::min(kBlock, D - j0);
    float acc_w[kBlock] = {}, acc_b[kBlock] = {};
    for (int64_t r = 0; r < R; ++r) {
      const float* xr = x + r * D + j0;
      const float* gr = dout + r * D + j0;
      const float m = mean[r], s = rstd[r];
      for (int j = 0; j < wd; ++j) {
        acc_w[j] += gr[j] * ((xr[j] - m) * s);
        acc_b[j] += gr[j];
      }
    }
    for (int j = 0; j < wd; ++j) {
      if (dw) dw[j0 + j] += acc_w[j];
      if (db) db[j0 + j] += acc_b[j];
    }
  }
}

}  // namespace vit::ops
