// The GEMM dispatch (our AVX-512 and AVX2 kernels for every product the ops ask for; OpenBLAS on
// the scalar path and for a beta other than 0 and 1), its bias and epilogues, and the fused linear
// + GELU ops, against plain double-precision loops.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/ops.hpp"
#include "test_util.hpp"

namespace vit::test {
namespace {

// Runs f directly, or (nested) from inside a parallel region, as attention calls the GEMM: there
// it runs serially in each caller.
template <typename F>
void run_maybe_nested(bool nested, F&& f) {
  if (!nested) return f();
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    f();
  }
}

// C = alpha op(A) op(B) + beta C0 + bias, in double; also returns per element the sum of the
// magnitudes of its terms, |alpha| sum_k |a_ik b_kj| + |beta c0_ij| + |bias_j|.
void reference(bool tb, int M, int N, int K, float alpha, const std::vector<float>& A,
               const std::vector<float>& B, float beta, const std::vector<float>& C0,
               const float* bias, std::vector<double>* C, std::vector<double>* mag) {
  C->assign(size_t(M) * N, 0);
  mag->assign(size_t(M) * N, 0);
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      double s = 0, m = 0;
      for (int k = 0; k < K; ++k) {
        const double b = tb ? B[size_t(j) * K + k] : B[size_t(k) * N + j];
        s += double(A[size_t(i) * K + k]) * b;
        m += std::fabs(double(A[size_t(i) * K + k]) * b);
      }
      const double c0 = beta * C0[size_t(i) * N + j], bj = bias ? bias[j] : 0.0;
      (*C)[size_t(i) * N + j] = alpha * s + c0 + bj;
      (*mag)[size_t(i) * N + j] = std::fabs(alpha) * m + std::fabs(c0) + std::fabs(bj);
    }
  }
}

// Any float32 evaluation of alpha (sum of K products) + bias + beta C0 - in any order, with or
// without FMA - is within gamma(K + 3) of the magnitude sum (K - 1 additions and K products, or K
// fused steps, then the alpha scaling and two more additions; Higham, Accuracy and Stability of
// Numerical Algorithms, 3.1). The kernels differ in order, never in this count.
void check_gemm(bool tb, int M, int N, int K, float alpha, float beta, bool with_bias,
                bool nested) {
  auto A = random_vector(int64_t(M) * K, 1), B = random_vector(int64_t(K) * N, 2);
  auto C0 = random_vector(int64_t(M) * N, 3), bias = random_vector(N, 4);
  std::vector<double> ref, mag;
  reference(tb, M, N, K, alpha, A, B, beta, C0, with_bias ? bias.data() : nullptr, &ref, &mag);
  std::vector<float> C = C0;
  run_maybe_nested(nested, [&] {
    ops::gemm(op_context(), false, tb, M, N, K, alpha, A.data(), K, B.data(), tb ? K : N, beta,
              C.data(), N, with_bias ? bias.data() : nullptr);
  });
  const double g = gamma_n(K + 3);
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < C.size(); ++i) {
    const double r = std::fabs(C[i] - ref[i]) / (g * mag[i]);
    if (!(r <= worst)) worst = r, at = i;  // NaN too
  }
  EXPECT_LE(worst, 1.0) << "M " << M << " N " << N << " K " << K << " trans_b " << tb << " alpha "
                        << alpha << " beta " << beta << " bias " << with_bias << " nested "
                        << nested << ": element " << at << " is " << C[at] << ", expected "
                        << ref[at] << " within " << g * mag[at];
}

class Gemm : public BackendTest {};
VIT_BACKEND_SUITE(Gemm);

