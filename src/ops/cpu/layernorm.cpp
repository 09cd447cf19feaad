// LayerNorm over the last dimension, forward and backward. Row statistics are float sums (they
// vectorise) with the variance taken around the mean in a second pass, so values far from zero
// lose no precision to cancellation; the op fixtures include rows with mean 100 and std 0.1.
// The same row code serves the GEMM epilogue that adds a residual and normalises its output.
#include <algorithm>
#include <cmath>

#include "ops/cpu/kernels.hpp"
#include "ops/cpu/scratch.hpp"

namespace vit::ops::VIT_ISA_NS {

namespace {
// One row: out = (x - mean) * rstd * w + b, mean and rstd stored when non-null.
inline void norm_row(float* out, float* mean, float* rstd, const float* xr, const float* w,
                     const float* b, int D, float eps) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int d = 0; d < D; ++d) sum += xr[d];
  const float m = sum / float(D);
  float var = 0.0f;
#pragma omp simd reduction(+ : var)
  for (int d = 0; d < D; ++d) var += (xr[d] - m) * (xr[d] - m);
  const float s = 1.0f / std::sqrt(var / float(D) + eps);
#pragma omp simd
  for (int d = 0; d < D; ++d) out[d] = (xr[d] - m) * s * w[d] + b[d];
  if (mean) *mean = m;
  if (rstd) *rstd = s;
}
}  // namespace

void layernorm_forward(const Context& ctx, float* out, float* mean, float* rstd, const float* x,
                       const float* w, const float* b, int64_t R, int D, float eps) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int64_t r = 0; r < R; ++r) {
    norm_row(out + r * D, mean ? mean + r : nullptr, rstd ? rstd + r : nullptr, x + r * D, w, b, D,
             eps);
  }
}

void residual_norm_rows(const Epilogue& e, float* C, int64_t ldc, int64_t i0, int m, int n) {
  for (int i = 0; i < m; ++i) {
    float* c = C + i * ldc;
    const int64_t r = i0 + i;
    if (e.residual) {
      const float* res = e.residual + r * e.ld;
#pragma omp simd
      for (int j = 0; j < n; ++j) c[j] += res[j];
    }
    if (e.norm) {
      norm_row(e.norm + r * e.ld, e.mean ? e.mean + r : nullptr, e.rstd ? e.rstd + r : nullptr, c,
               e.norm_w, e.norm_b, n, e.eps);
    }
  }
}

namespace {
// Rows per chunk of the backward: each chunk sums its own parameter-gradient partials, and the
// partials are added in chunk order, so the sums do not depend on the thread count.
constexpr int64_t kChunkRows = 64;
}  // namespace

// One pass over the rows: the input gradient and, per chunk of rows, the partial sums of dw and
// db (the row's x, dout and xhat are in cache then; a second pass over them for the parameter
// gradients cost as much as the first).
void layernorm_backward(const Context& ctx, float* dx, float* dw, float* db, const float* dout,
                        const float* x, const float* mean, const float* rstd, const float* w,
                        int64_t R, int D, bool accumulate) {
  const int64_t chunks = (R + kChunkRows - 1) / kChunkRows;
  // partials [chunks][2][D]: dw then db of each chunk, in the context's scratch (shared by the
  // op's threads).
  float* partials = scratch(ctx, kScratchLayerNorm, size_t(chunks * 2 * D));
#pragma omp parallel for schedule(static) if (R * D > 32768) num_threads(ctx.threads)
  for (int64_t c = 0; c < chunks; ++c) {
    float* pw = partials + c * 2 * D;
    float* pb = pw + D;
    std::fill(pw, pw + 2 * D, 0.0f);
    for (int64_t r = c * kChunkRows; r < std::min(R, (c + 1) * kChunkRows); ++r) {
      const float* xr = x + r * D;
      const float* gr = dout + r * D;
      const float m = mean[r], s = rstd[r];
      float sum_g = 0.0f, sum_gx = 0.0f;
#pragma omp simd reduction(+ : sum_g, sum_gx)
      for (int d = 0; d < D; ++d) {
        const float xhat = (xr[d] - m) * s;
        const float g = gr[d] * w[d];
        sum_g += g;
        sum_gx += g * xhat;
        pw[d] += gr[d] * xhat;
        pb[d] += gr[d];
      }
      const float mg = sum_g / float(D), mgx = sum_gx / float(D);
      float* o = dx + r * D;
      if (accumulate) {
#pragma omp simd
        for (int d = 0; d < D; ++d) o[d] += s * (gr[d] * w[d] - mg - (xr[d] - m) * s * mgx);
      } else {
#pragma omp simd
        for (int d = 0; d < D; ++d) o[d] = s * (gr[d] * w[d] - mg - (xr[d] - m) * s * mgx);
      }
    }
  }
  for (int64_t c = 0; c < chunks; ++c) {
    const float* pw = partials + c * 2 * D;
    if (dw) {
      for (int d = 0; d < D; ++d) dw[d] += pw[d];
    }
    if (db) {
      for (int d = 0; d < D; ++d) db[d] += pw[D + d];
    }
  }
}

}  // namespace vit::ops::VIT_ISA_NS
