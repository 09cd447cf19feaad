// Multi-head self-attention core, one (batch, head) pair per task, in parallel over B x H. Each
// task writes only its own slices and its own scratch, so results do not depend on the thread
// count.
//
// The products are small (N ~ 50-200 tokens, Dh ~ 16-64), too small for a BLAS call per head to
// pay off (call overhead and packing dominated when these were sgemm calls). Each task transposes
// K (and, in the backward, V) into its scratch as [Dh, Np] so that scores s_j = q . k_j
// vectorise over j; sums of rows (o_i = sum_j p_ij v_j and the gradients) vectorise over the head
// dimension. Both work on 4 rows at once, which gives 8 independent accumulator chains: one chain
// per register would wait on the FMA latency. The forward finishes 4 query rows (scores,
// softmax, output) before the next 4, so the inference path needs no N x N buffer.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/cpu/kernels.hpp"
#include "ops/cpu/scratch.hpp"
#include "ops/cpu/simd.hpp"
#include "ops/cpu/transpose.hpp"
#include "ops/cpu/vmath.hpp"

namespace vit::ops::VIT_ISA_NS {
namespace {

constexpr int kRows = 4;  // rows computed together

#if VIT_SIMD
// Score columns per block: kScoreVecs registers per row, kRows rows of accumulators (with 32
// registers, 4 x 4 = 64 columns at 16 lanes; with 16, 4 x 2 = 16 columns at 8 lanes, so that the
// accumulators, the K^T row and the broadcast query fit). Head columns per pass of weighted_rows,
// likewise.
constexpr int kLanes = simd::kLanes;
constexpr int kScoreVecs = simd::kRegisters >= 32 ? 4 : 2;
constexpr int kMaxHeadCols = simd::kRegisters >= 32 ? 64 : 16;
#else
constexpr int kLanes = 16;  // the plain loops' block width
constexpr int kScoreVecs = 4;
#endif

int padded(int N) {
  return (N + 15) / 16 * 16;
}

// The head width as a compile-time constant where it is a common one (the loops over it then
// unroll and vectorise fully), else 0 and the runtime value.
template <int DH>
inline int head_width(int Dh) {
  return DH ? DH : Dh;
}

// dst [Dh, Np] = src^T, src rows j < N of Dh floats with stride `row`; columns past N are 0.
void transpose_head(float* dst, const float* src, int64_t row, int N, int Dh) {
  const int Np = padded(N);
#if VIT_SIMD
  // kLanes x kLanes blocks in registers (rows past N load as zeros: the padding); the scalar loop
  // below took 2.3% of tiny28's training step.
  if (Dh % kLanes == 0) {
    for (int d0 = 0; d0 < Dh; d0 += kLanes) {
      for (int j0 = 0; j0 < Np; j0 += kLanes) {
        simd::Vec r[kLanes];
        for (int j = 0; j < kLanes; ++j) {
          r[j] = j0 + j < N ? simd::load(src + (j0 + j) * row + d0) : simd::zero();
        }
        transpose(r);
        for (int c = 0; c < kLanes; ++c) simd::store(dst + int64_t(d0 + c) * Np + j0, r[c]);
      }
    }
    return;
  }
#endif
  for (int d = 0; d < Dh; ++d) {
    float* out = dst + int64_t(d) * Np;
    for (int j = 0; j < N; ++j) out[j] = src[j * row + d];
    for (int j = N; j < Np; ++j) out[j] = 0.0f;
  }
}

// For r < M: s_r[j] = scale * q_r . k_j over j < Np, with q_r = q + r * qstride and
// kt = K^T [Dh, Np] (zero past N); s_r = s + r * Np, over NB * kLanes columns. Each d costs NB
// loads of K^T and M broadcasts of q for NB M multiply-adds.
template <int DH, int M, int NB, bool kPrescaled = false>
inline void scores_block(float* s, const float* q, int64_t qstride, const float* kt, int Np, int Dh,
                         float scale) {
#if VIT_SIMD
  using namespace simd;
  // The sums in explicit registers, every loop unrolled: as arrays, GCC kept the accumulators on
  // the stack, cleared by a memset call per block (with a vzeroupper before it).
  Vec acc[M][NB];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[r][b] = zero();
  }
  for (int d = 0; d < Dh; ++d) {
    const float* kd = kt + int64_t(d) * Np;
    Vec k[NB];
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) k[b] = load(kd + kLanes * b);
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      const Vec qd = set1(kPrescaled ? q[r * qstride + d] : q[r * qstride + d] * scale);
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) acc[r][b] = fmadd(qd, k[b], acc[r][b]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) store(s + int64_t(r) * Np + kLanes * b, acc[r][b]);
  }
