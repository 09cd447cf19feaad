// Column sums over rows, used by every bias and LayerNorm-parameter gradient.
#include <algorithm>

#include "ops/cpu/kernels.hpp"

namespace vit::ops::VIT_ISA_NS {

// Columns are split into blocks of 16 (one AVX-512 register); each block is owned by one thread
// and summed over the rows in order, so the sum is bitwise independent of the thread count.
void colsum_accumulate(const Context& ctx, float* dst, const float* src, int64_t R, int D) {
  constexpr int kBlock = 16;
  const int nblocks = (D + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (R * D > 32768) num_threads(ctx.threads)
  for (int blk = 0; blk < nblocks; ++blk) {
    const int j0 = blk * kBlock;
    const int w = std::min(kBlock, D - j0);
    float acc[kBlock] = {};
    for (int64_t r = 0; r < R; ++r) {
      const float* row = src + r * D + j0;
      for (int j = 0; j < w; ++j) acc[j] += row[j];
    }
    for (int j = 0; j < w; ++j) dst[j0 + j] += acc[j];
  }
}

}  // namespace vit::ops::VIT_ISA_NS
