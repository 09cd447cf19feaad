// Weights converted once for inference: each linear layer's w [O, I] as bf16 panels (the layout
// ops.hpp's Bf16Panels describes), found by the address of its fp32 weight. A model owns one and
// points its inference context at it (ops::Context::packed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "ops/ops.hpp"

namespace vit::ops {

// x rounded to the nearest bf16 (ties to even; a NaN stays a NaN), as AVX512-BF16's VCVTNE2PS2BF16
// rounds.
uint16_t to_bf16(float x);
float from_bf16(uint16_t h);

struct PackedWeights {
  struct Entry {
    std::vector<uint16_t> data;
    int O = 0, I = 0;
  };
  // Converts w [O, I] (replacing an earlier conversion at the same address).
  void add_bf16(const float* w, int O, int I);
  size_t bytes() const;
  std::unordered_map<const float*, Entry> entries;
};

}  // namespace vit::ops
