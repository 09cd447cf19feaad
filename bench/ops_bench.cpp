// Op micro-benchmarks (Google Benchmark) at tiny28's training shapes (batch 128: R = 6400 token
// rows, D 64, MLP 256, 4 heads of 16, 50 tokens), one image's attention at ViT-S/16's, the GEMM
// dispatch against OpenBLAS, the bf16 products of training in bf16, and the image resampling of the
// folder datasets.
//   build/bench/vit_bench_ops [--benchmark_filter=Gemm]
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <new>
#include <vector>

#include "core/rng.hpp"
#include "data/resample.hpp"
#include "ops/context.hpp"
#include "ops/ops.hpp"
#include "ops/packed.hpp"
#include "vit/isa.hpp"
#include "vit/threads.hpp"

namespace {

using namespace vit;

// The context the benchmarked ops run in: every thread of the process's setting (--threads).
ops::Context op_context() {
  static ops::CpuContext cpu;
  return cpu.with_threads(num_threads());
}

// Buffers aligned as the model's arena aligns its tensors (64 bytes), so that row loads do not
// straddle cache lines here when they do not in the model.
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  bool operator==(const Aligned64&) const { return true; }
};
using Vec = std::vector<float, Aligned64<float>>;

Vec randv(size_t n, uint64_t seed) {
  Rng r(seed);
  Vec v(n);
  for (float& x : v) x = float(r.normal());
  return v;
}

// A GFLOP/s counter for `flops` floating-point operations per iteration.
benchmark::Counter gflops(double flops) {
  return benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate,
                            benchmark::Counter::kIs1000);
}

constexpr int B = 128, N = 50, D = 64, H = 4, M = 256, R = B * N;

// A micro-batch of tiny28's training at batch 128 (8 images: micro_batch_images and
// micro_batch_count): the rows the model's GEMMs see in a step.
constexpr int kPieceRows = 8 * N;

// C[R, O] = X[R, I] W[O, I]^T: args (I, O, R); ours vs OpenBLAS.
void BM_GemmNT(benchmark::State& st, bool ours) {
  const int I = int(st.range(0)), O = int(st.range(1)), rows = int(st.range(2));
  auto x = randv(size_t(rows) * I, 1), w = randv(size_t(O) * I, 2);
  Vec c(size_t(rows) * O);
  for (auto _ : st) {
    if (ours) {
      ops::gemm(op_context(), false, true, rows, O, I, 1.0f, x.data(), I, w.data(), I, 0.0f,
                c.data(), O);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, O, I, 1.0f, x.data(), I, w.data(),
                  I, 0.0f, c.data(), O);
    }
    benchmark::DoNotOptimize(c.data());
  }
  st.counters["GFLOP/s"] = gflops(2.0 * rows * O * I);
}
#define GEMM_NT_SHAPES(R) \
  ->Args({64, 192, R})->Args({64, 256, R})->Args({256, 64, R})->Args({64, 64, R})
// One 224 x 224 image's tokens (197) through ViT-Ti's and ViT-B's linear layers: batch-1 inference.
#define GEMM_NT_B1_SHAPES      \
  ->Args({192, 576, 197})      \
      ->Args({192, 192, 197})  \
      ->Args({192, 768, 197})  \
      ->Args({768, 192, 197})  \
      ->Args({768, 2304, 197}) \
      ->Args({768, 768, 197})  \
      ->Args({768, 3072, 197}) \
      ->Args({3072, 768, 197}) \
      ->Args({768, 192, 3152}) \
      ->Args({768, 768, 3152}) \
      ->Args({3072, 768, 3152})
BENCHMARK_CAPTURE(BM_GemmNT, dispatch, true)
GEMM_NT_SHAPES(R) GEMM_NT_SHAPES(kPieceRows) GEMM_NT_B1_SHAPES;
BENCHMARK_CAPTURE(BM_GemmNT, openblas, false)
GEMM_NT_SHAPES(R) GEMM_NT_SHAPES(kPieceRows) GEMM_NT_B1_SHAPES;

