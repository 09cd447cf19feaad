// bf16 products (AVX512-BF16, and AMX-BF16 where the CPU has it) for inference and training: the
// weights' conversion, the bf16 GEMM (both kernels) and training's weight gradient, attention
// against double precision within bounds derived from their roundings, their independence from
// the thread count and the batch, the GEMM's fused epilogues, and a model's predictions in bf16
// against fp32. Every test here needs a CPU with AVX512-BF16 and skips (saying so) without one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "idx_writer.hpp"
#include "ops/ops.hpp"
#include "ops/packed.hpp"
#include "test_util.hpp"
#include "vit/attention.hpp"
#include "vit/checkpoint.hpp"
#include "vit/classify.hpp"
#include "vit/data.hpp"
#include "vit/dataset.hpp"
#include "vit/isa.hpp"
#include "vit/threads.hpp"
#include "vit/train.hpp"
#include "vit/transforms.hpp"

namespace vit::test {
namespace {

// Runs the AVX-512 kernels for the test's duration (bf16 products are theirs), or skips.
class Bf16 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
    saved_ = active_isa();
    saved_amx_ = amx_active();
    set_isa(Isa::kAvx512);
  }
  void TearDown() override {
    if (!cpu_has_bf16()) return;
    set_isa(saved_);
    set_amx(saved_amx_);
  }

 private:
  Isa saved_ = Isa::kScalar;
  bool saved_amx_ = false;
};

// Runs f on each bf16 kernel this CPU has: VDPBF16PS, and AMX-BF16 where it runs it (each named
// in a failure's trace).
template <class F>
void on_each_bf16_kernel(F&& f) {
  for (const bool amx : {false, true}) {
    if (amx && !cpu_has_amx()) continue;
    set_amx(amx);
    SCOPED_TRACE(amx ? "AMX-BF16" : "AVX512-BF16 (VDPBF16PS)");
    f();
  }
}

// bf16's precision: 8 significant bits, so rounding to nearest errs by at most u = 2^-8 relative.
const double kUnitBf16 = std::ldexp(1.0, -8);

TEST(Bf16Rounding, NearestEvenLikeTheHardware) {
  // Exactly representable values stay; halfway cases go to the even neighbour; NaN stays NaN.
  EXPECT_EQ(ops::from_bf16(ops::to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(ops::from_bf16(ops::to_bf16(-2.5f)), -2.5f);
  EXPECT_EQ(ops::from_bf16(ops::to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);  // tie: down to even
  EXPECT_EQ(ops::from_bf16(ops::to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))),
            1.0f + std::ldexp(1.0f, -6));  // tie: up to even
  EXPECT_EQ(ops::from_bf16(ops::to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20))),
            1.0f + std::ldexp(1.0f, -7));  // past the tie: up
  EXPECT_TRUE(std::isnan(ops::from_bf16(ops::to_bf16(NAN))));
  EXPECT_EQ(ops::from_bf16(ops::to_bf16(INFINITY)), INFINITY);
  // Every value within u of itself.
  for (float x : random_vector(10000, 77, 100.0)) {
    const double y = ops::from_bf16(ops::to_bf16(x));
    EXPECT_LE(std::fabs(y - x), kUnitBf16 * std::fabs(x)) << x;
  }
}

struct Product {
  int M, N, K;
  float alpha, beta;
};

// C = alpha A w^T + bias (+ beta C0) on w's bf16 panels, against double precision on the fp32
// inputs. Each product a_k w_k is taken of the two values rounded to bf16, so it carries a relative
// error of at most (1 + u)^2 - 1 = 2u + u^2 (u = 2^-8), and is then exact in fp32 (8 x 8
// significant bits); the fp32 sums, the alpha scaling and the two additions err as any fp32
// evaluation of K + 3 terms, within gamma(K + 3) of the magnitude sum (as test_gemm.cpp's bound).
// So |C - exact| <= (2u + u^2) S + gamma(K + 3) ((1 + 2u + u^2) S + |bias| + |beta c0|), S = sum_k
// |alpha a_k w_k|.
// With trans_b false the weight is w [K, N] and the product A w, converted as training converts
// it for the input gradient (add_bf16_training); the bound is the same. The bias is random, or
// zeros (kZero), or none at all (kNone: the backward's input gradients). Returns C.
enum class Bias { kRandom, kZero, kNone };
std::vector<float> check_bf16(const Product& p, int threads, bool trans_b = true,
                              Bias bias_kind = Bias::kRandom) {
  auto A = random_vector(int64_t(p.M) * p.K, 1), w = random_vector(int64_t(p.N) * p.K, 2, 0.1);
  auto C0 = random_vector(int64_t(p.M) * p.N, 3), bias = random_vector(p.N, 4);
  if (bias_kind != Bias::kRandom) std::fill(bias.begin(), bias.end(), 0.0f);
  ops::PackedWeights packs;
  if (trans_b) {
    packs.add_bf16(w.data(), p.N, p.K);
  } else {
    packs.add_bf16_training(w.data(), p.K, p.N);
  }
  ops::Context ctx = op_context(threads);
  ctx.packed = &packs;
  std::vector<float> C = C0;
  ops::gemm(ctx, false, trans_b, p.M, p.N, p.K, p.alpha, A.data(), p.K, w.data(),
            trans_b ? p.K : p.N, p.beta, C.data(), p.N,
            bias_kind == Bias::kNone ? nullptr : bias.data());
  auto W = [&](int k, int j) { return trans_b ? w[size_t(j) * p.K + k] : w[size_t(k) * p.N + j]; };
  const double e = 2 * kUnitBf16 + kUnitBf16 * kUnitBf16, g = gamma_n(p.K + 3);
  double worst = 0;
  size_t at = 0;
  double at_ref = 0, at_bound = 0;
  for (int i = 0; i < p.M; ++i) {
    for (int j = 0; j < p.N; ++j) {
      double s = 0, S = 0;
      for (int k = 0; k < p.K; ++k) {
        const double t = double(p.alpha) * A[size_t(i) * p.K + k] * W(k, j);
        s += t;
        S += std::fabs(t);
      }
      const size_t ij = size_t(i) * p.N + j;
      const double c0 = double(p.beta) * C0[ij];
      const double ref = s + bias[j] + c0;
      const double bound = e * S + g * ((1 + e) * S + std::fabs(bias[j]) + std::fabs(c0));
      const double r = std::fabs(C[ij] - ref) / bound;
      if (!(r <= worst)) worst = r, at = ij, at_ref = ref, at_bound = bound;  // NaN too
    }
  }
  EXPECT_LE(worst, 1.0) << (trans_b ? "A w^T" : "A w") << ": M " << p.M << " N " << p.N << " K "
                        << p.K << " alpha " << p.alpha << " beta " << p.beta << ", " << threads
                        << " threads: element " << at << " is " << C[at] << ", expected " << at_ref
                        << " within " << at_bound;
  // The bound is not loose by orders of magnitude: the bf16 rounding shows (against the same
  // product in fp32 the error is many times the fp32 one).
  EXPECT_GT(worst, 1e-3) << "M " << p.M << " N " << p.N << " K " << p.K
                         << ": the product looks unrounded (not bf16?)";
  return C;
}

