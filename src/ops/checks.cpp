// Input checks of the ops that are compiled once, not per instruction set: they build messages
// (std::string), which the kernel variants must not instantiate (see src/ops/dispatch.cpp).
#include <cmath>
#include <string>

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

}  // namespace vit::ops