// dW[O, I] += dY[R, O]^T X[R, I] (a weight gradient): args (O, I, R); ours vs OpenBLAS.
void BM_GemmTN(benchmark::State& st, bool ours) {
  const int O = int(st.range(0)), I = int(st.range(1)), rows = int(st.range(2));
  auto dy = randv(size_t(rows) * O, 1), x = randv(size_t(rows) * I, 2);
  Vec dw(size_t(O) * I);
  for (auto _ : st) {
    if (ours) {
      ops::gemm(op_context(), true, false, O, I, rows, 1.0f, dy.data(), O, x.data(), I, 1.0f,
                dw.data(), I);
    } else {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, rows, 1.0f, dy.data(), O, x.data(),
                  I, 1.0f, dw.data(), I);
    }
    benchmark::DoNotOptimize(dw.data());
  }
  st.counters["GFLOP/s"] = gflops(2.0 * rows * O * I);
}
// tiny28 at batch 128 (R = 6400) and its micro-batch, then ViT-Ti and ViT-B at batch 16 (R =
// 3152).
#define GEMM_TN_SHAPES              \
  ->Args({192, 64, R})              \
      ->Args({64, 64, R})           \
      ->Args({256, 64, R})          \
      ->Args({64, 256, R})          \
      ->Args({192, 64, kPieceRows}) \
      ->Args({64, 64, kPieceRows})  \
      ->Args({256, 64, kPieceRows}) \
      ->Args({64, 256, kPieceRows}) \
      ->Args({576, 192, 3152})      \
      ->Args({768, 192, 3152})      \
      ->Args({192, 768, 3152})      \
      ->Args({2304, 768, 3152})     \
      ->Args({3072, 768, 3152})
BENCHMARK_CAPTURE(BM_GemmTN, dispatch, true) GEMM_TN_SHAPES;
BENCHMARK_CAPTURE(BM_GemmTN, openblas, false) GEMM_TN_SHAPES;

// The kernel a bf16 benchmark runs on (arg 3: 1 AMX, 0 AVX512-BF16), set for its lifetime; ok()
// is false (and the benchmark skips) where this CPU lacks it.
struct Bf16Kernel {
  explicit Bf16Kernel(benchmark::State& st) {
    if (!cpu_has_bf16() || (st.range(3) && !cpu_has_amx())) {
      st.SkipWithError("this CPU lacks AVX512-BF16 (or AMX-BF16)");
      return;
    }
    set_amx(st.range(3) != 0);
    ok_ = true;
  }
  ~Bf16Kernel() {
    if (ok_) set_amx(cpu_has_amx());
  }
  bool ok() const { return ok_; }

 private:
  bool ok_ = false;
};

// The benchmarks' context: all threads, or one (`lane`).
ops::Context lane_or_all(bool lane) {
  ops::Context ctx = op_context();
  if (lane) ctx.threads = 1;
  return ctx;
}

// The bf16 products of training in bf16 (`--dtype bf16`), on AMX where the CPU has it: C[R, O] =
// X[R, I] W[O, I]^T on W's bf16 panels (args I, O, R; arg 3: 0 AVX512-BF16, 1 AMX), and the weight
// gradient dW[O, I] += dY[R, O]^T X[R, I] with both rounded to bf16, and the bias's db[O] +=
// colsum(dY) (the same args). R = 1280: a batch of 64 images of 20 tokens (tiny28 with the
// Fashion-MNIST recipe's patch dropout) on all threads; R = 320: one of its micro-batches (16
// images), as training runs it, on one thread (`lane`).
void BM_GemmBf16(benchmark::State& st, bool lane) {
  const int I = int(st.range(0)), O = int(st.range(1)), rows = int(st.range(2));
  const Bf16Kernel kernel(st);
  if (!kernel.ok()) return;
  auto x = randv(size_t(rows) * I, 1), w = randv(size_t(O) * I, 2);
  Vec c(size_t(rows) * O);
  ops::PackedWeights packs;
  packs.add_bf16(w.data(), O, I);
  ops::Context ctx = lane_or_all(lane);
  ctx.packed = &packs;
  for (auto _ : st) {
    ops::gemm(ctx, false, true, rows, O, I, 1.0f, x.data(), I, w.data(), I, 0.0f, c.data(), O);
    benchmark::DoNotOptimize(c.data());
  }
  st.counters["GFLOP/s"] = gflops(2.0 * rows * O * I);
}
void BM_WeightGradBf16(benchmark::State& st, bool lane) {
  const int I = int(st.range(0)), O = int(st.range(1)), rows = int(st.range(2));
  const Bf16Kernel kernel(st);
  if (!kernel.ok()) return;
  auto dy = randv(size_t(rows) * O, 1), x = randv(size_t(rows) * I, 2);
  Vec dw(size_t(O) * I), db(static_cast<size_t>(O));
  ops::Context ctx = lane_or_all(lane);
  ctx.bf16_grads = true;
  for (auto _ : st) {
    ops::weight_grad(ctx, dw.data(), db.data(), dy.data(), x.data(), rows, I, O);
    benchmark::DoNotOptimize(dw.data());
  }
  st.counters["GFLOP/s"] = gflops(2.0 * rows * O * I);
}
// tiny28's four linear layers (I, O): qkv, proj, fc1, fc2.
#define TINY28_LINEARS(R, amx)  \
  ->Args({64, 192, R, amx})     \
      ->Args({64, 64, R, amx})  \
      ->Args({64, 256, R, amx}) \
      ->Args({256, 64, R, amx})
