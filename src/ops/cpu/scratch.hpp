// Scratch memory for the CPU kernels (GEMM's packed panels, LayerNorm's partial sums, attention's
// transposed heads and score rows, the positions' readers), taken from the op's context
// (ops::Context): one set per thread of the context, each region grown on first use of a size and
// then reused. Defined once in src/ops/shared.cpp for every instruction-set variant.
#pragma once

#include <cstddef>

#include "ops/ops.hpp"

namespace vit::ops {

enum ScratchSlot {
  kScratchGemm,
  kScratchGemmPartial,
  kScratchGemmRows,
  kScratchLayerNorm,
  kScratchAttention,
  kScratchTokens,  // pos_add_backward's lists of each position's readers
  kScratchSlots
};

// At least `floats` floats of ctx's scratch for `slot` that belong to the calling thread until its
// next call with the same slot: with ctx.threads > 1, those of the calling thread's number in the
// op's parallel region (0 outside it); with one thread, those of ctx.thread.
float* scratch(const Context& ctx, ScratchSlot slot, size_t floats);

}  // namespace vit::ops