TEST_F(Bf16, GemmWithinTheDerivedBound) {
  // ViT-B's one-image qkv and fc2, ViT-Ti's head, odd depths (a zero pair at the end), partial
  // row tiles (M % 12) and column panels (N % 32), beta 1 (in place: a residual), several threads.
  for (const Product& p : {Product{197, 96, 768, 1.0f, 0.0f}, Product{197, 64, 3072, 1.0f, 1.0f},
                           Product{1, 1000, 192, 1.0f, 0.0f}, Product{13, 70, 33, 0.5f, 1.0f},
                           Product{300, 45, 1, 2.0f, 0.0f}, Product{25, 17, 7, 1.0f, 1.0f},
                           Product{700, 40, 300, 1.0f, 0.0f}}) {
    on_each_bf16_kernel([&] {
      for (int threads : {1, 2}) {
        for (bool trans_b : {true, false}) check_bf16(p, threads, trans_b);
      }
    });
  }
}

// A product with no bias, alpha 1 and beta 0 (the backward's input gradients) has AMX store its
// tiles straight to C where a block of C is whole (32 x 32): within the bound, and the same values
// as the product with a zero bias, which passes every sum through the vector registers, in every
// place of C (whole and partial blocks; rows or columns split between the threads).
TEST_F(Bf16, PlainProductEqualsTheOneWithAZeroBias) {
  for (const Product& p : {Product{320, 64, 64, 1.0f, 0.0f}, Product{197, 96, 768, 1.0f, 0.0f},
                           Product{64, 256, 64, 1.0f, 0.0f}, Product{45, 70, 33, 1.0f, 0.0f},
                           Product{128, 192, 256, 1.0f, 0.0f}}) {
    on_each_bf16_kernel([&] {
      for (int threads : {1, 2}) {
        for (bool trans_b : {true, false}) {
          const auto plain = check_bf16(p, threads, trans_b, Bias::kNone);
          const auto zero = check_bf16(p, threads, trans_b, Bias::kZero);
          size_t differ = 0, first = 0;
          for (size_t i = 0; i < plain.size(); ++i) {
            if (plain[i] != zero[i] && differ++ == 0) first = i;  // -0 == 0
          }
          EXPECT_EQ(differ, 0u) << "M " << p.M << " N " << p.N << " K " << p.K << ", " << threads
                                << " threads, trans_b " << trans_b << ": element " << first
                                << " is " << plain[first] << " without a bias, " << zero[first]
                                << " with a zero one";
        }
      }
    });
  }
}

// Each C element is summed over the whole of K in one register, in order: the same bits on 1, 2
// and 3 threads, and a row the same whatever rows are multiplied with it (an image alone or in a
// batch).
TEST_F(Bf16, GemmBitwiseAcrossThreadsAndBatch) {
  const int M = 600, N = 300, K = 768;
  auto A = random_vector(int64_t(M) * K, 41), w = random_vector(int64_t(N) * K, 42);
  auto bias = random_vector(N, 43);
  ops::PackedWeights packs;
  packs.add_bf16(w.data(), N, K);
  auto run = [&](int rows, int threads) {
    ops::Context ctx = op_context(threads);
    ctx.packed = &packs;
    std::vector<float> C(size_t(rows) * N);
    ops::gemm(ctx, false, true, rows, N, K, 1.0f, A.data(), K, w.data(), K, 0.0f, C.data(), N,
              bias.data());
    return C;
  };
  on_each_bf16_kernel([&] {
    const auto all = run(M, 1);
    for (const int threads : {2, 3}) {
      const auto other = run(M, threads);
      EXPECT_EQ(std::memcmp(other.data(), all.data(), all.size() * 4), 0) << threads << " threads";
    }
    for (const int rows : {1, 13, 197}) {
      const auto part = run(rows, 2);
      EXPECT_EQ(std::memcmp(part.data(), all.data(), part.size() * 4), 0)
          << "the first " << rows << " rows alone differ from them among " << M;
    }
  });
}

// bf16_panels writes each value of op(B), rounded to nearest even, where ops.hpp's Bf16Panels
// puts it, and zeros past K and N, on the AVX-512 variant (VCVTNE2PS2BF16) and the others.
TEST_F(Bf16, PanelsHoldTheRoundedValuesInTheirPlaces) {
  for (const Isa isa : {Isa::kAvx512, Isa::kAvx2}) {
    set_isa(isa);
    for (const auto [K, N] : {std::pair{7, 45}, {64, 32}, {33, 70}, {1, 1}, {100, 17}}) {
      for (const bool trans_b : {false, true}) {
        const int ldb = (trans_b ? K : N) + 3;  // rows longer than the matrix
        const auto B = random_vector(int64_t(trans_b ? N : K) * ldb, 71);
        std::vector<uint16_t> panels(size_t(ops::bf16_panels_size(K, N)), 0xffff);
        ops::bf16_panels(panels.data(), B.data(), ldb, trans_b, K, N);
        const int padded = (K + 31) / 32 * 16;
        int64_t wrong = 0;
        for (size_t at = 0; at < panels.size(); ++at) {
          const int h = int(at % 2), c = int(at / 2 % 32), q = int(at / 64 % size_t(padded));
          const int p = int(at / 64 / size_t(padded)), n = 32 * p + c, k = 2 * q + h;
          const uint16_t want = n < N && k < K ? ops::to_bf16(trans_b ? B[size_t(n) * ldb + k]
                                                                      : B[size_t(k) * ldb + n])
                                               : 0;
          if (panels[at] != want && wrong++ == 0) {
            ADD_FAILURE() << isa_name(isa) << (trans_b ? ", B^T" : ", B") << " K " << K << " N "
                          << N << ": value " << at << " (k " << k << ", n " << n << ") is "
                          << panels[at] << ", expected " << want;
          }
        }
        EXPECT_EQ(wrong, 0);
      }
    }
  }
}

