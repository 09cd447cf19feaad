// GEMM on the CPU. On the AVX-512 and AVX2 paths every product the ops ask for runs on our own
// vector kernels (simd.hpp); OpenBLAS sgemm serves the scalar path (and a beta other than 0 or 1,
// which no op asks for):
// - C[M,N] = alpha * A[M,K] op(B) + beta * C with beta 0 or 1 (the linear layers' forward and
//   input gradients; gemm_own);
// - C[M,N] = A^T B + beta * C (their weight gradients; gemm_wgrad below).
//
// Why our own: the model's GEMMs are tall and thin (M = B*N tokens, thousands; K and N = the
// widths, 64-3072). OpenBLAS packs A (the big activation matrix) on every call, which for K = 64
// costs a third of the multiply; and its kernels, chosen by its version and OPENBLAS_CORETYPE,
// round differently. Here only B (the weight) is packed, into panels of two registers' columns; A
// is read in place (or from a copy of a chunk, where its rows would crowd one set of L1:
// rows_crowd_l1) by a register tile: 12 x 32 with AVX-512 (24 accumulators, 2 FMAs per
// broadcast; 8 rows measured 4% slower on tiny28's training step), 6 x 16 with AVX2's 16
// registers. Each C element is summed over k in an order fixed by the shape (k_chunk) by one
// thread, so results do not depend on the thread count. Inside an OpenMP region (attention's
// per-head products) it runs serially. For inference a weight can be packed once, in place
// (gemm_pack_weight, in the layout this kernel packs it in on each call): the same sums, minus
// the packing and the threads' waits for it (ViT-B/16, one image, 2 threads: 2-12% faster in six
// alternated pairs, 7% on average; docs/PERFORMANCE.md).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>

#include "ops/cpu/amx.hpp"
#include "ops/cpu/kernels.hpp"
#include "ops/cpu/scratch.hpp"
#include "ops/cpu/simd.hpp"
#include "ops/cpu/transpose.hpp"
#include "ops/packed.hpp"
#include "vit/error.hpp"
#include "vit/isa.hpp"

namespace vit::ops::VIT_ISA_NS {

#if VIT_SIMD
namespace {

using namespace simd;
// The register tile: kMR rows of two registers, kMR x 2 accumulators plus the two of B and one
// broadcast of A: 12 x 32 with AVX-512's 32 registers, 6 x 16 with AVX2's 16.
constexpr int kMR = kRegisters >= 32 ? 12 : 6;  // rows per register tile
constexpr int kNR = 2 * kLanes;                 // columns per register tile (two registers)
constexpr int kNC = 1024;  // n-block: with K <= 256 a packed B block (1 MB) stays in L2
constexpr int64_t kPackFloats = 256 * 1024;  // a packed B block's budget (1 MB) for larger K

// Columns per n-block for depth K: kNC, or fewer whole panels when K x kNC would not fit in the
// budget (at least one panel).
inline int n_block(int K) {
  const int64_t fit = kPackFloats / std::max(K, 1) / kNR * kNR;
  return int(std::clamp<int64_t>(fit, kNR, kNC));
}

// Packs panels [p_begin, p_end) of op(B)[0:kc, n0:n0+nc], kNR columns each: panel p, at dst + p *
// stride, holds for each k the kNR values of columns n0 + p*kNR ..., zero-padded past N.
void pack_b(float* dst, int64_t stride, const float* B, int ldb, bool trans_b, int kc, int n0,
            int nc, int p_begin, int p_end) {
  for (int p = p_begin; p < p_end; ++p) {
    float* out = dst + p * stride;
    const int j0 = n0 + p * kNR;
    const int w = std::min(kNR, n0 + nc - j0);
    if (trans_b) {
      // B is [N, K]: the panel's columns are rows of B, moved kLanes x kLanes blocks at a time
      // through registers (element by element, this packing took 2% of tiny28's training step).
      // Rows past w load as zeros: the padding.
      for (int h = 0; h < kNR; h += kLanes) {
        for (int k0 = 0; k0 < kc; k0 += kLanes) {
          const int kw = std::min(kLanes, kc - k0);
          const Mask km = first(kw);
          Vec r[kLanes];
          for (int j = 0; j < kLanes; ++j) {
            r[j] = h + j < w ? load(B + int64_t(j0 + h + j) * ldb + k0, km) : zero();
          }
          transpose(r);
          for (int c = 0; c < kw; ++c) store(out + int64_t(k0 + c) * kNR + h, r[c]);
        }
      }
      continue;
    }
    for (int k = 0; k < kc; ++k) {
      float* o = out + int64_t(k) * kNR;  // B is [K, N]
      const float* row = B + int64_t(k) * ldb + j0;
      for (int j = 0; j < w; ++j) o[j] = row[j];
      for (int j = w; j < kNR; ++j) o[j] = 0.0f;
    }
  }
}

// Where a register tile's sums go. Sums over a chunk of K: with part, the partial sums of the
// chunks before (part[i, j], row stride ldp) are added first, so a C element is ((S1 + S2) + S3)...
// over its chunks in order. With raw, the sums are stored as they are (row stride ldr: a chunk that
// is not the last); otherwise C[i, j] = alpha * sums + bias[j] (+ C[i, j] when accumulate).
struct TileOut {
  const float* part = nullptr;
  int64_t ldp = 0;
  float* raw = nullptr;
  int64_t ldr = 0;
  float alpha = 1.0f;
  bool accumulate = false;
  const float* bias = nullptr;
};

// Sums A[0:MR, 0:kc] Bp over the chunk, Bp a packed kc x kNR panel, into C[0:MR, 0:w] as o says.
// kFetchPanel: each step also asks for the panel's row 32 steps ahead into L1 (4 KB ahead), for a
// tile whose panel comes from L2 or further: every tile when the rows' tiles go over the panels in
// turn, and the first of them over a panel when the panels go over the rows (chunk_rows'
// panels_outer: the later tiles read it from L1). Those loads were where the tile waited: in a
// `perf` of ViT-B at batch 1 (fp32, 2 threads, an Intel Xeon, AVX-512, panel by panel), about
// 16% of the tiles' samples sat on them. Measured there (docs/PERFORMANCE.md, alternated pairs of
// `vit bench`): ViT-B at batch 1 2-7% less time a forward on AVX-512 (the first tile alone), and
// on AVX2 (every tile) 5-7% at batch 1 and 7-8% at batch 16; ViT-B at batch 16 on AVX-512,
// tiny28's training step and ViT-Ti at batch 1 within their spread. 32 steps ahead beat 8 by
// 1.5-3% on ViT-B's products alone (64 as 32; 4 slower).
template <int MR, bool kFetchPanel = false>
inline void tile(int kc, const float* A, int lda, const float* Bp, float* C, int ldc, int w,
                 const TileOut& o) {
  // Every loop over the MR rows is unrolled, so that the accumulators live in registers from start
  // to end (rolled, GCC kept them in a stack array that it cleared with memset and stored to after
  // the k loop on every tile: 10% of this kernel at K = 64).
  Vec c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = zero();
  for (int k = 0; k < kc; ++k) {
    if constexpr (kFetchPanel) {  // each line of the row (past the panel's end: the next panel's)
      for (int j = 0; j < kNR; j += 16) {
        _mm_prefetch(reinterpret_cast<const char*>(Bp + (k + 32) * kNR + j), _MM_HINT_T0);
      }
    }
    const Vec b0 = load(Bp + k * kNR);
    const Vec b1 = load(Bp + k * kNR + kLanes);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const Vec a = set1(A[int64_t(i) * lda + k]);
      c0[i] = fmadd(a, b0, c0[i]);
      c1[i] = fmadd(a, b1, c1[i]);
    }
  }
  const bool whole = w == kNR;
  const Mask m0 = first(w), m1 = first(w - kLanes);
  // Loads and stores of a row's w columns (two registers).
  auto ld0 = [&](const float* r) { return whole ? load(r) : load(r, m0); };
  auto ld1 = [&](const float* r) { return whole ? load(r + kLanes) : load(r + kLanes, m1); };
  auto st = [&](float* r, Vec v0, Vec v1) {
    if (whole) {
      store(r, v0);
      store(r + kLanes, v1);
    } else {
      store(r, m0, v0);
      store(r + kLanes, m1, v1);
    }
  };
  if (o.part) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const float* r = o.part + int64_t(i) * o.ldp;
      c0[i] = add(ld0(r), c0[i]);
      c1[i] = add(ld1(r), c1[i]);
    }
  }
  if (o.raw) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) st(o.raw + int64_t(i) * o.ldr, c0[i], c1[i]);
    return;
  }
  const Vec va = set1(o.alpha);
  const Vec bias0 = o.bias ? load(o.bias, m0) : zero();
  const Vec bias1 = o.bias ? load(o.bias + kLanes, m1) : zero();
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* row = C + int64_t(i) * ldc;
    Vec r0 = mul(c0[i], va), r1 = mul(c1[i], va);
    // The bias before C: (A B + bias) + C, the rounding of a linear layer followed by a residual
    // add, so that in-place inference matches the training forward bitwise on this kernel (the
    // OpenBLAS path in gemm() keeps its two modes alike too).
    if (o.bias) {
      r0 = add(r0, bias0);
      r1 = add(r1, bias1);
    }
    if (o.accumulate) {
      r0 = add(r0, ld0(row));
      r1 = add(r1, ld1(row));
    }
    st(row, r0, r1);
  }
}

// Calls f.template operator()<MR>() with the compile-time MR = mr, 1 <= mr <= Max: the rows of a
// register tile, a constant so that its accumulators stay in registers.
template <int Max, typename F>
inline void with_tile_rows(int mr, F&& f) {
  if constexpr (Max <= 1) {
    return f.template operator()<1>();
  } else {
    if (mr >= Max) return f.template operator()<Max>();
    return with_tile_rows<Max - 1>(mr, f);
  }
}

// K is summed in chunks of kc rows (the last one shorter): the whole of K in the registers when
// K <= 256, otherwise chunks of at most 256, so that a chunk's slice of packed B (kc x nc) stays in
// L2 while every row of A passes over it. The chunks depend on K alone, never on M or the thread
// count, so that a row of C (an image's token) gets the same bits in any batch: predict's pieces
// of different sizes, one image alone or among others.
inline int k_chunk(int K) {
  if (K <= 256) return K;
  const int chunks = (K + 255) / 256;
  return ((K + chunks - 1) / chunks + 15) / 16 * 16;
}

