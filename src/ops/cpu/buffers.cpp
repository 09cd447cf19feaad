// Whole-buffer ops on gradient memory: zeroing, and copying or adding one buffer into another.
// Each element is written by one thread, the same way whatever the thread count.
#include <algorithm>
#include <cstring>

#include "ops/cpu/kernels.hpp"

namespace vit::ops::VIT_ISA_NS {

namespace {
constexpr int64_t kChunk = 4096;
}  // namespace

void fill_zero(const Context& ctx, float* x, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (ctx.threads > 1) num_threads(ctx.threads)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t j0 = c * kChunk;
    std::memset(x + j0, 0, size_t(std::min(kChunk, n - j0)) * sizeof(float));
  }
}

void add_into(const Context& ctx, float* dst, const float* src, int64_t n, bool copy) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (ctx.threads > 1) num_threads(ctx.threads)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t j0 = c * kChunk, len = std::min(kChunk, n - j0);
    if (copy) {
      std::memcpy(dst + j0, src + j0, size_t(len) * sizeof(float));
    } else {
#pragma omp simd
      for (int64_t j = j0; j < j0 + len; ++j) dst[j] += src[j];
    }
  }
}

}  // namespace vit::ops::VIT_ISA_NS