// Training's weight gradient in bf16 (ops::Context::bf16_grads): dw = dw0 + dout^T x against
// double precision, with check_bf16's bound for a sum over the R rows (K = R) plus dw0's
// addition: |dw - exact| <= (2u + u^2) S + gamma(R + 1) ((1 + 2u + u^2) S + |dw0|), S = sum_r
// |dout_r x_r|; db = db0 + colsum(dout) stays fp32: within gamma(R + 1) (sum_r |dout_r| + |db0|).
// The same bits on 1, 2 and 3 threads (each dw element is summed by one thread, in order), and
// db the bits of the sum in row order.
TEST_F(Bf16, WeightGradientWithinTheDerivedBound) {
  struct Shape {
    int R, I, O;
  };
  on_each_bf16_kernel([&] {
    for (const Shape& sh : {Shape{800, 64, 192}, Shape{37, 45, 70}, Shape{1, 3, 5},
                            Shape{197, 256, 96}, Shape{64, 33, 40}}) {
      const auto dout = random_vector(int64_t(sh.R) * sh.O, 81),
                 x = random_vector(int64_t(sh.R) * sh.I, 82, 0.5);
      const auto dw0 = random_vector(int64_t(sh.O) * sh.I, 83), db0 = random_vector(sh.O, 84);
      std::vector<float> first, first_db;
      for (const int threads : {1, 2, 3}) {
        ops::Context ctx = op_context(threads);
        ctx.bf16_grads = true;
        std::vector<float> dw = dw0, db = db0;
        ops::weight_grad(ctx, dw.data(), db.data(), dout.data(), x.data(), sh.R, sh.I, sh.O);
        // x as the forward saves it in bf16 training: bf16_panels' values and layout, and the
        // same gradient bit for bit.
        std::vector<uint16_t> panels(size_t(ops::bf16_panels_size(sh.R, sh.I)), 0xFFFF),
            want(panels.size());
        ops::input_panels_bf16(ctx, panels.data(), x.data(), sh.R, sh.I);
        ops::bf16_panels(want.data(), x.data(), sh.I, false, sh.R, sh.I);
        EXPECT_EQ(std::memcmp(panels.data(), want.data(), panels.size() * 2), 0)
            << "input_panels_bf16, " << threads << " threads, R " << sh.R << " I " << sh.I;
        std::vector<float> dw_p = dw0, db_p = db0;
        ops::weight_grad(ctx, dw_p.data(), db_p.data(), dout.data(),
                         ops::LayerInput(nullptr, panels.data()), sh.R, sh.I, sh.O);
        EXPECT_EQ(std::memcmp(dw_p.data(), dw.data(), dw.size() * 4), 0)
            << "dw from x's panels, " << threads << " threads, R " << sh.R << " I " << sh.I;
        EXPECT_EQ(std::memcmp(db_p.data(), db.data(), db.size() * 4), 0)
            << "db from x's panels, " << threads << " threads, R " << sh.R << " I " << sh.I;
        if (threads == 1) {
          first = dw;
          first_db = db;
          // db as colsum_accumulate sums it: each column from zero, row after row, in fp32, then
          // added to db0 (the conversion of dout reads it once for both).
          for (int o = 0; o < sh.O; ++o) {
            float sum = 0.0f;
            for (int r = 0; r < sh.R; ++r) sum += dout[size_t(r) * sh.O + o];
            const float want = db0[size_t(o)] + sum;
            EXPECT_EQ(std::memcmp(&db[size_t(o)], &want, 4), 0)
                << "db[" << o << "] is " << db[size_t(o)] << ", the sum in order " << want;
          }
        } else {
          EXPECT_EQ(std::memcmp(dw.data(), first.data(), dw.size() * 4), 0)
              << threads << " threads, R " << sh.R << " I " << sh.I << " O " << sh.O;
          EXPECT_EQ(std::memcmp(db.data(), first_db.data(), db.size() * 4), 0)
              << "db, " << threads << " threads, R " << sh.R << " I " << sh.I << " O " << sh.O;
          continue;
        }
        const double e = 2 * kUnitBf16 + kUnitBf16 * kUnitBf16, g = gamma_n(sh.R + 1);
        double worst = 0, worst_db = 0;
        for (int o = 0; o < sh.O; ++o) {
          double sb = 0, Sb = 0;
          for (int r = 0; r < sh.R; ++r) {
            sb += dout[size_t(r) * sh.O + o];
            Sb += std::fabs(dout[size_t(r) * sh.O + o]);
          }
          const double ref_b = db0[size_t(o)] + sb;
          const double rb =
              std::fabs(db[size_t(o)] - ref_b) / (g * (Sb + std::fabs(db0[size_t(o)])));
          if (!(rb <= worst_db)) worst_db = rb;
          for (int i = 0; i < sh.I; ++i) {
            double s = 0, S = 0;
            for (int r = 0; r < sh.R; ++r) {
              const double t = double(dout[size_t(r) * sh.O + o]) * x[size_t(r) * sh.I + i];
              s += t;
              S += std::fabs(t);
            }
            const size_t at = size_t(o) * sh.I + i;
            const double bound = e * S + g * ((1 + e) * S + std::fabs(dw0[at]));
            const double r = std::fabs(dw[at] - (dw0[at] + s)) / bound;
            if (!(r <= worst)) worst = r;
          }
        }
        EXPECT_LE(worst, 1.0) << "dw, R " << sh.R << " I " << sh.I << " O " << sh.O;
        EXPECT_LE(worst_db, 1.0) << "db, R " << sh.R << " I " << sh.I << " O " << sh.O;
        if (sh.R > 1) EXPECT_GT(worst, 1e-3) << "dw looks unrounded (not bf16?), R " << sh.R;
      }
    }
  });
  // fp32 gradients need x's fp32 rows: its panels alone are refused.
  std::vector<float> dw(6), dout(4);
  std::vector<uint16_t> panels(size_t(ops::bf16_panels_size(2, 3)));
  const ops::Context ctx = op_context(1);
  EXPECT_THROW(ops::weight_grad(ctx, dw.data(), nullptr, dout.data(),
                                ops::LayerInput(nullptr, panels.data()), 2, 3, 2),
               Error);
}

