// Token-level ops: prefix tokens' prepend (class, distillation, register), positional embedding
// (learned add and the fixed sin/cos table), patch dropout's token selection and pooling to one
// vector per image.
#include <cmath>
#include <cstring>

#include "ops/cpu/kernels.hpp"

namespace vit::ops::VIT_ISA_NS {

void prefix_prepend_forward(const Context& ctx, float* out, const float* tokens,
                            const float* const* prefix, int B, int F, int Np, int D) {
  const int64_t N = int64_t(F) + Np;
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < B; ++b) {
    float* o = out + b * N * D;
    for (int f = 0; f < F; ++f) std::memcpy(o + int64_t(f) * D, prefix[f], sizeof(float) * D);
    std::memcpy(o + int64_t(F) * D, tokens + int64_t(b) * Np * D, sizeof(float) * Np * D);
  }
}

void prefix_prepend_backward(const Context& ctx, float* dtokens, float* const* dprefix,
                             const float* dout, int B, int F, int Np, int D) {
  const int64_t N = int64_t(F) + Np;
  if (dtokens) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
    for (int b = 0; b < B; ++b) {
      std::memcpy(dtokens + int64_t(b) * Np * D, dout + b * N * D + int64_t(F) * D,
                  sizeof(float) * Np * D);
    }
  }
  if (dprefix) {
    for (int b = 0; b < B; ++b) {
      for (int f = 0; f < F; ++f) {
        const float* g = dout + (b * N + f) * D;
        float* dst = dprefix[f];
        for (int d = 0; d < D; ++d) dst[d] += g[d];
      }
    }
  }
}

void pos_add_forward(const Context& ctx, float* out, const float* x, const float* pos, int B, int N,
                     int D) {
  const int64_t ND = int64_t(N) * D;
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < B; ++b) {
    const float* xb = x + b * ND;
    float* ob = out + b * ND;
    for (int64_t i = 0; i < ND; ++i) ob[i] = xb[i] + pos[i];
  }
}

void pos_add_backward(const Context& ctx, float* dx, float* dpos, const float* dout, int B, int N,
                      int D) {
  const int64_t ND = int64_t(N) * D;
  if (dx && dx != dout) std::memcpy(dx, dout, sizeof(float) * B * ND);
  if (dpos) {
    // Each element summed over the batch in order by one thread: thread-count independent.
#pragma omp parallel for schedule(static) if (B * ND > 32768) num_threads(ctx.threads)
    for (int64_t i = 0; i < ND; ++i) {
      float acc = 0.0f;
      for (int b = 0; b < B; ++b) acc += dout[b * ND + i];
      dpos[i] += acc;
    }
  }
}

void sincos_table(const Context& /*ctx: serial*/, float* out, int N, int D) {
  for (int i = 0; i < N; ++i) {
    for (int j = 0; j < D; ++j) {
      // Computed in double: the angle i / 10000^(j/D) reaches N radians, where float's rounding
      // would show in the sine.
      const int even = j - (j % 2);
      const double angle = i / std::pow(10000.0, double(even) / D);
      out[int64_t(i) * D + j] = float(j % 2 == 0 ? std::sin(angle) : std::cos(angle));
    }
  }
}

void token_keep_forward(const Context& ctx, float* out, const float* x, const int32_t* keep, int B,
                        int F, int Np, int Nk, int D) {
  const int64_t N = F + Np, Nout = F + Nk;
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < B; ++b) {
    const float* xb = x + b * N * D;
    float* ob = out + b * Nout * D;
    std::memcpy(ob, xb, sizeof(float) * F * D);
    for (int j = 0; j < Nk; ++j) {
      std::memcpy(ob + (F + j) * D, xb + (F + keep[int64_t(b) * Nk + j]) * D, sizeof(float) * D);
    }
  }
}

void token_keep_backward(const Context& ctx, float* dx, const float* dout, const int32_t* keep,
                         int B, int F, int Np, int Nk, int D) {
  const int64_t N = F + Np, Nout = F + Nk;
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < B; ++b) {
    float* gb = dx + b * N * D;
    const float* ob = dout + b * Nout * D;
    std::memcpy(gb, ob, sizeof(float) * F * D);
    std::memset(gb + F * D, 0, sizeof(float) * Np * D);
    for (int j = 0; j < Nk; ++j) {
      float* g = gb + (F + keep[int64_t(b) * Nk + j]) * D;
      const float* o = ob + (F + j) * D;
      for (int d = 0; d < D; ++d) g[d] += o[d];
    }
  }
}

void prefix_pool_forward(const Context& /*ctx: serial*/, float* out, const float* x, int B, int N,
                         int D, int T) {
  for (int t = 0; t < T; ++t) {
    for (int b = 0; b < B; ++b) {
      std::memcpy(out + (int64_t(t) * B + b) * D, x + (int64_t(b) * N + t) * D, sizeof(float) * D);
    }
  }
}

void prefix_pool_backward(const Context& ctx, float* dx, const float* dout, int B, int N, int D,
                          int T) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < B; ++b) {
    float* g = dx + int64_t(b) * N * D;
    for (int t = 0; t < T; ++t) {
      std::memcpy(g + int64_t(t) * D, dout + (int64_t(t) * B + b) * D, sizeof(float) * D);
    }
    std::memset(g + int64_t(T) * D, 0, sizeof(float) * (N - T) * D);
  }
}

void mean_pool_forward(const Context& ctx, float* out, const float* x, int B, int N, int D,
                       int first) {
  const float inv = 1.0f / float(N - first);
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < B; ++b) {
    float* o = out + int64_t(b) * D;
    const float* xb = x + int64_t(b) * N * D;
    for (int d = 0; d < D; ++d) o[d] = 0.0f;
    for (int n = first; n < N; ++n) {
      for (int d = 0; d < D; ++d) o[d] += xb[int64_t(n) * D + d];
    }
    for (int d = 0; d < D; ++d) o[d] *= inv;
  }
}

void mean_pool_backward(const Context& ctx, float* dx, const float* dout, int B, int N, int D,
                        int first) {
  const float inv = 1.0f / float(N - first);
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < B; ++b) {
    const float* g = dout + int64_t(b) * D;
    std::memset(dx + int64_t(b) * N * D, 0, sizeof(float) * first * D);
    for (int n = first; n < N; ++n) {
      float* row = dx + (int64_t(b) * N + n) * D;
      for (int d = 0; d < D; ++d) row[d] = g[d] * inv;
    }
  }
}

}  // namespace vit::ops::VIT_ISA_NS
