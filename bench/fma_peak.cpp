// The machine's fp32 FMA peak per instruction set, measured with our own loop, and the share of it
// vitcpp's linear layers reach on ViT-B/16's shapes at batch 1 and 16 (the own-GEMM issue's
// yardstick; bench/compare.py's sgemm reference is OpenBLAS, whose kernels depend on its version).
//   vit_fma_peak [threads]
// Prints JSON: for each ISA this CPU runs, "peak_gflops" (1 thread and `threads` threads) and, with
// that ISA's kernels, each shape's GFLOP/s and share of the peak (at batch 1 also "cold": its
// weights read from memory, 128 MB of copies in turn); where the CPU has AVX512-BF16,
// also "avx512_bf16": the VDPBF16PS peak and the linear layers with bf16 weights (--dtype bf16)
// on that kernel, and where it has AMX-BF16, "amx_bf16": the TDPBF16PS peak and the same layers
// on AMX (vit::set_amx). For AVX-512 and AVX2 also "tile_l1_gflops_1_thread" and its share of
// the 1-thread peak: the GEMM's register tile alone with its operands in L1 (below), the most a
// product built of that tile can reach on this core, to read the shapes' shares against.
//
// The peak loop: independent accumulators, each an FMA per iteration on registers only, so the
// loop is bound by throughput alone: 12 for the FMAs (more than their latency x ports on any x86
// core up to now: 4 cycles x 2 ports = 8), 24 for VDPBF16PS, whose latency is longer (with 12,
// AMD Zen 5 gave 380 GFLOP/s a core against 395 for the bf16 linear layers themselves). Flops
// counted as 2 per lane per FMA, 4 per lane per VDPBF16PS, 16 x 16 x 32 x 2 per TDPBF16PS (its four
// accumulator tiles, fed by two tiles of each input, as the kernel's).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/arena.hpp"
#include "ops/context.hpp"
#include "ops/cpu/amx.hpp"
#include "ops/ops.hpp"
#include "ops/packed.hpp"
#include "vit/isa.hpp"
#include "vit/threads.hpp"