// Whether gemm_own can end a product of depth K and N columns in the kResidualNorm epilogue, which
// needs whole rows of C: N within one column block.
inline bool whole_rows_in_a_block(int N, int K) {
  return N <= n_block(k_chunk(K));
}

// Half of an AMD Zen 4/5 core's L2, in bytes: what a thread's share of a product may take there
// beside the rest (panels_outer_short_a, chunk_rows' far partial sums).
constexpr int64_t kHalfL2 = int64_t(512) << 10;

// Whether a register tile's kMR rows of A, lda floats apart, crowd one set of L1: more than 6 of
// them on one set, half the ways of the 12-way L1s (64 sets of 64-byte lines) of AMD Zen 4/5 and
// Intel since Ice Lake. Rows 12 KB apart (ViT-B's fc2 input, K 3072) all fall on one set, where
// with the panel's lines they outnumber its ways and evict each other. Such rows are copied, a
// chunk at a time, to rows of a padded stride (copy_rows) before their tiles read them. Measured
// (AMD Zen 5, 2 threads, AVX-512, with and without the copies interleaved in one process): ViT-B's
// fc2 at batch 1, weights from memory, faster in 40 of 40 pairs (+15%), at batch 16 +20%; ViT-S's
// fc2 (K 1536, six rows to a set) 5% slower with them, and AVX2's 6-row tiles no faster.
inline bool rows_crowd_l1(int lda) {
  int on_set[64] = {};
  int most = 0;
  for (int i = 0; i < kMR; ++i) {
    most = std::max(most, ++on_set[(int64_t(i) * lda * 4 / 64) % 64]);
  }
  return most > 6;
}

// Row stride of the copies: kw rounded up to whole lines, plus one line, so that consecutive rows
// start on consecutive sets.
inline int copy_stride(int kw) {
  return (kw + 15) / 16 * 16 + 16;
}

// dst[r, 0:kw] = A[r, k0:k0 + kw] for `rows` rows (dst's row stride ld).
inline void copy_rows(float* dst, int64_t ld, const float* A, int lda, int k0, int kw, int rows) {
  for (int r = 0; r < rows; ++r) {
    std::memcpy(dst + r * ld, A + int64_t(r) * lda + k0, size_t(kw) * sizeof(float));
  }
}

// One chunk of K, rows k0 .. k0 + kw of op(B), for rows [m_begin, m_end) and panels [p_begin,
// p_end) of C's n-block (nc columns; panel p of the chunk packed at packed + p * stride); bias
// points at the block's columns. Until the last chunk the sums go to part (a [M, nc] buffer with
// row stride ldp, which may be C itself), each chunk adding those of the chunks before; the last
// finishes C, and the epilogue (when epi is non-null) runs on each row block once all its columns
// (of the panels) are done. n0 is the block's first column in the whole C (the epilogue's arrays
// are indexed globally). next (nullable): the next_floats floats of packed B this thread reads
// next (its panels of the next chunk), prefetched toward L2 a share per row tile, so that they
// come from memory while this chunk computes instead of at the next chunk's first tiles. Where
// it wins: weights packed once and read from memory, as a model's forward reads each layer's
// (vit_fma_peak's "cold" figures: ViT-B's products at batch 1 from 128 MB of copies).
// panels_outer: each panel passes over all the rows before the next (the panel, kw x kNR, stays
// in L1 while the rows' tiles of A come from L2) rather than each row tile over all the panels
// (the tile in L1, the panels from L2). The same sums in the same order either way. Where it
// wins: on AVX-512, whose panels (32 KB at kw 256) are 2.7 times a tile of A, a short A split by
// columns (panels_outer_short_a) and a tall A's row blocks (panels_outer_row_block). copy
// (nullable): where A's rows crowd L1 (rows_crowd_l1), the context in whose scratch
// (kScratchGemmRows, the calling thread's) they are copied before their tiles read them, all of
// them at once with panels_outer, else a row tile at a time: the same values, so the same bits.
void chunk_rows(int m_begin, int m_end, int p_begin, int p_end, int nc, int k0, int kw, bool last,
                const float* A, int lda, const float* packed, int64_t stride, float* C, int ldc,
                float alpha, bool accumulate, const float* bias, const Epilogue* epi, int n0,
                float* part, int64_t ldp, const float* next = nullptr, int64_t next_floats = 0,
                bool panels_outer = false, const Context* copy = nullptr) {
  if (m_end <= m_begin) return;
  const int j_begin = p_begin * kNR, j_end = std::min(nc, p_end * kNR);
  const int ld_rows = copy_stride(kw);
  float* rows = copy ? scratch(*copy, kScratchGemmRows,
                               size_t(ld_rows) * (panels_outer ? m_end - m_begin : kMR))
                     : nullptr;
  int first_row = m_begin;  // the first row in the copy
  // A's rows from i, columns from k0, and their stride: in place, or in the copy.
  auto rows_at = [&](int i) -> std::pair<const float*, int> {
    if (rows) return {rows + int64_t(i - first_row) * ld_rows, ld_rows};
    return {A + int64_t(i) * lda + k0, lda};
  };
  // Prefetches share s of `shares` of the next chunk's panels.
  auto prefetch_share = [&](int64_t s, int64_t shares) {
    const int64_t per = (next_floats + shares - 1) / shares;
    const int64_t f0 = s * per, f1 = std::min(next_floats, f0 + per);
    for (int64_t f = f0; f < f1; f += 16) {
      _mm_prefetch(reinterpret_cast<const char*>(next + f), _MM_HINT_T1);
    }
  };
  // The register tile of rows i .. i + mr and panel p.
  auto tile_at = [&](int i, int mr, int p) {
    const int w = std::min(kNR, nc - p * kNR);
    TileOut o;
    if (k0 > 0) {
      o.part = part + int64_t(i) * ldp + p * kNR;
      o.ldp = ldp;
    }
    if (!last) {
      o.raw = part + int64_t(i) * ldp + p * kNR;
      o.ldr = ldp;
    } else {
      o.alpha = alpha;
      o.accumulate = accumulate;
      o.bias = bias ? bias + p * kNR : nullptr;
    }
    const std::pair<const float*, int> ar = rows_at(i);  // (a binding: clang 14 cannot capture it)
    const float* a = ar.first;
    const int la = ar.second;
    float* c = C + int64_t(i) * ldc + p * kNR;
    const float* bp = packed + p * stride;
    if (!panels_outer || i == m_begin) {  // the panel from L2 or further (tile's kFetchPanel)
      with_tile_rows<kMR>(mr, [&]<int MR>() { tile<MR, true>(kw, a, la, bp, c, ldc, w, o); });
    } else {  // a later tile over the panel: in L1 already
      with_tile_rows<kMR>(mr, [&]<int MR>() { tile<MR>(kw, a, la, bp, c, ldc, w, o); });
    }
  };
  // The partial sums the tile of rows i and panel p adds to (chunks after the first), toward L1
  // while the tile before it runs, where this call's partial sums are over 512 KB (half of a Zen
  // 4/5 core's L2) and so come from L3 or memory, the tile's first loads of them a stall each
  // (ViT-B's fc2 at batch 16: 1,576 rows x 768 columns a thread, 4.8 MB, for each of 12 chunks).
  // Measured (2 threads, AMD Zen 5, with and without interleaved 20 times in one process): fc2 at
  // batch 16 +9-16% in six runs in an hour when the machine was slow (its FMA peak read 350
  // rather than 410-500 GFLOP/s), -1.2% to +2.7% in eleven runs after, AVX2 -1.3% to +1.6%; whole
  // models, no difference beyond the spread (docs/PERFORMANCE.md). Not below the 512 KB: ViT-Ti's
  // fc2 at batch 1 (75 KB a thread) went 2% slower with it.
  const bool far_part = k0 > 0 && int64_t(m_end - m_begin) * (j_end - j_begin) * 4 > kHalfL2;
  auto prefetch_part = [&](int i, int p) {
    if (i >= m_end || p >= p_end) return;
    const float* q = part + int64_t(i) * ldp + p * kNR;
    for (int r = 0, tile_rows = std::min(kMR, m_end - i); r < tile_rows; ++r) {
      for (int j = 0; j < kNR; j += 16) {
        _mm_prefetch(reinterpret_cast<const char*>(q + r * ldp + j), _MM_HINT_T0);
      }
    }
  };
  // On the row block (in L1 when the tiles went row by row) once all its columns are done, not per
  // tile: the rows of the arrays the epilogue reads (kScale's scale) or writes (kGelu's slope) are
  // then one contiguous stretch of memory, which the hardware prefetchers stream; per tile (12
  // pieces of 128 bytes a row apart) they went at memory latency. Tiny28's training step, perf,
  // one thread: kScale's share 5.0% -> 2.9%, GELU's 5.7% -> 5.0%.
  auto epilogue_at = [&](int i, int mr) {
    if (last && epi) {
      apply_epilogue(*epi, C + int64_t(i) * ldc + j_begin, ldc, i, n0 + j_begin, mr,
                     j_end - j_begin);
    }
  };
  if (panels_outer) {
    if (rows) copy_rows(rows, ld_rows, A + int64_t(m_begin) * lda, lda, k0, kw, m_end - m_begin);
    for (int p = p_begin; p < p_end; ++p) {
      if (next) prefetch_share(p - p_begin, p_end - p_begin);
      for (int i = m_begin; i < m_end; i += kMR) {
        if (far_part) i + kMR < m_end ? prefetch_part(i + kMR, p) : prefetch_part(m_begin, p + 1);
        tile_at(i, std::min(kMR, m_end - i), p);
      }
    }
    for (int i = m_begin; i < m_end; i += kMR) epilogue_at(i, std::min(kMR, m_end - i));
  } else {
    const int tiles = (m_end - m_begin + kMR - 1) / kMR;
    for (int i = m_begin; i < m_end; i += kMR) {
      if (next) prefetch_share((i - m_begin) / kMR, tiles);
      const int mr = std::min(kMR, m_end - i);
      if (rows) {
        copy_rows(rows, ld_rows, A + int64_t(i) * lda, lda, k0, kw, mr);
        first_row = i;
      }
      for (int p = p_begin; p < p_end; ++p) {
        if (far_part) p + 1 < p_end ? prefetch_part(i, p + 1) : prefetch_part(i + kMR, p_begin);
        tile_at(i, mr, p);
      }
      epilogue_at(i, mr);
    }
  }
  if (last && epi && epi->stream) _mm_sfence();  // the streaming stores are seen past a barrier
}