// Training in bf16 (Model::set_training_dtype): a batch's gradient against the same model's in
// fp32, and the same bits on 1 and 2 threads (micro-batches on lanes). The gap has no exact
// bound (the rounding errors pass through the whole network); it is checked to be bf16's size:
// every product's inputs carry relative errors up to u = 2^-8, so the gradient's relative error
// is a few u (measured: 0.0062 on both kernels), far above fp32's rounding (2^-24), with room for
// the errors of two blocks' worth of products to add up (16 u). Plain blocks, a convolutional
// stem, and the unfused blocks (LayerScale, drop-path) with qk_norm and patch dropout: bf16
// training's blocks share their inputs' fp32 rows (plan_forward), so a backward reading another
// block's would miss by far more.
TEST_F(Bf16, TrainingGradientsNearFp32AndTheSameOnAnyThreads) {
  Config c;
  c.image_size = 16;
  c.patch_size = 4;
  c.channels = 3;
  c.dim = 64;
  c.depth = 2;
  c.heads = 2;
  c.mlp_dim = 128;
  c.num_classes = 5;
  const int B = 12;
  const auto images = random_vector(int64_t(B) * 3 * 16 * 16, 91);
  std::vector<int32_t> labels(B);
  for (int b = 0; b < B; ++b) labels[size_t(b)] = b % 5;
  // Patch dropout: image b keeps the 10 of its 16 patches outside the window b .. b + 5 (mod
  // 16), in order; drop-path: some branches dropped, the others scaled.
  const int num_keep = 10;
  std::vector<int32_t> keep;
  for (int b = 0; b < B; ++b) {
    for (int q = 0; q < 16; ++q) {
      if ((q - b + 16) % 16 >= 6) keep.push_back(q);
    }
  }
  std::vector<float> drop(size_t(B) * c.depth * 2);
  for (size_t i = 0; i < drop.size(); ++i) drop[i] = i % 3 == 0 ? 0.0f : 1.5f;
  bool dropping = false;  // the variant below: keep and drop passed
  auto run = [&](Model& model) {
    // LayerScale's gamma at 1 rather than timm's 1e-5, so that the blocks' own weight gradients
    // weigh in the gap.
    for (const ParamInfo& p : model.params()) {
      if (p.name.find(".ls") != std::string::npos) {
        std::fill_n(model.param_data() + p.offset, p.numel, 1.0f);
      }
    }
    std::vector<float> probs(size_t(B) * 5), dlogits(size_t(B) * 5);
    batch_gradients(model, images.data(), labels.data(), B, 0.0f, dropping ? keep.data() : nullptr,
                    dropping ? num_keep : 0, probs.data(), dlogits.data(), /*micro_batch=*/3,
                    nullptr, 1.0f, nullptr, dropping ? drop.data() : nullptr);
  };
  auto gradients = [&](Dtype dtype, int threads) {
    set_num_threads(threads);
    Model model(c);
    model.init(5);
    model.enable_training(B);
    model.set_training_dtype(dtype);
    run(model);
    return std::vector<float>(model.grad_data(), model.grad_data() + model.arena_floats());
  };
  const int threads = num_threads();
  for (const int variant : {0, 1, 2}) {
    c.stem_channels = variant == 1 ? 16 : 0;  // a convolutional stem, whose products are bf16 too
    c.qk_norm = c.layer_scale = dropping = variant == 2;
    SCOPED_TRACE(variant == 0   ? "plain blocks"
                 : variant == 1 ? "a convolutional stem"
                                : "qk_norm, LayerScale, patch dropout and drop-path");
    on_each_bf16_kernel([&] {
      const auto f32 = gradients(Dtype::kF32, 2), bf16 = gradients(Dtype::kBf16, 2);
      const auto bf16_one = gradients(Dtype::kBf16, 1);
      EXPECT_EQ(std::memcmp(bf16.data(), bf16_one.data(), bf16.size() * 4), 0)
          << "bf16 training's gradient differs on 1 and 2 threads";
      // A model trained in bf16 and then in fp32 (a run resumed in fp32): its lanes, which kept
      // ln1, ln2 and g in bf16 alone, are planned again, and its fp32 gradient is fp32's.
      {
        set_num_threads(2);
        Model model(c);
        model.init(5);
        model.enable_training(B);
        for (const Dtype dtype : {Dtype::kBf16, Dtype::kF32}) {
          model.set_training_dtype(dtype);
          model.zero_grad();
          run(model);
        }
        EXPECT_EQ(std::memcmp(model.grad_data(), f32.data(), f32.size() * 4), 0)
            << "fp32 training after bf16 differs from fp32's alone";
      }
      double diff = 0, norm = 0;
      for (size_t i = 0; i < f32.size(); ++i) {
        diff += (double(bf16[i]) - f32[i]) * (double(bf16[i]) - f32[i]);
        norm += double(f32[i]) * f32[i];
      }
      const double rel = std::sqrt(diff / norm);
      EXPECT_LT(rel, 16 * kUnitBf16) << "relative L2 gap to fp32's gradient";
      EXPECT_GT(rel, kUnitBf16 / 64) << "the gradient looks like fp32's (bf16 not used?)";
    });
  }
  set_num_threads(threads);
}