#else
  float acc[M][NB * kLanes] = {};
  for (int d = 0; d < Dh; ++d) {
    const float* kd = kt + int64_t(d) * Np;
    for (int r = 0; r < M; ++r) {
      const float qd = kPrescaled ? q[r * qstride + d] : q[r * qstride + d] * scale;
#pragma omp simd
      for (int j = 0; j < NB * kLanes; ++j) acc[r][j] += qd * kd[j];
    }
  }
  for (int r = 0; r < M; ++r) {
#pragma omp simd
    for (int j = 0; j < NB * kLanes; ++j) s[int64_t(r) * Np + j] = acc[r][j];
  }
#endif
}

template <int DH, int M>
inline void scores(float* s, const float* q, int64_t qstride, const float* kt, int N, int dh,
                   float scale) {
  const int Dh = head_width<DH>(dh);
  const int Np = padded(N);
  constexpr int kBlock = kScoreVecs * kLanes;
  // At a fixed head width the block's query rows are scaled once into qs, contiguous: each depth
  // then broadcasts them from memory (a load) where it multiplied and broadcast from a register
  // per row and column block. The same products (q_d * scale, then the FMA), bit for bit.
  constexpr bool kPre = DH > 0;
  alignas(64) float qs[kPre ? M * DH : 1];
  if constexpr (kPre) {
    for (int r = 0; r < M; ++r) {
#pragma omp simd
      for (int d = 0; d < DH; ++d) qs[r * DH + d] = q[r * qstride + d] * scale;
    }
    q = qs;
    qstride = DH;
  }
  int j0 = 0;
  for (; j0 + kBlock <= Np; j0 += kBlock)
    scores_block<DH, M, kScoreVecs, kPre>(s + j0, q, qstride, kt + j0, Np, Dh, scale);
  // Np is a multiple of 16, so what is left is whole registers, fewer than kScoreVecs.
  const int rest = (Np - j0) / kLanes;
  if constexpr (kScoreVecs > 3) {
    if (rest == 3) return scores_block<DH, M, 3, kPre>(s + j0, q, qstride, kt + j0, Np, Dh, scale);
  }
  if constexpr (kScoreVecs > 2) {
    if (rest == 2) return scores_block<DH, M, 2, kPre>(s + j0, q, qstride, kt + j0, Np, Dh, scale);
  }
  if (rest == 1) scores_block<DH, M, 1, kPre>(s + j0, q, qstride, kt + j0, Np, Dh, scale);
}