// Scratch (gemm_own's packed B, gemm_wgrad's partial sums) from the context: grown (rarely: the
// first call of each size) and then reused.
float* pack_buffer(const Context& ctx, size_t floats) {
  return scratch(ctx, kScratchGemm, floats);
}

// The blocks of op(B) [K, N] that gemm_own packs, in its order: for each column block n0 (nc
// columns; ncp rounded up to whole panels) and each chunk of depths k0 (kw of them), the chunk's
// panels, kw x kNR values each. Packed once for good (gemm_pack_weight), block n0's chunk k0
// starts at packed_offset(n0, k0, K, ncp / kNR), its panels kw x kNR apart.
inline int64_t packed_offset(int n0, int k0, int K, int panels) {
  return int64_t(n0) * K + int64_t(k0) * panels * kNR;
}

// Panels [p0, p1) of block n0's chunk k0 (its panels) in B packed once: where they start, and
// how many floats they hold (a thread's share, which it prefetches before that chunk).
inline std::pair<const float*, int64_t> chunk_panels(const float* pre, int n0, int k0, int K,
                                                     int panels, int p0, int p1) {
  const int64_t kw = std::min(k_chunk(K), K - k0);
  return {pre + packed_offset(n0, k0, K, panels) + p0 * kw * kNR, (p1 - p0) * kw * kNR};
}

template <typename F>
void for_each_block(int N, int K, F&& f) {
  const int kc = k_chunk(K), nb = n_block(kc);
  for (int n0 = 0; n0 < N; n0 += nb) {
    const int nc = std::min(nb, N - n0), ncp = (nc + kNR - 1) / kNR * kNR;
    for (int k0 = 0; k0 < K; k0 += kc) {
      f(n0, nc, k0, std::min(kc, K - k0), packed_offset(n0, k0, K, ncp / kNR));
    }
  }
}

// Rows a thread takes through every chunk of K before its next rows, when B is packed once
// (gemm_own's pre) and A is split by rows: a block's partial sums (48 x nc floats) stay in L2 from
// one chunk to the next instead of going out to memory and back at each, while the column block's
// panels over all of K (at most 4 MB) are read again for each row block, from L3. Unblocked (all of
// a thread's rows per chunk) where those panels are larger (ViT-B's fc2: K 3072, 9 MB; blocks of
// 24, 48 or 96 rows measured no faster there). Each element's chunks are summed in the same order
// either way. `vit_fma_peak`, ViT-B's products at batch 16 (3,152 rows), AVX-512, three alternated
// runs each: qkv, proj and fc1 +6-7% on 1 thread and +3.5-4.5% on 2; AVX2 and fc2 unchanged.
inline int row_block(int K, int nc) {
  constexpr int kRows = 4 * kMR;
  return int64_t(K) * nc <= (int64_t(1) << 20) ? kRows : std::numeric_limits<int>::max();
}

// Whether a short A split by columns (one image's tokens) goes panel by panel over all its rows
// (chunk_rows' panels_outer): on AVX-512, when a thread's share of the weight (N x K x 4 / threads
// bytes) is over 512 KB, half of an AMD Zen 4/5 core's L2. Then a chunk's panels (32 KB each, 12
// of them for ViT-B's fc2) do not stay in L2 beside A, and row tile by row tile they went out and
// back in for each tile, 128 bytes per 24 FMAs; panel by panel, a tile's 12 broadcasts per 24
// FMAs come from L2. Measured (2 threads, AMD Zen 5): ViT-B's four products at batch 1, weights
// from memory, the two orders interleaved 24 times in one process, two runs: faster in 15-24 of 24
// pairs, medians +2.5-6%; whole models, one image, interleaved predict() calls: ViT-B faster in 18
// of 20 (+3%), ViT-S in 30 of 40 (+1.6%). Not below the 512 KB: ViT-Ti's products (221 and 295
// KB) went 2% slower panel by panel (81 of 100 calls slower); nor on AVX2 (6 x 16 tiles, 16 KB
// panels): 5-15 of 24 faster.
inline bool panels_outer_short_a(int N, int K, int threads) {
  return kRegisters >= 32 && int64_t(N) * K * 4 / threads > kHalfL2;
}

// Whether a tall A's row block (row_block's rows, fewer than the thread's all) goes panel by
// panel over its rows (chunk_rows' panels_outer): on AVX-512, where a column block's panels of a
// chunk (32 of 32 KB at ViT-B's qkv and fc1) fill a Zen 4/5 core's L2 and so came from L3 for each
// row tile; panel by panel each is read from L3 once a row block, and the block's rows (48 x 256
// floats) and partial sums stay in L2. Measured (2 threads, AMD Zen 5, interleaved 20 times in
// one process, four runs): ViT-B's qkv, proj and fc1 at batch 16 -0.3% to +3.0% (medians; 11 of
// 12 faster), ViT-S's qkv and fc1 +1.6-3.4%; AVX2 within +-1%, so it keeps the row order there.
inline bool panels_outer_row_block(int rows, int all) {
  return kRegisters >= 32 && rows < all;
}

// pre (nullable): op(B) packed once already (for_each_block's layout; ops.hpp's F32Panels). Then
// nothing is packed here and the threads never wait for each other's packing, while every tile
// sums the same terms in the same order as from B.
void gemm_own(const Context& ctx, bool trans_b, int M, int N, int K, float alpha, const float* A,
              int lda, const float* B, int ldb, float beta, float* C, int ldc, const float* bias,
              const Epilogue& epilogue, const float* pre = nullptr) {
  const bool accumulate = beta != 0.0f;
  const Epilogue* epi = epilogue.kind != Epilogue::kNone ? &epilogue : nullptr;
  const int kc = k_chunk(K);
  const int nb = n_block(kc);
  const int nc_pad = (std::min(N, nb) + kNR - 1) / kNR * kNR;
  // One chunk's packed B, shared by the op's threads (thread 0's buffer).
  float* packed = pre ? nullptr : pack_buffer(ctx, size_t(kc) * nc_pad);
  const int64_t stride = int64_t(kc) * kNR;  // floats from one packed panel to the next
  // The chunks' partial sums: in C itself, unless C's values are still to be added (beta 1).
  float* part = C;
  int64_t ldp = ldc;
  if (kc < K && accumulate) {
    part = scratch(ctx, kScratchGemmPartial, size_t(M) * nc_pad);
    ldp = nc_pad;
  }
  // op(B)'s rows k0 .. k0 + kw, columns n0 ..., as a matrix of its own.
  auto chunk_of_b = [&](int k0) { return trans_b ? B + k0 : B + int64_t(k0) * ldb; };
  // A short A (one image's tokens: 197 rows are 17 tiles of 12, 9 and 8 on two threads) is split
  // by columns, each thread packing and multiplying its own panels with no wait between; a tall one
  // by rows, every thread reading the panels all of them packed.
  const int threads = ctx.threads;
  const int all_panels = (N + kNR - 1) / kNR;
  const Context* copy = rows_crowd_l1(lda) ? &ctx : nullptr;  // chunk_rows copies A's rows
  if (pre && part == C && N > nb && threads > 1 && M < 256 && all_panels >= 4 * threads) {
    // B packed once, a short A, several column blocks (ViT-S's qkv: 1,024 + 128 columns): one
    // parallel region for all of them, each thread its contiguous share of all the panels, block
    // by block, instead of a region (and its barrier) a block, the last narrow one split by rows.
    // The same sums in the same order. N > nb rules out kResidualNorm (whole rows in one block).
    // ViT-S, one image, 2 threads: about 5% less time a forward (docs/PERFORMANCE.md).
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int g0 = all_panels * t / nt, g1 = all_panels * (t + 1) / nt;
      const bool outer = panels_outer_short_a(N, K, nt);
      // Block n0's columns and panels, and this thread's panels [p0, p1) of it.
      struct Share {
        int nc, panels, p0, p1;
      };
      auto share_of = [&](int n0) {
        const int nc = std::min(nb, N - n0), panels = (nc + kNR - 1) / kNR;
        return Share{nc, panels, std::max(0, g0 - n0 / kNR), std::min(panels, g1 - n0 / kNR)};
      };
      // This thread's panels of block n0's chunk k0 (none: null).
      auto share = [&](int n0, int k0) -> std::pair<const float*, int64_t> {
        const Share s = share_of(n0);
        if (s.p0 >= s.p1) return {nullptr, 0};
        return chunk_panels(pre, n0, k0, K, s.panels, s.p0, s.p1);
      };
      for (int n0 = 0; n0 < N; n0 += nb) {
        const auto [nc, panels, p0, p1] = share_of(n0);
        for (int k0 = 0; p0 < p1 && k0 < K; k0 += kc) {
          const int kw = std::min(kc, K - k0);
          const auto [next, next_floats] = k0 + kw < K   ? share(n0, k0 + kw)
                                           : n0 + nb < N ? share(n0 + nb, 0)
                                                         : std::pair<const float*, int64_t>{};
          chunk_rows(0, M, p0, p1, nc, k0, kw, k0 + kw == K, A, lda,
                     pre + packed_offset(n0, k0, K, panels), int64_t(kw) * kNR, C + n0, ldc, alpha,
                     accumulate, bias ? bias + n0 : nullptr, epi, n0, C + n0, ldc, next,
                     next_floats, outer, copy);
        }
      }
    }
    return;
  }
  for (int n0 = 0; n0 < N; n0 += nb) {
    const int nc = std::min(nb, N - n0);
    const int panels = (nc + kNR - 1) / kNR;
    const float* b = bias ? bias + n0 : nullptr;
    float* pt = part == C ? C + n0 : part;
    const bool by_cols = threads > 1 && M < 256 && panels >= 4 * threads;
    // kResidualNorm needs whole rows: split by columns, it runs after a barrier, on rows split
    // evenly over the threads.
    const bool late_epi = by_cols && epi && epi->kind == Epilogue::kResidualNorm;
    auto run = [&](int t, int nt) {
      const int p_begin = panels * t / nt, p_end = panels * (t + 1) / nt;
      const int tiles = (M + kMR - 1) / kMR;  // row blocks of whole tiles, split evenly
      const int m_begin = by_cols ? 0 : std::min(M, tiles * t / nt * kMR);
      const int m_end = by_cols ? M : std::min(M, tiles * (t + 1) / nt * kMR);
      // Packing per chunk is shared by the threads (a barrier each): one block of all the rows.
      // At least one pass, so that a thread without rows still reaches the barriers.
      const int all = std::max(1, m_end - m_begin);
      const int rb = pre && !by_cols && kc < K ? std::min(all, row_block(K, nc)) : all;
      const bool outer = by_cols ? panels_outer_short_a(N, K, nt) : panels_outer_row_block(rb, all);
      int r0 = m_begin;
      do {
        const int r1 = std::min(m_end, r0 + rb);
        for (int k0 = 0; k0 < K; k0 += kc) {
          const int kw = std::min(kc, K - k0);
          const bool last = k0 + kw == K;
          // The chunk's slice of B: a packed panel holds kw x kNR values, panels kc x kNR apart
          // whatever kw is, so that no thread's panels of one chunk overlap another's of the next.
          const float* panels_k = packed;
          int64_t panel_stride = stride;
          const float* next = nullptr;
          int64_t next_floats = 0;
          if (pre) {
            panels_k = pre + packed_offset(n0, k0, K, panels);
            panel_stride = int64_t(kw) * kNR;
            // This thread's panels of the next chunk, toward L2 (with its rows split over
            // the threads, in its first row block alone: the other threads read them too).
            if (!last && (by_cols || nt == 1) && r0 == m_begin) {
              std::tie(next, next_floats) =
                  chunk_panels(pre, n0, k0 + kw, K, panels, p_begin, p_end);
            }
          } else {
            pack_b(packed, stride, chunk_of_b(k0), ldb, trans_b, kw, n0, nc, p_begin, p_end);
            if (!by_cols && nt > 1) {
#pragma omp barrier
            }
          }
          chunk_rows(r0, r1, by_cols ? p_begin : 0, by_cols ? p_end : panels, nc, k0, kw, last, A,
                     lda, panels_k, panel_stride, C + n0, ldc, alpha, accumulate, b,
                     late_epi ? nullptr : epi, n0, pt, ldp, next, next_floats, outer, copy);
          if (!pre && !by_cols && nt > 1 && !last) {
#pragma omp barrier  // before the next chunk is packed over this one
          }
        }
        r0 = r1;
      } while (r0 < m_end);
      if (late_epi) {
#pragma omp barrier
        const int r_begin = M * t / nt, r_end = M * (t + 1) / nt;
        if (r_end > r_begin) {
          apply_epilogue(*epi, C + int64_t(r_begin) * ldc, ldc, r_begin, 0, r_end - r_begin, N);
        }
      }
    };
    if (threads == 1) {
      run(0, 1);
    } else {
#pragma omp parallel num_threads(threads)
      run(omp_get_thread_num(), omp_get_num_threads());
    }
  }
}