// A product whose weight was not converted, or whose shape is not the converted one, stays fp32:
// the same bits as without the packed weights.
TEST_F(Bf16, OtherProductsStayFp32) {
  const int M = 50, N = 40, K = 64;
  auto A = random_vector(int64_t(M) * K, 51), w = random_vector(int64_t(N) * K, 52);
  auto v = random_vector(int64_t(N) * K, 53);
  ops::PackedWeights packs;
  packs.add_bf16(w.data(), N / 2, 2 * K);  // another shape at w's address
  packs.add_bf16(v.data(), N, K);
  ops::Context packed = op_context();
  packed.packed = &packs;
  std::vector<float> C1(size_t(M) * N), C2(size_t(M) * N);
  ops::gemm(packed, false, true, M, N, K, 1.0f, A.data(), K, w.data(), K, 0.0f, C1.data(), N);
  ops::gemm(op_context(), false, true, M, N, K, 1.0f, A.data(), K, w.data(), K, 0.0f, C2.data(), N);
  EXPECT_EQ(std::memcmp(C1.data(), C2.data(), C1.size() * 4), 0);
}

// The fused linear ops (GELU; residual + LayerNorm) on bf16 weights equal the linear layer on the
// same bf16 weights followed by the separate ops.
// On 2 threads: one image's rows by a wider weight (the threads split the columns: the epilogue
// after a barrier) and more rows than columns, the last tile of rows partial (they split the rows:
// each block's epilogue as soon as its columns are done); on 1 thread, row blocks (a small weight).
void check_fused_epilogues(int R, int I, int O, int threads) {
  SCOPED_TRACE("R " + std::to_string(R) + " I " + std::to_string(I) + " O " + std::to_string(O) +
               ", " + std::to_string(threads) + " threads");
  auto x = random_vector(int64_t(R) * I, 61), w = random_vector(int64_t(O) * I, 62, 0.2);
  auto b = random_vector(O, 63, 0.5), res = random_vector(int64_t(R) * O, 64, 2.0);
  auto lw = random_vector(O, 65, 0.3, 1.0), lb = random_vector(O, 66, 0.3);
  ops::PackedWeights packs;
  packs.add_bf16(w.data(), O, I);
  ops::Context ctx = op_context(threads);
  ctx.packed = &packs;

  std::vector<float> h(size_t(R) * O), g(size_t(R) * O), slope(size_t(R) * O);
  ops::linear_forward(ctx, h.data(), x.data(), w.data(), b.data(), R, I, O);
  std::vector<float> g2(size_t(R) * O), slope2(size_t(R) * O);
  ops::gelu_forward(op_context(), g2.data(), slope2.data(), h.data(), int64_t(R) * O);
  ops::linear_gelu_forward(ctx, g.data(), slope.data(), x.data(), w.data(), b.data(), R, I, O);
  // The same GELU of the same h: test_gemm.cpp's tolerance between the fused and separate GELU.
  expect_close("g", g.data(), g2, 1e-7, 1e-6);
  expect_close("slope", slope.data(), slope2, 1e-7, 1e-6);

  // out = (x w^T + b) + res in both (the same additions in the same order); then LayerNorm.
  std::vector<float> out2(size_t(R) * O), ln2(size_t(R) * O), mean2(R), rstd2(R);
  for (size_t i = 0; i < out2.size(); ++i) out2[i] = h[i] + res[i];
  ops::layernorm_forward(op_context(), ln2.data(), mean2.data(), rstd2.data(), out2.data(),
                         lw.data(), lb.data(), R, O, 1e-6f);
  std::vector<float> out(size_t(R) * O), ln(size_t(R) * O), mean(R), rstd(R);
  ops::linear_residual_norm_forward(ctx, out.data(), ln.data(), mean.data(), rstd.data(), x.data(),
                                    w.data(), b.data(), res.data(), lw.data(), lb.data(), R, I, O,
                                    1e-6f);
  EXPECT_EQ(std::memcmp(out.data(), out2.data(), out.size() * 4), 0) << "out";
  // Two LayerNorms of the same rows, each within 2 gamma(O + 4) (1 + |xhat|) |w| + gamma(2) |ln|
  // of the exact value (test_gemm.cpp's bound with no input difference).
  std::vector<double> bound(size_t(R) * O);
  for (int r = 0; r < R; ++r) {
    for (int o = 0; o < O; ++o) {
      const size_t i = size_t(r) * O + o;
      const double xhat = std::fabs((out2[i] - mean2[r]) * rstd2[r]);
      bound[i] =
          2 * (2 * gamma_n(O + 4) * (1 + xhat) * std::fabs(lw[o]) + gamma_n(2) * std::fabs(ln2[i]));
    }
  }
  expect_within("ln", ln.data(), ln2.data(), bound);
}

TEST_F(Bf16, FusedEpiloguesMatchComposition) {
  on_each_bf16_kernel([] {
    check_fused_epilogues(197, 192, 300, 2);
    check_fused_epilogues(333, 64, 96, 2);
    check_fused_epilogues(333, 64, 96, 1);
  });
}