// In-place softmax over each of the M rows s + r * Np, r < M, over [0, N); [N, Np) becomes 0.
// copy (nullable): the rows' first N values are also stored at copy + r * copy_stride.
// Whole 16-float blocks, no remainder loops. One row alone is a chain of dependent steps (max,
// reduce, exps, sum, reduce, divide, scale) too short to fill the pipelines: at tiny28's 50
// tokens the softmax took half the forward. The M rows of a block go through each step together,
// so their chains overlap.
template <int M>
inline void softmax_rows(float* s, int N, float* copy = nullptr, int64_t copy_stride = 0) {
  const int Np = padded(N);
#if VIT_SIMD
  using namespace simd;
  // The scores past N count as -inf: replaced in registers (keep_first), not in memory, where the
  // scalar stores before the vector loads stalled each row (the hottest instruction of tiny28's
  // patch-dropout forward in perf, N 20 of Np 32).
  const Vec ninf = set1(-INFINITY);
  Vec mx[M], sum[M];
  for (int r = 0; r < M; ++r) mx[r] = ninf;
  for (int j = 0; j < Np; j += kLanes) {
    for (int r = 0; r < M; ++r) mx[r] = max(mx[r], keep_first(load(s + r * Np + j), N - j, ninf));
  }
  for (int r = 0; r < M; ++r) {
    mx[r] = set1(reduce_max(mx[r]));
    sum[r] = zero();
  }
  for (int j = 0; j < Np; j += kLanes) {
    for (int r = 0; r < M; ++r) {
      float* x = s + r * Np + j;
      const Vec e = vmath::exp(sub(keep_first(load(x), N - j, ninf), mx[r]));  // 0 past N
      store(x, e);
      sum[r] = add(sum[r], e);
    }
  }
  for (int r = 0; r < M; ++r) sum[r] = set1(1.0f / reduce_add(sum[r]));
  for (int j = 0; j < Np; j += kLanes) {
    for (int r = 0; r < M; ++r) {
      float* x = s + r * Np + j;
      const Vec p = mul(load(x), sum[r]);
      store(x, p);
      if (copy && j < N) store_first(copy + r * copy_stride + j, N - j, p);
    }
  }
#else
  for (int r = 0; r < M; ++r) {
    for (int j = N; j < Np; ++j) s[r * Np + j] = -INFINITY;
  }
  for (int r = 0; r < M; ++r) {
    float* x = s + r * Np;
    float mx = x[0];
    // The ternary (not std::max) is what GCC vectorises as a max reduction.
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < Np; ++j) mx = x[j] > mx ? x[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < Np; ++j) {
      x[j] = vmath::exp(x[j] - mx);  // exactly 0 past N
      sum += x[j];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < Np; ++j) x[j] *= inv;
    if (copy) std::copy_n(x, N, copy + r * copy_stride);
  }
#endif
}

// For r < M: out_r[0:Dh] = sum_{j<N} p[r * pr + j * pj] * rows[j * row + 0:Dh], with
// out_r = out + r * ostride. The weights come from rows (pj = 1) or columns (pr = 1) of a matrix.
// Each accumulator is a chain of N dependent multiply-adds; the FMA units need 8 chains in flight
// to stay busy, so when the M rows give fewer (Dh = 16: one register per row), even and odd j go
// to separate accumulators, summed at the end.
template <int DH, int M>
inline void weighted_rows(float* out, int64_t ostride, const float* p, int64_t pr, int64_t pj,
                          const float* rows, int64_t row, int N, int dh) {
  constexpr int kW = DH && DH <= 64 ? DH : 32;  // head columns per pass
  constexpr int kSplit = M * kW < 8 * 16 ? 2 : 1;
#if VIT_SIMD
  if constexpr (DH && DH % kLanes == 0 && (DH <= kMaxHeadCols || DH % kMaxHeadCols == 0)) {
    // The sums in explicit registers (as in scores_block: no stack array, no memset), VW head
    // columns (V registers) a pass.
    using namespace simd;
    constexpr int VW = DH <= kMaxHeadCols ? DH : kMaxHeadCols;
    constexpr int V = VW / kLanes;
    constexpr int kChains = M * VW < 8 * kLanes ? 2 : 1;
    for (int d0 = 0; d0 < DH; d0 += VW) {
      Vec acc[kChains][M][V];
#pragma GCC unroll 2
      for (int s = 0; s < kChains; ++s) {
#pragma GCC unroll 16
        for (int r = 0; r < M; ++r) {
#pragma GCC unroll 4
          for (int v = 0; v < V; ++v) acc[s][r][v] = zero();
        }
      }
      auto step = [&](int j, Vec(&a)[M][V]) {
        const float* x = rows + j * row + d0;
        Vec xv[V];
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) xv[v] = load(x + kLanes * v);
#pragma GCC unroll 16
        for (int r = 0; r < M; ++r) {
          const Vec pv = set1(p[r * pr + j * pj]);
#pragma GCC unroll 4
          for (int v = 0; v < V; ++v) a[r][v] = fmadd(pv, xv[v], a[r][v]);
        }
      };
      int j = 0;
      for (; j + kChains <= N; j += kChains) {
#pragma GCC unroll 2
        for (int s = 0; s < kChains; ++s) step(j + s, acc[s]);
      }
      for (; j < N; ++j) step(j, acc[0]);
#pragma GCC unroll 16
      for (int r = 0; r < M; ++r) {
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) {
          Vec sum = acc[0][r][v];
          if constexpr (kChains == 2) sum = add(sum, acc[1][r][v]);
          store(out + r * ostride + d0 + kLanes * v, sum);
        }
      }
    }
    return;
  }
