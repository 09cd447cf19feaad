// Linear layers as GEMMs with the transpose flags doing the layout work (weights [O, I]) and the
// bias added by the GEMM.
#include "ops/cpu/kernels.hpp"

namespace vit::ops::VIT_ISA_NS {

void linear_forward(const Context& ctx, float* out, const float* x, const float* w, const float* b,
                    int64_t R, int I, int O) {
  gemm(ctx, false, true, int(R), O, I, 1.0f, x, I, w, I, 0.0f, out, O, b);
}

void linear_backward(const Context& ctx, float* dx, float* dw, float* db, const float* dout,
                     LayerInput x, const float* w, int64_t R, int I, int O) {
  weight_grad(ctx, dw, db, dout, x, R, I, O);
  if (dx) gemm(ctx, false, false, int(R), I, O, 1.0f, dout, O, w, I, 0.0f, dx, I);
}

void linear_residual_norm_forward(const Context& ctx, float* out, float* ln, float* mean,
                                  float* rstd, const float* x, const float* w, const float* b,
                                  const float* residual, const float* ln_w, const float* ln_b,
                                  int64_t R, int I, int O, float eps) {
  Epilogue e;
  e.kind = Epilogue::kResidualNorm;
  // In place (residual == out): the GEMM adds onto out itself, the epilogue only normalises.
  const bool in_place = residual == out;
  e.residual = in_place ? nullptr : residual;
  e.norm = ln;
  e.mean = mean;
  e.rstd = rstd;
  e.norm_w = ln_w;
  e.norm_b = ln_b;
  e.eps = eps;
  e.ld = O;
  gemm(ctx, false, true, int(R), O, I, 1.0f, x, I, w, I, in_place ? 1.0f : 0.0f, out, O, b, e);
}

void linear_gelu_forward(const Context& ctx, float* g, float* slope, const float* x, const float* w,
                         const float* b, int64_t R, int I, int O) {
  Epilogue e;
  e.kind = Epilogue::kGelu;
  e.out = g;  // over the pre-activation, while each tile is in cache
  e.slope = slope;
  // A slope larger than the cores' L2 caches is written past the caches: at tiny28's batch 128
  // (6.5 MB a block) this measured +4-8% on a training step; at batch 32 (1.6 MB), where the
  // backward finds it still cached, streaming cost 5%.
  constexpr int64_t kStreamBytes = int64_t(4) << 20;
  e.stream = R * O * int64_t(sizeof(float)) > kStreamBytes;
  e.ld = O;
  gemm(ctx, false, true, int(R), O, I, 1.0f, x, I, w, I, 0.0f, g, O, b, e);
}

void linear_backward_gelu(const Context& ctx, float* dh, float* dw, float* db, const float* dout,
                          LayerInput g, const float* w, const float* slope, int64_t R, int I,
                          int O) {
  linear_backward(ctx, nullptr, dw, db, dout, g, w, R, I,
                  O);  // dw, db: those of a plain linear on g
  Epilogue e;
  e.kind = Epilogue::kScale;
  e.scale = slope;
  e.ld = I;
  gemm(ctx, false, false, int(R), I, O, 1.0f, dout, O, w, I, 0.0f, dh, I, nullptr, e);
}

}  // namespace vit::ops::VIT_ISA_NS