// Attention's inference products in bf16 (ctx.bf16, head widths 32 and 64) against double
// precision on the fp32 inputs, per (b, h) and query row i. With e = 2u + u^2 (one term of two
// values each rounded to bf16, then exact in fp32) and S_j = sum_d |q_d k_jd|:
// - each score's sum, in fp32, is within (e + gamma(Dh + 1) (1 + e)) S_j of q . k_j; it is then
//   scaled by the fp32 1/sqrt(Dh) (itself one rounding of sc) with one more rounding, so the score
//   is within E_j = (|s_j| + sc (e + gamma(Dh + 1) (1 + e)) S_j) (1 + u32)^2 - |s_j| of
//   s_j = sc q . k_j (u32 = 2^-24);
// - a softmax of scores each off by at most E = max_j E_j gives every probability within a factor
//   exp(+-2E) of the exact one; fp32's own softmax (exp within 2 ulp, the sum of N terms, the
//   division and the scaling) adds a relative rho_s = 4 * 2^-23 + gamma(N + 2); so
//   |p~_j - p_j| <= rho p_j with rho = exp(2E) (1 + rho_s) - 1;
// - each output term p_j v_jd again of two bf16 roundings, then the fp32 sum of N terms: with
//   W = sum_j p_j |v_jd|, |o~ - o| <= ((1 + rho) (1 + e) (1 + gamma(N + 1)) - 1) W.
void check_attention_bf16(int B, int N, int D, int H, int threads) {
  const int Dh = D / H;
  const int64_t row = 3 * int64_t(D);
  auto qkv = random_vector(int64_t(B) * N * row, 81 + N);
  ops::Context ctx = op_context(threads);
  ctx.bf16 = true;
  std::vector<float> out(size_t(B) * N * D, NAN);
  ops::attention_forward(ctx, out.data(), nullptr, qkv.data(), B, N, D, H);
  const double u32 = std::ldexp(1.0, -24), e = 2 * kUnitBf16 + kUnitBf16 * kUnitBf16;
  const double sc = 1.0 / std::sqrt(double(Dh));
  const double rho_s = 4 * std::ldexp(1.0, -23) + gamma_n(N + 2);
  double worst = 0, at_got = 0, at_ref = 0, at_bound = 0;
  std::string at;
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      auto q = [&](int i, int d) { return double(qkv[(int64_t(b) * N + i) * row + h * Dh + d]); };
      auto k = [&](int j, int d) { return q(j, D + d); };
      auto v = [&](int j, int d) { return q(j, 2 * D + d); };
      for (int i = 0; i < N; ++i) {
        std::vector<double> s(size_t(N), 0.0);
        double E = 0, mx = -INFINITY;
        for (int j = 0; j < N; ++j) {
          double S = 0;
          for (int d = 0; d < Dh; ++d) {
            s[size_t(j)] += q(i, d) * k(j, d);
            S += std::fabs(q(i, d) * k(j, d));
          }
          s[size_t(j)] *= sc;
          const double a = std::fabs(s[size_t(j)]);
          E = std::max(E,
                       (a + sc * (e + gamma_n(Dh + 1) * (1 + e)) * S) * (1 + u32) * (1 + u32) - a);
          mx = std::max(mx, s[size_t(j)]);
        }
        double sum = 0;
        for (double& x : s) sum += (x = std::exp(x - mx));
        const double rho = std::exp(2 * E) * (1 + rho_s) - 1;
        for (int d = 0; d < Dh; ++d) {
          double o = 0, W = 0;
          for (int j = 0; j < N; ++j) {
            o += s[size_t(j)] / sum * v(j, d);
            W += s[size_t(j)] / sum * std::fabs(v(j, d));
          }
          const double bound = ((1 + rho) * (1 + e) * (1 + gamma_n(N + 1)) - 1) * W;
          const double got = out[(int64_t(b) * N + i) * D + h * Dh + d];
          const double r = std::fabs(got - o) / bound;
          if (!(r <= worst)) {  // NaN too
            worst = r, at_got = got, at_ref = o, at_bound = bound;
            at = "b " + std::to_string(b) + " h " + std::to_string(h) + " row " +
                 std::to_string(i) + " column " + std::to_string(d);
          }
        }
      }
    }
  }
  const std::string shape = "N " + std::to_string(N) + ", Dh " + std::to_string(Dh) + ", " +
                            std::to_string(threads) + " threads";
  EXPECT_LE(worst, 1.0) << shape << ": at " << at << " " << at_got << ", expected " << at_ref
                        << " within " << at_bound;
  EXPECT_GT(worst, 1e-3) << shape << ": the products look unrounded (not bf16?)";
}

TEST_F(Bf16, AttentionWithinTheDerivedBound) {
  // ViT-B's heads at one image's 197 tokens (an odd count: a last pair with a zero token; 197 is
  // not a multiple of 16 or 64), ViT-S-like Dh 32 with several images, short sequences.
  check_attention_bf16(1, 197, 128, 2, 2);
  check_attention_bf16(2, 50, 128, 4, 1);
  check_attention_bf16(2, 50, 128, 4, 3);
  check_attention_bf16(3, 17, 64, 1, 2);
  check_attention_bf16(1, 1, 64, 2, 1);
}

// Every row is computed the same way whatever the threads and the images around it; at head
// widths without a bf16 kernel (16 here), ctx.bf16 leaves attention fp32's, bit for bit; and the
// training path (which keeps the probabilities) is fp32 too.
TEST_F(Bf16, AttentionBitwiseAcrossThreadsAndBatch) {
  const int B = 3, N = 197, D = 128, H = 2;
  auto qkv = random_vector(int64_t(B) * N * 3 * D, 91);
  auto run = [&](const float* x, int images, int threads, bool bf16, float* att = nullptr) {
    ops::Context ctx = op_context(threads);
    ctx.bf16 = bf16;
    std::vector<float> out(size_t(images) * N * D);
    ops::attention_forward(ctx, out.data(), att, x, images, N, D, H);
    return out;
  };
  const auto all = run(qkv.data(), B, 1, true);
  for (int threads : {2, 3}) {
    const auto other = run(qkv.data(), B, threads, true);
    EXPECT_EQ(std::memcmp(other.data(), all.data(), all.size() * 4), 0) << threads << " threads";
  }
  const auto last = run(qkv.data() + int64_t(B - 1) * N * 3 * D, 1, 2, true);
  EXPECT_EQ(std::memcmp(last.data(), all.data() + int64_t(B - 1) * N * D, last.size() * 4), 0)
      << "the last image alone";
  EXPECT_NE(std::memcmp(run(qkv.data(), B, 2, false).data(), all.data(), all.size() * 4), 0)
      << "fp32 and bf16 gave the same bits";
  std::vector<float> att(size_t(B) * H * N * N);
  const auto trained = run(qkv.data(), B, 2, true, att.data());
  const auto trained32 = run(qkv.data(), B, 2, false, att.data());
  EXPECT_EQ(std::memcmp(trained.data(), trained32.data(), trained.size() * 4), 0)
      << "the training path";
  const int H16 = D / 16;
  auto narrow = [&](bool bf16) {
    ops::Context ctx = op_context(2);
    ctx.bf16 = bf16;
    std::vector<float> out(size_t(B) * N * D);
    ops::attention_forward(ctx, out.data(), nullptr, qkv.data(), B, N, D, H16);
    return out;
  };
  EXPECT_EQ(std::memcmp(narrow(true).data(), narrow(false).data(), all.size() * 4), 0)
      << "Dh 16 with bf16 set";
}

