// Image resampling kernels: one fixed-point pass of Pillow's 8-bit resize down an image's rows,
// and a blocked 8-bit transpose (which turns a pass across rows into one down them). Integer
// arithmetic, so every instruction-set variant writes the same bytes; the loops over a row are
// plain C++ that each variant's compiler flags vectorise (AVX2: 8 products a multiply). Measured
// (vit bench --data on 500x375 JPEGs, random resized crops to 224, 1 thread, 2026-12-03): see
// docs/PERFORMANCE.md "The input pipeline".
#include <emmintrin.h>

#include <algorithm>

#include "ops/cpu/kernels.hpp"

namespace vit::ops::VIT_ISA_NS {

void resample_down_u8(const Context&, uint8_t* out, int64_t out_ld, const uint8_t* in,
                      int64_t in_ld, int W, int O, const int* lo, const int* n, const int32_t* k,
                      int ksize) {
  constexpr int kBlock = 256;  // accumulators of a block of columns stay in L1
  int32_t acc[kBlock];
  for (int x0 = 0; x0 < W; x0 += kBlock) {
    const int w = std::min(kBlock, W - x0);
    for (int o = 0; o < O; ++o) {
      for (int x = 0; x < w; ++x) acc[x] = 1 << 21;
      const int32_t* ko = k + int64_t(o) * ksize;
      for (int t = 0; t < n[o]; ++t) {
        const uint8_t* __restrict src = in + int64_t(lo[o] + t) * in_ld + x0;
        const int32_t kt = ko[t];
#pragma omp simd
        for (int x = 0; x < w; ++x) acc[x] += int32_t(src[x]) * kt;
      }
      uint8_t* __restrict dst = out + int64_t(o) * out_ld + x0;
#pragma omp simd
      for (int x = 0; x < w; ++x) dst[x] = uint8_t(std::clamp(acc[x] >> 22, 0, 255));
    }
  }
}

namespace {

// The 16 x 16 bytes at in (row stride in_ld) transposed to out (row stride out_ld): four rounds of
// interleaving (bytes, then pairs, quads and halves), SSE2's unpack instructions, in every variant.
void transpose_16x16(uint8_t* out, int64_t out_ld, const uint8_t* in, int64_t in_ld) {
  __m128i r[16], t[16];
  for (int i = 0; i < 16; ++i) {
    r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i * in_ld));
  }
  for (int i = 0; i < 8; ++i) {  // rows 2i, 2i+1 byte-interleaved
    t[2 * i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // rows 4i..4i+3 as 16-bit pairs
    for (int j = 0; j < 2; ++j) {
      r[4 * i + 2 * j] = _mm_unpacklo_epi16(t[4 * i + j], t[4 * i + 2 + j]);
      r[4 * i + 2 * j + 1] = _mm_unpackhi_epi16(t[4 * i + j], t[4 * i + 2 + j]);
    }
  }
  for (int i = 0; i < 2; ++i) {  // rows 8i..8i+7 as 32-bit quads
    for (int j = 0; j < 4; ++j) {
      t[8 * i + 2 * j] = _mm_unpacklo_epi32(r[8 * i + j], r[8 * i + 4 + j]);
      t[8 * i + 2 * j + 1] = _mm_unpackhi_epi32(r[8 * i + j], r[8 * i + 4 + j]);
    }
  }
  for (int j = 0; j < 8; ++j) {  // all 16 rows as 64-bit halves
    r[2 * j] = _mm_unpacklo_epi64(t[j], t[8 + j]);
    r[2 * j + 1] = _mm_unpackhi_epi64(t[j], t[8 + j]);
  }
  // Register i now holds column i (tests/test_transforms.cpp checks against the definition).
  for (int i = 0; i < 16; ++i) _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i * out_ld), r[i]);
}

}  // namespace

void transpose_u8(const Context&, uint8_t* out, int64_t out_ld, const uint8_t* in, int64_t in_ld,
                  int R, int W) {
  constexpr int kTile = 16;
  const int R16 = R - R % kTile, W16 = W - W % kTile;
  for (int y0 = 0; y0 < R16; y0 += kTile) {
    for (int x0 = 0; x0 < W16; x0 += kTile) {
      transpose_16x16(out + int64_t(x0) * out_ld + y0, out_ld, in + int64_t(y0) * in_ld + x0,
                      in_ld);
    }
  }
  // The edges: the columns past W16 for every row, and the rows past R16 for the rest.
  for (int x = W16; x < W; ++x) {
    for (int y = 0; y < R; ++y) out[int64_t(x) * out_ld + y] = in[int64_t(y) * in_ld + x];
  }
  for (int x = 0; x < W16; ++x) {
    for (int y = R16; y < R; ++y) out[int64_t(x) * out_ld + y] = in[int64_t(y) * in_ld + x];
  }
}

}  // namespace vit::ops::VIT_ISA_NS
