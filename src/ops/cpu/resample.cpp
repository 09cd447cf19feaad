// Image resampling kernels: one fixed-point pass of Pillow's 8-bit resize down an image's rows,
// a blocked 8-bit transpose (which turns a pass across rows into one down them), and the split of
// interleaved RGB into transposed planes. Integer arithmetic, so every instruction-set variant
// writes the same bytes: the AVX2 and AVX-512 variants hold sums in registers (intrinsics), the
// SSE2-only one runs plain loops its flags vectorise. Measured: docs/PERFORMANCE.md "The input
// pipeline" and "Resampling with its sums in registers". The transposes' 16 x 16 tiles are SSE2's
// (every x86-64 variant); elsewhere (the scalar variant on another architecture, such as aarch64)
// their byte loops do every pixel.
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include <algorithm>

#include "ops/cpu/kernels.hpp"
#include "ops/cpu/simd.hpp"

namespace vit::ops::VIT_ISA_NS {

namespace {

#if VIT_SIMD
using namespace simd;

// Output row dst's kLanes * V columns from `taps` input rows src, src + ld, ... (weights k): the V
// registers of sums stay in registers through all the taps, then are shifted and clamped.
template <int V>
inline void taps_block(uint8_t* dst, const uint8_t* src, int64_t ld, int taps, const int32_t* k) {
  VecI acc[V];
  for (int v = 0; v < V; ++v) acc[v] = set1_i32(1 << 21);
  for (int t = 0; t < taps; ++t) {
    const VecI kt = set1_i32(k[t]);
    const uint8_t* row = src + int64_t(t) * ld;
    for (int v = 0; v < V; ++v) acc[v] = mul_add_i32(acc[v], widen_u8(row + kLanes * v), kt);
  }
  int32_t sums[kLanes * V];
  for (int v = 0; v < V; ++v) store_i32(sums + kLanes * v, acc[v]);
#pragma omp simd
  for (int x = 0; x < kLanes * V; ++x) dst[x] = uint8_t(std::clamp(sums[x] >> 22, 0, 255));
}
#endif

}  // namespace

// Per output row, 4 registers of columns at a time, then one register at a time (the last one
// overlapping the one before), their sums held in registers through the row's taps; the scalar
// variant, and rows narrower than a register, keep a block's sums in an L1 array instead (a load
// and a store of them at each tap, as every variant did before). Resizing a 500 x 375 photo to
// 341 x 256 (bicubic, AVX-512), with transpose_rgb_u8 below: 470-530 us before, 172-206 after
// (vit_bench_ops --benchmark_filter=Resize, medians of 5, three alternated runs).
void resample_down_u8(const Context&, uint8_t* out, int64_t out_ld, const uint8_t* in,
                      int64_t in_ld, int W, int O, const int* lo, const int* n, const int32_t* k,
                      int ksize) {
  for (int o = 0; o < O; ++o) {
    const uint8_t* src = in + int64_t(lo[o]) * in_ld;
    const int32_t* ko = k + int64_t(o) * ksize;
    uint8_t* dst = out + int64_t(o) * out_ld;
    int x = 0;
#if VIT_SIMD
    for (; x + 4 * kLanes <= W; x += 4 * kLanes) taps_block<4>(dst + x, src + x, in_ld, n[o], ko);
    for (; x + kLanes <= W; x += kLanes) taps_block<1>(dst + x, src + x, in_ld, n[o], ko);
    // The last columns as the last register's worth, overlapping columns already written (with
    // the same values: out is not in).
    if (x < W && W >= kLanes) {
      taps_block<1>(dst + W - kLanes, src + W - kLanes, in_ld, n[o], ko);
      x = W;
    }
#endif
    constexpr int kBlock = 256;  // the rest: a block's sums in L1, vectorised by the flags
    int32_t acc[kBlock];
    for (; x < W; x += kBlock) {
      const int w = std::min(kBlock, W - x);
      for (int i = 0; i < w; ++i) acc[i] = 1 << 21;
      for (int t = 0; t < n[o]; ++t) {
        const uint8_t* __restrict row = src + int64_t(t) * in_ld + x;
        const int32_t kt = ko[t];
#pragma omp simd
        for (int i = 0; i < w; ++i) acc[i] += int32_t(row[i]) * kt;
      }
      uint8_t* __restrict d = dst + x;
#pragma omp simd
      for (int i = 0; i < w; ++i) d[i] = uint8_t(std::clamp(acc[i] >> 22, 0, 255));
    }
  }
}

#if defined(__SSE2__)
namespace {

// The 16 x 16 bytes of r (register i: row i) transposed in place (register i: column i): four
// rounds of interleaving (bytes, then pairs, quads and halves), SSE2's unpack instructions, in
// every variant.
void transpose_16x16(__m128i r[16]) {
  __m128i t[16];
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
}

void store_16x16(uint8_t* out, int64_t out_ld, const __m128i r[16]) {
  for (int i = 0; i < 16; ++i) _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i * out_ld), r[i]);
}