// `make demo`'s model (the committed F16 copy) on the 200 drawn digits (test_predict.cpp), prepared
// as vit predict prepares them: in bf16 the same top-1 class as fp32 on at least 99.5% of them
// (the acceptance line), still reading >= 95% of them right (as test_predict.cpp asks of
// fp32); an image's bf16 logits the same bits alone or in the batch, on 1 or 2 threads; and the
// model's fp32 path untouched by the bf16 copy (kF32 again gives fp32's bits).
TEST_F(Bf16, DemoModelAgreesWithFp32OnDrawnDigits) {
  namespace fs = std::filesystem;
  LoadedModel m = load_model(fixture("demo_tiny28.f16.safetensors"));
  const Config& c = m.meta.config;
  const int K = c.num_classes;
  const int64_t pixels = int64_t(c.channels) * c.image_size * c.image_size;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fixture("drawings"))) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 100u);
  const int B = int(files.size());
  std::vector<float> input(size_t(B) * pixels);
  std::vector<int> truth(B);
  for (int i = 0; i < B; ++i) {
    const PreparedImage p =
        prepare_image(decode_image(files[size_t(i)]), c.channels, c.image_size, *m.meta.input, {});
    normalize_image(p.pixels.data(), c.channels, c.image_size, m.meta.normalize,
                    input.data() + i * pixels);
    truth[size_t(i)] = files[size_t(i)].filename().string()[0] - '0';
  }
  std::vector<float> ref(size_t(B) * K), low(size_t(B) * K), one(static_cast<size_t>(K)),
      again(size_t(B) * K);
  m.model.predict(input.data(), B, ref.data());
  m.model.set_inference_dtype(Dtype::kBf16);
  EXPECT_EQ(m.model.inference_dtype(), Dtype::kBf16);
  m.model.predict(input.data(), B, low.data());
  int agree = 0, correct = 0;
  double worst = 0;
  for (int i = 0; i < B; ++i) {
    const int p = argmax(ref.data() + i * K, K), q = argmax(low.data() + i * K, K);
    agree += p == q;
    correct += q == truth[size_t(i)];
    for (int k = 0; k < K; ++k)
      worst = std::max(worst, double(std::fabs(low[i * K + k] - ref[i * K + k])));
  }
  std::printf(
      "demo model on %d drawings: bf16 agrees with fp32 on %d, reads %d right; largest "
      "logit difference %.4g\n",
      B, agree, correct, worst);
  EXPECT_GE(agree, 0.995 * B);
  EXPECT_GE(correct, 0.95 * B);
  EXPECT_GT(worst, 0.0) << "bf16 gave fp32's logits exactly: were the products in bf16?";
  const int threads_before = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int i : {0, 77, B - 1}) {
      m.model.predict(input.data() + i * pixels, 1, one.data());
      EXPECT_EQ(std::memcmp(one.data(), low.data() + i * K, size_t(K) * 4), 0)
          << "image " << i << " alone on " << threads << " threads";
    }
  }
  set_num_threads(threads_before);
  m.model.set_inference_dtype(Dtype::kF32);
  m.model.predict(input.data(), B, again.data());
  EXPECT_EQ(std::memcmp(again.data(), ref.data(), again.size() * 4), 0) << "fp32 after bf16";
}

// compare_dtypes a chunk of images at a time (the weights converted once each way a chunk): the
// same counts and differences, to the bit, in chunks of 16 images as in one chunk, and as the
// images' logits computed here in both precisions; the model's own dtype restored after.
TEST_F(Bf16, CompareDtypesGivesTheSameInChunks) {
  TempDir dir("bf16-compare");
  write_quadrant_dataset(dir / "data", 20, 50, 28);
  LoadedModel m = load_model(fixture("demo_tiny28.f16.safetensors"));
  const int K = m.meta.config.num_classes;
  const DatasetSplits d = load_dataset("idx:" + (dir / "data"), K);
  const int n = int(d.test->size());
  const DtypeComparison one = compare_dtypes(m.model, *d.test, m.meta.normalize, Dtype::kBf16, 8);
  EXPECT_EQ(m.model.inference_dtype(), Dtype::kF32);
  const DtypeComparison chunked =
      compare_dtypes(m.model, *d.test, m.meta.normalize, Dtype::kBf16, 8, 16 * K);
  // Here, image by image.
  std::vector<float> images(size_t(n) * d.test->shape().pixels()), ref(size_t(n) * K),
      low(size_t(n) * K);
  std::vector<int32_t> labels(static_cast<size_t>(n));
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) idx[size_t(i)] = i;
  make_batch(*d.test, idx.data(), n, m.meta.normalize, AugmentOptions{}, 0, 0, images.data(),
             labels.data());
  m.model.predict(images.data(), n, ref.data());
  m.model.set_inference_dtype(Dtype::kBf16);
  m.model.predict(images.data(), n, low.data());
  m.model.set_inference_dtype(Dtype::kF32);
  DtypeComparison here;
  here.count = n;
  int64_t right = 0, right_low = 0;
  for (int i = 0; i < n; ++i) {
    const float *z = ref.data() + int64_t(i) * K, *y = low.data() + int64_t(i) * K;
    here.differ += argmax(z, K) != argmax(y, K);
    right += argmax(z, K) == labels[size_t(i)];
    right_low += argmax(y, K) == labels[size_t(i)];
    for (int k = 0; k < K; ++k) {
      here.max_logit_diff = std::max(here.max_logit_diff, std::fabs(double(y[k]) - z[k]));
    }
  }
  EXPECT_GT(here.max_logit_diff, 0.0) << "bf16 gave fp32's logits exactly";
  for (const DtypeComparison* r : {&one, &chunked}) {
    EXPECT_EQ(r->count, n);
    EXPECT_EQ(r->differ, here.differ);
    EXPECT_EQ(r->max_logit_diff, here.max_logit_diff);
    EXPECT_EQ(r->accuracy_fp32, double(right) / n);
    EXPECT_EQ(r->accuracy, double(right_low) / n);
  }
  EXPECT_EQ(chunked.max_relative_diff, one.max_relative_diff);
  EXPECT_THROW(compare_dtypes(m.model, *d.test, m.meta.normalize, Dtype::kBf16, 8, 0), Error);
}