// ---- Weight gradients: C[M,N] = beta * C + A^T B with A [K, M] and B [K, N], K = the token
// count (thousands), M and N = layer widths. OpenBLAS packs both operands on every call, which cost
// it nearly as much as the multiply here. No packing is needed: row k of A gives the MR values
// broadcast into an MR x 32 register tile, row k of B its 32 columns, both read in place. K is cut
// into chunks whose rows of A and B stay in L2 while every tile passes over them; each chunk's
// sum in the tile's registers is then added to C. Each C element is summed over k in a fixed
// order (see gemm_wgrad), so the result does not depend on the thread count.
constexpr int kWR = kMR;  // rows of C (columns of A) per tile (at most kLanes: see sums)
constexpr int kKC = 256;  // rows of A and B per chunk
// Measured (BM_GemmTN, 2 threads): 228-250 GFLOP/s against OpenBLAS's 129-200 on tiny28's shapes
// (M x N <= 256 x 64, K = 6400); on par from ViT-Ti's 576 x 192 (239 against 251-257) to ViT-B's
// 2304 x 768 (313 against 237-326). Another day, AVX-512, 3 repetitions (a slower hour for both):
// 576 x 192 118-156 against 118-147, 768 x 192 150-160 against 80-97, 192 x 768 154-166 against
// 126-151, 2304 x 768 137-138 against 136-143, 3072 x 768 125-131 against 128-158.

// kFull: w == 32, loads without masks. (With masked loads in the k loop GCC 12 spills all the
// accumulators to the stack on every iteration, halving the speed; partial tiles are rare.)
// ahead > 0: the distance in rows to the next chunk, whose rows of this tile's A and B columns
// are prefetched into L2 meanwhile (BM_GemmTN at ViT-B's shapes: 210-215 -> 310-313 GFLOP/s;
// tiny28's unchanged).
// sums (nullable): sums[0:MR] += the sums over the chunk of A's MR columns, which are loaded anyway
// (the bias gradient, in the same pass).
template <int MR, bool kFull>
void wgrad_tile(int kc, const float* A, int lda, const float* B, int ldb, float* C, int ldc, int w,
                bool load_c, int ahead, float* sums) {
  const Mask m0 = first(w), m1 = first(w - kLanes), mr_mask = first(MR);
  Vec c0[MR], c1[MR];  // in registers: every loop over MR unrolled, as in tile()
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = zero();
  Vec asum = zero();
  for (int k = 0; k < kc; ++k) {
    const float* b = B + int64_t(k) * ldb;
    const float* a = A + int64_t(k) * lda;
    if (ahead > 0) {
      _mm_prefetch(reinterpret_cast<const char*>(a + int64_t(ahead) * lda), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(b + int64_t(ahead) * ldb), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(b + int64_t(ahead) * ldb + 16), _MM_HINT_T1);
    }
    const Vec b0 = kFull ? load(b) : load(b, m0);
    const Vec b1 = kFull ? load(b + kLanes) : load(b + kLanes, m1);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const Vec ai = set1(a[i]);
      c0[i] = fmadd(ai, b0, c0[i]);
      c1[i] = fmadd(ai, b1, c1[i]);
    }
    if (sums) asum = add(asum, load(a, mr_mask));
  }
  if (sums) store(sums, mr_mask, add(load(sums, mr_mask), asum));
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* row = C + int64_t(i) * ldc;
    Vec r0 = c0[i], r1 = c1[i];
    if (kFull) {
      if (load_c) {
        r0 = add(load(row), r0);
        r1 = add(load(row + kLanes), r1);
      }
      store(row, r0);
      store(row + kLanes, r1);
    } else {
      if (load_c) {
        r0 = add(load(row, m0), r0);
        r1 = add(load(row + kLanes, m1), r1);
      }
      store(row, m0, r0);
      store(row + kLanes, m1, r1);
    }
  }
}

// Tiles [t_begin, t_end) of C (row-major over kWR x kNR tiles), the chunks of K in [k_begin,
// k_end); the tiles of the first column also add A's column sums to asums (when non-null).
void wgrad_tiles(int t_begin, int t_end, int M, int N, int k_begin, int k_end, const float* A,
                 int lda, const float* B, int ldb, bool beta_one, float* C, int ldc, float* asums) {
  const int tn = (N + kNR - 1) / kNR;
  for (int k0 = k_begin; k0 < k_end; k0 += kKC) {
    const int kc = std::min(kKC, k_end - k0);
    const bool load_c = beta_one || k0 > k_begin;
    const int ahead = k0 + kc < k_end ? kc : 0;  // the next chunk's rows are kc further on
    const float* a = A + int64_t(k0) * lda;
    const float* b = B + int64_t(k0) * ldb;
    for (int t = t_begin; t < t_end; ++t) {
      const int i = t / tn * kWR, j = t % tn * kNR;
      const int mr = std::min(kWR, M - i), w = std::min(kNR, N - j);
      float* c = C + int64_t(i) * ldc + j;
      float* sums = asums && j == 0 ? asums + i : nullptr;
      with_tile_rows<kWR>(mr, [&]<int MR>() {
        if (w == kNR) {
          wgrad_tile<MR, true>(kc, a + i, lda, b + j, ldb, c, ldc, w, load_c, ahead, sums);
        } else {
          wgrad_tile<MR, false>(kc, a + i, lda, b + j, ldb, c, ldc, w, load_c, ahead, sums);
        }
      });
    }
  }
}

// K is cut into two fixed halves (at K / 2 rounded up to 16 rows; one when K is a single chunk),
// so that the threads on each get equal work when a micro-batch's K is a few chunks (18 images
// of 50 tokens: 450 rows each, not 512 and 388 as whole chunks gave): the first is summed into C,
// the second into a separate partial that is then added to C. A group of threads takes each half
// (the first group one larger for odd counts), splitting its tiles, so each reads only half of the
// rows of A and B - the half that the op before it (split by rows) left in its own cache. The
// halves do not depend on the thread count, nor then does the result: C = (C + first half) + second
// half, whoever computes them.
void gemm_wgrad(const Context& ctx, int M, int N, int K, const float* A, int lda, const float* B,
                int ldb, float beta, float* C, int ldc, float* asums) {
  const int tiles = (M + kWR - 1) / kWR * ((N + kNR - 1) / kNR);
  const int k_split = K > kKC ? (K / 2 + 15) / 16 * 16 : K;
  const bool beta_one = beta != 0.0f;
  if (k_split == K) {  // one half
    if (ctx.threads == 1) {
      wgrad_tiles(0, tiles, M, N, 0, K, A, lda, B, ldb, beta_one, C, ldc, asums);
      return;
    }
#pragma omp parallel num_threads(ctx.threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      wgrad_tiles(tiles * t / nt, tiles * (t + 1) / nt, M, N, 0, K, A, lda, B, ldb, beta_one, C,
                  ldc, asums);
    }
    return;
  }
  // The second half's partial C [M, N] and column sums [M] (the calling thread's buffer).
  float* partial = pack_buffer(ctx, size_t(M) * N + M);
  float* psums = asums ? partial + int64_t(M) * N : nullptr;
  if (psums) std::fill(psums, psums + M, 0.0f);
  auto add_partial = [&](int r_begin, int r_end) {
    for (int r = r_begin; r < r_end; ++r) {
      float* c = C + int64_t(r) * ldc;
      const float* p = partial + int64_t(r) * N;
#pragma omp simd
      for (int j = 0; j < N; ++j) c[j] += p[j];
    }
  };
  auto both_halves = [&] {
    wgrad_tiles(0, tiles, M, N, 0, k_split, A, lda, B, ldb, beta_one, C, ldc, asums);
    wgrad_tiles(0, tiles, M, N, k_split, K, A, lda, B, ldb, false, partial, N, psums);
    add_partial(0, M);
  };
  if (ctx.threads == 1) {
    both_halves();
  } else {
#pragma omp parallel num_threads(ctx.threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int first = (nt + 1) / 2;  // threads on the first half; the rest on the second
      if (nt == 1) {
        both_halves();
      } else {
        if (t < first) {
          wgrad_tiles(tiles * t / first, tiles * (t + 1) / first, M, N, 0, k_split, A, lda, B, ldb,
                      beta_one, C, ldc, asums);
        } else {
          const int u = t - first, nu = nt - first;
          wgrad_tiles(tiles * u / nu, tiles * (u + 1) / nu, M, N, k_split, K, A, lda, B, ldb, false,
                      partial, N, psums);
        }
#pragma omp barrier
        add_partial(M * t / nt, M * (t + 1) / nt);
      }
    }
  }
  if (asums) {
    for (int r = 0; r < M; ++r) asums[r] += psums[r];
  }
}

}  // namespace
#endif

