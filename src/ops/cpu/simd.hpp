// The vector registers the CPU kernels are written on, for the instruction set this file is
// compiled for (src/ops/cpu is compiled once per set, CMakeLists.txt): 16 floats of AVX-512, 8 of
// AVX2 + FMA, or none (VIT_SIMD 0: the kernels' plain loops). The kernels use these few functions
// and kLanes, so one source serves both widths with the same structure: their register tiles are
// sized from kLanes and the register count (32 zmm, 16 ymm).
//
// Masks select the first n lanes (loads give 0 in the others; stores leave them alone); comparisons
// give a Cmp for select().
#pragma once

#include <cstdint>

#ifndef VIT_ISA_NS
#error "src/ops/cpu is compiled once per instruction set, with VIT_ISA_NS set (CMakeLists.txt)"
#endif

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define VIT_SIMD 1
#else
#define VIT_SIMD 0
#endif

namespace vit::ops::VIT_ISA_NS::simd {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr int kRegisters = 32;
using Vec = __m512;
using VecI = __m512i;
using Mask = __mmask16;
using Cmp = __mmask16;

inline Vec zero() {
  return _mm512_setzero_ps();
}
inline Vec set1(float x) {
  return _mm512_set1_ps(x);
}
inline Vec load(const float* p) {
  return _mm512_loadu_ps(p);
}
inline void store(float* p, Vec v) {
  _mm512_storeu_ps(p, v);
}
inline Mask first(int n) {
  return n >= 16 ? Mask(0xFFFF) : (n <= 0 ? Mask(0) : Mask((1u << n) - 1));
}
inline Vec load(const float* p, Mask m) {
  return _mm512_maskz_loadu_ps(m, p);
}
inline void store(float* p, Mask m, Vec v) {
  _mm512_mask_storeu_ps(p, m, v);
}
// A full line straight to memory (p aligned to 64 bytes), not through the cache.
inline void stream(float* p, Vec v) {
  _mm512_stream_ps(p, v);
}
inline Vec add(Vec a, Vec b) {
  return _mm512_add_ps(a, b);
}
inline Vec sub(Vec a, Vec b) {
  return _mm512_sub_ps(a, b);
}
inline Vec mul(Vec a, Vec b) {
  return _mm512_mul_ps(a, b);
}
// max returns b where either is NaN.
inline Vec max(Vec a, Vec b) {
  return _mm512_max_ps(a, b);
}
inline Vec min(Vec a, Vec b) {
  return _mm512_min_ps(a, b);
}
inline Vec fmadd(Vec a, Vec b, Vec c) {
  return _mm512_fmadd_ps(a, b, c);
}  // a b + c
inline Vec fnmadd(Vec a, Vec b, Vec c) {
  return _mm512_fnmadd_ps(a, b, c);
}  // c - a b
inline Vec bit_and(Vec a, Vec b) {
  return _mm512_and_ps(a, b);
}
inline Vec bit_or(Vec a, Vec b) {
  return _mm512_or_ps(a, b);
}
inline Vec abs(Vec a) {
  return _mm512_abs_ps(a);
}
inline float reduce_add(Vec v) {
  return _mm512_reduce_add_ps(v);
}
inline float reduce_max(Vec v) {
  return _mm512_reduce_max_ps(v);
}
inline Cmp less(Vec a, Vec b) {
  return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ);
}
inline Cmp greater(Vec a, Vec b) {
  return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ);
}
inline Cmp not_less(Vec a, Vec b) {
  return _mm512_cmp_ps_mask(a, b, _CMP_NLT_UQ);
}  // NaN: true
// Lanes of `then` where c, else of `otherwise`.
inline Vec select(Cmp c, Vec then, Vec otherwise) {
  return _mm512_mask_blend_ps(c, otherwise, then);
}
inline VecI truncate(Vec v) {
  return _mm512_cvttps_epi32(v);
}
inline Vec to_float(VecI v) {
  return _mm512_cvtepi32_ps(v);
}
// 2^n for integer-valued n in float's normal exponent range.
inline Vec pow2(VecI n) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23));
}
// table[i] in each lane, for lane indices i in [0, 16); table 64-byte aligned.
inline Vec lookup16(const float* table, VecI i) {
  return _mm512_permutexvar_ps(i, _mm512_load_ps(table));
}
// Integer lanes: kLanes bytes at p widened to int32; acc + x * k; stored.
inline VecI set1_i32(int32_t x) {
  return _mm512_set1_epi32(x);
}
inline VecI widen_u8(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline VecI mul_add_i32(VecI acc, VecI x, VecI k) {
  return _mm512_add_epi32(acc, _mm512_mullo_epi32(x, k));
}
inline void store_i32(int32_t* p, VecI v) {
  _mm512_storeu_si512(p, v);
}
#elif VIT_SIMD
constexpr int kLanes = 8;
constexpr int kRegisters = 16;
using Vec = __m256;
using VecI = __m256i;
using Mask = __m256i;
using Cmp = __m256;

inline Vec zero() {
  return _mm256_setzero_ps();
}
inline Vec set1(float x) {
  return _mm256_set1_ps(x);
}
inline Vec load(const float* p) {
  return _mm256_loadu_ps(p);
}
inline void store(float* p, Vec v) {
  _mm256_storeu_ps(p, v);
}
inline Mask first(int n) {
  alignas(64) static constexpr int32_t kOnes[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                    0,  0,  0,  0,  0,  0,  0,  0};
  n = n < 0 ? 0 : (n > 8 ? 8 : n);
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kOnes + 8 - n));
}
inline Vec load(const float* p, Mask m) {
  return _mm256_maskload_ps(p, m);
}
inline void store(float* p, Mask m, Vec v) {
  _mm256_maskstore_ps(p, m, v);
}
inline void stream(float* p, Vec v) {
  _mm256_stream_ps(p, v);
}  // p aligned to 32 bytes
inline Vec add(Vec a, Vec b) {
  return _mm256_add_ps(a, b);
}
inline Vec sub(Vec a, Vec b) {
  return _mm256_sub_ps(a, b);
}
inline Vec mul(Vec a, Vec b) {
  return _mm256_mul_ps(a, b);
}
inline Vec max(Vec a, Vec b) {
  return _mm256_max_ps(a, b);
}
inline Vec min(Vec a, Vec b) {
  return _mm256_min_ps(a, b);
}
inline Vec fmadd(Vec a, Vec b, Vec c) {
  return _mm256_fmadd_ps(a, b, c);
}
inline Vec fnmadd(Vec a, Vec b, Vec c) {
  return _mm256_fnmadd_ps(a, b, c);
}
inline Vec bit_and(Vec a, Vec b) {
  return _mm256_and_ps(a, b);
}
inline Vec bit_or(Vec a, Vec b) {
  return _mm256_or_ps(a, b);
}
inline Vec abs(Vec a) {
  return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a);
}
inline float reduce_add(Vec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float reduce_max(Vec v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline Cmp less(Vec a, Vec b) {
  return _mm256_cmp_ps(a, b, _CMP_LT_OQ);
}
inline Cmp greater(Vec a, Vec b) {
  return _mm256_cmp_ps(a, b, _CMP_GT_OQ);
}
inline Cmp not_less(Vec a, Vec b) {
  return _mm256_cmp_ps(a, b, _CMP_NLT_UQ);
}
inline Vec select(Cmp c, Vec then, Vec otherwise) {
  return _mm256_blendv_ps(otherwise, then, c);
}
inline VecI truncate(Vec v) {
  return _mm256_cvttps_epi32(v);
}
inline Vec to_float(VecI v) {
  return _mm256_cvtepi32_ps(v);
}
inline Vec pow2(VecI n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}
// Two 8-entry permutes, then bit 3 of the index (moved to the sign bit) picks between them.
inline Vec lookup16(const float* table, VecI i) {
  const Vec lo = _mm256_permutevar8x32_ps(_mm256_load_ps(table), i);
  const Vec hi = _mm256_permutevar8x32_ps(_mm256_load_ps(table + 8), i);
  return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(i, 28)));
}
inline VecI set1_i32(int32_t x) {
  return _mm256_set1_epi32(x);
}
inline VecI widen_u8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
inline VecI mul_add_i32(VecI acc, VecI x, VecI k) {
  return _mm256_add_epi32(acc, _mm256_mullo_epi32(x, k));
}
inline void store_i32(int32_t* p, VecI v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
}
#endif

#if VIT_SIMD
// The first n lanes (n may exceed kLanes: all of them), unmasked when they are all.
inline Vec load_first(const float* p, int n) {
  return n >= kLanes ? load(p) : load(p, first(n));
}
inline void store_first(float* p, int n, Vec v) {
  if (n >= kLanes) {
    store(p, v);
  } else {
    store(p, first(n), v);
  }
}

// v's first n lanes (n may exceed kLanes: all of them), `fill` in the others: padding made in a
// register, where scalar stores into the vector's memory would stall its next load (the store
// cannot be forwarded to it).
inline Vec keep_first(Vec v, int n, Vec fill) {
  if (n >= kLanes) return v;
#if defined(__AVX512F__)
  return _mm512_mask_blend_ps(first(n), fill, v);
#else
  return _mm256_blendv_ps(fill, v, _mm256_castsi256_ps(first(n)));
#endif
}

inline bool full(Mask m) {
#if defined(__AVX512F__)
  return m == 0xFFFF;
#else
  return _mm256_movemask_ps(_mm256_castsi256_ps(m)) == 0xFF;
#endif
}
#endif

}  // namespace vit::ops::VIT_ISA_NS::simd