#endif
  const int Dh = head_width<DH>(dh);
  for (int d0 = 0; d0 < Dh; d0 += kW) {
    const int w = std::min(kW, Dh - d0);
    float acc[kSplit][M][kW] = {};
    auto step = [&](int j, float(&a)[M][kW]) {
      const float* x = rows + j * row + d0;
      for (int r = 0; r < M; ++r) {
        const float pv = p[r * pr + j * pj];
        if (DH && DH % kW == 0) {
#pragma omp simd
          for (int d = 0; d < kW; ++d) a[r][d] += pv * x[d];
        } else {
          for (int d = 0; d < w; ++d) a[r][d] += pv * x[d];
        }
      }
    };
    int j = 0;
    for (; j + kSplit <= N; j += kSplit) {
      for (int s = 0; s < kSplit; ++s) step(j + s, acc[s]);
    }
    for (; j < N; ++j) step(j, acc[0]);
    for (int r = 0; r < M; ++r) {
      for (int d = 0; d < w; ++d) {
        float v = acc[0][r][d];
        for (int s = 1; s < kSplit; ++s) v += acc[s][r][d];
        out[r * ostride + d0 + d] = v;
      }
    }
  }
}

// Calls f.template operator()<M>(i) for row blocks [i, i + M) covering [begin, end), M = kRows
// but for the last block.
template <typename F>
inline void row_blocks(int begin, int end, F&& f) {
  int i = begin;
  for (; i + kRows <= end; i += kRows) f.template operator()<kRows>(i);
  switch (end - i) {
    case 3:
      f.template operator()<3>(i);
      break;
    case 2:
      f.template operator()<2>(i);
      break;
    case 1:
      f.template operator()<1>(i);
      break;
    default:
      break;
  }
}

// Scratch floats per thread: K^T (or V^T) [Dh, Np], then kRows rows of probabilities (inference)
// or dS [N, Np] (training).
int64_t scratch_floats(int N, int Dh, bool training) {
  return (int64_t(Dh) + std::max(kRows, training ? N : 0)) * padded(N);
}

// Calls f(b, h, first, last) for each task, in parallel over ctx's threads: rows [first, last)
// of the head (b, h). Tasks are (b, h) pairs, each cut into row chunks when there are too few
// pairs to keep every thread busy (batch-1 inference: ViT-Ti's 3 heads on 2 threads). Every row
// is computed the same way whatever the chunking, so results do not depend on the thread count.
template <typename F>
void for_each_head_rows(const Context& ctx, int B, int N, int H, F&& f) {
  const int threads = ctx.threads;
  const int blocks = (N + kRows - 1) / kRows;
  const int chunks = std::min(blocks, (2 * threads + B * H - 1) / (B * H));
  const int tasks = B * H * chunks;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int t = 0; t < tasks; ++t) {
    const int c = t % chunks;
    f(t / (H * chunks), t / chunks % H, c * blocks / chunks * kRows,
      std::min(N, (c + 1) * blocks / chunks * kRows));
  }
}