TEST_P(Gemm, OwnKernelShapesAndEdges) {
  // Every product with beta 0 or 1 is ours. Odd sizes exercise partial register tiles and masks;
  // N = 1100 spans two column blocks, and so does N = 400 at K = 1000 (blocks of 256K floats: 256
  // columns there). K past 256 is summed in chunks (with beta 1 through a partial buffer); a short
  // A (M < 256) wide enough is split by columns.
  for (bool tb : {false, true}) {
    check_gemm(tb, 300, 70, 33, 1.0f, 0.0f, false, false);
    check_gemm(tb, 263, 17, 256, 0.5f, 1.0f, true, false);
    check_gemm(tb, 257, 1100, 64, 1.0f, 0.0f, true, false);
    check_gemm(tb, 512, 32, 1, 2.0f, 1.0f, false, false);
    check_gemm(tb, 300, 45, 20, 1.0f, 1.0f, true, true);
    check_gemm(tb, 197, 192, 768, 1.0f, 1.0f, true, false);  // one image's tokens, ViT-Ti's fc2
    check_gemm(tb, 33, 400, 1000, 1.0f, 0.0f, true, false);
    check_gemm(tb, 50, 50, 16, 0.25f, 1.0f, true, true);
    check_gemm(tb, 300, 40, 300, 1.0f, 0.0f, true, false);    // chunks of 160 (K > 256, M >= 256)
    check_gemm(tb, 300, 70, 777, 0.5f, 1.0f, true, false);    // three chunks, partial buffer
    check_gemm(tb, 260, 1100, 520, 1.0f, 1.0f, false, true);  // chunks, two column blocks, nested
    check_gemm(tb, 100, 40, 1100, 1.0f, 1.0f, true, false);   // chunks with a short A
    check_gemm(tb, 197, 300, 1100, 1.0f, 0.0f, true, false);  // chunks, split by columns
    // Rows of A 4 KB apart (K 1024, 2048) fall on one set of L1: copied a chunk at a time to a
    // padded stride, split by columns (a thread's share of B over 512 KB at 2048) and by rows.
    check_gemm(tb, 197, 300, 2048, 1.0f, 1.0f, true, false);
    check_gemm(tb, 197, 100, 1024, 1.0f, 0.0f, false, false);
    check_gemm(tb, 301, 70, 1024, 0.5f, 1.0f, true, false);
    // Partial sums over 512 KB a thread (2,800 x 100 floats), each tile's fetched ahead.
    check_gemm(tb, 2800, 100, 520, 1.0f, 1.0f, true, false);
  }
}

// A short A (the head's few rows) is ours too; a beta other than 0 and 1, which no op asks for,
// goes to OpenBLAS (as everything does on the scalar path).
TEST_P(Gemm, ShortAAndOpenBlasPath) {
  for (bool tb : {false, true}) {
    check_gemm(tb, 1, 1000, 768, 1.0f, 0.0f, true, false);  // one image's class token -> logits
    check_gemm(tb, 20, 50, 16, 0.25f, 1.0f, true, false);
    check_gemm(tb, 20, 50, 16, 1.0f, 0.0f, true, true);
    check_gemm(tb, 64, 50, 300, 1.0f, 0.5f, true, false);  // OpenBLAS
  }
}

// A row of C is the same bits whatever the other rows are: one image's tokens alone or in a batch
// (predict's pieces of different sizes), split by columns (a short A) or by rows. Ours only: the
// scalar path's OpenBLAS blocks by the row count.
TEST_P(Gemm, OwnKernelRowsDoNotDependOnTheBatch) {
  if (GetParam() == Isa::kScalar) GTEST_SKIP() << "OpenBLAS's products, blocked by M";
  for (const int K : {64, 768}) {
    // At K 768 a short A on two or more threads goes panel by panel (a thread's share of B is
    // over 512 KB), a tall one row tile by row tile: the same bits either way.
    const int M = 600, N = 400;
    auto A = random_vector(int64_t(M) * K, 41), B = random_vector(int64_t(K) * N, 42);
    auto bias = random_vector(N, 43);
    auto run = [&](int rows) {
      std::vector<float> C(size_t(rows) * N);
      ops::gemm(op_context(), false, true, rows, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f,
                C.data(), N, bias.data());
      return C;
    };
    const auto all = run(M);
    for (const int rows : {1, 13, 197, 300}) {
      const auto part = run(rows);
      EXPECT_EQ(std::memcmp(part.data(), all.data(), part.size() * 4), 0)
          << "K " << K << ": the first " << rows << " rows alone differ from them among " << M;
    }
  }
}

