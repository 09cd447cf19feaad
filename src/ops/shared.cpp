// What the CPU kernel variants share, compiled once (not per instruction set): the loss input
// check and the contexts' scratch buffers (CpuContext). Both use the standard library's containers,
// which the variants must not instantiate themselves (see src/ops/dispatch.cpp).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ops/context.hpp"
#include "ops/cpu/scratch.hpp"
#include "ops/ops.hpp"
#include "vit/error.hpp"

namespace vit::ops {

void check_loss_inputs(const int32_t* labels, int B, int K, float smoothing) {
  VIT_CHECK(std::isfinite(smoothing) && smoothing >= 0.0f && smoothing < 1.0f,
            "label smoothing must be in [0, 1) (got " + std::to_string(smoothing) + ")");
  for (int b = 0; b < B; ++b) {
    VIT_CHECK(labels[b] >= 0 && labels[b] < K,
              "label " + std::to_string(labels[b]) + " of sample " + std::to_string(b) +
                  " is outside [0, " + std::to_string(K) + "); the model has " + std::to_string(K) +
                  " classes");
  }
}

void throw_error(const char* message) {
  throw Error(message);
}

void check_bf16_depth(const char* what, int64_t R) {
  VIT_CHECK(R < (int64_t(1) << 30), std::string(what) + ": " + std::to_string(R) +
                                        " rows are too many for bf16's products");
}

void throw_packed_mismatch(int O, int I, int width) {
  throw Error("gemm: a weight [" + std::to_string(O) + ", " + std::to_string(I) +
              "] packed in place in panels of " + std::to_string(width) +
              " is asked for a product these kernels cannot run on them; restore it first");
}

CpuContext::CpuContext() : scratch_(std::make_unique<ScratchSet>()) {}

Context CpuContext::with_threads(int threads) {
  threads = std::max(1, threads);
  const size_t regions = size_t(threads) * kScratchSlots;
  if (scratch_->regions.size() < regions) scratch_->regions.resize(regions);
  return Context{threads, scratch_.get(), 0};
}

float* scratch(const Context& ctx, ScratchSlot slot, size_t floats) {
  const size_t t = size_t(ctx.threads > 1 ? omp_get_thread_num() : ctx.thread);
  std::vector<float>& b = ctx.scratch->regions[t * kScratchSlots + slot];
  if (b.size() < floats) b.resize(floats);
  return b.data();
}

}  // namespace vit::ops
