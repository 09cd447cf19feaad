// An in-register kLanes x kLanes transpose (16 x 16 for AVX-512, 8 x 8 for AVX2) for the vector
// kernels: attention's K^T and V^T, GEMM's packing of transposed weights.
#pragma once

#include "ops/cpu/simd.hpp"

#if VIT_SIMD
namespace vit::ops::VIT_ISA_NS {

// GCC 12 reports the intrinsics' own undefined pass-through operand (`__m512 __Y = __Y;`) as
// (maybe) uninitialized once this is inlined into some callers: a false positive. (Clang, which
// builds the fuzzers, has no such warning.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#if defined(__AVX512F__)
// r[c] = column c of the 16 x 16 block whose rows are r[0..15], in registers: each step swaps
// ever larger sub-blocks (single floats, pairs, 128-bit lanes, then 256-bit halves) across a pair
// of rows, 64 shuffles for 256 floats.
inline void transpose(__m512 (&r)[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  auto pd = [](__m512 x) { return _mm512_castps_pd(x); };
  for (int i = 0; i < 4; ++i) {
    const int b = 4 * i;
    r[b] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[b]), pd(t[b + 2])));
    r[b + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[b]), pd(t[b + 2])));
    r[b + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(t[b + 1]), pd(t[b + 3])));
    r[b + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(t[b + 1]), pd(t[b + 3])));
  }
  for (int i = 0; i < 2; ++i) {
    for (int c = 0; c < 4; ++c) {
      t[8 * i + c] = _mm512_shuffle_f32x4(r[8 * i + c], r[8 * i + 4 + c], 0x88);
      t[8 * i + 4 + c] = _mm512_shuffle_f32x4(r[8 * i + c], r[8 * i + 4 + c], 0xdd);
    }
  }
  for (int c = 0; c < 8; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
  }
}
#else
// r[c] = column c of the 8 x 8 block whose rows are r[0..7]: the same steps at 8 lanes (floats,
// pairs, then 128-bit halves), 24 shuffles for 64 floats.
inline void transpose(__m256 (&r)[8]) {
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  auto pd = [](__m256 x) { return _mm256_castps_pd(x); };
  for (int i = 0; i < 2; ++i) {
    const int b = 4 * i;
    r[b] = _mm256_castpd_ps(_mm256_unpacklo_pd(pd(t[b]), pd(t[b + 2])));
    r[b + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(pd(t[b]), pd(t[b + 2])));
    r[b + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(pd(t[b + 1]), pd(t[b + 3])));
    r[b + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(pd(t[b + 1]), pd(t[b + 3])));
  }
  for (int c = 0; c < 4; ++c) {
    t[c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x20);
    t[4 + c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x31);
  }
  for (int c = 0; c < 8; ++c) r[c] = t[c];
}
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace vit::ops::VIT_ISA_NS
#endif
