// Weights converted for the GEMM, found by the address of their fp32 weight: each linear layer's
// w [O, I] as bf16 panels in a copy (the layout ops.hpp's Bf16Panels describes: once for
// inference, each step for training in bf16), or as fp32 panels rearranged in w's own memory
// (F32Panels). A model owns them and points its contexts at them (ops::Context::packed).
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
  // The bf16 copies' memory: their elements left uninitialised (add_bf16 writes every one: the
  // zeros a std::vector would write first cost a pass over the memory), a large copy in
  // transparent huge pages (core/arena.hpp's allocate_huge: 512 times fewer page faults).
  template <typename T>
  struct CopyMemory {
    using value_type = T;
    CopyMemory() = default;
    template <typename U>
    CopyMemory(const CopyMemory<U>&) {}
    T* allocate(size_t n);
    void deallocate(T* p, size_t) noexcept;
    template <typename U>
    void construct(U* p) noexcept {
      ::new (static_cast<void*>(p)) U;
    }
    template <typename U>
    bool operator==(const CopyMemory<U>&) const {
      return true;
    }
  };
  struct Entry {
    std::vector<uint16_t, CopyMemory<uint16_t>> data;    // bf16 panels of w^T (add_bf16)
    std::vector<uint16_t, CopyMemory<uint16_t>> data_t;  // and of w (add_bf16_training)
    float* f32 = nullptr;                                // w itself, holding fp32 panels (pack_f32)
    int O = 0, I = 0, width = 0;
    void (*unpack)(float*, const float*, int, int) = nullptr;  // puts f32 back
  };
  PackedWeights() = default;
  PackedWeights(const PackedWeights&) = delete;
  PackedWeights& operator=(const PackedWeights&) = delete;
  // Puts every weight packed in place back as it was (restore()).
  ~PackedWeights();

  // Converts w [O, I] into a bf16 copy (replacing an earlier conversion at the same address). With
  // values, w's values are read from there instead (w's memory is not touched: it is the key).
  void add_bf16(const float* w, int O, int I, const float* values = nullptr);
  // Training in bf16: w [O, I] converted both ways, as op(B) = w^T (the forward's x w^T) and as
  // op(B) = w (the input gradient's dout w), in the memory of an earlier conversion of the same
  // shape. Made again each step, from the weights as the optimizer left them.
  void add_bf16_training(const float* w, int O, int I);
  // Rearranges w [O, I] in place into the fp32 panels of the kernels whose gemm_panel_width is
  // width (pack and unpack: their gemm_pack_weight and gemm_unpack_weight; O a multiple of width;
  // vit::Error if w is packed already). A permutation: restore() gives back the same bits.
  using PackFn = void (*)(float*, const float*, int, int);
  void pack_f32(float* w, int O, int I, int width, PackFn pack, PackFn unpack);
  // Every weight pack_f32 rearranged back to [O, I], and their entries dropped.
  void restore();
  // Drops the in-place entries without rearranging the weights back (their memory is about to
  // be freed).
  void forget();
  size_t bytes() const;  // of the bf16 copies
  std::unordered_map<const float*, Entry> entries;
};

}  // namespace vit::ops