// Each element of C is summed by one thread in an order that depends on the shape alone: the same
// bits on 1, 2 and 3 threads and from inside a parallel region, on each way the work is split
// (rows, columns) and K is summed (whole, in chunks into C, in chunks through the partial buffer).
TEST_P(Gemm, OwnKernelBitwiseAcrossThreads) {
  struct Case {
    int M, N, K;
    float beta;
  };
  for (const Case cs :
       {Case{300, 70, 777, 1.0f}, Case{300, 70, 777, 0.0f}, Case{197, 768, 700, 1.0f},
        Case{197, 300, 1100, 0.0f}, Case{197, 300, 2048, 1.0f}, Case{300, 70, 1024, 0.0f}}) {
    auto A = random_vector(int64_t(cs.M) * cs.K, 31), B = random_vector(int64_t(cs.K) * cs.N, 32);
    auto C0 = random_vector(int64_t(cs.M) * cs.N, 33), bias = random_vector(cs.N, 34);
    auto run = [&](int threads, bool nested) {
      std::vector<float> C = C0;
      run_maybe_nested(nested, [&] {
        ops::gemm(op_context(nested ? 1 : threads), false, true, cs.M, cs.N, cs.K, 1.0f, A.data(),
                  cs.K, B.data(), cs.K, cs.beta, C.data(), cs.N, bias.data());
      });
      return C;
    };
    const auto one = run(1, false);
    for (auto [threads, nested] : {std::pair{2, false}, std::pair{3, false}, std::pair{2, true}}) {
      const auto other = run(threads, nested);
      EXPECT_EQ(std::memcmp(one.data(), other.data(), one.size() * 4), 0)
          << "M " << cs.M << " N " << cs.N << " K " << cs.K << " beta " << cs.beta << ", "
          << threads << " threads" << (nested ? ", nested" : "");
    }
  }
}

// C = op(A)^T B + beta C0 with A [K, M] (the weight-gradient shape), against double precision,
// within gamma(K + 1) of each element's magnitude sum (as check_gemm's bound).
void check_gemm_tn(int M, int N, int K, float beta, bool nested) {
  auto A = random_vector(int64_t(K) * M, 11), B = random_vector(int64_t(K) * N, 12);
  auto C0 = random_vector(int64_t(M) * N, 13);
  std::vector<float> C = C0;
  run_maybe_nested(nested, [&] {
    ops::gemm(op_context(), true, false, M, N, K, 1.0f, A.data(), M, B.data(), N, beta, C.data(),
              N);
  });
  const double g = gamma_n(K + 1);
  double worst = 0;
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      const double c0 = beta * C0[size_t(i) * N + j];
      double s = 0, m = std::fabs(c0);
      for (int k = 0; k < K; ++k) {
        const double p = double(A[size_t(k) * M + i]) * B[size_t(k) * N + j];
        s += p;
        m += std::fabs(p);
      }
      const double r = std::fabs(C[size_t(i) * N + j] - (s + c0)) / (g * m);
      if (!(r <= worst)) worst = r;  // NaN too
    }
  }
  EXPECT_LE(worst, 1.0) << "M " << M << " N " << N << " K " << K << " beta " << beta << " nested "
                        << nested << ": worst error / bound";
}

TEST_P(Gemm, WeightGradientShapes) {
  // Our kernel for every shape: partial row tiles (M % 12, M % 6), partial and two-register column
  // tiles (N % 32), a last K chunk shorter than the others, K split in two halves or one (K < 256),
  // M x N past what the chunks' rows keep in L2.
  check_gemm_tn(64, 64, 6400, 1.0f, false);
  check_gemm_tn(13, 45, 700, 1.0f, false);
  check_gemm_tn(70, 17, 513, 0.0f, false);
  check_gemm_tn(9, 100, 300, 1.0f, true);
  check_gemm_tn(300, 260, 300, 1.0f, false);
  check_gemm_tn(40, 40, 100, 0.0f, false);
  check_gemm_tn(770, 300, 1000, 1.0f, false);
  check_gemm_tn(5, 7, 3, 0.0f, true);
}

