// Ops that only some of timm's ViT variants or recipes use: LayerScale (DeiT III, DINOv2) and
// drop-path's scaled residual joins, qk-norm, QuickGELU (OpenAI CLIP), GELU's tanh approximation
// (SigLIP 2). Plain loops (GELU's tanh form on vmath's exp, so that it vectorises): these models
// are the minority, and none of these ops is a measurable share of a step next to the GEMMs around
// it.
#include <cmath>
#include <cstring>

#include "ops/cpu/kernels.hpp"
#include "ops/cpu/vmath.hpp"

namespace vit::ops::VIT_ISA_NS {

void scale_add_forward(const Context& ctx, float* out, const float* residual, const float* y,
                       const float* gamma, const float* sample, int N, int64_t R, int D) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int64_t r = 0; r < R; ++r) {
    const float* x = residual + r * D;
    const float* yr = y + r * D;
    float* o = out + r * D;
    if (!sample) {
#pragma omp simd
      for (int d = 0; d < D; ++d) o[d] = x[d] + gamma[d] * yr[d];
      continue;
    }
    const float s = sample[r / N];
    if (gamma) {
#pragma omp simd
      for (int d = 0; d < D; ++d) o[d] = x[d] + (gamma[d] * yr[d]) * s;
    } else {
#pragma omp simd
      for (int d = 0; d < D; ++d) o[d] = x[d] + yr[d] * s;
    }
  }
}

void scale_add_backward(const Context& ctx, float* dy, float* dgamma, const float* dout,
                        const float* y, const float* gamma, const float* sample, int N, int64_t R,
                        int D) {
  // dgamma first: dy may alias dout. Columns in blocks of 16, each block's rows in order.
  constexpr int kCols = 16;
  const int blocks = (D + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) num_threads(ctx.threads) if (dgamma)
  for (int blk = 0; blk < (dgamma ? blocks : 0); ++blk) {
    const int d0 = blk * kCols, d1 = d0 + kCols < D ? d0 + kCols : D;
    float acc[kCols] = {};
    for (int64_t r = 0; r < R; ++r) {
      const float* g = dout + r * D;
      const float* yr = y + r * D;
      if (sample) {
        const float s = sample[r / N];
        for (int d = d0; d < d1; ++d) acc[d - d0] += (g[d] * s) * yr[d];
      } else {
        for (int d = d0; d < d1; ++d) acc[d - d0] += g[d] * yr[d];
      }
    }
    for (int d = d0; d < d1; ++d) dgamma[d] += acc[d - d0];
  }
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int64_t r = 0; r < R; ++r) {
    const float* g = dout + r * D;
    float* o = dy + r * D;
    const float s = sample ? sample[r / N] : 1.0f;
    if (!sample) {
#pragma omp simd
      for (int d = 0; d < D; ++d) o[d] = gamma[d] * g[d];
    } else if (gamma) {
#pragma omp simd
      for (int d = 0; d < D; ++d) o[d] = (gamma[d] * g[d]) * s;
    } else {
#pragma omp simd
      for (int d = 0; d < D; ++d) o[d] = g[d] * s;
    }
  }
}

namespace {

// One head's row of Dh: LayerNorm as layernorm.cpp's rows (mean, then variance around it).
inline void head_norm(float* out, float* mean, float* rstd, const float* x, const float* w,
                      const float* b, int Dh, float eps) {
  float sum = 0.0f;
  for (int d = 0; d < Dh; ++d) sum += x[d];
  const float m = sum / float(Dh);
  float var = 0.0f;
  for (int d = 0; d < Dh; ++d) var += (x[d] - m) * (x[d] - m);
  const float s = 1.0f / std::sqrt(var / float(Dh) + eps);
  for (int d = 0; d < Dh; ++d) out[d] = (x[d] - m) * s * w[d] + b[d];
  if (mean) *mean = m;
  if (rstd) *rstd = s;
}

}  // namespace