namespace {

// C[M,N] = alpha * op(A) op(B) + beta * C on OpenBLAS, cut into pieces that depend on the shape
// alone: up to 8 row blocks (when M >= N) or column blocks, each one sgemm call on one thread.
// Every element is then computed by the same call on any thread count, so the result is the same
// bits; OpenBLAS's threaded builds partition by their thread count, and with some of its kernels
// (the AVX2 ones, for one) that changes the rounding. 8 pieces balance 1, 2, 4 and 8 threads; each
// re-packs the operand it shares with the others (a few percent of a large product's time).
void blas_in_pieces(const Context& ctx, bool trans_a, bool trans_b, int M, int N, int K,
                    float alpha, const float* A, int lda, const float* B, int ldb, float beta,
                    float* C, int ldc) {
  const bool by_rows = M >= N;
  const int extent = by_rows ? M : N;
  const double work = double(M) * N * K;
  const int pieces = std::clamp(int(work / (1 << 20)), 1, std::min(8, (extent + 15) / 16));
  const int step = ((extent + pieces - 1) / pieces + 15) / 16 * 16;
  const int count = (extent + step - 1) / step;
  auto piece = [&](int p) {
    const int begin = p * step, len = std::min(step, extent - begin);
    const float* a = A;
    const float* b = B;
    float* c = C;
    int m = M, n = N;
    if (by_rows) {
      a += trans_a ? begin : int64_t(begin) * lda;
      c += int64_t(begin) * ldc;
      m = len;
    } else {
      b += trans_b ? int64_t(begin) * ldb : begin;
      c += begin;
      n = len;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, K, alpha, a, lda, b, ldb, beta, c, ldc);
  };
  // OpenBLAS's OpenMP build runs a call serially inside an active parallel region, and otherwise on
  // as many threads as OpenMP would use (the calling thread's setting, which a one-thread context
  // sets to 1 for its calls).
  if (omp_in_parallel()) {
    for (int p = 0; p < count; ++p) piece(p);
    return;
  }
  if (ctx.threads == 1) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    for (int p = 0; p < count; ++p) piece(p);
    omp_set_num_threads(saved);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(ctx.threads)
  for (int p = 0; p < count; ++p) piece(p);
}

#if defined(__AVX512F__)
// ---- bf16 products (ops::Context::packed; training's weight gradients too): C[M,N] = alpha *
// A[M,K] op(B) (+ bias) (+ C when accumulate) for op(B) [K, N] in bf16 panels (ops.hpp's
// Bf16Panels: a weight converted once for inference, or each step for training), A rounded to
// bf16 here on each call (to nearest even), every product of two bf16 values exact in fp32 and
// the sums in fp32. Error: each term a_k b_k carries at most the two roundings to bf16 (relative
// 2^-8 each, so |a b| (2^-7 + 2^-16) in all), then the fp32 additions; tests/test_bf16.cpp
// derives its bound from this. Both instructions below treat denormal inputs and results as zero.
//
// Two kernels, the same inputs and the same bound (vit::amx_active chooses):
// - AVX512-BF16: a register tile of 12 rows x 32 columns (24 accumulators) takes a pair of depths
//   per step: one broadcast of A's pair (a[2q], a[2q + 1]) per row, two loads of the panel's
//   pairs, two VDPBF16PS per row (64 multiply-adds).
// - AMX-BF16 (amx_tiles): a block of 32 rows x 32 columns in four 16 x 16 fp32 tile registers,
//   16 pairs of depths per step: two tiles of A (16 rows x 16 pairs each) and the panel's 16
//   pairs in two tiles of 16 columns, four TDPBF16PS (16,384 multiply-adds). The panels' layout is
//   AMX's own (each row of a B tile: 16 columns' pairs, 64 bytes; the panel's rows 128 bytes
//   apart), and A's rows and the panels are padded with zeros to whole steps (bf16_steps_pairs).
// Every C element is summed over the whole of K by one thread in one accumulator, in order: no
// chunks, so the result depends on neither the thread count nor the rows around it. The threads
// split C's rows or its columns (split_rows says which; row_share and column_share say how).
constexpr int kBfRows = 12, kBfCols = 32, kAmxRows = 32, kAmxPairs = 16;

// Pairs of depths an A row and a panel hold: K's, rounded up to whole AMX steps (ops.hpp's
// Bf16Panels layout).
inline int bf16_steps_pairs(int K) {
  return (K + 2 * kAmxPairs - 1) / (2 * kAmxPairs) * kAmxPairs;
}

// Rows an A buffer of M rows is given, so that AMX's tiles of 16 rows may read past M.
inline int64_t bf16_rows_alloc(int M) {
  return (int64_t(M) + kAmxRows - 1) / kAmxRows * kAmxRows;
}

// dst[i, 0:Kpad] = bf16(A[i, 0:K]) for rows [m_begin, m_end), zero from K to Kpad (a multiple of
// 32).
__attribute__((target("avx512bf16"))) void rows_to_bf16(uint16_t* dst, int64_t ldd, const float* A,
                                                        int64_t lda, int m_begin, int m_end, int K,
                                                        int Kpad) {
  for (int i = m_begin; i < m_end; ++i) {
    const float* a = A + int64_t(i) * lda;
    uint16_t* d = dst + int64_t(i) * ldd;
    for (int k0 = 0; k0 < Kpad; k0 += 32) {
      const int n = std::clamp(K - k0, 0, 32);
      const __m512 lo = _mm512_maskz_loadu_ps(__mmask16(n >= 16 ? 0xffff : (1u << n) - 1), a + k0);
      const __m512 hi = n > 16
                            ? _mm512_maskz_loadu_ps(
                                  __mmask16(n >= 32 ? 0xffff : (1u << (n - 16)) - 1), a + k0 + 16)
                            : _mm512_setzero_ps();
      _mm512_storeu_si512(d + k0, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

// C[0:rows, 0:w] = alpha * acc (+ bias[0:w]) (+ C), for the finished sums acc (row stride
// 2 x 16): the fp32 kernel's order, (A op(B) + bias) + C.
inline void store_bf16_sums(const float* acc, int64_t lda, int rows, float* C, int64_t ldc, int w,
                            float alpha, const float* bias, bool accumulate) {
  const __mmask16 m0 = __mmask16(w >= 16 ? 0xffff : (1u << w) - 1);
  const __mmask16 m1 = __mmask16(w >= 32 ? 0xffff : w > 16 ? (1u << (w - 16)) - 1 : 0);
  const __m512 va = _mm512_set1_ps(alpha);
  const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
  for (int i = 0; i < rows; ++i) {
    float* row = C + int64_t(i) * ldc;
    __m512 r0 = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(acc + i * lda), va), bias0);
    __m512 r1 = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(acc + i * lda + 16), va), bias1);
    if (accumulate) {
      r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, row));
      r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, row + 16));
    }
    _mm512_mask_storeu_ps(row, m0, r0);
    _mm512_mask_storeu_ps(row + 16, m1, r1);
  }
}

// C[0:MR, 0:w] = alpha * A[0:MR, :] panel (+ bias[0:w]) (+ C), over `pairs` pairs of depths.
template <int MR>
__attribute__((target("avx512bf16"))) void tile_bf16(int pairs, const uint16_t* A, int64_t lda,
                                                     const uint16_t* panel, float* C, int64_t ldc,
                                                     int w, float alpha, const float* bias,
                                                     bool accumulate) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int q = 0; q < pairs; ++q) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + int64_t(q) * 64);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + int64_t(q) * 64 + 32);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      int32_t pair;
      std::memcpy(&pair, A + int64_t(i) * lda + 2 * q, sizeof pair);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
      c0[i] = _mm512_dpbf16_ps(c0[i], a, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], a, b1);
    }
  }
  alignas(64) float acc[MR * 32];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    _mm512_store_ps(acc + i * 32, c0[i]);
    _mm512_store_ps(acc + i * 32 + 16, c1[i]);
  }
  store_bf16_sums(acc, 32, MR, C, ldc, w, alpha, bias, accumulate);
}

// The tiles a thread runs: rows [m_begin, m_end) (whole blocks of 32 rows but the last, which may
// end at M) by panels [p_begin, p_end), in row blocks of `block`: each panel of the range passes
// over a block's row tiles before the next block starts. With epi (only when the panels are all
// of C's columns), each block's rows get the epilogue once their last panel is done, while they
// are still in cache.
struct Bf16Range {
  int m_begin, m_end, p_begin, p_end, block;
  const Epilogue* epi;
};