// How many of the whole pages within [p, p + bytes) are in memory (mincore).
int64_t resident_pages(const float* p, size_t bytes) {
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (end <= begin) return 0;
  std::vector<unsigned char> in((end - begin) / page);
  EXPECT_EQ(mincore(reinterpret_cast<void*>(begin), end - begin, in.data()), 0);
  int64_t n = 0;
  for (unsigned char v : in) n += v & 1;
  return n;
}

// A model loaded for bf16 alone (vit predict --dtype bf16): the same logits as converting after
// an fp32 load, its linear weights' fp32 pages handed back, and everything that would read them
// refused with a message.
TEST_F(Bf16, LoadedForBf16AloneKeepsNoFp32Weights) {
  const std::string path = fixture("demo_tiny28.f16.safetensors");
  LoadedModel kept = load_model(path);
  kept.model.set_inference_dtype(Dtype::kBf16);
  LoadedModel alone = load_model(path, Dtype::kBf16);
  EXPECT_FALSE(kept.model.fp32_released());
  EXPECT_TRUE(alone.model.fp32_released());
  EXPECT_EQ(alone.model.inference_dtype(), Dtype::kBf16);
  const Config& c = kept.meta.config;
  const int B = 5, K = c.num_classes;
  const std::vector<float> images =
      random_vector(size_t(B) * c.channels * c.image_size * c.image_size, 11, 1.0);
  std::vector<float> a(size_t(B) * K), b(size_t(B) * K);
  kept.model.predict(images.data(), B, a.data());
  alone.model.predict(images.data(), B, b.data());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
  alone.model.set_inference_dtype(Dtype::kBf16);  // it has it: nothing changes
  alone.model.predict(images.data(), B, b.data());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
  for (auto* call : std::initializer_list<void (*)(Model&)>{
           [](Model& m) { m.param_data(); },
           [](Model& m) { m.param("blocks.0.mlp.fc1.weight"); },
           [](Model& m) { m.set_inference_dtype(Dtype::kF32); },
       }) {
    try {
      call(alone.model);
      ADD_FAILURE() << "a model without fp32 weights let them be read";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("load it again"), std::string::npos) << e.what();
    }
  }
  AttentionProbs probs(c);
  EXPECT_THROW(alone.model.forward_attention(images.data(), a.data(), probs), Error);

  // init() writes every parameter again: a random model for bf16 alone (vit bench) predicts what
  // the same model converted after an fp32 init does, and an fp32 init makes it whole again.
  Model random_kept(c), random_alone(c);
  random_kept.init(5);
  random_kept.set_inference_dtype(Dtype::kBf16);
  random_alone.init(5, Model::InitOptions{}, Dtype::kBf16);
  EXPECT_TRUE(random_alone.fp32_released());
  random_kept.predict(images.data(), B, a.data());
  random_alone.predict(images.data(), B, b.data());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
  random_alone.init(5);
  EXPECT_FALSE(random_alone.fp32_released());
  EXPECT_NO_THROW(random_alone.param_data());

  // The pages: a weight read and kept stays in memory; read for bf16 alone, it is handed back.
  Model model(c);
  float* base = model.param_data();
  const ParamInfo& fc1 = model.param_info("blocks.0.mlp.fc1.weight");  // [256, 64]: 16 pages
  const size_t bytes = size_t(fc1.numel) * sizeof(float);
  const auto fill = [](const ParamInfo& p, float* w) { std::fill_n(w, p.numel, 0.01f); };
  model.load(fill);
  const int64_t pages = resident_pages(base + fc1.offset, bytes);
  EXPECT_GE(pages, int64_t(bytes / 4096) - 1);
  model.load(fill, Dtype::kBf16);
  EXPECT_EQ(resident_pages(base + fc1.offset, bytes), 0) << "of " << pages << " pages";

  // A file cut short (read throws part way): the half-loaded model refuses to predict.
  Model cut(c);
  EXPECT_THROW(cut.load(
                   [](const ParamInfo& p, float* w) {
                     if (p.name == "blocks.1.attn.qkv.weight") throw Error("truncated");
                     std::fill_n(w, p.numel, 0.01f);
                   },
                   Dtype::kBf16),
               Error);
  EXPECT_THROW(cut.predict(images.data(), 1, b.data()), Error);
}

// Where the CPU lacks AVX512-BF16, or VIT_ISA chose other kernels, bf16 is refused with a message
// that says what to do.
TEST(Bf16Refusal, SaysWhyAndWhatToDo) {
  Model model(find_preset("seed").config);
  const Isa saved = active_isa();
  if (cpu_has_bf16()) {
    set_isa(Isa::kAvx2);
    try {
      model.set_inference_dtype(Dtype::kBf16);
      ADD_FAILURE() << "bf16 accepted on the avx2 kernels";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("VIT_ISA"), std::string::npos) << e.what();
    }
    set_isa(saved);
  } else {
    try {
      model.set_inference_dtype(Dtype::kBf16);
      ADD_FAILURE() << "bf16 accepted on a CPU without AVX512-BF16";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("use fp32"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(model.inference_dtype(), Dtype::kF32);
  EXPECT_THROW(parse_dtype("fp16"), Error);
  // Training likewise, saying it is training.
  if (cpu_has_bf16()) set_isa(Isa::kAvx2);
  try {
    model.set_training_dtype(Dtype::kBf16);
    ADD_FAILURE() << "bf16 training accepted where bf16 cannot run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bf16 training"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(cpu_has_bf16() ? "VIT_ISA" : "use fp32"),
              std::string::npos)
        << e.what();
  }
  set_isa(saved);
  EXPECT_EQ(model.training_dtype(), Dtype::kF32);
}

}  // namespace
}  // namespace vit::test