template <int DH>
void forward_impl(const Context& ctx, float* out, float* att, const float* qkv, int B, int N, int D,
                  int H) {
  const int Dh = head_width<DH>(D / H);
  const int64_t row = 3 * int64_t(D);  // stride between tokens in qkv
  const int Np = padded(N);
  const float scale = 1.0f / std::sqrt(float(Dh));
  for_each_head_rows(ctx, B, N, H, [&](int b, int h, int first, int last) {
    const float* q = qkv + int64_t(b) * N * row + h * Dh;
    const float* k = q + D;
    const float* v = q + 2 * D;
    float* o = out + int64_t(b) * N * D + h * Dh;
    float* kt = scratch(ctx, kScratchAttention, size_t(scratch_floats(N, Dh, att != nullptr)));
    float* probs = kt + int64_t(Dh) * Np;  // kRows rows of Np
    transpose_head(kt, k, row, N, Dh);
    row_blocks(first, last, [&]<int M>(int i) {
      scores<DH, M>(probs, q + i * row, row, kt, N, Dh, scale);
      // Training keeps the probabilities for the backward (stored in the same pass).
      softmax_rows<M>(probs, N, att ? att + ((int64_t(b) * H + h) * N + i) * N : nullptr, N);
      weighted_rows<DH, M>(o + int64_t(i) * D, D, probs, Np, 1, v, row, N, Dh);
    });
  });
}

template <int DH>
void backward_impl(const Context& ctx, float* dqkv, const float* dout, const float* qkv,
                   const float* att, const float* out, int B, int N, int D, int H) {
  const int Dh = head_width<DH>(D / H);
  const int64_t row = 3 * int64_t(D);
  const int Np = padded(N);
  const float scale = 1.0f / std::sqrt(float(Dh));
#pragma omp parallel for collapse(2) schedule(static) num_threads(ctx.threads)
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      const int64_t base = int64_t(b) * N * row + h * Dh;
      const float* q = qkv + base;
      const float* k = q + D;
      const float* v = q + 2 * D;
      float* dq = dqkv + base;
      float* dk = dq + D;
      float* dv = dq + 2 * D;
      const float* a = att + (int64_t(b) * H + h) * N * N;
      const float* g = dout + int64_t(b) * N * D + h * Dh;
      const float* o = out + int64_t(b) * N * D + h * Dh;
      float* vt = scratch(ctx, kScratchAttention, size_t(scratch_floats(N, Dh, true)));
      float* ds = vt + int64_t(Dh) * Np;  // dS [N, Np]
      transpose_head(vt, v, row, N, Dh);
      // dA_ij = dO_i . v_j, then dS_ij = A_ij (dA_ij - delta_i) / sqrt(Dh), where
      // delta_i = sum_j A_ij dA_ij equals dO_i . O_i.
      row_blocks(0, N, [&]<int M>(int i) {
        scores<DH, M>(ds + int64_t(i) * Np, g + int64_t(i) * D, D, vt, N, Dh, 1.0f);
      });
      for (int i = 0; i < N; ++i) {
        const float* ai = a + int64_t(i) * N;
        const float* gi = g + int64_t(i) * D;
        const float* oi = o + int64_t(i) * D;
        float delta = 0.0f;
        for (int d = 0; d < Dh; ++d) delta += gi[d] * oi[d];
        float* dsi = ds + int64_t(i) * Np;
#pragma omp simd
        for (int j = 0; j < N; ++j) dsi[j] = ai[j] * (dsi[j] - delta) * scale;
      }
      row_blocks(0, N, [&]<int M>(int i) {
        // dQ_i = sum_j dS_ij k_j; dK_i = sum_j dS_ji q_j; dV_i = sum_j A_ji dO_j.
        weighted_rows<DH, M>(dq + i * row, row, ds + int64_t(i) * Np, Np, 1, k, row, N, Dh);
        weighted_rows<DH, M>(dk + i * row, row, ds + i, 1, Np, q, row, N, Dh);
        weighted_rows<DH, M>(dv + i * row, row, a + i, 1, N, g, D, N, Dh);
      });
    }
  }
}