BENCHMARK_CAPTURE(BM_GemmBf16, all, false) TINY28_LINEARS(64 * 20, 1) TINY28_LINEARS(64 * 20, 0);
BENCHMARK_CAPTURE(BM_GemmBf16, lane, true) TINY28_LINEARS(16 * 20, 1) TINY28_LINEARS(16 * 20, 0);
BENCHMARK_CAPTURE(BM_WeightGradBf16, all, false)
TINY28_LINEARS(64 * 20, 1) TINY28_LINEARS(64 * 20, 0);
BENCHMARK_CAPTURE(BM_WeightGradBf16, lane, true)
TINY28_LINEARS(16 * 20, 1) TINY28_LINEARS(16 * 20, 0);

// tiny28's attention at batch 128: every token (N 50) or patch dropout's 0.6 (N 20).
void BM_AttentionForward(benchmark::State& st) {
  const bool train = st.range(0);
  const int n = int(st.range(1)), rows = B * n;
  auto qkv = randv(size_t(rows) * 3 * D, 3);
  Vec out(size_t(rows) * D), att(size_t(B) * H * n * n);
  for (auto _ : st) {
    ops::attention_forward(op_context(), out.data(), train ? att.data() : nullptr, qkv.data(), B, n,
                           D, H);
  }
  st.counters["GFLOP/s"] = gflops(4.0 * B * n * n * D);
}
BENCHMARK(BM_AttentionForward)->Args({1, N})->Args({0, N})->Args({1, 20});

// One image's inference attention at ViT-S/16's shapes (197 tokens, 6 heads of 64), fp32 (arg 0)
// or with its products in bf16 (arg 1: where the CPU has AVX512-BF16 and the AVX-512 kernels run).
void BM_AttentionViTS(benchmark::State& st) {
  const int Bs = 1, Ns = 197, Ds = 384, Hs = 6;
  ops::Context ctx = op_context();
  ctx.bf16 = st.range(0);
  if (ctx.bf16 && !bf16_active()) {
    st.SkipWithError("bf16 needs AVX512-BF16 on the avx512 kernels");
    return;
  }
  auto qkv = randv(size_t(Bs) * Ns * 3 * Ds, 3);
  Vec out(size_t(Bs) * Ns * Ds);
  for (auto _ : st) ops::attention_forward(ctx, out.data(), nullptr, qkv.data(), Bs, Ns, Ds, Hs);
  st.counters["GFLOP/s"] = gflops(4.0 * Bs * Ns * Ns * Ds);
}
BENCHMARK(BM_AttentionViTS)->Arg(0)->Arg(1);

void BM_AttentionBackward(benchmark::State& st) {
  const int n = int(st.range(0)), rows = B * n;
  auto qkv = randv(size_t(rows) * 3 * D, 3), dout = randv(size_t(rows) * D, 4);
  Vec out(size_t(rows) * D), att(size_t(B) * H * n * n), dqkv(size_t(rows) * 3 * D);
  ops::attention_forward(op_context(), out.data(), att.data(), qkv.data(), B, n, D, H);
  for (auto _ : st) {
    ops::attention_backward(op_context(), dqkv.data(), dout.data(), qkv.data(), att.data(),
                            out.data(), B, n, D, H);
  }
  st.counters["GFLOP/s"] = gflops(8.0 * B * n * n * D);
}
BENCHMARK(BM_AttentionBackward)->Arg(N)->Arg(20);

void BM_LayerNorm(benchmark::State& st) {
  auto x = randv(size_t(R) * D, 5), w = randv(D, 6), b = randv(D, 7), dy = randv(size_t(R) * D, 8);
  Vec y(size_t(R) * D), mean(R), rstd(R), dx(size_t(R) * D), dw(D), db(D);
  for (auto _ : st) {
    ops::layernorm_forward(op_context(), y.data(), mean.data(), rstd.data(), x.data(), w.data(),
                           b.data(), R, D, 1e-6f);
    ops::layernorm_backward(op_context(), dx.data(), dw.data(), db.data(), dy.data(), x.data(),
                            mean.data(), rstd.data(), w.data(), R, D);
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * R * D * 4 * 5);
}
BENCHMARK(BM_LayerNorm);

