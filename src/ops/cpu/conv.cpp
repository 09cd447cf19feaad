// Convolutions as im2col and one GEMM (the model's linear ops): im2col gathers each output
// position's receptive field into a row (every position, or patch dropout's kept patches'), col2im
// is its adjoint. The patch embedding is the case kernel = stride = P with no padding; the
// convolutional stem's 3 x 3, stride-2 layer another.
#include <algorithm>

#include "ops/cpu/kernels.hpp"

namespace vit::ops::VIT_ISA_NS {
namespace {

// Where input element (b, c, y, x) lives, for either layout of ConvGeom.
struct InputIndex {
  int64_t b, c, y, x;
  explicit InputIndex(const ConvGeom& g) {
    const int64_t S = g.S, C = g.C;
    b = C * S * S;
    c = g.channels_last ? 1 : S * S;
    y = g.channels_last ? S * C : S;
    x = g.channels_last ? C : 1;
  }
};

// Output position (gy, gx) of im2col's row r, and its image.
struct Position {
  int b, gy, gx;
};
Position position(const ConvGeom& g, int64_t r) {
  const int G = g.G();
  if (!g.keep) {
    const int64_t per = int64_t(G) * G;
    const int64_t i = r % per;
    return {int(r / per), int(i / G), int(i % G)};
  }
  const int ps = g.ps, blocks = G / ps;                              // patches a side
  const int64_t per_patch = int64_t(ps) * ps, kept = r / per_patch;  // b * count + j
  const int i = int(r % per_patch), p = g.keep[kept];
  return {int(kept / g.count), p / blocks * ps + i / ps, p % blocks * ps + i % ps};
}

}  // namespace

void im2col(const Context& ctx, float* cols, const float* in, const ConvGeom& g) {
  const int k = g.k, K = g.cols();
  const InputIndex at(g);
  // cols[r, (c*k + ky)*k + kx] = in(b, c, gy*stride + ky - pad, gx*stride + kx - pad) for row r's
  // position (b, gy, gx), 0 where that falls outside the image.
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int64_t r = 0; r < g.rows(); ++r) {
    const Position o = position(g, r);
    float* col = cols + r * K;
    for (int c = 0; c < g.C; ++c) {
      for (int ky = 0; ky < k; ++ky) {
        const int y = o.gy * g.stride + ky - g.pad;
        for (int kx = 0; kx < k; ++kx) {
          const int x = o.gx * g.stride + kx - g.pad;
          const bool inside = y >= 0 && y < g.S && x >= 0 && x < g.S;
          col[(c * k + ky) * k + kx] =
              inside ? in[o.b * at.b + c * at.c + y * at.y + x * at.x] : 0.0f;
        }
      }
    }
  }
}

void col2im(const Context& ctx, float* din, const float* dcols, const ConvGeom& g) {
  const int k = g.k, K = g.cols();
  const InputIndex at(g);
  const int64_t per_image = g.rows() / g.B;  // rows are image-major in either order
  // Each image by one thread, its rows and taps in one fixed order: overlapping receptive fields
  // sum the same way on any number of threads.
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < g.B; ++b) {
    float* dimg = din + b * at.b;
    std::fill(dimg, dimg + at.b, 0.0f);
    for (int64_t r = b * per_image; r < (b + 1) * per_image; ++r) {
      const Position o = position(g, r);
      const float* col = dcols + r * K;
      for (int c = 0; c < g.C; ++c) {
        for (int ky = 0; ky < k; ++ky) {
          const int y = o.gy * g.stride + ky - g.pad;
          if (y < 0 || y >= g.S) continue;
          for (int kx = 0; kx < k; ++kx) {
            const int x = o.gx * g.stride + kx - g.pad;
            if (x < 0 || x >= g.S) continue;
            dimg[c * at.c + y * at.y + x * at.x] += col[(c * k + ky) * k + kx];
          }
        }
      }
    }
  }
}

}  // namespace vit::ops::VIT_ISA_NS