#if defined(__AVX512F__)
// ---- Inference in bf16 (ctx.bf16; AVX512-BF16's VDPBF16PS): q, k, the probabilities and v are
// rounded to bf16 (to nearest even), each product of two bf16 values is exact in fp32, and the
// sums, the scale and the softmax are fp32. One VDPBF16PS lane takes a pair of terms, so it does
// twice an FMA's multiply-adds: the scores pair depths, s_j = sum_t (q_2t, q_2t+1) . (k_j,2t,
// k_j,2t+1); the outputs pair tokens, o = sum_t (p_2t, p_2t+1) . (v_2t, v_2t+1). Error
// (tests/test_bf16.cpp derives its bound from this): each score term carries at most the two
// roundings (relative (1 + u)^2 - 1, u = 2^-8) before the fp32 sums, and each output term those
// of p and v. Head widths 32 and 64 (ViT-Ti/S/B/L); others run the fp32 kernels above.
//
// Each task lays its head's K out as pairs [Dh/2, Np] (32-bit elements (k_j,2t, k_j,2t+1), zero
// past N) and V as pairs [ceil(N/2), Dh] (elements (v_2t,d, v_2t+1,d), the row past N zero), then
// computes kRows query rows at a time as the fp32 kernel does: their scores, softmax and outputs,
// so every row is computed the same way whatever the rows and threads around it.

// The 16 bf16 pairs of x[0:32] as 32-bit lanes (x[2i] low, x[2i + 1] high).
__attribute__((target("avx512bf16"))) inline __m512i bf16_pairs(const float* x) {
  return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
}

// The bf16 pair at x (32 bits kept in float memory) in every lane, its bits moved as an integer.
__attribute__((target("avx512bf16"))) inline __m512bh broadcast_pair(const float* x) {
  int32_t pair;
  std::memcpy(&pair, x, sizeof pair);
  return (__m512bh)_mm512_set1_epi32(pair);
}

// K pairs: kp [DH/2, Np] from the head's k rows (stride row), through tmp [N, DH/2].
template <int DH>
__attribute__((target("avx512bf16"))) void k_pairs(float* kp, float* tmp, const float* k,
                                                   int64_t row, int N) {
  for (int j = 0; j < N; ++j) {
#pragma GCC unroll 2
    for (int c = 0; c < DH / 32; ++c)
      _mm512_storeu_si512(tmp + j * (DH / 2) + 16 * c, bf16_pairs(k + j * row + 32 * c));
  }
  transpose_head(kp, tmp, DH / 2, N, DH / 2);  // 32-bit moves: the pairs' bits stay as they are
}

