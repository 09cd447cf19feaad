// Multi-head self-attention core: scaled dot product and softmax per (batch, head), in parallel
// over batch x heads. Each (b, h) pair writes only its own slices, so there are no races and the
// result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ops/ops.hpp"

namespace vit::ops {
namespace {

inline float dot(const float* a, const float* b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline void axpy(float* y, float a, const float* x, int n) {
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, int B, int N, int D, int H) {
  const int Dh = D / H;
  const int64_t row = 3 * int64_t(D);  // stride between tokens in qkv
  const float scale = 1.0f / std::sqrt(float(Dh));
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      const float* q = qkv + int64_t(b) * N * row + h * Dh;
      const float* k = q + D;
      const float* v = q + 2 * D;
      float* o = out + int64_t(b) * N * D + h * Dh;
      for (int i = 0; i < N; ++i) {
        const float* qi = q + i * row;
        float* oi = o + int64_t(i) * D;
        std::memset(oi, 0, sizeof(float) * Dh);
        if (att) {
          // Training: the probabilities are kept for the backward.
          float* a = att + ((int64_t(b) * H + h) * N + i) * N;
          float mx = -std::numeric_limits<float>::infinity();
          for (int j = 0; j < N; ++j) {
            a[j] = dot(qi, k + j * row, Dh) * scale;
            mx = std::max(mx, a[j]);
          }
          float sum = 0.0f;
          for (int j = 0; j < N; ++j) {
            a[j] = std::exp(a[j] - mx);
            sum += a[j];
          }
          const float inv = 1.0f / sum;
          for (int j = 0; j < N; ++j) {
            a[j] *= inv;
            axpy(oi, a[j], v + j * row, Dh);
          }
        } else {
          // Inference: online softmax (running max m and normaliser l), the output row as the
          // accumulator, rescaled whenever the max grows.
          float m = -std::numeric_limits<float>::infinity(), l = 0.0f;
          for (int j = 0; j < N; ++j) {
            const float s = dot(qi, k + j * row, Dh) * scale;
            if (s > m) {
              const float corr = std::exp(m - s);  // 0 on the first key
              l *= corr;
              for (int d = 0; d < Dh; ++d) oi[d] *= corr;
              m = s;
            }
            const float p = std::exp(s - m);
            l += p;
            axpy(oi, p, v + j * row, Dh);
          }
          const float inv = 1.0f / l;
          for (int d = 0; d < Dh; ++d) oi[d] *= inv;
        }
      }
    }
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att,
                        const float* out, int B, int N, int D, int H) {
  const int Dh = D / H;
  const int64_t row = 3 * int64_t(D);
  const float scale = 1.0f / std::sqrt(float(Dh));
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      const int64_t base = int64_t(b) * N * row + h * Dh;
      const float* q = qkv + base;
      const float* k = q + D;
      const float* v = q + 2 * D;
      float* dq = dqkv + base;
      float* dk = dq + D;
      float* dv = dq + 2 * D;
      for (int i = 0; i < N; ++i) {
        std::memset(dq + i * row, 0, sizeof(float) * Dh);
        std::memset(dk + i * row, 0, sizeof(float) * Dh);
        std::memset(dv + i * row, 0, sizeof(float) * Dh);
      }
      for (int i = 0; i < N; ++i) {
        const float* a = att + ((int64_t(b) * H + h) * N + i) * N;
        const float* gi = dout + (int64_t(b) * N + i) * D + h * Dh;
        const float* oi = out + (int64_t(b) * N + i) * D + h * Dh;
        const float* qi = q + i * row;
        float* dqi = dq + i * row;
        const float delta = dot(gi, oi, Dh);
        for (int j = 0; j < N; ++j) {
          const float dA = dot(gi, v + j * row, Dh);
          const float ds = a[j] * (dA - delta) * scale;
          axpy(dv + j * row, a[j], gi, Dh);
          axpy(dqi, ds, k + j * row, Dh);
          axpy(dk + j * row, ds, qi, Dh);
        }
      }
    }
  }
}

}  // namespace vit::ops
