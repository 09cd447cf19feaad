// Optimizer kernels over flat parameter arrays: the AdamW update, and the deterministic sum of
// squares behind global gradient-norm clipping.
#include <omp.h>
#include <algorithm>
#include <cmath>

#include "ops/cpu/kernels.hpp"

namespace vit::ops::VIT_ISA_NS {

namespace {

// a * b + c, rounded once where the ISA has a fused multiply-add (the AVX variants, arm64), else
// twice.
template <typename T>
inline T mul_add(T a, T b, T c) {
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// Elements [lo, hi) of the update, in SIMD lanes. The loop is a plain one so that GCC vectorises
// it (through a lambda it stayed scalar: "latch block not empty"; the square root needs
// -fno-math-errno, CMakeLists.txt). This file is compiled with -ffp-contract=off, so the fused
// multiply-adds are the ones written here, the same in every lane and in the remainder: those GCC
// chose before (the bits of every earlier run, decay's below included), and rounding twice on the
// scalar variant.
void adamw_range(float* __restrict p, float* __restrict m, float* __restrict v,
                 const float* __restrict g, int64_t lo, int64_t hi, float l2, float beta1,
                 float beta2, float decay, float step_size, float inv_sqrt_bc2, float eps) {
  const float one_minus_b1 = 1.0f - beta1, one_minus_b2 = 1.0f - beta2;
#pragma omp simd
  for (int64_t i = lo; i < hi; ++i) {
    const float gi = mul_add(l2, p[i], g[i]);
    const float mi = mul_add(beta1, m[i], one_minus_b1 * gi);
    const float vi = mul_add(beta2, v[i], one_minus_b2 * gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * mi / mul_add(std::sqrt(vi), inv_sqrt_bc2, eps);
  }
}

}  // namespace

// Split over ctx's threads in equal ranges, or on the calling thread alone with one: the same
// arithmetic on each element either way. In lanes, AdamW::step over tiny28's 305k parameters
// took 103-110 us on 2 threads (65 us on one) where the scalar loop took 365-392 (337); in a
// Fashion-MNIST run (batch 64) the update's share of the time went from 7.5% to 1.3% (perf).
void adamw_update(const Context& ctx, float* p, float* m, float* v, const float* g, int64_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                  int64_t step) {
  // Bias corrections in double (beta2^t for t in the thousands), as PyTorch computes them.
  const double bc1 = 1.0 - std::pow(double(beta1), double(step));
  const double bc2 = 1.0 - std::pow(double(beta2), double(step));
  const float step_size = float(lr / bc1);
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  const float decay = decoupled ? mul_add(-lr, weight_decay, 1.0f) : 1.0f;  // 1 - lr wd
  const float l2 = decoupled ? 0.0f : weight_decay;
  auto range = [&](int64_t lo, int64_t hi) {
    adamw_range(p, m, v, g, lo, hi, l2, beta1, beta2, decay, step_size, inv_sqrt_bc2, eps);
  };
  if (ctx.threads > 1) {
#pragma omp parallel num_threads(ctx.threads)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      range(n * t / nt, n * (t + 1) / nt);
    }
  } else {
    range(0, n);
  }
}

double sum_squares(const Context& ctx, const float* g, int64_t n) {
  // Fixed chunks, each summed from zero by one thread, element after element (a chain of
  // dependent additions: each square is exact in double, so each step rounds once), then the
  // partials added in chunk order. A thread runs up to kWays of its chunks side by side, one chain
  // each, so that their additions overlap instead of each waiting on the one before (one chain at
  // a time, this took 1.9% of tiny28's bf16 Fashion-MNIST step in `perf`): every chunk's chain is
  // the same, so the sum has the same bits.
  constexpr int64_t kChunk = 1 << 14;
  constexpr int kWays = 8;
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  double total = 0.0;
  // Partials in fixed-size groups, so no allocation scales with n.
  constexpr int64_t kGroup = 256;
  double partial[kGroup];
  auto step = [](double s, float x) { return mul_add(double(x), double(x), s); };  // s + x^2
  for (int64_t c0 = 0; c0 < nchunks; c0 += kGroup) {
    const int64_t cn = std::min(kGroup, nchunks - c0);
    // Chunks [begin, end) of this group, kWays at a time, into partial[].
    auto run = [&](int64_t begin, int64_t end) {
      for (int64_t first = begin; first < end; first += kWays) {
        const int64_t count = std::min<int64_t>(kWays, end - first);
        const float* at[kWays];
        int64_t len[kWays];
        double s[kWays] = {};
        int64_t common = kChunk;  // elements every chunk of the set has
        for (int64_t c = 0; c < count; ++c) {
          const int64_t lo = (c0 + first + c) * kChunk;
          at[c] = g + lo;
          len[c] = std::min(n, lo + kChunk) - lo;
          common = std::min(common, len[c]);
        }
        if (count == kWays) {
          for (int64_t i = 0; i < common; ++i) {
#pragma GCC unroll 8
            for (int c = 0; c < kWays; ++c) s[c] = step(s[c], at[c][i]);
          }
        } else {
          for (int64_t i = 0; i < common; ++i) {
            for (int64_t c = 0; c < count; ++c) s[c] = step(s[c], at[c][i]);
          }
        }
        for (int64_t c = 0; c < count; ++c) {  // the rest of a set's longer chunks
          for (int64_t i = common; i < len[c]; ++i) s[c] = step(s[c], at[c][i]);
          partial[first + c] = s[c];
        }
      }
    };
    if (ctx.threads > 1 && n > kChunk) {  // each thread an even share of the chunks
#pragma omp parallel num_threads(ctx.threads)
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        run(cn * t / nt, cn * (t + 1) / nt);
      }
    } else {
      run(0, cn);
    }
    for (int64_t c = 0; c < cn; ++c) total += partial[c];
  }
  return total;
}

void scale_inplace(const Context& ctx, float* x, int64_t n, float s) {
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads)
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace vit::ops::VIT_ISA_NS