// V pairs: vp [ceil(N/2), DH], element (t, d) = (v[2t, d], v[2t + 1, d]), v[N, :] = 0.
template <int DH>
__attribute__((target("avx512bf16"))) void v_pairs(float* vp, const float* v, int64_t row, int N) {
  // cvtne2ps gives [v_2t,0:16 | v_2t+1,0:16]; the permutation interleaves the halves.
  alignas(64) static constexpr uint16_t kInterleave[32] = {
      0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
      8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i idx = _mm512_load_si512(kInterleave);
  for (int t = 0; 2 * t < N; ++t) {
    const float* lo = v + int64_t(2 * t) * row;
    const bool pair = 2 * t + 1 < N;
#pragma GCC unroll 4
    for (int c = 0; c < DH / 16; ++c) {
      const __m512 a = _mm512_loadu_ps(lo + 16 * c);
      const __m512 b = pair ? _mm512_loadu_ps(lo + row + 16 * c) : _mm512_setzero_ps();
      const __m512i x = (__m512i)_mm512_cvtne2ps_pbh(b, a);
      _mm512_storeu_si512(vp + int64_t(t) * DH + 16 * c, _mm512_permutexvar_epi16(idx, x));
    }
  }
}

// For r < M: s_r[0:16 NB] = scale * q_r . k_j, from q's pairs qp [M, DH/2] and kp's columns.
template <int DH, int M, int NB>
__attribute__((target("avx512bf16"))) inline void scores_bf16_block(float* s, int Np,
                                                                    const float* qp,
                                                                    const float* kp, float scale) {
  __m512 acc[M][NB];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_setzero_ps();
  }
#pragma GCC unroll 2
  for (int t = 0; t < DH / 2; ++t) {
    __m512bh k[NB];
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) k[b] = (__m512bh)_mm512_loadu_ps(kp + int64_t(t) * Np + 16 * b);
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      const __m512bh q = broadcast_pair(qp + r * (DH / 2) + t);
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_dpbf16_ps(acc[r][b], q, k[b]);
    }
  }
  const __m512 vs = _mm512_set1_ps(scale);
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b)
      _mm512_storeu_ps(s + r * Np + 16 * b, _mm512_mul_ps(acc[r][b], vs));
  }
}

// For r < M: out_r[0:DH] = sum_t pp_r[t] . vp[t, :] over t < T pairs of tokens.
template <int DH, int M>
__attribute__((target("avx512bf16"))) inline void weighted_bf16(float* out, int64_t ostride,
                                                                const float* pp, int pstride,
                                                                const float* vp, int T) {
  constexpr int V = DH / 16;
  __m512 acc[M][V];
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int t = 0; t < T; ++t) {
    __m512bh x[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) x[v] = (__m512bh)_mm512_loadu_ps(vp + int64_t(t) * DH + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      const __m512bh p = broadcast_pair(pp + r * pstride + t);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], p, x[v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(out + r * ostride + 16 * v, acc[r][v]);
  }
}

// Floats a row of probability pairs takes: whole blocks of 16 pairs.
inline int pair_stride(int Np) {
  return (Np / 2 + 15) / 16 * 16;
}