void qk_norm_forward(const Context& ctx, float* out, float* mean, float* rstd, const float* qkv,
                     const float* qw, const float* qb, const float* kw, const float* kb, int64_t R,
                     int D, int H, float eps) {
  const int Dh = D / H;
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int64_t r = 0; r < R; ++r) {
    const float* in = qkv + r * 3 * D;
    float* o = out + r * 3 * D;
    for (int part = 0; part < 2; ++part) {  // q, then k
      for (int h = 0; h < H; ++h) {
        const int64_t stat = r * 2 * H + part * H + h;
        const int64_t at = int64_t(part) * D + int64_t(h) * Dh;
        head_norm(o + at, mean ? mean + stat : nullptr, rstd ? rstd + stat : nullptr, in + at,
                  part ? kw : qw, part ? kb : qb, Dh, eps);
      }
    }
    if (o != in) std::memcpy(o + 2 * D, in + 2 * D, sizeof(float) * D);
  }
}

void qk_norm_backward(const Context& ctx, float* dqkv, float* dqw, float* dqb, float* dkw,
                      float* dkb, const float* dout, const float* qkv, const float* mean,
                      const float* rstd, const float* qw, const float* kw, int64_t R, int D,
                      int H) {
  const int Dh = D / H;
  // The weight and bias gradients first (dqkv may alias dout), summed over rows and heads in that
  // order by one thread: thread-count independent, and small next to the attention.
  for (int64_t r = 0; r < R; ++r) {
    for (int part = 0; part < 2; ++part) {
      float* dw = part ? dkw : dqw;
      float* db = part ? dkb : dqb;
      for (int h = 0; h < H; ++h) {
        const int64_t stat = r * 2 * H + part * H + h;
        const int64_t at = r * 3 * D + int64_t(part) * D + int64_t(h) * Dh;
        const float m = mean[stat], s = rstd[stat];
        for (int d = 0; d < Dh; ++d) {
          dw[d] += dout[at + d] * (qkv[at + d] - m) * s;
          db[d] += dout[at + d];
        }
      }
    }
  }
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int64_t r = 0; r < R; ++r) {
    for (int part = 0; part < 2; ++part) {
      const float* w = part ? kw : qw;
      for (int h = 0; h < H; ++h) {
        const int64_t stat = r * 2 * H + part * H + h;
        const int64_t at = r * 3 * D + int64_t(part) * D + int64_t(h) * Dh;
        const float m = mean[stat], s = rstd[stat];
        // g = dout * w; dx = s * (g - mean(g) - xhat * mean(g * xhat)).
        float sg = 0.0f, sgx = 0.0f;
        for (int d = 0; d < Dh; ++d) {
          const float g = dout[at + d] * w[d];
          sg += g;
          sgx += g * (qkv[at + d] - m) * s;
        }
        sg /= float(Dh);
        sgx /= float(Dh);
        for (int d = 0; d < Dh; ++d) {
          const float xhat = (qkv[at + d] - m) * s;
          dqkv[at + d] = s * (dout[at + d] * w[d] - sg - xhat * sgx);
        }
      }
    }
    if (dqkv != dout) {
      std::memcpy(dqkv + r * 3 * D + 2 * D, dout + r * 3 * D + 2 * D, sizeof(float) * D);
    }
  }
}

void quick_gelu_forward(const Context& ctx, float* out, float* slope, const float* x, int64_t n) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float s = 1.0f / (1.0f + std::exp(-1.702f * v));
    if (slope) slope[i] = s + 1.702f * v * s * (1.0f - s);
    out[i] = v * s;
  }
}

void gelu_tanh_forward(const Context& ctx, float* out, float* slope, const float* x, int64_t n) {
  constexpr float kA = 0.7978845608028654f, kB = 0.044715f;  // sqrt(2/pi), the cubic's weight
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float u = kA * (v + kB * v * v * v);
    const float s = 1.0f / (1.0f + vmath::exp(-2.0f * u));  // 0.5 (1 + tanh(u))
    if (slope) slope[i] = s + v * s * (1.0f - s) * 2.0f * kA * (1.0f + 3.0f * kB * v * v);
    out[i] = v * s;
  }
}

}  // namespace vit::ops::VIT_ISA_NS