namespace {

constexpr int kAcc = 12;
constexpr int kAccBf16 = 24;
constexpr long kIters = 50'000'000;

__attribute__((target("avx512f"))) float fma_loop_avx512(float seed) {
  __m512 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_ps(seed + float(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < kIters; ++it) {
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(float seed) {
  __m256 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm256_set1_ps(seed + float(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < kIters; ++it) {
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kAcc; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

// The bf16 peak: VDPBF16PS on registers, each instruction 16 lanes x 2 multiply-adds.
__attribute__((target("avx512bf16"))) float dot_loop_bf16(float seed) {
  __m512 acc[kAccBf16];
  for (int i = 0; i < kAccBf16; ++i) acc[i] = _mm512_set1_ps(seed + float(i));
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(1e-4f));
  for (long it = 0; it < kIters / 2; ++it) {
#pragma GCC unroll 24  // the accumulators in registers (rolled, GCC keeps them in memory)
    for (int i = 0; i < kAccBf16; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kAccBf16; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

// The AMX peak: TDPBF16PS into four accumulator tiles from two tiles of A and two of B.
__attribute__((target("amx-tile,amx-bf16"))) float tile_loop_amx(float seed) {
  static const vit::ops::AmxConfig config;
  _tile_loadconfig(&config);
  alignas(64) uint16_t in[16 * 32];
  std::fill_n(in, 16 * 32, uint16_t(0x3a83));  // 1e-3 in bf16
  alignas(64) float out[16 * 16];
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, in, 64);
  _tile_loadd(5, in, 64);
  _tile_loadd(6, in, 64);
  _tile_loadd(7, in, 64);
  for (long it = 0; it < kIters / 64; ++it) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 64);
  _tile_release();
  return out[0] + seed;
}

// The L1 ceiling: the shape of the fp32 GEMM's register tile (src/ops/cpu/gemm.cpp; 12 rows x 32
// columns on AVX-512, 6 x 16 on AVX2): each step of k loads a row of the packed panel (two
// registers), broadcasts one value of A for each row and multiplies into two accumulators a row,
// over kTileK steps whose A (rows kTileK apart) and panel stay in L1; called again and again on the
// same operands. It differs from the peak loop only by those loads. On an Intel Xeon with AMX
// (2026-12-06, docs/PERFORMANCE.md) AVX2's tile reached its peak and AVX-512's 0.88 of it, and in a
// scratch copy of this loop tiles of 14 x 32, 8 x 48 and 6 x 64 did no better than 12 x 32.
constexpr int kTileK = 256;
constexpr long kTileCalls = 200'000;

template <int MR>
__attribute__((target("avx512f"), noinline)) void tile_avx512(const float* A, const float* Bp,
                                                              float* C) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 16  // the accumulators in registers
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int k = 0; k < kTileK; ++k) {
    const __m512 b0 = _mm512_load_ps(Bp + k * 32), b1 = _mm512_load_ps(Bp + k * 32 + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(A[i * kTileK + k]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    _mm512_store_ps(C + i * 32, _mm512_add_ps(_mm512_load_ps(C + i * 32), c0[i]));
    _mm512_store_ps(C + i * 32 + 16, _mm512_add_ps(_mm512_load_ps(C + i * 32 + 16), c1[i]));
  }
}

template <int MR>
__attribute__((target("avx2,fma"), noinline)) void tile_avx2(const float* A, const float* Bp,
                                                             float* C) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  for (int k = 0; k < kTileK; ++k) {
    const __m256 b0 = _mm256_load_ps(Bp + k * 16), b1 = _mm256_load_ps(Bp + k * 16 + 8);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(A + i * kTileK + k);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    _mm256_store_ps(C + i * 16, _mm256_add_ps(_mm256_load_ps(C + i * 16), c0[i]));
    _mm256_store_ps(C + i * 16 + 8, _mm256_add_ps(_mm256_load_ps(C + i * 16 + 8), c1[i]));
  }
}

// GFLOP/s of the tile above on one thread (best of 3), AVX-512's or AVX2's.
double tile_l1_gflops(bool avx512) {
  const int rows = avx512 ? 12 : 6, cols = avx512 ? 32 : 16;
  vit::Arena arena;
  const size_t ao = arena.add(size_t(rows) * kTileK), bo = arena.add(size_t(kTileK) * cols),
               co = arena.add(size_t(rows) * cols);
  arena.allocate();
  std::fill_n(arena.at(ao), size_t(rows) * kTileK, 1e-3f);
  std::fill_n(arena.at(bo), size_t(kTileK) * cols, 1e-3f);
  std::fill_n(arena.at(co), size_t(rows) * cols, 0.0f);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (long c = 0; c < kTileCalls; ++c) {
      avx512 ? tile_avx512<12>(arena.at(ao), arena.at(bo), arena.at(co))
             : tile_avx2<6>(arena.at(ao), arena.at(bo), arena.at(co));
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * rows * cols * kTileK * double(kTileCalls) / s / 1e9);
  }
  if (arena.at(co)[0] == 12345.0f) std::fprintf(stderr, " ");  // keeps the sums alive
  return best;
}

enum class Loop { kAvx2, kAvx512, kBf16, kAmx };

// GFLOP/s of a register-only loop on `threads` threads at once (best of 3): flops per lane per
// instruction 2 (FMA) or 4 (VDPBF16PS: two multiply-adds).
double peak(Loop loop, int threads) {
  const double per_instruction = loop == Loop::kAvx2     ? 16
                                 : loop == Loop::kAvx512 ? 32
                                 : loop == Loop::kBf16   ? 64
                                                         : 16 * 16 * 32 * 2;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += loop == Loop::kAvx512 ? fma_loop_avx512(float(omp_get_thread_num()))
             : loop == Loop::kBf16 ? dot_loop_bf16(float(omp_get_thread_num()))
             : loop == Loop::kAmx  ? tile_loop_amx(float(omp_get_thread_num()))
                                   : fma_loop_avx2(float(omp_get_thread_num()));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (total == 12345.0f) std::fprintf(stderr, " ");  // keeps the loops' results alive
    const double instructions = loop == Loop::kBf16  ? kAccBf16 * double(kIters / 2)
                                : loop == Loop::kAmx ? 4 * double(kIters / 64)
                                                     : kAcc * double(kIters);
    best = std::max(best, per_instruction * instructions * threads / s / 1e9);
  }
  return best;
}

// GFLOP/s of ops::linear_forward (out [R, O] = x [R, I] @ w^T + b) with the active kernels (best of
// 5 after a warm-up), on w as inference has it (ops::Context::packed): converted to bf16, or
// rearranged once into the fp32 kernels' panels (Model::set_inference_dtype). With copies > 1,
// that many weights (each its own copy) one after the other, so that each comes from memory
// rather than from the caches, as a model's layers do.
double linear_gflops(int R, int I, int O, int threads, bool bf16, int copies = 1) {
  // In a model's arenas every tensor starts on a 64-byte line (vit::Arena); so here.
  vit::Arena arena;
  const size_t xo = arena.add(size_t(R) * I), bo = arena.add(size_t(O)),
               oo = arena.add(size_t(R) * O);
  std::vector<size_t> wo;
  for (int c = 0; c < copies; ++c) wo.push_back(arena.add(size_t(O) * I));
  arena.allocate();
  std::fill_n(arena.at(xo), size_t(R) * I, 0.01f);
  float *x = arena.at(xo), *b = arena.at(bo), *out = arena.at(oo);
  vit::ops::CpuContext cpu;
  vit::ops::Context ctx = cpu.with_threads(threads);
  vit::ops::PackedWeights packs;
  for (int c = 0; c < copies; ++c) {
    float* w = arena.at(wo[size_t(c)]);
    std::fill_n(w, size_t(O) * I, 0.02f);
    if (bf16) {
      packs.add_bf16(w, O, I);
    } else if (const int width = vit::ops::gemm_panel_width(O, I, false); width > 0) {
      packs.pack_f32(w, O, I, width, vit::ops::gemm_pack_weight, vit::ops::gemm_unpack_weight);
    }
  }
  ctx.packed = &packs;
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < copies; ++c) {
      vit::ops::linear_forward(ctx, out, x, arena.at(wo[size_t(c)]), b, R, I, O);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep > 0) best = std::max(best, 2.0 * R * double(I) * O * copies / s / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : vit::available_cores();
  vit::set_num_threads(threads);
  struct Shape {
    const char* name;
    int R, I, O;
  };
  // ViT-B/16 at 224: 197 tokens an image; qkv, proj, fc1, fc2, at batch 1 and 16.
  const Shape shapes[] = {{"qkv b1", 197, 768, 2304},       {"proj b1", 197, 768, 768},
                          {"fc1 b1", 197, 768, 3072},       {"fc2 b1", 197, 3072, 768},
                          {"qkv b16", 16 * 197, 768, 2304}, {"proj b16", 16 * 197, 768, 768},
                          {"fc1 b16", 16 * 197, 768, 3072}, {"fc2 b16", 16 * 197, 3072, 768}};
  std::string json = "{\"threads\": " + std::to_string(threads) + ", \"isas\": {";
  bool first_isa = true;
  // Each ISA's fp32 kernels, then (where the CPU has AVX512-BF16) the bf16 products as
  // "avx512_bf16", against the VDPBF16PS peak, and (where it has AMX-BF16) as "amx_bf16", against
  // the TDPBF16PS peak.
  struct Path {
    vit::Isa isa;
    Loop loop;
    const char* name;
  };
  std::vector<Path> paths;
  for (vit::Isa isa : vit::supported_isas()) {
    if (isa == vit::Isa::kScalar) continue;  // scalar: the compiler's loops
    paths.push_back(
        {isa, isa == vit::Isa::kAvx512 ? Loop::kAvx512 : Loop::kAvx2, vit::isa_name(isa)});
  }
  if (vit::cpu_has_bf16()) paths.push_back({vit::Isa::kAvx512, Loop::kBf16, "avx512_bf16"});
  if (vit::cpu_has_amx()) paths.push_back({vit::Isa::kAvx512, Loop::kAmx, "amx_bf16"});
  for (const auto& [isa, loop, name] : paths) {
    vit::set_isa(isa);
    const bool bf16 = loop == Loop::kBf16 || loop == Loop::kAmx;
    if (vit::cpu_has_amx()) vit::set_amx(loop == Loop::kAmx);
    const double p1 = peak(loop, 1), pn = peak(loop, threads);
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%s\"%s\": {\"peak_gflops_1_thread\": %.1f, \"peak_gflops\": %.1f, ",
                  first_isa ? "" : ", ", name, p1, pn);
    json += buf;
    if (loop == Loop::kAvx512 || loop == Loop::kAvx2) {
      const double t = tile_l1_gflops(loop == Loop::kAvx512);
      std::snprintf(buf, sizeof buf, "\"tile_l1_gflops_1_thread\": %.1f, \"tile_l1_share\": %.3f, ",
                    t, t / p1);
      json += buf;
    }
    json += "\"linear\": {";
    first_isa = false;
    bool first = true;
    for (const Shape& s : shapes) {
      const double g = linear_gflops(s.R, s.I, s.O, threads, bf16);
      std::snprintf(buf, sizeof buf, "%s\"%s\": {\"gflops\": %.1f, \"share_of_peak\": %.3f",
                    first ? "" : ", ", s.name, g, g / pn);
      json += buf;
      if (s.R < 256) {  // batch 1: each weight from memory, as in a model's forward
        const int copies = int((int64_t(128) << 20) / (int64_t(s.I) * s.O * 4)) + 1;
        std::snprintf(buf, sizeof buf, ", \"cold\": %.1f",
                      linear_gflops(s.R, s.I, s.O, threads, bf16, copies));
        json += buf;
      }
      json += "}";
      first = false;
    }
    json += "}}";
  }
  json += "}}";
  std::printf("%s\n", json.c_str());
  return 0;
}
