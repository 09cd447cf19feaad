// Op micro-benchmarks (Google Benchmark) at tiny28's training shapes (batch 128: R = 6400 token
// rows, D 64, MLP 256, 4 heads of 16, 50 tokens), and the GEMM dispatch against OpenBLAS.
//   build/bench/vit_bench_ops [--benchmark_filter=Gemm]
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <vector>

#include "core/rng.hpp"
#include "ops/ops.hpp"
#include "vit/threads.hpp"

namespace {

using namespace vit;

std::vector<float> randv(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (float& x : v) x = float(r.normal());
  return v;
}

constexpr int B = 128, N = 50, D = 64, H = 4, M = 256, R = B * N;

// C[R, O] = X[R, I] W[O, I]^T: args (I, O); ours vs OpenBLAS.
void BM_GemmNT(benchmark::State& st, bool ours) {
  const int I = int(st.range(0)), O = int(st.range(1));
  auto x = randv(size_t(R) * I, 1), w = randv(size_t(O) * I, 2);
  std::vector<float> c(size_t(R) * O);
  for (auto _ : st) {
    if (ours) {
      ops::gemm(false, true, R, O, I, 1.0f, x.data(), I, w.data(), I, 0.0f, c.data(), O);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, O, I, 1.0f, x.data(), I, w.data(), I,
                  0.0f, c.data(), O);
    }
    benchmark::DoNotOptimize(c.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * R * O * I, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK_CAPTURE(BM_GemmNT, dispatch, true)
    ->Args({64, 192})
    ->Args({64, 256})
    ->Args({256, 64})
    ->Args({64, 64});
BENCHMARK_CAPTURE(BM_GemmNT, openblas, false)
    ->Args({64, 192})
    ->Args({64, 256})
    ->Args({256, 64})
    ->Args({64, 64});

void BM_AttentionForward(benchmark::State& st) {
  const bool train = st.range(0);
  auto qkv = randv(size_t(R) * 3 * D, 3);
  std::vector<float> out(size_t(R) * D), att(size_t(B) * H * N * N);
  const int slots = num_threads();
  std::vector<float> scratch(slots * ops::attention_scratch_floats(N, D / H, true));
  for (auto _ : st) {
    ops::attention_forward(out.data(), train ? att.data() : nullptr, scratch.data(), slots,
                           qkv.data(), B, N, D, H);
  }
  st.counters["GFLOP/s"] =
      benchmark::Counter(4.0 * B * N * N * D, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}
BENCHMARK(BM_AttentionForward)->Arg(1)->Arg(0);

void BM_AttentionBackward(benchmark::State& st) {
  auto qkv = randv(size_t(R) * 3 * D, 3), dout = randv(size_t(R) * D, 4);
  std::vector<float> out(size_t(R) * D), att(size_t(B) * H * N * N), dqkv(size_t(R) * 3 * D);
  const int slots = num_threads();
  std::vector<float> scratch(slots * ops::attention_scratch_floats(N, D / H, true));
  ops::attention_forward(out.data(), att.data(), scratch.data(), slots, qkv.data(), B, N, D, H);
  for (auto _ : st) {
    ops::attention_backward(dqkv.data(), scratch.data(), slots, dout.data(), qkv.data(), att.data(),
                            out.data(), B, N, D, H);
  }
  st.counters["GFLOP/s"] =
      benchmark::Counter(8.0 * B * N * N * D, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}
BENCHMARK(BM_AttentionBackward);

void BM_LayerNorm(benchmark::State& st) {
  auto x = randv(size_t(R) * D, 5), w = randv(D, 6), b = randv(D, 7), dy = randv(size_t(R) * D, 8);
  std::vector<float> y(size_t(R) * D), mean(R), rstd(R), dx(size_t(R) * D), dw(D), db(D);
  for (auto _ : st) {
    ops::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), R, D,
                           1e-6f);
    ops::layernorm_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(),
                            rstd.data(), w.data(), R, D);
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * R * D * 4 * 5);
}
BENCHMARK(BM_LayerNorm);

void BM_Gelu(benchmark::State& st) {
  const int64_t n = int64_t(R) * M;
  auto x = randv(size_t(n), 9), dy = randv(size_t(n), 10);
  std::vector<float> y(static_cast<size_t>(n)), cdf(y), dx(y);
  for (auto _ : st) {
    ops::gelu_forward(y.data(), cdf.data(), x.data(), n);
    ops::gelu_backward(dx.data(), dy.data(), x.data(), cdf.data(), n);
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * n);
}
BENCHMARK(BM_Gelu);

}  // namespace

BENCHMARK_MAIN();