// Arg: elements. R * M is one tiny28 MLP activation at batch 128 (6.5 MB, from memory); 16384
// fits in L1, which separates the cost of erf/exp from that of the memory traffic.
void BM_Gelu(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto x = randv(size_t(n), 9), dy = randv(size_t(n), 10);
  Vec y(static_cast<size_t>(n)), slope(y), dx(y);
  for (auto _ : st) {
    ops::gelu_forward(op_context(), y.data(), slope.data(), x.data(), n);
    ops::gelu_backward(op_context(), dx.data(), dy.data(), x.data(), slope.data(), n);
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * n);
}
BENCHMARK(BM_Gelu)->Arg(int64_t(R) * M)->Arg(16384);

// The per-parameter costs of a training step that do not shrink with the batch (what
// docs/DISTRIBUTED.md's scaling model calls the fixed costs): AdamW over n parameters (p, m, v
// read and written, g read: 28 bytes each) and the ordered gradient sum's dst += src (12 bytes).
// Args: tiny28's 305k parameters (in L2) and ViT-Ti/16's 5.7M (from memory).
void BM_AdamW(benchmark::State& st) {
  const int64_t n = st.range(0);
  Vec p = randv(size_t(n), 11), g = randv(size_t(n), 12), m(size_t(n), 0.0f), v(m);
  int64_t step = 0;
  for (auto _ : st) {
    ops::adamw_update(op_context(), p.data(), m.data(), v.data(), g.data(), n, 1e-3f, 0.9f, 0.999f,
                      1e-8f, 0.05f, true, ++step);
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * n * 28);
  st.SetItemsProcessed(int64_t(st.iterations()) * n);
}
BENCHMARK(BM_AdamW)->Arg(305'034)->Arg(5'717'416);

void BM_AddInto(benchmark::State& st) {
  const int64_t n = st.range(0);
  Vec dst = randv(size_t(n), 13), src = randv(size_t(n), 14);
  for (auto _ : st) ops::add_into(op_context(), dst.data(), src.data(), n, false);
  st.SetBytesProcessed(int64_t(st.iterations()) * n * 12);
  st.SetItemsProcessed(int64_t(st.iterations()) * n);
}
BENCHMARK(BM_AddInto)->Arg(305'034)->Arg(5'717'416);

// The global gradient norm's sum of squares (clip_grad_norm) over tiny28's and ViT-Ti's gradients.
void BM_SumSquares(benchmark::State& st) {
  const int64_t n = st.range(0);
  Vec g = randv(size_t(n), 15);
  for (auto _ : st) benchmark::DoNotOptimize(ops::sum_squares(op_context(), g.data(), n));
  st.SetBytesProcessed(int64_t(st.iterations()) * n * 4);
}
BENCHMARK(BM_SumSquares)->Arg(305'034)->Arg(5'717'416);

// Resampling as the folder datasets run it (data/resample.hpp, bicubic): arg 0, the first decode's
// resize of a 500 x 375 RGB photo (interleaved, as decoded) to its stored 341 x 256; arg 1, a
// random resized crop's window of 200 x 150 pixels of that stored image (planar) to 224 x 224.
void BM_ResizePhoto(benchmark::State& st) {
  const bool crop = st.range(0) == 1;
  Rng r(15);
  Image im;
  im.width = 500, im.height = 375, im.channels = 3;
  im.pixels.resize(size_t(500) * 375 * 3);
  for (uint8_t& v : im.pixels) v = uint8_t(r.below(256));
  std::vector<uint8_t> stored(size_t(3) * 341 * 256), out(size_t(3) * 224 * 224);
  data::resize_planes(data::Planes::interleaved(im), 341, 256, Interpolation::kBicubic,
                      stored.data());
  const data::Planes planes = data::Planes::planar(stored.data(), 3, 256, 341);
  for (auto _ : st) {
    if (crop) {
      data::resize_planes(planes.region(70, 50, 200, 150), 224, 224, Interpolation::kBicubic,
                          out.data());
    } else {
      data::resize_planes(data::Planes::interleaved(im), 341, 256, Interpolation::kBicubic,
                          stored.data());
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(stored.data());
  }
  st.SetItemsProcessed(int64_t(st.iterations()));
}
BENCHMARK(BM_ResizePhoto)->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