// weight_grad: dw += dout^T x and db += colsum(dout) in one pass on our kernel, K in two halves
// (R 700) or one (R 100); odd widths give partial tiles.
TEST_P(Gemm, WeightGradWithBiasSums) {
  for (int R : {700, 100}) {
    for (auto [I, O] : {std::pair{64, 192}, std::pair{45, 13}}) {
      auto dout = random_vector(int64_t(R) * O, 17), x = random_vector(int64_t(R) * I, 18);
      auto dw = random_vector(int64_t(O) * I, 19), db = random_vector(O, 20);
      std::vector<double> dw_ref(dw.begin(), dw.end()), db_ref(db.begin(), db.end());
      for (int r = 0; r < R; ++r) {
        for (int o = 0; o < O; ++o) {
          const double g = dout[size_t(r) * O + o];
          db_ref[o] += g;
          for (int i = 0; i < I; ++i) dw_ref[size_t(o) * I + i] += g * x[size_t(r) * I + i];
        }
      }
      ops::weight_grad(op_context(), dw.data(), db.data(), dout.data(), x.data(), R, I, O);
      double worst_w = 0, worst_b = 0;
      for (size_t i = 0; i < dw.size(); ++i)
        worst_w = std::max(worst_w, std::fabs(dw[i] - dw_ref[i]));
      for (size_t i = 0; i < db.size(); ++i)
        worst_b = std::max(worst_b, std::fabs(db[i] - db_ref[i]));
      // Sums of R products of magnitude <= 1: a few ulps of R.
      EXPECT_LE(worst_w, 2e-4) << "R " << R << " I " << I << " O " << O;
      EXPECT_LE(worst_b, 2e-4) << "R " << R << " I " << I << " O " << O;
      std::vector<float> db_only = random_vector(O, 20);
      ops::weight_grad(op_context(), nullptr, db_only.data(), dout.data(), x.data(), R, I, O);
      double worst_only = 0;
      for (size_t i = 0; i < db.size(); ++i)
        worst_only = std::max(worst_only, std::fabs(db_only[i] - db_ref[i]));
      EXPECT_LE(worst_only, 2e-4) << "db alone, R " << R;
    }
  }
}

// The weight-gradient kernel sums each element in a fixed order whatever the thread count (K in
// two halves taken by two groups of threads; 3 threads give unequal groups) or when nested; the
// bias sums too.
TEST_P(Gemm, WeightGradientBitwiseAcrossThreads) {
  const int M = 70, N = 96, K = 1000;
  auto A = random_vector(int64_t(K) * M, 14), B = random_vector(int64_t(K) * N, 15);
  auto C0 = random_vector(int64_t(M) * N, 16), s0 = random_vector(M, 17);
  auto run = [&](int threads, bool nested) {
    std::pair<std::vector<float>, std::vector<float>> out{C0, s0};
    run_maybe_nested(nested, [&] {
      ops::weight_grad(op_context(nested ? 1 : threads), out.first.data(), out.second.data(),
                       A.data(), B.data(), K, N, M);
    });
    return out;
  };
  const auto one = run(1, false);
  for (auto [threads, nested] : {std::pair{2, false}, std::pair{3, false}, std::pair{2, true}}) {
    const auto other = run(threads, nested);
    EXPECT_EQ(std::memcmp(one.first.data(), other.first.data(), one.first.size() * 4), 0)
        << threads << " threads" << (nested ? ", nested" : "");
    EXPECT_EQ(std::memcmp(one.second.data(), other.second.data(), one.second.size() * 4), 0)
        << "bias sums, " << threads << " threads" << (nested ? ", nested" : "");
  }
}