// Query rows [0, M) of a head (q's rows with stride row) to out's rows (stride ostride): q's
// pairs, the scores, the softmax, the probabilities' pairs and the weighted sums of V's pairs.
template <int DH, int M>
__attribute__((target("avx512bf16"))) void rows_bf16(float* out, int64_t ostride, const float* q,
                                                     int64_t row, int N, const float* kp,
                                                     const float* vp, float* probs, float* pp,
                                                     float* qp, float scale) {
  const int Np = padded(N), T = (N + 1) / 2, pstride = pair_stride(Np);
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 2
    for (int c = 0; c < DH / 32; ++c)
      _mm512_storeu_si512(qp + r * (DH / 2) + 16 * c, bf16_pairs(q + r * row + 32 * c));
  }
  int j0 = 0;
  for (; j0 + 64 <= Np; j0 += 64) scores_bf16_block<DH, M, 4>(probs + j0, Np, qp, kp + j0, scale);
  switch ((Np - j0) / 16) {  // Np is a multiple of 16
    case 3:
      scores_bf16_block<DH, M, 3>(probs + j0, Np, qp, kp + j0, scale);
      break;
    case 2:
      scores_bf16_block<DH, M, 2>(probs + j0, Np, qp, kp + j0, scale);
      break;
    case 1:
      scores_bf16_block<DH, M, 1>(probs + j0, Np, qp, kp + j0, scale);
      break;
    default:
      break;
  }
  softmax_rows<M>(probs, N);  // 0 past N
  // The probabilities' pairs, 16 at a time: 2 t0 < N <= Np, so each block's first 16 values are
  // within the row; its second 16, when past Np, are zero.
  for (int r = 0; r < M; ++r) {
    const float* pr = probs + r * Np;
    for (int t0 = 0; t0 < T; t0 += 16) {
      const __m512 lo = _mm512_loadu_ps(pr + 2 * t0);
      const __m512 hi = 2 * t0 + 16 < Np ? _mm512_loadu_ps(pr + 2 * t0 + 16) : _mm512_setzero_ps();
      _mm512_storeu_si512(pp + r * pstride + t0, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
  weighted_bf16<DH, M>(out, ostride, pp, pstride, vp, T);
}

template <int DH>
void forward_bf16(const Context& ctx, float* out, const float* qkv, int B, int N, int D, int H) {
  const int64_t row = 3 * int64_t(D);
  const int Np = padded(N);
  const int pstride = pair_stride(Np);
  const float scale = 1.0f / std::sqrt(float(DH));
  // Scratch floats: K pairs [DH/2, Np]; V pairs [T, DH] (first K's rows as pairs [N, DH/2]); the
  // block's probabilities [kRows, Np], their pairs [kRows, pstride], q's pairs [kRows, DH/2].
  const int64_t kp_size = int64_t(DH / 2) * Np, vp_size = int64_t(Np / 2) * DH;
  const size_t floats = size_t(kp_size + vp_size + kRows * (Np + pstride + DH / 2));
  for_each_head_rows(ctx, B, N, H, [&](int b, int h, int first, int last) {
    const float* q = qkv + int64_t(b) * N * row + h * DH;
    float* o = out + int64_t(b) * N * D + h * DH;
    float* kp = scratch(ctx, kScratchAttention, floats);
    float* vp = kp + kp_size;
    float* probs = vp + vp_size;
    float* pp = probs + kRows * Np;
    float* qp = pp + kRows * pstride;
    k_pairs<DH>(kp, vp, q + D, row, N);
    v_pairs<DH>(vp, q + 2 * D, row, N);
    row_blocks(first, last, [&]<int M>(int i) {
      rows_bf16<DH, M>(o + int64_t(i) * D, D, q + i * row, row, N, kp, vp, probs, pp, qp, scale);
    });
  });
}
#endif

}  // namespace

void attention_forward(const Context& ctx, float* out, float* att, const float* qkv, int B, int N,
                       int D, int H) {
#if defined(__AVX512F__)
  if (ctx.bf16 && !att) {
    if (D / H == 64) return forward_bf16<64>(ctx, out, qkv, B, N, D, H);
    if (D / H == 32) return forward_bf16<32>(ctx, out, qkv, B, N, D, H);
  }
#endif
  switch (D / H) {
    case 16:
      return forward_impl<16>(ctx, out, att, qkv, B, N, D, H);
    case 32:
      return forward_impl<32>(ctx, out, att, qkv, B, N, D, H);
    case 64:
      return forward_impl<64>(ctx, out, att, qkv, B, N, D, H);
    default:
      return forward_impl<0>(ctx, out, att, qkv, B, N, D, H);
  }
}

void attention_backward(const Context& ctx, float* dqkv, const float* dout, const float* qkv,
                        const float* att, const float* out, int B, int N, int D, int H) {
  switch (D / H) {
    case 16:
      return backward_impl<16>(ctx, dqkv, dout, qkv, att, out, B, N, D, H);
    case 32:
      return backward_impl<32>(ctx, dqkv, dout, qkv, att, out, B, N, D, H);
    case 64:
      return backward_impl<64>(ctx, dqkv, dout, qkv, att, out, B, N, D, H);
    default:
      return backward_impl<0>(ctx, dqkv, dout, qkv, att, out, B, N, D, H);
  }
}

}  // namespace vit::ops::VIT_ISA_NS
