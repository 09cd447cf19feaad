// GEMM on the CPU. Two shapes run on our own AVX-512 kernels, everything else on OpenBLAS sgemm:
// - C[M,N] = alpha * A[M,K] op(B) + beta * C with M large, K small and beta 0 or 1 (the forward
//   linear layers and input gradients of small ViTs);
// - C[M,N] = A^T B + beta * C with K large and M x N small (their weight gradients; see
//   gemm_wgrad below).
//
// Why our own: the model's GEMMs are tall and thin (M = B*N tokens, thousands; K and N = the
// widths, 64-3072). OpenBLAS packs A (the big activation matrix) on every call, which for K = 64
// costs a third of the multiply. Here only B (the small weight) is packed, into panels of 32
// columns; A is read in place, 12 rows at a time, by a 12 x 32 register tile (24 accumulators,
// 2 FMAs per broadcast; 8 rows measured 4% slower on tiny28's training step). Each C element is
// summed over k in order by one thread, so results do not depend on the thread count. Inside an
// OpenMP region (attention's per-head products) it runs serially, as OpenBLAS's OpenMP build does.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "ops/cpu/transpose.hpp"
#include "ops/ops.hpp"

namespace vit::ops {

#ifdef __AVX512F__
namespace {

constexpr int kMR = 12;    // rows per register tile
constexpr int kNR = 32;    // columns per register tile (two zmm registers)
constexpr int kNC = 1024;  // n-block: with K <= 256 a packed B block (1 MB) stays in L2

// Packs op(B)[0:kc, n0:n0+nc] into panels of kNR columns: panel p holds, for each k, the kNR
// values of columns n0 + p*kNR ..., zero-padded past N.
void pack_b(float* dst, const float* B, int ldb, bool trans_b, int kc, int n0, int nc, int p_begin,
            int p_end) {
  for (int p = p_begin; p < p_end; ++p) {
    float* out = dst + int64_t(p) * kc * kNR;
    const int j0 = n0 + p * kNR;
    const int w = std::min(kNR, n0 + nc - j0);
    if (trans_b) {
      // B is [N, K]: the panel's columns are rows of B, moved 16 x 16 blocks at a time through
      // registers (element by element, this packing took 2% of tiny28's training step). Rows past
      // w load as zeros: the padding.
      for (int h = 0; h < kNR; h += 16) {
        for (int k0 = 0; k0 < kc; k0 += 16) {
          const int kw = std::min(16, kc - k0);
          const __mmask16 km = kw == 16 ? __mmask16(0xFFFF) : __mmask16((1u << kw) - 1);
          __m512 r[16];
          for (int j = 0; j < 16; ++j) {
            r[j] = h + j < w ? _mm512_maskz_loadu_ps(km, B + int64_t(j0 + h + j) * ldb + k0)
                             : _mm512_setzero_ps();
          }
          transpose16(r);
          for (int c = 0; c < kw; ++c) _mm512_storeu_ps(out + int64_t(k0 + c) * kNR + h, r[c]);
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

// C[0:MR, 0:w] (+)= alpha * A[0:MR, 0:kc] Bp, with Bp a packed kc x kNR panel.
template <int MR>
inline void tile(int kc, const float* A, int lda, const float* Bp, float* C, int ldc, int w,
                 float alpha, bool accumulate, const float* bias) {
  // Every loop over the MR rows is unrolled, so that the accumulators live in registers from start
  // to end (rolled, GCC kept them in a stack array that it cleared with memset and stored to after
  // the k loop on every tile: 10% of this kernel at K = 64).
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(Bp + k * kNR);
    const __m512 b1 = _mm512_loadu_ps(Bp + k * kNR + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(A[int64_t(i) * lda + k]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
  }
  const __mmask16 m0 = w >= 16 ? 0xFFFF : __mmask16((1u << w) - 1);
  const __mmask16 m1 = w >= 32 ? 0xFFFF : (w <= 16 ? 0 : __mmask16((1u << (w - 16)) - 1));
  const __m512 va = _mm512_set1_ps(alpha);
  const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* row = C + int64_t(i) * ldc;
    __m512 r0 = _mm512_mul_ps(c0[i], va), r1 = _mm512_mul_ps(c1[i], va);
    // The bias before C: (A B + bias) + C, the rounding of a linear layer followed by a residual
    // add, so that in-place inference matches the training forward bitwise on this kernel (the
    // OpenBLAS path in gemm() keeps its two modes alike too).
    if (bias) {
      r0 = _mm512_add_ps(r0, bias0);
      r1 = _mm512_add_ps(r1, bias1);
    }
    if (accumulate) {
      r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, row));
      r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, row + 16));
    }
    _mm512_mask_storeu_ps(row, m0, r0);
    _mm512_mask_storeu_ps(row + 16, m1, r1);
  }
}

// Calls f.template operator()<MR>() with the compile-time MR = mr, 1 <= mr <= 12: the rows of a
// register tile, a constant so that its accumulators stay in registers.
template <typename F>
inline void with_tile_rows(int mr, F&& f) {
  switch (mr) {
    case 12:
      return f.template operator()<12>();
    case 11:
      return f.template operator()<11>();
    case 10:
      return f.template operator()<10>();
    case 9:
      return f.template operator()<9>();
    case 8:
      return f.template operator()<8>();
    case 7:
      return f.template operator()<7>();
    case 6:
      return f.template operator()<6>();
    case 5:
      return f.template operator()<5>();
    case 4:
      return f.template operator()<4>();
    case 3:
      return f.template operator()<3>();
    case 2:
      return f.template operator()<2>();
    default:
      return f.template operator()<1>();
  }
}

// Rows [m_begin, m_end) of C for one packed (kc x nc) block of B; bias points at the block's
// columns. The epilogue runs on each row block once all its columns are (kResidualNorm needs nc =
// N); n0 is the block's first column in the whole C (the epilogue's arrays are indexed globally).
void rows(int m_begin, int m_end, int nc, int kc, const float* A, int lda, const float* packed,
          float* C, int ldc, float alpha, bool accumulate, const float* bias, const Epilogue* epi,
          int n0) {
  const int panels = (nc + kNR - 1) / kNR;
  for (int i = m_begin; i < m_end; i += kMR) {
    const int mr = std::min(kMR, m_end - i);
    const float* a = A + int64_t(i) * lda;
    float* c = C + int64_t(i) * ldc;
    for (int p = 0; p < panels; ++p) {
      const float* bp = packed + int64_t(p) * kc * kNR;
      const int w = std::min(kNR, nc - p * kNR);
      float* cp = c + p * kNR;
      const float* bb = bias ? bias + p * kNR : nullptr;
      with_tile_rows(
          mr, [&]<int MR>() { tile<MR>(kc, a, lda, bp, cp, ldc, w, alpha, accumulate, bb); });
    }
    // On the row block (in L1) once all its columns are done, not per tile: the rows of the arrays
    // the epilogue reads (kScale's scale) or writes (kGelu's slope) are then one contiguous stretch
    // of memory, which the hardware prefetchers stream; per tile (12 pieces of 128 bytes a row
    // apart) they went at memory latency. Tiny28's training step, perf, one thread: kScale's share
    // 5.0% -> 2.9%, GELU's 5.7% -> 5.0%.
    if (epi) apply_epilogue(*epi, c, ldc, i, n0, mr, nc);
  }
  if (epi && epi->stream) _mm_sfence();  // the streaming stores are visible before the barrier
}

// Scratch per thread (gemm_tall's packed B, gemm_wgrad's partial sums), grown (rarely: the first
// call of each size) and then reused.
float* pack_buffer(size_t floats) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer.data();
}

void gemm_tall(bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc, const float* bias,
               const Epilogue& epilogue) {
  const bool nested = omp_in_parallel();
  const bool accumulate = beta != 0.0f;
  const Epilogue* epi = epilogue.kind != Epilogue::kNone ? &epilogue : nullptr;
  const int nc_max = std::min(N, kNC);
  // One shared buffer (the calling thread's) at top level; each caller its own when nested.
  float* packed = pack_buffer(size_t(K) * ((nc_max + kNR - 1) / kNR) * kNR);
  for (int n0 = 0; n0 < N; n0 += kNC) {
    const int nc = std::min(kNC, N - n0);
    const int panels = (nc + kNR - 1) / kNR;
    const float* b = bias ? bias + n0 : nullptr;
    if (nested) {
      pack_b(packed, B, ldb, trans_b, K, n0, nc, 0, panels);
      rows(0, M, nc, K, A, lda, packed, C + n0, ldc, alpha, accumulate, b, epi, n0);
      continue;
    }
#pragma omp parallel
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      pack_b(packed, B, ldb, trans_b, K, n0, nc, panels * t / nt, panels * (t + 1) / nt);
#pragma omp barrier
      // Row blocks of whole tiles, split evenly over the threads.
      const int tiles = (M + kMR - 1) / kMR;
      const int m_begin = std::min(M, tiles * t / nt * kMR);
      const int m_end = std::min(M, tiles * (t + 1) / nt * kMR);
      rows(m_begin, m_end, nc, K, A, lda, packed, C + n0, ldc, alpha, accumulate, b, epi, n0);
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
constexpr int kWR = 12;   // rows of C (columns of A) per tile
constexpr int kKC = 256;  // rows of A and B per chunk
// Measured (BM_GemmTN, 2 threads): 228-250 GFLOP/s against OpenBLAS's 129-200 on tiny28's shapes
// (M x N <= 256 x 64, K = 6400); on par from ViT-Ti's 576 x 192 (239 against 251-257) to ViT-B's
// 2304 x 768 (313 against 237-326), which OpenBLAS keeps.
constexpr int64_t kWgradMaxMN = 256 * 256;

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
  const __mmask16 m0 = w >= 16 ? 0xFFFF : __mmask16((1u << w) - 1);
  const __mmask16 m1 = w >= 32 ? 0xFFFF : (w <= 16 ? 0 : __mmask16((1u << (w - 16)) - 1));
  const __mmask16 mr_mask = __mmask16((1u << MR) - 1);
  __m512 c0[MR], c1[MR];  // in registers: every loop over MR unrolled, as in tile()
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  __m512 asum = _mm512_setzero_ps();
  for (int k = 0; k < kc; ++k) {
    const float* b = B + int64_t(k) * ldb;
    const float* a = A + int64_t(k) * lda;
    if (ahead > 0) {
      _mm_prefetch(reinterpret_cast<const char*>(a + int64_t(ahead) * lda), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(b + int64_t(ahead) * ldb), _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(b + int64_t(ahead) * ldb + 16), _MM_HINT_T1);
    }
    const __m512 b0 = kFull ? _mm512_loadu_ps(b) : _mm512_maskz_loadu_ps(m0, b);
    const __m512 b1 = kFull ? _mm512_loadu_ps(b + 16) : _mm512_maskz_loadu_ps(m1, b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
    if (sums) {
      asum = _mm512_add_ps(asum, _mm512_maskz_loadu_ps(mr_mask, a));
    }
  }
  if (sums) {
    _mm512_mask_storeu_ps(sums, mr_mask, _mm512_add_ps(_mm512_maskz_loadu_ps(mr_mask, sums), asum));
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* row = C + int64_t(i) * ldc;
    __m512 r0 = c0[i], r1 = c1[i];
    if (load_c) {
      r0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, row), r0);
      r1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, row + 16), r1);
    }
    _mm512_mask_storeu_ps(row, m0, r0);
    _mm512_mask_storeu_ps(row + 16, m1, r1);
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
      with_tile_rows(mr, [&]<int MR>() {
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
void gemm_wgrad(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float beta,
                float* C, int ldc, float* asums) {
  const int tiles = (M + kWR - 1) / kWR * ((N + kNR - 1) / kNR);
  const int k_split = K > kKC ? (K / 2 + 15) / 16 * 16 : K;
  const bool beta_one = beta != 0.0f;
  if (k_split == K) {  // one half
    if (omp_in_parallel()) {
      wgrad_tiles(0, tiles, M, N, 0, K, A, lda, B, ldb, beta_one, C, ldc, asums);
      return;
    }
#pragma omp parallel
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      wgrad_tiles(tiles * t / nt, tiles * (t + 1) / nt, M, N, 0, K, A, lda, B, ldb, beta_one, C,
                  ldc, asums);
    }
    return;
  }
  // The second half's partial C [M, N] and column sums [M] (the calling thread's buffer).
  float* partial = pack_buffer(size_t(M) * N + M);
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
  if (omp_in_parallel()) {
    both_halves();
  } else {
#pragma omp parallel
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

bool wgrad_applies(int M, int N, int K) {
  return K >= kKC && int64_t(M) * N <= kWgradMaxMN;
}

}  // namespace
#endif

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc, const float* bias,
          const Epilogue& epilogue) {
  if (M == 0 || N == 0) return;
#ifdef __AVX512F__
  // Measured (bench/ops_bench.cpp, BM_GemmNT): ours wins where K is small and M large (tiny28's
  // 6400 x {64..256} x {64..256}: 290-335 GFLOP/s against OpenBLAS's 138-228 on 2 cores); OpenBLAS
  // wins on large K (ViT-B's K = 768 and 3072) and on small M (attention's per-head products).
  // (kResidualNorm needs whole rows in one column block.)
  if (!trans_a && K > 0 && K <= 256 && M >= 256 && (beta == 0.0f || beta == 1.0f) &&
      (epilogue.kind != Epilogue::kResidualNorm || N <= kNC)) {
    gemm_tall(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, epilogue);
    return;
  }
  // Weight gradients (A^T B over the tokens): ours where both widths are small (BM_GemmTN).
  if (trans_a && !trans_b && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && !bias &&
      epilogue.kind == Epilogue::kNone && wgrad_applies(M, N, K)) {
    gemm_wgrad(M, N, K, A, lda, B, ldb, beta, C, ldc, nullptr);
    return;
  }
#endif
  // OpenBLAS has no bias: C = beta C + bias first, then C += alpha op(A) op(B). A residual is added
  // in the same first pass, so that out of place ((residual + bias) + AB) rounds as in place does
  // (C = residual, beta 1).
  const float* res = epilogue.kind == Epilogue::kResidualNorm ? epilogue.residual : nullptr;
  if (bias || res) {
#pragma omp parallel for schedule(static) if (int64_t(M) * N > 32768 && !omp_in_parallel())
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
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (epilogue.kind != Epilogue::kNone) {
    Epilogue e = epilogue;
    e.residual = nullptr;  // added above
    constexpr int kRows = 16;
#pragma omp parallel for schedule(static) if (int64_t(M) * N > 32768 && !omp_in_parallel())
    for (int i = 0; i < M; i += kRows) {
      apply_epilogue(e, C + int64_t(i) * ldc, ldc, i, 0, std::min(kRows, M - i), N);
#ifdef __AVX512F__
      if (e.stream) _mm_sfence();
#endif
    }
  }
}

void weight_grad(float* dw, float* db, const float* dout, const float* x, int64_t R, int I, int O) {
#ifdef __AVX512F__
  if (dw && wgrad_applies(O, I, int(R))) {
    gemm_wgrad(O, I, int(R), dout, O, x, I, 1.0f, dw, I, db);
    return;
  }
#endif
  if (dw) gemm(true, false, O, I, int(R), 1.0f, dout, O, x, I, 1.0f, dw, I);
  if (db) colsum_accumulate(db, dout, R, O);
}

}  // namespace vit::ops