// The fused MLP ops equal the unfused composition, on both GEMM paths.
TEST_P(Gemm, FusedLinearGeluMatchesComposition) {
  struct Case {
    int R, I, O;
  };
  // I 64: the whole of K in registers; 300: in two chunks. R 197 (one image's tokens) at ViT-S's
  // fc1 is split by columns, panel by panel on AVX-512, the GELU after all of a row's panels.
  for (const Case cs : {Case{300, 64, 70}, Case{300, 300, 70}, Case{197, 384, 1536}}) {
    const int R = cs.R, I = cs.I, O = cs.O;
    SCOPED_TRACE("R " + std::to_string(R) + ", I " + std::to_string(I) + ", O " +
                 std::to_string(O));
    auto x = random_vector(int64_t(R) * I, 5), w = random_vector(int64_t(O) * I, 6, 0.2);
    auto b = random_vector(O, 7, 0.5);
    std::vector<float> g(R * O), slope(R * O), h2(R * O), slope2(R * O), g2(R * O);
    ops::linear_gelu_forward(op_context(), g.data(), slope.data(), x.data(), w.data(), b.data(), R,
                             I, O);
    ops::linear_forward(op_context(), h2.data(), x.data(), w.data(), b.data(), R, I, O);
    ops::gelu_forward(op_context(), g2.data(), slope2.data(), h2.data(), R * O);
    expect_close("g", g.data(), g2, 1e-7, 1e-6);
    expect_close("slope", slope.data(), slope2, 1e-7, 1e-6);
    std::vector<float> g_only(R * O);
    ops::linear_gelu_forward(op_context(), g_only.data(), nullptr, x.data(), w.data(), b.data(), R,
                             I, O);
    expect_close("GELU without slope", g_only.data(), g2, 1e-7, 1e-6);

    // Backward of a layer fed by g: [R, I2=O] -> [R, O2].
    const int O2 = 40;
    auto w2 = random_vector(int64_t(O2) * O, 8, 0.2), dout = random_vector(int64_t(R) * O2, 9);
    std::vector<float> dh(R * O), dw(O2 * O, 0.0f), db(O2, 0.0f);
    std::vector<float> dg2(R * O), dw2(O2 * O, 0.0f), db2(O2, 0.0f);
    ops::linear_backward_gelu(op_context(), dh.data(), dw.data(), db.data(), dout.data(), g.data(),
                              w2.data(), slope.data(), R, O, O2);
    ops::linear_backward(op_context(), dg2.data(), dw2.data(), db2.data(), dout.data(), g.data(),
                         w2.data(), R, O, O2);
    ops::gelu_backward(op_context(), dg2.data(), dg2.data(), h2.data(), nullptr, R * O);
    expect_close("dh", dh.data(), dg2, 1e-6, 1e-5);
    expect_close("dw", dw.data(), dw2, 0, 0);
    expect_close("db", db.data(), db2, 0, 0);
  }
}

// A slope over 4 MB is written with streaming stores: the same values.
TEST_P(Gemm, FusedLinearGeluStreamingSlope) {
  const int R = 6400, I = 64, O = 257;  // O odd: some rows' lines are unaligned, stored plainly
  auto x = random_vector(int64_t(R) * I, 21), w = random_vector(int64_t(O) * I, 22, 0.2);
  auto b = random_vector(O, 23, 0.5);
  std::vector<float> g(size_t(R) * O), slope(size_t(R) * O), h2(size_t(R) * O), g2(size_t(R) * O),
      slope2(size_t(R) * O);
  ops::linear_gelu_forward(op_context(), g.data(), slope.data(), x.data(), w.data(), b.data(), R, I,
                           O);
  ops::linear_forward(op_context(), h2.data(), x.data(), w.data(), b.data(), R, I, O);
  ops::gelu_forward(op_context(), g2.data(), slope2.data(), h2.data(), int64_t(R) * O);
  expect_close("g", g.data(), g2, 1e-7, 1e-6);
  expect_close("slope", slope.data(), slope2, 1e-7, 1e-6);
}

