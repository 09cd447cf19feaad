// What the CPU kernel variants share, compiled once (not per instruction set): the loss input
// check and each thread's scratch buffers. Both use the standard library's containers, which the
// variants must not instantiate themselves (see src/ops/dispatch.cpp).
#include <cmath>
#include <string>
#include <vector>

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

float* thread_scratch(ScratchSlot slot, size_t floats) {
  thread_local std::vector<float> buffers[kScratchSlots];
  std::vector<float>& b = buffers[slot];
  if (b.size() < floats) b.resize(floats);
  return b.data();
}

}  // namespace vit::ops