// AMX's tiles (amx.hpp's configuration): 0-3 the sums (16 rows x 16 fp32), 4-5 A's rows (16 x 16
// pairs), 6-7 a panel's two halves (16 pairs x 16 columns).
// bf16_tiles on AMX: rows in tiles of 32 (A's buffer holds whole tiles: bf16_rows_alloc).
__attribute__((target("amx-tile,amx-bf16,avx512bf16"))) void amx_tiles(
    const Bf16Range& r, const uint16_t* A, int64_t lda, const uint16_t* panels, int N, int steps,
    float alpha, float* C, int ldc, const float* bias, bool accumulate) {
  static const AmxConfig config;
  _tile_loadconfig(&config);
  const int64_t panel_stride = int64_t(steps) * kAmxPairs * 64, a_bytes = lda * 2;
  const int64_t c_bytes = int64_t(ldc) * 4;
  // C = A op(B) alone (no scale, bias or sum onto C: the backward's input gradients): whole
  // blocks' tiles are stored to C itself, not through acc and a pass of vector instructions.
  // The same values: that pass computed 1 * s + 0, which changes only a zero's sign (-0 to 0).
  const bool plain = alpha == 1.0f && !bias && !accumulate;
  alignas(64) float acc[kAmxRows * 32];
  for (int m0 = r.m_begin; m0 < r.m_end; m0 += r.block) {
    const int m1 = std::min(r.m_end, m0 + r.block);
    for (int p = r.p_begin; p < r.p_end; ++p) {
      const int j0 = p * kBfCols, wc = std::min(kBfCols, N - j0);
      const uint16_t* panel = panels + p * panel_stride;
      for (int i = m0; i < m1; i += kAmxRows) {
        const uint16_t* a = A + int64_t(i) * lda;
        const int rows = std::min(kAmxRows, m1 - i);
        _tile_zero(0);
        _tile_zero(1);
        if (rows > 16) {
          _tile_zero(2);
          _tile_zero(3);
          for (int s = 0; s < steps; ++s) {
            _tile_loadd(4, a + s * 2 * kAmxPairs, a_bytes);
            _tile_loadd(5, a + 16 * lda + s * 2 * kAmxPairs, a_bytes);
            _tile_loadd(6, panel + int64_t(s) * kAmxPairs * 64, 128);
            _tile_loadd(7, panel + int64_t(s) * kAmxPairs * 64 + 32, 128);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
          }
        } else {
          for (int s = 0; s < steps; ++s) {
            _tile_loadd(4, a + s * 2 * kAmxPairs, a_bytes);
            _tile_loadd(6, panel + int64_t(s) * kAmxPairs * 64, 128);
            _tile_loadd(7, panel + int64_t(s) * kAmxPairs * 64 + 32, 128);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
          }
        }
        float* c = C + int64_t(i) * ldc + j0;
        if (plain && wc == kBfCols && (rows == kAmxRows || rows == 16)) {
          // The sums are C's values: the tiles go straight to C's rows.
          _tile_stored(0, c, c_bytes);
          _tile_stored(1, c + 16, c_bytes);
          if (rows > 16) {
            _tile_stored(2, c + 16 * ldc, c_bytes);
            _tile_stored(3, c + 16 * ldc + 16, c_bytes);
          }
          continue;
        }
        if (rows > 16) {
          _tile_stored(2, acc + 16 * 32, 128);
          _tile_stored(3, acc + 16 * 32 + 16, 128);
        }
        _tile_stored(0, acc, 128);
        _tile_stored(1, acc + 16, 128);
        store_bf16_sums(acc, 32, rows, c, ldc, wc, alpha, bias ? bias + j0 : nullptr, accumulate);
      }
    }
    if (r.epi) apply_epilogue(*r.epi, C + int64_t(m0) * ldc, ldc, m0, 0, m1 - m0, N);
  }
  _tile_release();
}

// C[0:M, 0:N] = alpha * A op(B) (+ bias) (+ C when accumulate) over range r's tiles (then its
// epilogue): A's rows already in bf16 (lda = 2 bf16_steps_pairs(K), bf16_rows_alloc(M) rows),
// op(B) in panels (ops.hpp's Bf16Panels), K's pairs padded with zeros to `steps` AMX steps.
void bf16_tiles(const Bf16Range& r, const uint16_t* A, int64_t lda, const uint16_t* panels, int N,
                int K, float alpha, float* C, int ldc, const float* bias, bool accumulate) {
  const int steps = bf16_steps_pairs(K) / kAmxPairs, pairs = (K + 1) / 2;
  if (amx_active()) {
    amx_tiles(r, A, lda, panels, N, steps, alpha, C, ldc, bias, accumulate);
    return;
  }
  const int64_t panel_stride = int64_t(steps) * kAmxPairs * 64;
  for (int m0 = r.m_begin; m0 < r.m_end; m0 += r.block) {
    const int m1 = std::min(r.m_end, m0 + r.block);
    for (int p = r.p_begin; p < r.p_end; ++p) {
      const int j0 = p * kBfCols, wc = std::min(kBfCols, N - j0);
      for (int i = m0; i < m1; i += kBfRows) {
        with_tile_rows<kBfRows>(std::min(kBfRows, m1 - i), [&]<int MR>() {
          tile_bf16<MR>(pairs, A + int64_t(i) * lda, lda, panels + p * panel_stride,
                        C + int64_t(i) * ldc + j0, ldc, wc, alpha, bias ? bias + j0 : nullptr,
                        accumulate);
        });
      }
    }
    if (r.epi) apply_epilogue(*r.epi, C + int64_t(m0) * ldc, ldc, m0, 0, m1 - m0, N);
  }
}

// Thread t's (of nt) columns: its share of the panels over all M rows, in row blocks whose bf16
// A fits in half of L2 (whole tiles of both kernels, at least one), so that each panel passes
// over a block's rows from L2; one image's tokens (M < 256) in one block whatever K, so that each
// panel is read once and A again from L3 for each (in blocks of 84 rows, ViT-B's fc2 read a
// thread's 2.3 MB of panels three times). On the AVX512-BF16 kernel, ViT-B's fc2 at batch 1,
// weights from memory, interleaved 40 times with the blocks of 84: faster in 33 of 40 pairs
// (+2.2%); the whole bf16 forward faster in 29 of 40 calls (+1.1%).
Bf16Range column_share(int t, int nt, int M, int N, int64_t lda) {
  const int count = (N + kBfCols - 1) / kBfCols;
  constexpr int kTile = std::lcm(kBfRows, kAmxRows);
  const int block = M < 256 ? M : std::max(kTile, int(512 * 1024 / (lda * 2)) / kTile * kTile);
  return {0, M, count * t / nt, count * (t + 1) / nt, block, nullptr};
}

// Thread t's (of nt) rows: whole AMX tiles of rows (32), by every panel, in blocks of 96 rows
// (three AMX tiles, eight of the AVX512-BF16 kernel's): a block's A and C rows stay in L1-L2 while
// the panels pass, and the epilogue then finds them still in cache.
Bf16Range row_share(int t, int nt, int M, int N, const Epilogue* epi) {
  const int tiles = (M + kAmxRows - 1) / kAmxRows, count = (N + kBfCols - 1) / kBfCols;
  const int begin = std::min(M, tiles * t / nt * kAmxRows);
  const int end = std::min(M, tiles * (t + 1) / nt * kAmxRows);
  return {begin, end, 0, count, std::lcm(kBfRows, kAmxRows), epi};
}

// Whether a bf16 product of M rows and N columns (its panels panel_bytes; gemm_bf16's C, or
// wgrad_bf16's dw on x's panels) splits its rows between nt threads (row_share) rather than its
// columns (column_share). By rows, a thread converts, multiplies and finishes (the epilogue) only
// its own rows, with no barrier and no rows passing between cores, but reads every panel of the
// weight; by columns, it reads only its panels, and the rows of A the other threads converted. So
// rows win when there are at least as many rows as columns (and two tiles of rows a thread),
// columns when a few rows meet a wide weight (batch 1). On one thread (a training lane) the choice
// is the loop's order: by rows, blocks of 96 rows take every panel in turn while they stay in
// cache, and the epilogue finds them there; by columns, each panel passes over all the rows. Rows
// when the panels are small enough to stay in L2 (at most 512 KB: tiny28's, ViT-Ti's). Measured on
// AMX (bench/ops_bench.cpp, BM_GemmBf16; vit bench --mode infer --dtype bf16; bf16 training
// epochs): docs/PERFORMANCE.md, "bf16 products split by rows".
bool split_rows(int M, int N, int64_t panel_bytes, int nt) {
  if (nt == 1) return M >= 2 * kAmxRows && panel_bytes <= 512 * 1024;
  return M >= 2 * kAmxRows * nt && M >= N;
}

// Runs run(t, nt) on the op's threads (ctx.threads; the calling thread alone with one).
template <class Run>
void on_threads(const Context& ctx, Run&& run) {
  if (ctx.threads == 1) {
    run(0, 1);
  } else {
#pragma omp parallel num_threads(ctx.threads)
    run(omp_get_thread_num(), omp_get_num_threads());
  }
}

// C[M,N] = alpha * A[M,K] op(B) (+ bias) (+ C when accumulate), then the epilogue, for op(B) [K, N]
// in bf16 panels (a weight's: ops::Context::packed).
void gemm_bf16(const Context& ctx, const uint16_t* panels, int M, int N, int K, float alpha,
               const float* A, int lda, bool accumulate, float* C, int ldc, const float* bias,
               const Epilogue& epilogue) {
  const int Kpad = 2 * bf16_steps_pairs(K);
  // A in bf16, shared by the op's threads (thread 0's scratch; 2 bf16 values per float).
  auto* abf =
      reinterpret_cast<uint16_t*>(pack_buffer(ctx, size_t(bf16_rows_alloc(M)) * (Kpad / 2)));
  const Epilogue* epi = epilogue.kind != Epilogue::kNone ? &epilogue : nullptr;
  const bool by_rows = split_rows(M, N, bf16_panels_size(K, N) * 2, ctx.threads);
  on_threads(ctx, [&](int t, int nt) {
    if (by_rows) {  // each thread its own rows, start to finish
      const Bf16Range r = row_share(t, nt, M, N, epi);
      rows_to_bf16(abf, Kpad, A, lda, r.m_begin, r.m_end, K, Kpad);
      bf16_tiles(r, abf, Kpad, panels, N, K, alpha, C, ldc, bias, accumulate);
      if (epi && epi->stream) _mm_sfence();
      return;
    }
    rows_to_bf16(abf, Kpad, A, lda, M * t / nt, M * (t + 1) / nt, K, Kpad);
    if (nt > 1) {
#pragma omp barrier
    }
    bf16_tiles(column_share(t, nt, M, N, Kpad), abf, Kpad, panels, N, K, alpha, C, ldc, bias,
               accumulate);
    if (epi) {  // on whole rows, split evenly, once every column is done
      if (nt > 1) {
#pragma omp barrier
      }
      const int r_begin = M * t / nt, r_end = M * (t + 1) / nt;
      if (r_end > r_begin) {
        apply_epilogue(*epi, C + int64_t(r_begin) * ldc, ldc, r_begin, 0, r_end - r_begin, N);
      }
      if (epi->stream) _mm_sfence();
    }
  });
}

