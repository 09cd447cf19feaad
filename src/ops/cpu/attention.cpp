// Multi-head self-attention core, one (batch, head) pair per task, in parallel over B x H. Within
// a task the products are small GEMMs (QK^T, AV and their gradients): OpenBLAS's OpenMP build runs
// them single-threaded inside our parallel region, so the two levels never oversubscribe. Each
// task writes only its own slices and its own scratch, so results do not depend on the thread
// count.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "ops/cpu/vmath.hpp"
#include "ops/ops.hpp"

namespace vit::ops {
namespace {

constexpr int kQueryBlock = 16;  // query rows per tile on the inference path

// Row-wise softmax in place over s [m, N].
void softmax_rows(float* s, int m, int N) {
  for (int i = 0; i < m; ++i) {
    float* r = s + int64_t(i) * N;
    float mx = r[0];
    // The ternary (not std::max) is what GCC vectorises as a max reduction.
#pragma omp simd reduction(max : mx)
    for (int j = 1; j < N; ++j) mx = r[j] > mx ? r[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < N; ++j) {
      r[j] = vmath::exp(r[j] - mx);
      sum += r[j];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < N; ++j) r[j] *= inv;
  }
}

int task_threads(int slots) {
  return std::max(1, std::min(slots, omp_get_max_threads()));
}

}  // namespace

int64_t attention_scratch_floats(int N) {
  return int64_t(std::max(N, kQueryBlock)) * N;
}

void attention_forward(float* out, float* att, float* scratch, int slots, const float* qkv, int B,
                       int N, int D, int H) {
  const int Dh = D / H;
  const int row = 3 * D;  // stride between tokens in qkv
  const float scale = 1.0f / std::sqrt(float(Dh));
#pragma omp parallel for collapse(2) schedule(static) num_threads(task_threads(slots))
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      const float* q = qkv + int64_t(b) * N * row + h * Dh;
      const float* k = q + D;
      const float* v = q + 2 * D;
      float* o = out + int64_t(b) * N * D + h * Dh;
      if (att) {
        // Training: all N query rows at once, the probabilities kept for the backward.
        float* a = att + (int64_t(b) * H + h) * N * N;
        gemm(false, true, N, N, Dh, scale, q, row, k, row, 0.0f, a, N);
        softmax_rows(a, N, N);
        gemm(false, false, N, Dh, N, 1.0f, a, N, v, row, 0.0f, o, D);
      } else {
        // Inference: tiles of query rows, so the scores never take more than kQueryBlock x N.
        float* s = scratch + omp_get_thread_num() * attention_scratch_floats(N);
        for (int i0 = 0; i0 < N; i0 += kQueryBlock) {
          const int m = std::min(kQueryBlock, N - i0);
          gemm(false, true, m, N, Dh, scale, q + int64_t(i0) * row, row, k, row, 0.0f, s, N);
          softmax_rows(s, m, N);
          gemm(false, false, m, Dh, N, 1.0f, s, N, v, row, 0.0f, o + int64_t(i0) * D, D);
        }
      }
    }
  }
}

void attention_backward(float* dqkv, float* scratch, int slots, const float* dout, const float* qkv,
                        const float* att, const float* out, int B, int N, int D, int H) {
  const int Dh = D / H;
  const int row = 3 * D;
  const float scale = 1.0f / std::sqrt(float(Dh));
#pragma omp parallel for collapse(2) schedule(static) num_threads(task_threads(slots))
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      const int64_t base = int64_t(b) * N * row + h * Dh;
      const float* q = qkv + base;
      const float* k = q + D;
      const float* v = q + 2 * D;
      float* dq = dqkv + base;
      float* dk = dq + D;
      float* dv = dq + 2 * D;
      const float* a = att + (int64_t(b) * H + h) * N * N;
      const float* g = dout + int64_t(b) * N * D + h * Dh;
      const float* o = out + int64_t(b) * N * D + h * Dh;
      float* ds = scratch + omp_get_thread_num() * attention_scratch_floats(N);
      gemm(true, false, N, Dh, N, 1.0f, a, N, g, D, 0.0f, dv, row);  // dV = A^T dO
      gemm(false, true, N, N, Dh, 1.0f, g, D, v, row, 0.0f, ds, N);  // dA = dO V^T
      for (int i = 0; i < N; ++i) {
        float delta = 0.0f;  // sum_j A_ij dA_ij, computed as dO_i . O_i
        for (int d = 0; d < Dh; ++d) delta += g[int64_t(i) * D + d] * o[int64_t(i) * D + d];
        float* r = ds + int64_t(i) * N;
        const float* ar = a + int64_t(i) * N;
#pragma omp simd
        for (int j = 0; j < N; ++j) r[j] = ar[j] * (r[j] - delta) * scale;
      }
      gemm(false, false, N, Dh, N, 1.0f, ds, N, k, row, 0.0f, dq, row);  // dQ = dS K
      gemm(true, false, N, Dh, N, 1.0f, ds, N, q, row, 0.0f, dk, row);   // dK = dS^T Q
    }
  }
}

}  // namespace vit::ops