// linear + residual + LayerNorm in one GEMM epilogue against the three ops one after another, on
// our kernel (I 64; O 40 is a partial column panel, R 301 a partial row tile; also from inside a
// parallel region), with K in chunks (I 300), on OpenBLAS + a separate pass (O 1100: past one
// column block), and split by columns with the LayerNorm after (R 197: one image's tokens);
// out-of-place and in place, with and without the LayerNorm.
TEST_P(Gemm, FusedLinearResidualNormMatchesComposition) {
  struct Case {
    int R, I, O;
    bool nested;
  };
  for (const Case cs :
       {Case{301, 64, 40, false}, Case{301, 64, 40, true}, Case{301, 300, 40, false},
        Case{301, 64, 1100, false}, Case{197, 700, 300, false}}) {
    const int R = cs.R, I = cs.I, O = cs.O;
    SCOPED_TRACE("I " + std::to_string(I) + ", O " + std::to_string(O) +
                 (cs.nested ? ", nested" : ""));
    auto x = random_vector(int64_t(R) * I, 11), w = random_vector(int64_t(O) * I, 12, 0.2);
    auto b = random_vector(O, 13, 0.5), res = random_vector(int64_t(R) * O, 14, 2.0);
    auto lw = random_vector(O, 15, 0.3, 1.0), lb = random_vector(O, 16, 0.3);
    // The composition: out = res + linear(x); ln = LayerNorm(out).
    std::vector<float> out2(size_t(R) * O), ln2(size_t(R) * O), mean2(R), rstd2(R);
    ops::linear_forward(op_context(), out2.data(), x.data(), w.data(), b.data(), R, I, O);
    for (size_t i = 0; i < out2.size(); ++i) out2[i] += res[i];
    ops::layernorm_forward(op_context(), ln2.data(), mean2.data(), rstd2.data(), out2.data(),
                           lw.data(), lb.data(), R, O, 1e-6f);

    std::vector<float> out(size_t(R) * O, 7.0f), ln(size_t(R) * O), mean(R), rstd(R);
    run_maybe_nested(cs.nested, [&] {
      ops::linear_residual_norm_forward(op_context(), out.data(), ln.data(), mean.data(),
                                        rstd.data(), x.data(), w.data(), b.data(), res.data(),
                                        lw.data(), lb.data(), R, I, O, 1e-6f);
    });
    // The two sum the same terms in different orders (res + b + x.w against x.w + b + res, and the
    // dot product itself blocked differently on some paths), each within gamma(I + 2) * (sum
    // |x w| + |b| + |res|) of the exact value, so within twice that of each other.
    std::vector<double> out_bound(size_t(R) * O);
    for (int r = 0; r < R; ++r) {
      for (int o = 0; o < O; ++o) {
        double mag = std::fabs(b[o]) + std::fabs(res[size_t(r) * O + o]);
        for (int i = 0; i < I; ++i)
          mag += std::fabs(double(x[size_t(r) * I + i]) * w[size_t(o) * I + i]);
        out_bound[size_t(r) * O + o] = 2 * gamma_n(I + 2) * mag;
      }
    }
    expect_within("out", out.data(), out2.data(), out_bound);
    // LayerNorm carries a row's input difference delta (at most its largest bound) through: the
    // mean moves by at most delta, the standard deviation sigma by at most delta (it is
    // 1-Lipschitz in the input's RMS), so xhat_j by at most rstd delta (2 + |xhat_j|) and ln_j by
    // |w_j| times that; both sides' own rounding (the mean and variance sums over O terms, then a
    // few operations) adds at most 2 gamma(O + 4) (1 + |xhat_j|) |w_j| + 2 gamma(2) |ln_j|.
    std::vector<double> ln_bound(size_t(R) * O), mean_bound(R), rstd_bound(R);
    for (int r = 0; r < R; ++r) {
      double delta = 0, abs_mean = 0;
      for (int o = 0; o < O; ++o) {
        delta = std::max(delta, out_bound[size_t(r) * O + o]);
        abs_mean += std::fabs(out2[size_t(r) * O + o]) / O;
      }
      const double s = rstd2[r], g = 2 * gamma_n(O + 4);
      mean_bound[r] = delta + g * abs_mean;
      rstd_bound[r] = s * (s * delta + g);
      for (int o = 0; o < O; ++o) {
        const size_t i = size_t(r) * O + o;
        const double xhat = std::fabs((out2[i] - mean2[r]) * s);
        ln_bound[i] = std::fabs(lw[o]) * (s * delta * (2 + xhat) + g * (1 + xhat)) +
                      2 * gamma_n(2) * std::fabs(ln2[i]);
      }
    }
    expect_within("ln", ln.data(), ln2.data(), ln_bound);
    expect_within("mean", mean.data(), mean2.data(), mean_bound);
    expect_within("rstd", rstd.data(), rstd2.data(), rstd_bound);

    std::vector<float> inplace = res, ln_inplace(size_t(R) * O);
    ops::linear_residual_norm_forward(op_context(), inplace.data(), ln_inplace.data(), nullptr,
                                      nullptr, x.data(), w.data(), b.data(), inplace.data(),
                                      lw.data(), lb.data(), R, I, O, 1e-6f);
    // In place rounds as out of place does (inference matches the training forward), on both paths.
    EXPECT_EQ(std::memcmp(inplace.data(), out.data(), out.size() * 4), 0) << "out in place";
    EXPECT_EQ(std::memcmp(ln_inplace.data(), ln.data(), ln.size() * 4), 0) << "ln in place";

    std::vector<float> no_norm(size_t(R) * O);
    ops::linear_residual_norm_forward(op_context(), no_norm.data(), nullptr, nullptr, nullptr,
                                      x.data(), w.data(), b.data(), res.data(), nullptr, nullptr, R,
                                      I, O, 1e-6f);
    expect_within("out without the LayerNorm", no_norm.data(), out2.data(), out_bound);
  }
}

}  // namespace
}  // namespace vit::test