// ---- Conversions to bf16 pairs for training's products (ops::bf16_panels, wgrad_bf16).
// Lane j of the result: the pair (bf16(lo[j]), bf16(hi[j])), lo in the low half, for j < n (n <=
// 16; zero past n, and hi's half zero when hi is null).
__attribute__((target("avx512bf16"))) inline __m512i bf16_pairs(__m512 l, __m512 h) {
  // [l0 .. l15, h0 .. h15] as 16-bit values, interleaved to l0 h0 l1 h1 ...
  const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(h, l);
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(order, both);
}
__attribute__((target("avx512bf16"))) inline __m512i bf16_pairs(const float* lo, const float* hi,
                                                                int n) {
  const __mmask16 m = __mmask16(n >= 16 ? 0xffff : (1u << n) - 1);
  return bf16_pairs(_mm512_maskz_loadu_ps(m, lo),
                    hi ? _mm512_maskz_loadu_ps(m, hi) : _mm512_setzero_ps());
}

// r[0:16] transposed as 16 x 16 32-bit values: r[i] lane j <- r[j] lane i.
inline void transpose_16x16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {  // within 128-bit lanes: pairs of rows interleaved
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // then 4 rows per column, within 128-bit lanes
    u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // u[4g + j]'s 128-bit lane L: column 4L + j of rows 4g .. 4g + 3; gather the four g's.
  for (int j = 0; j < 4; ++j) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88);  // lanes 0, 2 of each
    const __m512i v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD);  // lanes 1, 3
    const __m512i w0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
    const __m512i w1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_i32x4(v0, w0, 0x88);       // column j
    r[8 + j] = _mm512_shuffle_i32x4(v0, w0, 0xDD);   // column 8 + j
    r[4 + j] = _mm512_shuffle_i32x4(v1, w1, 0x88);   // column 4 + j
    r[12 + j] = _mm512_shuffle_i32x4(v1, w1, 0xDD);  // column 12 + j
  }
}

// Panels [p_begin, p_end) of op(B) [K, N] (ops::bf16_panels' layout) into out (all panels').
__attribute__((target("avx512bf16"))) void panels_bf16(uint32_t* out, const float* B, int64_t ldb,
                                                       bool trans_b, int K, int N, int p_begin,
                                                       int p_end) {
  const int pairs = (K + 1) / 2, padded = bf16_steps_pairs(K);
  for (int p = p_begin; p < p_end; ++p) {
    uint32_t* panel = out + int64_t(p) * padded * kBfCols;
    const int n0 = p * kBfCols, cols = std::min(kBfCols, N - n0);
    // The padding pairs (zeros), then the panel's pairs.
    std::fill(panel + int64_t(pairs) * kBfCols, panel + int64_t(padded) * kBfCols, 0u);
    if (!trans_b) {  // B [K, N]: rows 2q and 2q + 1, 32 columns each
      for (int q = 0; q < pairs; ++q) {
        const float* lo = B + int64_t(2 * q) * ldb + n0;
        const float* hi = 2 * q + 1 < K ? lo + ldb : nullptr;
        _mm512_storeu_si512(panel + q * kBfCols, bf16_pairs(lo, hi, std::min(16, cols)));
        _mm512_storeu_si512(panel + q * kBfCols + 16,
                            cols > 16 ? bf16_pairs(lo + 16, hi ? hi + 16 : nullptr, cols - 16)
                                      : _mm512_setzero_si512());
      }
      continue;
    }
    // B [N, K]: column n of op(B) is row n of B, whose 32 depths at a time make 16 pairs. 16
    // rows' pairs, transposed in registers, are 16 of the panel's rows of pairs, 16 columns each
    // (zero past N). (Scattering each row's pairs to their 16 rows took 1.7% of tiny28's bf16
    // training step, the weights' conversions, in perf.)
    for (int c0 = 0; c0 < kBfCols; c0 += 16) {
      for (int q0 = 0; q0 < pairs; q0 += 16) {
        const int k0 = 2 * q0, n = std::min(32, K - k0);
        const __mmask16 m_lo = __mmask16(n >= 16 ? 0xffff : (1u << n) - 1);
        const __mmask16 m_hi = __mmask16(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1 : 0);
        __m512i r[16];
        for (int j = 0; j < 16; ++j) {
          if (c0 + j >= cols) {
            r[j] = _mm512_setzero_si512();
            continue;
          }
          const float* row = B + int64_t(n0 + c0 + j) * ldb + k0;
          const __m512 lo = _mm512_maskz_loadu_ps(m_lo, row);
          const __m512 hi = n > 16 ? _mm512_maskz_loadu_ps(m_hi, row + 16) : _mm512_setzero_ps();
          r[j] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // lane i: the pair (k0 + 2i, k0 + 2i + 1)
        }
        transpose_16x16(r);  // r[i] lane j: column c0 + j's pair q0 + i
        for (int i = 0, np = std::min(16, pairs - q0); i < np; ++i) {
          _mm512_storeu_si512(panel + (q0 + i) * kBfCols + c0, r[i]);
        }
      }
    }
  }
}

// Rows [o_begin, o_end) of dout^T in bf16 pairs: out[o * padded + q] = (dout[2q, o], dout[2q + 1,
// o]) for dout [R, O] (zero at R when R is odd, and from pair ceil(R / 2) to padded =
// bf16_steps_pairs(R)): 16 pairs of 16 columns at a time, transposed in registers. With db, also
// db[o] += colsum(dout)[o] for the same columns, in fp32 from the values read here, each column
// summed row after row from zero and then added to db: colsum_accumulate's sums, bit for bit,
// without its second pass over dout (whose one chain of additions per 16 columns waited on the
// adder's latency: 2.7% of tiny28's bf16 training step in `perf`).
__attribute__((target("avx512bf16"))) void transposed_rows_bf16(uint32_t* out, const float* dout,
                                                                int64_t R, int O, int o_begin,
                                                                int o_end, float* db) {
  const int pairs = int((R + 1) / 2), padded = bf16_steps_pairs(int(R));
  const int blocks = (o_end - o_begin + 15) / 16;
  __m512 sums[16];  // a block of 16 columns each: O <= 256 a thread in one pass of the columns
  __m512i r[16];
  for (int b0 = 0; b0 < blocks; b0 += 16) {  // columns o_begin + 16 b0 ..., 256 at a time
    const int o_first = o_begin + 16 * b0, o_last = std::min(o_end, o_first + 256);
    for (__m512& v : sums) v = _mm512_setzero_ps();
    for (int q0 = 0; q0 < padded; q0 += 16) {
      for (int o0 = o_first; o0 < o_last; o0 += 16) {
        const int n = std::min(16, o_last - o0);
        const __mmask16 m = __mmask16(n >= 16 ? 0xffff : (1u << n) - 1);
        __m512& sum = sums[(o0 - o_first) / 16];
        for (int j = 0; j < 16; ++j) {
          const int q = q0 + j;
          if (q >= pairs) {
            r[j] = _mm512_setzero_si512();
            continue;
          }
          const float* lo = dout + int64_t(2 * q) * O + o0;
          const __m512 l = _mm512_maskz_loadu_ps(m, lo);
          const __m512 h = 2 * q + 1 < R ? _mm512_maskz_loadu_ps(m, lo + O) : _mm512_setzero_ps();
          if (db) {
            sum = _mm512_add_ps(sum, l);
            if (2 * q + 1 < R) sum = _mm512_add_ps(sum, h);
          }
          r[j] = bf16_pairs(l, h);
        }
        transpose_16x16(r);
        for (int i = 0; i < n; ++i) _mm512_storeu_si512(out + int64_t(o0 + i) * padded + q0, r[i]);
      }
    }
    if (!db) continue;
    for (int o0 = o_first; o0 < o_last; o0 += 16) {
      const int n = std::min(16, o_last - o0);
      const __mmask16 m = __mmask16(n >= 16 ? 0xffff : (1u << n) - 1);
      const __m512 d = _mm512_maskz_loadu_ps(m, db + o0);
      _mm512_mask_storeu_ps(db + o0, m, _mm512_add_ps(d, sums[(o0 - o_first) / 16]));
    }
  }
}

// Training's weight gradient in bf16 (ops::Context::bf16_grads): dw [O, I] += dout^T x, dout and
// x rounded to bf16 (the error bound of gemm_bf16's products, K = R), summed in fp32 over the
// whole of R in one register each (so the same bits for any thread count); db [O] += colsum(dout)
// in fp32 (taken while dout is converted). dout^T's rows (pairs of tokens) and, unless x comes in
// panels already (x.bf16, made in the forward), x's panels are converted by the op's threads,
// then each thread runs its rows or its columns of dw.
void wgrad_bf16(const Context& ctx, float* dw, float* db, const float* dout, LayerInput x,
                int64_t R, int I, int O) {
  check_bf16_depth("weight_grad", R);
  const int padded = bf16_steps_pairs(int(R));
  auto* a = reinterpret_cast<uint32_t*>(pack_buffer(ctx, size_t(bf16_rows_alloc(O)) * padded));
  const uint32_t* panels = reinterpret_cast<const uint32_t*>(x.bf16);
  uint32_t* made = nullptr;  // x's panels converted here
  if (!panels) {
    made = reinterpret_cast<uint32_t*>(
        scratch(ctx, kScratchGemmRows, size_t(bf16_panels_size(int(R), I) / 2)));
    panels = made;
  }
  const int count = (I + kBfCols - 1) / kBfCols;
  // dw's rows (each thread its own rows of dout^T, every panel of x) or its columns (its own
  // panels, all of dout^T), by gemm_bf16's rule (split_rows: on several threads rows when O >= I,
  // so that the operand read from the other cores is the smaller, x's panels being R x I and
  // dout^T O x R). tiny28's qkv and fc1 (O 192 and 256, I 64) by rows: docs/PERFORMANCE.md, "bf16
  // products split by rows".
  const bool by_rows = split_rows(O, I, bf16_panels_size(int(R), I) * 2, ctx.threads);
  on_threads(ctx, [&](int t, int nt) {
    transposed_rows_bf16(a, dout, R, O, O * t / nt, O * (t + 1) / nt, db);
    if (made) panels_bf16(made, x.f32, I, false, int(R), I, count * t / nt, count * (t + 1) / nt);
    if (nt > 1) {
#pragma omp barrier
    }
    const Bf16Range r =
        by_rows ? row_share(t, nt, O, I, nullptr) : column_share(t, nt, O, I, 2 * int64_t(padded));
    bf16_tiles(r, reinterpret_cast<const uint16_t*>(a), 2 * int64_t(padded),
               reinterpret_cast<const uint16_t*>(panels), I, int(R), 1.0f, dw, I, nullptr, true);
  });
}
#endif

}  // namespace

