// Weights converted once for inference (packed.hpp): bf16 rounding and the bf16 GEMM's panels.
#include "ops/packed.hpp"

#include <cstring>

namespace vit::ops {

uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN, kept quiet
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return uint16_t(u >> 16);
}

float from_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

void PackedWeights::add_bf16(const float* w, int O, int I) {
  constexpr int kCols = 32;  // columns of op(B) per panel: two AVX-512 registers of 16 pairs
  const int panels = (O + kCols - 1) / kCols, pairs = (I + 1) / 2;
  Entry e;
  e.O = O;
  e.I = I;
  e.data.assign(size_t(panels) * pairs * kCols * 2, 0);
  for (int o = 0; o < O; ++o) {
    const float* row = w + int64_t(o) * I;
    uint16_t* out = e.data.data() + size_t(o / kCols) * pairs * kCols * 2 + (o % kCols) * 2;
    for (int k = 0; k < I; ++k) out[size_t(k / 2) * kCols * 2 + k % 2] = to_bf16(row[k]);
  }
  entries[w] = std::move(e);
}

size_t PackedWeights::bytes() const {
  size_t n = 0;
  for (const auto& [w, e] : entries) n += e.data.size() * sizeof(uint16_t);
  return n;
}

Bf16Panels find_bf16(const PackedWeights* packs, const float* w) {
  if (!packs) return {};
  const auto it = packs->entries.find(w);
  if (it == packs->entries.end()) return {};
  return {it->second.data.data(), it->second.O, it->second.I};
}

}  // namespace vit::ops
