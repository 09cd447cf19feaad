// Token-level ops: prefix tokens' prepend (class, distillation, register), positional embedding
// (learned add, also at patch dropout's kept patches, and the fixed sin/cos table) and pooling to
// one vector per image.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/cpu/kernels.hpp"
#include "ops/cpu/scratch.hpp"

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
                     int D, const int32_t* keep, int F) {
  const int64_t ND = int64_t(N) * D;
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < B; ++b) {
    const float* xb = x + b * ND;
    float* ob = out + b * ND;
    if (!keep) {
      for (int64_t i = 0; i < ND; ++i) ob[i] = xb[i] + pos[i];
      continue;
    }
    for (int n = 0; n < N; ++n) {
      const float* p = pos + int64_t(n < F ? n : F + keep[int64_t(b) * (N - F) + n - F]) * D;
      for (int d = 0; d < D; ++d) ob[int64_t(n) * D + d] = xb[int64_t(n) * D + d] + p[d];
    }
  }
}

void pos_add_backward(const Context& ctx, float* dx, float* dpos, const float* dout, int B, int N,
                      int D, const int32_t* keep, int F) {
  const int64_t ND = int64_t(N) * D;
  if (dx && dx != dout) std::memcpy(dx, dout, sizeof(float) * B * ND);
  if (!dpos) return;
  if (!keep) {
    // Each element summed over the batch in order by one thread: thread-count independent.
#pragma omp parallel for schedule(static) if (B * ND > 32768) num_threads(ctx.threads)
    for (int64_t i = 0; i < ND; ++i) {
      float acc = 0.0f;
      for (int b = 0; b < B; ++b) acc += dout[b * ND + i];
      dpos[i] += acc;
    }
    return;
  }
  // Patch dropout: each row of pos gathers the rows that read it, by one thread, over (b, j) in
  // order (the prefix rows: one per image), kChunk columns at a time. The (b, j) reading each row
  // are listed once first (a counting sort by row, stable): O(B Nk + Np) instead of a scan of
  // every (b, j) for each row.
  const int Nk = N - F;
  const int64_t BK = int64_t(B) * Nk;
  int Np = 0;  // rows of pos past the prefix that some image read
  for (int64_t i = 0; i < BK; ++i) Np = std::max(Np, keep[i] + 1);
  // In the context's scratch (int64 words): order [B Nk] (b * N + F + j, the tokens reading row
  // F + p, at order[first[p] .. first[p + 1])), first [Np + 1], next [Np] (where each row's next
  // reader goes while they are listed).
  int64_t* order = reinterpret_cast<int64_t*>(
      scratch(ctx, kScratchTokens, 2 * (size_t(BK) + 2 * size_t(Np) + 1)));
  int64_t* first = order + BK;
  int64_t* next = first + Np + 1;
  for (int p = 0; p <= Np; ++p) first[p] = 0;
  for (int64_t i = 0; i < BK; ++i) ++first[keep[i] + 1];
  for (int p = 0; p < Np; ++p) first[p + 1] += first[p];
  for (int p = 0; p < Np; ++p) next[p] = first[p];
  for (int64_t i = 0; i < BK; ++i) order[next[keep[i]]++] = (i / Nk) * N + F + i % Nk;
  constexpr int kChunk = 256;
#pragma omp parallel for schedule(static) if (int64_t(B) * ND > 32768) num_threads(ctx.threads)
  for (int r = 0; r < F + Np; ++r) {
    for (int d0 = 0; d0 < D; d0 += kChunk) {
      const int w = std::min(kChunk, D - d0);
      float acc[kChunk] = {};
      if (r < F) {
        for (int b = 0; b < B; ++b) {
          const float* g = dout + b * ND + int64_t(r) * D + d0;
          for (int d = 0; d < w; ++d) acc[d] += g[d];
        }
      } else {
        for (int64_t k = first[r - F]; k < first[r - F + 1]; ++k) {
          const float* g = dout + order[k] * D + d0;
          for (int d = 0; d < w; ++d) acc[d] += g[d];
        }
      }
      for (int d = 0; d < w; ++d) dpos[int64_t(r) * D + d0 + d] += acc[d];
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