int gemm_panel_width(int O, int I, bool residual_norm) {
#if VIT_SIMD
  if (O <= 0 || I <= 0 || O % kNR != 0) return 0;
  if (residual_norm && !whole_rows_in_a_block(O, I)) return 0;
  return kNR;
#else
  (void)O, (void)I, (void)residual_norm;
  return 0;
#endif
}

void gemm_pack_weight(float* panels, const float* w, int O, int I) {
#if VIT_SIMD
  for_each_block(O, I, [&](int n0, int nc, int k0, int kw, int64_t at) {
    pack_b(panels + at, int64_t(kw) * kNR, w + k0, I, true, kw, n0, nc, 0, (nc + kNR - 1) / kNR);
  });
#else
  (void)panels, (void)w, (void)O, (void)I;
  throw_error("gemm_pack_weight: the scalar kernels read weights unpacked");
#endif
}

void gemm_unpack_weight(float* w, const float* panels, int O, int I) {
#if VIT_SIMD
  for_each_block(O, I, [&](int n0, int nc, int k0, int kw, int64_t at) {
    for (int j = 0; j < nc; ++j) {
      const float* in = panels + at + int64_t(j / kNR) * kw * kNR + j % kNR;
      float* row = w + int64_t(n0 + j) * I + k0;
      for (int k = 0; k < kw; ++k) row[k] = in[int64_t(k) * kNR];
    }
  });
#else
  (void)panels, (void)w, (void)O, (void)I;
  throw_error("gemm_unpack_weight: the scalar kernels read weights unpacked");
#endif
}

void gemm(const Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
          const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc,
          const float* bias, const Epilogue& epilogue) {
  if (M == 0 || N == 0) return;
  // A weight rearranged in place into fp32 panels (ops.hpp's F32Panels): its memory is not [N, K],
  // so it goes to our kernel, which reads the panels, or nowhere.
  if (const F32Panels w = find_f32(ctx.packed, B); w.data) {
#if VIT_SIMD
    if (!trans_a && trans_b && ldb == K && w.O == N && w.I == K && w.width == kNR &&
        (beta == 0.0f || beta == 1.0f) &&
        (epilogue.kind != Epilogue::kResidualNorm || whole_rows_in_a_block(N, K))) {
      gemm_own(ctx, true, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, epilogue, w.data);
      return;
    }
#endif
    throw_packed_mismatch(w.O, w.I, w.width);
  }
#if defined(__AVX512F__)
  // A weight converted to bf16 (ops::Context::packed): as w^T (inference, training's forward) or
  // as w (training's input gradients).
  if (ctx.packed && !trans_a && (beta == 0.0f || beta == 1.0f)) {
    const Bf16Panels w = find_bf16(ctx.packed, B, trans_b);
    if (w.data && (trans_b ? w.O == N && w.I == K && ldb == K : w.O == K && w.I == N && ldb == N)) {
      gemm_bf16(ctx, w.data, M, N, K, alpha, A, lda, beta != 0.0f, C, ldc, bias, epilogue);
      return;
    }
  }
#endif
#if VIT_SIMD
  // Ours for every product the ops ask for (beta 0 or 1; kResidualNorm needs whole rows in one
  // column block). Measured against OpenBLAS (bench/ops_bench.cpp, BM_GemmNT;
  // build/bench/vit_fma_peak): tiny28's 6400 x {64..256} x {64..256}, 2 cores: 290-335 GFLOP/s
  // against OpenBLAS's 138-228 (it packs A on every call, ours reads A in place); ViT-B/16's shapes
  // (vit_fma_peak, 2 threads, AVX-512, three alternated runs): one image's qkv, proj, fc1 (K 768)
  // 191-209, 182-218, 185-206 against 184-208, 177-213, 167-203; fc2 (K 3072, chunked) 161-172
  // against 160-173; at batch 16 qkv 186-198 against 170-192 and fc2 178-193 against 173-191. Then
  // the result no longer depends on OpenBLAS's kernel choice or version.
  if (!trans_a && K > 0 && (beta == 0.0f || beta == 1.0f) &&
      (epilogue.kind != Epilogue::kResidualNorm || whole_rows_in_a_block(N, K))) {
    gemm_own(ctx, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, epilogue);
    return;
  }
  // Weight gradients (A^T B over the tokens): ours too (BM_GemmTN).
  if (trans_a && !trans_b && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && !bias &&
      epilogue.kind == Epilogue::kNone) {
    gemm_wgrad(ctx, M, N, K, A, lda, B, ldb, beta, C, ldc, nullptr);
    return;
  }
#endif
  // OpenBLAS has no bias: C = beta C + bias first, then C += alpha op(A) op(B). A residual is added
  // in the same first pass, so that out of place ((residual + bias) + AB) rounds as in place does
  // (C = residual, beta 1).
  const float* res = epilogue.kind == Epilogue::kResidualNorm ? epilogue.residual : nullptr;
  if (bias || res) {
#pragma omp parallel for schedule(static) if (ctx.threads > 1 && int64_t(M) * N > 32768) \
    num_threads(ctx.threads)
    for (int i = 0; i < M; ++i) {
      float* row = C + int64_t(i) * ldc;
      // One plain loop per case, so that each vectorises (a branch per element did not: ViT-Ti's
      // batch-1 inference lost 4 ms).
      const float* r = res ? res + int64_t(i) * epilogue.ld : nullptr;
      if (beta == 0.0f && r && bias) {
        for (int j = 0; j < N; ++j) row[j] = r[j] + bias[j];
      } else if (beta == 0.0f) {
        std::copy_n(r ? r : bias, N, row);
      } else {
        if (beta != 1.0f) {
          for (int j = 0; j < N; ++j) row[j] *= beta;
        }
        if (r) {
          for (int j = 0; j < N; ++j) row[j] += r[j];
        }
        if (bias) {
          for (int j = 0; j < N; ++j) row[j] += bias[j];
        }
      }
    }
    beta = 1.0f;
  }
  blas_in_pieces(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (epilogue.kind != Epilogue::kNone) {
    Epilogue e = epilogue;
    e.residual = nullptr;  // added above
    constexpr int kRows = 16;
#pragma omp parallel for schedule(static) if (ctx.threads > 1 && int64_t(M) * N > 32768) \
    num_threads(ctx.threads)
    for (int i = 0; i < M; i += kRows) {
      apply_epilogue(e, C + int64_t(i) * ldc, ldc, i, 0, std::min(kRows, M - i), N);
#if VIT_SIMD
      if (e.stream) _mm_sfence();
#endif
    }
  }
}

void bf16_panels(uint16_t* panels, const float* B, int64_t ldb, bool trans_b, int K, int N) {
  const int count = (N + 31) / 32, padded = (K + 31) / 32 * 16;
#if defined(__AVX512F__)
  if (cpu_has_bf16()) {
    panels_bf16(reinterpret_cast<uint32_t*>(panels), B, ldb, trans_b, K, N, 0, count);
    return;
  }
#endif
  uint16_t* out = panels;  // in the panels' order, front to back
  for (int p = 0; p < count; ++p) {
    for (int q = 0; q < padded; ++q) {
      for (int c = 0; c < 32; ++c, out += 2) {
        const int n = p * 32 + c;
        for (int h = 0; h < 2; ++h) {
          const int k = 2 * q + h;
          out[h] = n < N && k < K
                       ? to_bf16(trans_b ? B[int64_t(n) * ldb + k] : B[int64_t(k) * ldb + n])
                       : 0;
        }
      }
    }
  }
}

void input_panels_bf16(const Context& ctx, uint16_t* panels, const float* x, int64_t R, int I) {
  check_bf16_depth("input_panels_bf16", R);
#if defined(__AVX512F__)
  if (cpu_has_bf16()) {
    const int count = (I + kBfCols - 1) / kBfCols;
    on_threads(ctx, [&](int t, int nt) {
      panels_bf16(reinterpret_cast<uint32_t*>(panels), x, I, false, int(R), I, count * t / nt,
                  count * (t + 1) / nt);
    });
    return;
  }
#endif
  (void)ctx;
  bf16_panels(panels, x, I, false, int(R), I);
}

void weight_grad(const Context& ctx, float* dw, float* db, const float* dout, LayerInput x,
                 int64_t R, int I, int O) {
  if (!x.f32 && !(ctx.bf16_grads && x.bf16)) {
    throw_error(
        "weight_grad: x came as bf16 panels alone, and fp32 gradients (bf16_grads off) read its "
        "fp32 rows: pass them");
  }
  if (ctx.bf16_grads) {
#if defined(__AVX512F__)
    if (dw) {
      wgrad_bf16(ctx, dw, db, dout, x, R, I, O);
      return;
    }
#else
    throw_error("weight_grad: bf16 gradients run on the avx512 kernels");
#endif
  }
#if VIT_SIMD
  if (dw) {
    gemm_wgrad(ctx, O, I, int(R), dout, O, x.f32, I, 1.0f, dw, I, db);
    return;
  }
#endif
  if (dw) gemm(ctx, true, false, O, I, int(R), 1.0f, dout, O, x.f32, I, 1.0f, dw, I);
  if (db) colsum_accumulate(ctx, db, dout, R, O);
}

}  // namespace vit::ops::VIT_ISA_NS
