// Per-thread scratch memory for the CPU kernels (GEMM's packed panels, LayerNorm's partial sums),
// grown on first use of each size and then reused; defined once in src/ops/shared.cpp for every
// instruction-set variant.
#pragma once

#include <cstddef>

namespace vit::ops {

enum ScratchSlot { kScratchGemm, kScratchLayerNorm, kScratchSlots };

// At least `floats` floats that belong to the calling thread and this slot until its next call
// with the same slot.
float* thread_scratch(ScratchSlot slot, size_t floats);

}  // namespace vit::ops
