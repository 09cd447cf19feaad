// Patch embedding: im2col of non-overlapping P x P patches, then one GEMM (a Conv2d with
// kernel = stride = P, weight [D, C, P, P]).
#include "ops/cpu/kernels.hpp"

namespace vit::ops::VIT_ISA_NS {

void patch_embed_forward(const Context& ctx, float* out, float* cols, const float* images,
                         const float* weight, const float* bias, int B, int C, int S, int P,
                         int D) {
  const int G = S / P, Np = G * G, K = C * P * P;
  // cols[(b*Np + gy*G + gx), c*P*P + ky*P + kx] = images[b, c, gy*P + ky, gx*P + kx]
#pragma omp parallel for collapse(2) schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < B; ++b) {
    for (int gy = 0; gy < G; ++gy) {
      for (int gx = 0; gx < G; ++gx) {
        float* col = cols + (int64_t(b) * Np + gy * G + gx) * K;
        for (int c = 0; c < C; ++c) {
          const float* src = images + ((int64_t(b) * C + c) * S + gy * P) * S + gx * P;
          for (int ky = 0; ky < P; ++ky) {
            for (int kx = 0; kx < P; ++kx) col[(c * P + ky) * P + kx] = src[ky * S + kx];
          }
        }
      }
    }
  }
  linear_forward(ctx, out, cols, weight, bias, int64_t(B) * Np, K, D);
}

void patch_embed_backward(const Context& ctx, float* dimages, float* dweight, float* dbias,
                          const float* dout, const float* cols, const float* weight, int B, int C,
                          int S, int P, int D) {
  const int G = S / P, Np = G * G, K = C * P * P;
  const int64_t R = int64_t(B) * Np;
  linear_backward(ctx, nullptr, dweight, dbias, dout, cols, weight, R, K, D);
  if (!dimages) return;
    // dimages[b, c, gy*P + ky, gx*P + kx] = (dout @ weight)[b*Np + gy*G + gx, c*P*P + ky*P + kx],
    // computed one patch row at a time to need no [R, K] scratch.
#pragma omp parallel for collapse(2) schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < B; ++b) {
    for (int gy = 0; gy < G; ++gy) {
      for (int gx = 0; gx < G; ++gx) {
        const float* g = dout + (int64_t(b) * Np + gy * G + gx) * D;
        for (int c = 0; c < C; ++c) {
          for (int ky = 0; ky < P; ++ky) {
            float* dst = dimages + ((int64_t(b) * C + c) * S + gy * P + ky) * S + gx * P;
            for (int kx = 0; kx < P; ++kx) {
              const int k = (c * P + ky) * P + kx;
              float acc = 0.0f;
              for (int d = 0; d < D; ++d) acc += g[d] * weight[int64_t(d) * K + k];
              dst[kx] = acc;
            }
          }
        }
      }
    }
  }
}

}  // namespace vit::ops::VIT_ISA_NS