// The 16 x 16 bytes at in (row stride in_ld) transposed to out (row stride out_ld).
void transpose_tile(uint8_t* out, int64_t out_ld, const uint8_t* in, int64_t in_ld) {
  __m128i r[16];
  for (int i = 0; i < 16; ++i) {
    r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i * in_ld));
  }
  transpose_16x16(r);
  store_16x16(out, out_ld, r);
}

}  // namespace
#endif

void transpose_u8(const Context&, uint8_t* out, int64_t out_ld, const uint8_t* in, int64_t in_ld,
                  int R, int W) {
#if defined(__SSE2__)
  constexpr int kTile = 16;
  const int R16 = R - R % kTile, W16 = W - W % kTile;
  for (int y0 = 0; y0 < R16; y0 += kTile) {
    for (int x0 = 0; x0 < W16; x0 += kTile) {
      transpose_tile(out + int64_t(x0) * out_ld + y0, out_ld, in + int64_t(y0) * in_ld + x0, in_ld);
    }
  }
#else
  const int R16 = 0, W16 = 0;
#endif
  // The edges: the columns past W16 for every row, and the rows past R16 for the rest.
  for (int x = W16; x < W; ++x) {
    for (int y = 0; y < R; ++y) out[int64_t(x) * out_ld + y] = in[int64_t(y) * in_ld + x];
  }
  for (int x = 0; x < W16; ++x) {
    for (int y = R16; y < R; ++y) out[int64_t(x) * out_ld + y] = in[int64_t(y) * in_ld + x];
  }
}

// 16 x 16 pixels at a time: each row's 48 bytes split into its three channels' 16 (SSSE3's byte
// shuffle; plain loads of the bytes in the SSE2-only variant), then each channel's tile
// transposed. The edges past whole tiles one byte at a time.
void transpose_rgb_u8(const Context&, uint8_t* out, int64_t out_plane, int64_t out_ld,
                      const uint8_t* in, int64_t in_ld, int R, int W) {
#if defined(__SSE2__)
  constexpr int kTile = 16;
  const int R16 = R - R % kTile, W16 = W - W % kTile;
#if defined(__SSSE3__)
  // For channel c, the bytes of each of a row's three 16-byte loads that hold it, in place (-1:
  // none): channel c of pixel i is byte 3i + c of the row.
  alignas(16) int8_t masks[3][3][16];
  for (int c = 0; c < 3; ++c) {
    for (int part = 0; part < 3; ++part) {
      for (int i = 0; i < 16; ++i) {
        const int byte = 3 * i + c - 16 * part;
        masks[c][part][i] = int8_t(byte >= 0 && byte < 16 ? byte : -1);
      }
    }
  }
  __m128i m[3][3];
  for (int c = 0; c < 3; ++c) {
    for (int part = 0; part < 3; ++part) {
      m[c][part] = _mm_load_si128(reinterpret_cast<const __m128i*>(masks[c][part]));
    }
  }
#endif
  for (int y0 = 0; y0 < R16; y0 += kTile) {
    for (int x0 = 0; x0 < W16; x0 += kTile) {
      __m128i ch[3][16];
      for (int i = 0; i < 16; ++i) {
        const uint8_t* row = in + int64_t(y0 + i) * in_ld + 3 * int64_t(x0);
#if defined(__SSSE3__)
        __m128i part[3];
        for (int p = 0; p < 3; ++p) {
          part[p] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * p));
        }
        for (int c = 0; c < 3; ++c) {
          ch[c][i] = _mm_or_si128(
              _mm_or_si128(_mm_shuffle_epi8(part[0], m[c][0]), _mm_shuffle_epi8(part[1], m[c][1])),
              _mm_shuffle_epi8(part[2], m[c][2]));
        }
#else
        alignas(16) uint8_t bytes[3][16];
        for (int x = 0; x < 16; ++x) {
          for (int c = 0; c < 3; ++c) bytes[c][x] = row[3 * x + c];
        }
        for (int c = 0; c < 3; ++c) {
          ch[c][i] = _mm_load_si128(reinterpret_cast<const __m128i*>(bytes[c]));
        }
#endif
      }
      for (int c = 0; c < 3; ++c) {
        transpose_16x16(ch[c]);
        store_16x16(out + c * out_plane + int64_t(x0) * out_ld + y0, out_ld, ch[c]);
      }
    }
  }
#else
  const int R16 = 0, W16 = 0;
#endif
  auto one = [&](int y, int x) {
    for (int c = 0; c < 3; ++c) {
      out[c * out_plane + int64_t(x) * out_ld + y] = in[int64_t(y) * in_ld + 3 * int64_t(x) + c];
    }
  };
  for (int x = W16; x < W; ++x) {
    for (int y = 0; y < R; ++y) one(y, x);
  }
  for (int x = 0; x < W16; ++x) {
    for (int y = R16; y < R; ++y) one(y, x);
  }
}

}  // namespace vit::ops::VIT_ISA_NS
