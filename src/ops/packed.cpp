// Weights converted for the GEMM (packed.hpp): bf16 rounding, the bf16 GEMM's panels (inference's
// and training's) and the fp32 GEMM's panels in place.
#include "ops/packed.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "core/arena.hpp"
#include "vit/error.hpp"

namespace vit::ops {

namespace {
// A copy of at least this many bytes lives in huge pages (allocate_huge), a smaller one on the
// heap.
constexpr size_t kHugeCopy = 2 * kHuge;
}  // namespace

template <typename T>
T* PackedWeights::CopyMemory<T>::allocate(size_t n) {
  const size_t bytes = n * sizeof(T);
  void* p = bytes >= kHugeCopy ? allocate_huge(bytes) : std::malloc(std::max<size_t>(bytes, 1));
  if (!p) throw std::bad_alloc();
  return static_cast<T*>(p);
}

template <typename T>
void PackedWeights::CopyMemory<T>::deallocate(T* p, size_t n) noexcept {
  if (n * sizeof(T) >= kHugeCopy) {
    free_huge(p, n * sizeof(T));
  } else {
    std::free(p);
  }
}

template struct PackedWeights::CopyMemory<uint16_t>;

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

void PackedWeights::add_bf16(const float* w, int O, int I, const float* values) {
  const auto it = entries.find(w);
  if (it != entries.end() && it->second.f32) {
    throw Error("add_bf16: the weight is packed in place in fp32; restore() it first");
  }
  Entry e;
  e.O = O;
  e.I = I;
  e.data.resize(size_t(bf16_panels_size(I, O)));  // not cleared: bf16_panels writes every value
  bf16_panels(e.data.data(), values ? values : w, I, true, I, O);
  entries[w] = std::move(e);
}

void PackedWeights::add_bf16_training(const float* w, int O, int I) {
  Entry& e = entries[w];
  if (e.f32)
    throw Error("add_bf16_training: the weight is packed in place in fp32; restore() it first");
  e.O = O;
  e.I = I;
  e.data.resize(size_t(bf16_panels_size(I, O)));
  e.data_t.resize(size_t(bf16_panels_size(O, I)));
  bf16_panels(e.data.data(), w, I, true, I, O);
  bf16_panels(e.data_t.data(), w, I, false, O, I);
}

PackedWeights::~PackedWeights() {
  restore();
}

void PackedWeights::pack_f32(float* w, int O, int I, int width, PackFn pack, PackFn unpack) {
  if (entries.count(w) || width <= 0 || O % width != 0) {
    throw Error("pack_f32: a weight [" + std::to_string(O) + ", " + std::to_string(I) +
                "] cannot be packed in panels of " + std::to_string(width) +
                " columns (or it is packed already)");
  }
  const std::vector<float> rows(w, w + int64_t(O) * I);
  pack(w, rows.data(), O, I);
  Entry e;
  e.f32 = w;
  e.O = O;
  e.I = I;
  e.width = width;
  e.unpack = unpack;
  entries[w] = std::move(e);
}

void PackedWeights::restore() {
  for (auto it = entries.begin(); it != entries.end();) {
    Entry& e = it->second;
    if (!e.f32) {
      ++it;
      continue;
    }
    const std::vector<float> panels(e.f32, e.f32 + int64_t(e.O) * e.I);
    e.unpack(e.f32, panels.data(), e.O, e.I);
    it = entries.erase(it);
  }
}

void PackedWeights::forget() {
  std::erase_if(entries, [](const auto& kv) { return kv.second.f32 != nullptr; });
}

size_t PackedWeights::bytes() const {
  size_t n = 0;
  for (const auto& [w, e] : entries) n += (e.data.size() + e.data_t.size()) * sizeof(uint16_t);
  return n;
}

Bf16Panels find_bf16(const PackedWeights* packs, const float* w, bool trans_b) {
  if (!packs) return {};
  const auto it = packs->entries.find(w);
  if (it == packs->entries.end() || it->second.f32) return {};
  const auto& data = trans_b ? it->second.data : it->second.data_t;
  if (data.empty()) return {};
  return {data.data(), it->second.O, it->second.I};
}

F32Panels find_f32(const PackedWeights* packs, const float* w) {
  if (!packs) return {};
  const auto it = packs->entries.find(w);
  if (it == packs->entries.end() || !it->second.f32) return {};
  return {it->second.f32, it->second.O, it->second.I, it->second.width};
}

}  // namespace vit::ops
