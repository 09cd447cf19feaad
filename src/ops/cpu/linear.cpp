// Linear layers as GEMMs with the transpose flags doing the layout work (weights [O, I]).
#include "ops/ops.hpp"

namespace vit::ops {

void linear_forward(float* out, const float* x, const float* w, const float* b, int64_t R, int I,
                    int O) {
  // out = bias broadcast, then out += x @ w^T in the GEMM (beta = 1): one pass over out.
  float beta = 0.0f;
  if (b) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      float* o = out + r * O;
      for (int j = 0; j < O; ++j) o[j] = b[j];
    }
    beta = 1.0f;
  }
  gemm(false, true, int(R), O, I, 1.0f, x, I, w, I, beta, out, O);
}

void linear_backward(float* dx, float* dw, float* db, const float* dout, const float* x,
                     const float* w, int64_t R, int I, int O) {
  if (dx) gemm(false, false, int(R), I, O, 1.0f, dout, O, w, I, 0.0f, dx, I);
  if (dw) gemm(true, false, O, I, int(R), 1.0f, dout, O, x, I, 1.0f, dw, I);
  if (db) colsum_accumulate(db, dout, R, O);
}

}  // namespace vit::ops
