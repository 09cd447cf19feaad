// Every op, forward and backward, against the PyTorch float64 fixtures (tests/fixtures/
// ops.safetensors) and against central finite differences.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/ops.hpp"
#include "test_util.hpp"
#include "vit/error.hpp"
#include "vit/threads.hpp"

namespace vit::test {
namespace {

// fp32 tolerances of the project: forward atol 1e-5 / rtol 1e-4, gradients 1e-4 / 1e-3.
constexpr double kFwdAtol = 1e-5, kFwdRtol = 1e-4, kGradAtol = 1e-4, kGradRtol = 1e-3;

class OpsFixture : public BackendTest {
 protected:
  static void SetUpTestSuite() { file_ = new SafetensorsReader(fixture("ops.safetensors")); }
  static void TearDownTestSuite() {
    delete file_;
    file_ = nullptr;
  }
  std::vector<float> get(const std::string& name) { return file_->read_f32(name); }
  float meta(const std::string& key) { return std::stof(file_->metadata().at(key)); }
  static SafetensorsReader* file_;
};
SafetensorsReader* OpsFixture::file_ = nullptr;
VIT_BACKEND_SUITE(OpsFixture);

class Ops : public BackendTest {};
VIT_BACKEND_SUITE(Ops);
class OpsFiniteDiff : public BackendTest {};
VIT_BACKEND_SUITE(OpsFiniteDiff);

TEST_P(OpsFixture, LayerNorm) {
  auto x = get("layernorm.x"), w = get("layernorm.weight"), b = get("layernorm.bias");
  auto dy = get("layernorm.dy");
  const int D = 10, R = 6;
  std::vector<float> y(R * D), mean(R), rstd(R), dx(R * D), dw(D, 0.0f), db(D, 0.0f);
  ops::layernorm_forward(op_context(), y.data(), mean.data(), rstd.data(), x.data(), w.data(),
                         b.data(), R, D, meta("layernorm.eps"));
  expect_close("layernorm.y", y.data(), get("layernorm.y"), kFwdAtol, kFwdRtol);
  ops::layernorm_backward(op_context(), dx.data(), dw.data(), db.data(), dy.data(), x.data(),
                          mean.data(), rstd.data(), w.data(), R, D);
  expect_close("layernorm.dx", dx.data(), get("layernorm.dx"), kGradAtol, kGradRtol);
  expect_close("layernorm.dweight", dw.data(), get("layernorm.dweight"), kGradAtol, kGradRtol);
  expect_close("layernorm.dbias", db.data(), get("layernorm.dbias"), kGradAtol, kGradRtol);
}

// Rows past one chunk of the backward (64 rows; the last chunk partial), against a float64 loop;
// then the accumulating form, which adds the same gradient to what dx holds.
TEST_P(Ops, LayerNormBackwardOverChunksAndAccumulating) {
  const int R = 150, D = 24;
  auto x = random_vector(R * D, 31, 1.5, 0.3), w = random_vector(D, 32, 0.5, 1.0);
  auto b = random_vector(D, 33), dy = random_vector(R * D, 34);
  std::vector<float> y(R * D), mean(R), rstd(R), dx(R * D), dw(D, 0.5f), db(D, -0.5f);
  ops::layernorm_forward(op_context(), y.data(), mean.data(), rstd.data(), x.data(), w.data(),
                         b.data(), R, D, 1e-6f);
  ops::layernorm_backward(op_context(), dx.data(), dw.data(), db.data(), dy.data(), x.data(),
                          mean.data(), rstd.data(), w.data(), R, D);
  std::vector<float> ref_dx(R * D), ref_dw(D), ref_db(D);
  std::vector<double> sw(D, 0.5), sb(D, -0.5);
  for (int r = 0; r < R; ++r) {
    double m = 0, v = 0;
    for (int d = 0; d < D; ++d) m += x[r * D + d];
    m /= D;
    for (int d = 0; d < D; ++d) v += (x[r * D + d] - m) * (x[r * D + d] - m);
    const double s = 1.0 / std::sqrt(v / D + 1e-6);
    double mg = 0, mgx = 0;
    for (int d = 0; d < D; ++d) {
      const double xhat = (x[r * D + d] - m) * s, g = double(dy[r * D + d]) * w[d];
      mg += g / D;
      mgx += g * xhat / D;
      sw[d] += dy[r * D + d] * xhat;
      sb[d] += dy[r * D + d];
    }
    for (int d = 0; d < D; ++d) {
      const double xhat = (x[r * D + d] - m) * s;
      ref_dx[r * D + d] = float(s * (double(dy[r * D + d]) * w[d] - mg - xhat * mgx));
    }
  }
  for (int d = 0; d < D; ++d) ref_dw[d] = float(sw[d]), ref_db[d] = float(sb[d]);
  expect_close("layernorm dx", dx.data(), ref_dx, kGradAtol, kGradRtol);
  expect_close("layernorm dweight (+= 0.5)", dw.data(), ref_dw, kGradAtol, kGradRtol);
  expect_close("layernorm dbias (+= -0.5)", db.data(), ref_db, kGradAtol, kGradRtol);

  auto skip = random_vector(R * D, 35);
  std::vector<float> acc(skip), expected(R * D);
  for (int i = 0; i < R * D; ++i) expected[i] = skip[i] + ref_dx[i];
  ops::layernorm_backward(op_context(), acc.data(), nullptr, nullptr, dy.data(), x.data(),
                          mean.data(), rstd.data(), w.data(), R, D, /*accumulate=*/true);
  expect_close("layernorm dx accumulated", acc.data(), expected, kGradAtol, kGradRtol);
}

// Large enough to run in parallel (D not a multiple of 16): 1 and 2 threads agree bitwise.
TEST_P(Ops, LayerNormBackwardBitwiseAcrossThreads) {
  const int R = 600, D = 72;
  auto x = random_vector(R * D, 41, 1.5, 0.3), w = random_vector(D, 42, 0.5, 1.0);
  auto b = random_vector(D, 43), dy = random_vector(R * D, 44), skip = random_vector(R * D, 45);
  std::vector<float> y(R * D), mean(R), rstd(R);
  ops::layernorm_forward(op_context(), y.data(), mean.data(), rstd.data(), x.data(), w.data(),
                         b.data(), R, D, 1e-6f);
  auto run = [&](int threads) {
    std::vector<float> dx(skip), dw(D, 0.25f), db(D, 0.5f);
    ops::layernorm_backward(op_context(threads), dx.data(), dw.data(), db.data(), dy.data(),
                            x.data(), mean.data(), rstd.data(), w.data(), R, D,
                            /*accumulate=*/true);
    dx.insert(dx.end(), dw.begin(), dw.end());
    dx.insert(dx.end(), db.begin(), db.end());
    return dx;
  };
  const auto one = run(1), two = run(2);
  EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * 4), 0)
      << "max diff " << compare(one.data(), two.data(), int64_t(one.size()), 0, 0).max_abs;
}

TEST_P(OpsFixture, Linear) {
  auto x = get("linear.x"), w = get("linear.weight"), b = get("linear.bias"), dy = get("linear.dy");
  const int R = 7, I = 5, O = 6;
  std::vector<float> y(R * O), dx(R * I), dw(O * I, 0.0f), db(O, 0.0f);
  ops::linear_forward(op_context(), y.data(), x.data(), w.data(), b.data(), R, I, O);
  expect_close("linear.y", y.data(), get("linear.y"), kFwdAtol, kFwdRtol);
  ops::linear_backward(op_context(), dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(),
                       R, I, O);
  expect_close("linear.dx", dx.data(), get("linear.dx"), kGradAtol, kGradRtol);
  expect_close("linear.dweight", dw.data(), get("linear.dweight"), kGradAtol, kGradRtol);
  expect_close("linear.dbias", db.data(), get("linear.dbias"), kGradAtol, kGradRtol);
}

TEST_P(OpsFixture, Gelu) {
  auto x = get("gelu.x"), dy = get("gelu.dy");
  const int64_t n = int64_t(x.size());
  std::vector<float> y(n), slope(n), dx(n), y2(n);
  ops::gelu_forward(op_context(), y.data(), slope.data(), x.data(), n);
  expect_close("gelu.y", y.data(), get("gelu.y"), kFwdAtol, kFwdRtol);
  ops::gelu_forward(op_context(), y2.data(), nullptr, x.data(), n);
  expect_close("gelu.y (no slope)", y2.data(), y, 0, 0);
  ops::gelu_backward(op_context(), dx.data(), dy.data(), x.data(), slope.data(), n);
  expect_close("gelu.dx", dx.data(), get("gelu.dx"), kGradAtol, kGradRtol);
  ops::gelu_backward(op_context(), dx.data(), dy.data(), x.data(), nullptr, n);
  expect_close("gelu.dx (slope recomputed)", dx.data(), get("gelu.dx"), kGradAtol, kGradRtol);
}

TEST_P(OpsFixture, Attention) {
  auto qkv = get("attention.qkv"), dout = get("attention.dout");
  const int B = 2, N = 5, D = 12, H = int(meta("attention.heads"));
  std::vector<float> out(B * N * D), att(B * H * N * N), dqkv(qkv.size(), 123.0f);
  ops::attention_forward(op_context(), out.data(), att.data(), qkv.data(), B, N, D, H);
  expect_close("attention.out", out.data(), get("attention.out"), kFwdAtol, kFwdRtol);
  // The inference path (online softmax, no N x N buffer) computes the same thing.
  std::vector<float> out_online(out.size());
  ops::attention_forward(op_context(), out_online.data(), nullptr, qkv.data(), B, N, D, H);
  expect_close("attention.out (online softmax)", out_online.data(), get("attention.out"), kFwdAtol,
               kFwdRtol);
  ops::attention_backward(op_context(), dqkv.data(), dout.data(), qkv.data(), att.data(),
                          out.data(), B, N, D, H);
  expect_close("attention.dqkv", dqkv.data(), get("attention.dqkv"), kGradAtol, kGradRtol);
}

// The patch embedding, a Conv2d with kernel = stride = P: im2col and linear_forward; backward
// linear_backward and col2im.
TEST_P(OpsFixture, PatchEmbed) {
  auto img = get("patch_embed.images"), w = get("patch_embed.weight"), b = get("patch_embed.bias");
  auto dout = get("patch_embed.dout");
  const int B = 2, C = 3, S = 8, P = int(meta("patch_embed.patch_size")), D = 5, Np = 4;
  const ops::ConvGeom g{.B = B, .C = C, .S = S, .k = P, .stride = P};
  ASSERT_EQ(g.rows(), B * Np);
  std::vector<float> out(B * Np * D), cols(B * Np * C * P * P), dimg(img.size(), 7.0f),
      dw(w.size(), 0.0f), db(D, 0.0f);
  ops::im2col(op_context(), cols.data(), img.data(), g);
  ops::linear_forward(op_context(), out.data(), cols.data(), w.data(), b.data(), g.rows(), g.cols(),
                      D);
  expect_close("patch_embed.out", out.data(), get("patch_embed.out"), kFwdAtol, kFwdRtol);
  ops::linear_backward(op_context(), cols.data(), dw.data(), db.data(), dout.data(), cols.data(),
                       w.data(), g.rows(), g.cols(), D);
  ops::col2im(op_context(), dimg.data(), cols.data(), g);
  expect_close("patch_embed.dimages", dimg.data(), get("patch_embed.dimages"), kGradAtol,
               kGradRtol);
  expect_close("patch_embed.dweight", dw.data(), get("patch_embed.dweight"), kGradAtol, kGradRtol);
  expect_close("patch_embed.dbias", db.data(), get("patch_embed.dbias"), kGradAtol, kGradRtol);
}

TEST_P(OpsFixture, ClsPrependAndPosAdd) {
  const int B = 2, Np = 4, N = 5, D = 5;
  auto tok = get("cls_prepend.tokens"), cls = get("cls_prepend.cls"),
       dout = get("cls_prepend.dout");
  std::vector<float> out(B * N * D), dtok(B * Np * D), dcls(D, 0.0f);
  const float* rows[] = {cls.data()};
  float* drows[] = {dcls.data()};
  ops::prefix_prepend_forward(op_context(), out.data(), tok.data(), rows, B, 1, Np, D);
  expect_close("cls_prepend.out", out.data(), get("cls_prepend.out"), 0, 0);
  ops::prefix_prepend_backward(op_context(), dtok.data(), drows, dout.data(), B, 1, Np, D);
  expect_close("cls_prepend.dtokens", dtok.data(), get("cls_prepend.dtokens"), 0, 0);
  expect_close("cls_prepend.dcls", dcls.data(), get("cls_prepend.dcls"), kGradAtol, kGradRtol);

  auto x = get("pos_add.x"), pos = get("pos_add.pos"), pdout = get("pos_add.dout");
  std::vector<float> y(B * N * D), dx(B * N * D), dpos(N * D, 0.0f);
  ops::pos_add_forward(op_context(), y.data(), x.data(), pos.data(), B, N, D);
  expect_close("pos_add.out", y.data(), get("pos_add.out"), kFwdAtol, kFwdRtol);
  ops::pos_add_backward(op_context(), dx.data(), dpos.data(), pdout.data(), B, N, D);
  expect_close("pos_add.dx", dx.data(), get("pos_add.dx"), 0, 0);
  expect_close("pos_add.dpos", dpos.data(), get("pos_add.dpos"), kGradAtol, kGradRtol);
}

// Positions at patch dropout's kept patches (one kept twice): x [B, F + Nk, D] + pos rows [F + Np].
TEST_P(OpsFixture, PosAddAtKeptPatches) {
  const int B = 2, F = 1, Nk = 3, N = F + Nk, D = 3;
  auto x = get("pos_keep.x"), pos = get("pos_keep.pos"), dout = get("pos_keep.dout");
  auto keepf = get("pos_keep.keep");
  std::vector<int32_t> keep(keepf.begin(), keepf.end());
  std::vector<float> out(B * N * D), dx(B * N * D, 7.0f), dpos(pos.size(), 0.0f);
  ops::pos_add_forward(op_context(), out.data(), x.data(), pos.data(), B, N, D, keep.data(), F);
  expect_close("pos_keep.out", out.data(), get("pos_keep.out"), kFwdAtol, kFwdRtol);
  ops::pos_add_backward(op_context(), dx.data(), dpos.data(), dout.data(), B, N, D, keep.data(), F);
  expect_close("pos_keep.dx", dx.data(), get("pos_keep.dx"), 0, 0);
  expect_close("pos_keep.dpos", dpos.data(), get("pos_keep.dpos"), kGradAtol, kGradRtol);
}

TEST_P(OpsFixture, Pooling) {
  const int B = 3, N = 4, D = 5;
  auto x = get("mean_pool.x"), dout = get("mean_pool.dout");
  std::vector<float> y(B * D), dx(B * N * D);
  ops::mean_pool_forward(op_context(), y.data(), x.data(), B, N, D, 0);
  expect_close("mean_pool.out", y.data(), get("mean_pool.out"), kFwdAtol, kFwdRtol);
  ops::mean_pool_backward(op_context(), dx.data(), dout.data(), B, N, D, 0);
  expect_close("mean_pool.dx", dx.data(), get("mean_pool.dx"), kGradAtol, kGradRtol);

  auto cx = get("cls_pool.x"), cdout = get("cls_pool.dout");
  ops::prefix_pool_forward(op_context(), y.data(), cx.data(), B, N, D, 1);
  expect_close("cls_pool.out", y.data(), get("cls_pool.out"), 0, 0);
  std::fill(dx.begin(), dx.end(), 5.0f);  // stale values must be overwritten with zeros
  ops::prefix_pool_backward(op_context(), dx.data(), cdout.data(), B, N, D, 1);
  expect_close("cls_pool.dx", dx.data(), get("cls_pool.dx"), 0, 0);
}

TEST_P(OpsFixture, CrossEntropy) {
  auto logits = get("cross_entropy.logits"), flabels = get("cross_entropy.labels");
  const int B = 6, K = 7;
  std::vector<int32_t> labels(flabels.begin(), flabels.end());
  for (const char* prefix : {"cross_entropy", "cross_entropy_nosmooth"}) {
    const std::string p = prefix;
    const float eps = meta(p + ".label_smoothing");
    std::vector<float> probs(B * K), dlogits(B * K);
    const float loss = float(ops::cross_entropy_forward(op_context(), probs.data(), logits.data(),
                                                        labels.data(), B, K, eps));
    expect_close(p + ".loss", &loss, get(p + ".loss"), kFwdAtol, kFwdRtol);
    ops::cross_entropy_backward(op_context(), dlogits.data(), probs.data(), labels.data(), B, K,
                                eps);
    expect_close(p + ".dlogits", dlogits.data(), get(p + ".dlogits"), kGradAtol, kGradRtol);
  }
}

TEST_P(OpsFixture, CrossEntropyRejectsBadLabels) {
  std::vector<float> logits(2 * 3, 0.0f), probs(6);
  std::vector<int32_t> labels = {0, 3};
  try {
    ops::cross_entropy_forward(op_context(), probs.data(), logits.data(), labels.data(), 2, 3,
                               0.0f);
    FAIL() << "label 3 with 3 classes was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 3"), std::string::npos) << e.what();
  }
}

TEST_P(OpsFixture, SinCosTable) {
  std::vector<float> a(50 * 8), b(10 * 7);
  ops::sincos_table(op_context(), a.data(), 50, 8);
  ops::sincos_table(op_context(), b.data(), 10, 7);
  expect_close("sincos.a", a.data(), get("sincos.a"), kFwdAtol, kFwdRtol);
  expect_close("sincos.b", b.data(), get("sincos.b"), kFwdAtol, kFwdRtol);
}

TEST_P(OpsFixture, AdamW) {
  for (const char* prefix : {"adamw", "adamw_nodecay", "adam_l2"}) {
    const std::string p = prefix;
    const bool decoupled = p != "adam_l2";
    auto param = get("adamw.p0");
    const int64_t n = int64_t(param.size());
    std::vector<float> m(n, 0.0f), v(n, 0.0f);
    for (int t = 1; t <= 3; ++t) {
      auto g = get("adamw.g" + std::to_string(t));
      ops::adamw_update(op_context(), param.data(), m.data(), v.data(), g.data(), n,
                        meta("adamw.lr"), meta("adamw.beta1"), meta("adamw.beta2"),
                        meta("adamw.eps"), meta(p + ".weight_decay"), decoupled, t);
    }
    expect_close(p + ".p3", param.data(), get(p + ".p3"), kFwdAtol, kFwdRtol);
    if (p == "adamw") {
      expect_close("adamw.m3", m.data(), get("adamw.m3"), kFwdAtol, kFwdRtol);
      expect_close("adamw.v3", v.data(), get("adamw.v3"), kFwdAtol, kFwdRtol);
    }
  }
}

// The update runs in SIMD lanes with a remainder; every element must get the same arithmetic
// wherever it falls (this file's ISA variant), so any cut into pieces and any thread count give
// the same bits as one call over the whole array.
TEST_P(Ops, AdamWSameBitsInAnyPieces) {
  const int64_t n = 1000;
  const auto p0 = random_vector(n, 71, 0.5), g = random_vector(n, 72, 1e-2);
  const auto m0 = random_vector(n, 73, 1e-3), v0 = random_vector(n, 74, 1e-4, 2e-4);
  for (const bool decoupled : {true, false}) {
    auto run = [&](const std::vector<int64_t>& cuts, int threads) {
      std::vector<float> p(p0), m(m0), v(v0);
      for (int t = 1; t <= 2; ++t) {
        for (size_t k = 0; k + 1 < cuts.size(); ++k) {
          const int64_t lo = cuts[k], len = cuts[k + 1] - lo;
          ops::adamw_update(op_context(threads), p.data() + lo, m.data() + lo, v.data() + lo,
                            g.data() + lo, len, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.05f, decoupled, t);
        }
      }
      p.insert(p.end(), m.begin(), m.end());
      p.insert(p.end(), v.begin(), v.end());
      return p;
    };
    const std::vector<float> whole = run({0, n}, 1);
    for (const auto& [cuts, threads] : std::vector<std::pair<std::vector<int64_t>, int>>{
             {{0, 1, 4, 21, 512, 999, n}, 1}, {{0, 7, 600, n}, 1}, {{0, n}, 2}, {{0, 333, n}, 3}}) {
      const std::vector<float> cut = run(cuts, threads);
      for (size_t i = 0; i < whole.size(); ++i) {
        ASSERT_EQ(std::memcmp(&cut[i], &whole[i], 4), 0)
            << "element " << i % n << " of "
            << "pmv"[i / n] << ": " << cut[i] << " vs " << whole[i] << " (decoupled " << decoupled
            << ", " << threads << " threads, " << cuts.size() - 1 << " pieces)";
      }
    }
  }
}

// AdamW's decay factor 1 - lr wd: rounded once on the ISA variants with FMA (as GCC compiled it
// before the update was vectorised; each earlier run's bits), twice on the scalar one. With g, m,
// v zero a weight of 1 becomes the factor itself. At this lr the two roundings differ (as on some
// steps of a cosine schedule: a Fashion-MNIST run changed from its tenth epoch on when the factor
// was rounded twice on AVX-512).
TEST_P(Ops, AdamWDecayFactorRoundedAsBefore) {
  const float lr = 0x1.504p-13f, wd = 0.05f;  // 1.60336494e-4
  volatile float product = lr * wd;           // the product rounded on its own
  const float twice = 1.0f - product, once = std::fma(-lr, wd, 1.0f);
  ASSERT_NE(twice, once) << "this lr is meant to tell the two apart";
  float p = 1.0f, m = 0.0f, v = 0.0f;
  const float g = 0.0f;
  ops::adamw_update(op_context(), &p, &m, &v, &g, 1, lr, 0.9f, 0.999f, 1e-8f, wd, true, 1);
#if defined(__ARM_FEATURE_FMA)
  const bool fused = true;  // arm64's baseline has FMA, its scalar variant too
#else
  const bool fused = GetParam() != Isa::kScalar;
#endif
  EXPECT_EQ(p, fused ? once : twice) << "once " << once << ", twice " << twice;
}

// The buffer ops: zeroing, copying and adding, exact for any thread count (one writer per element).
TEST_P(Ops, BufferFillAndAdd) {
  const int64_t n = 3 * 4096 + 17;  // chunks and a partial one
  auto src = random_vector(n, 61), base = random_vector(n, 62);
  for (int threads : {1, 2, 3}) {
    std::vector<float> x(base);
    ops::fill_zero(op_context(threads), x.data(), n);
    EXPECT_TRUE(std::all_of(x.begin(), x.end(), [](float v) { return v == 0.0f; }));
    ops::add_into(op_context(threads), x.data(), src.data(), n, /*copy=*/true);
    EXPECT_EQ(std::memcmp(x.data(), src.data(), size_t(n) * 4), 0);
    x = base;
    ops::add_into(op_context(threads), x.data(), src.data(), n, /*copy=*/false);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(x[size_t(i)], base[size_t(i)] + src[size_t(i)]) << i;
  }
}

TEST_P(OpsFixture, ClipGradNorm) {
  auto g0 = get("clip.g0"), g1 = get("clip.g1");
  std::vector<float> all(g0);
  all.insert(all.end(), g1.begin(), g1.end());
  const double norm = std::sqrt(ops::sum_squares(op_context(), all.data(), int64_t(all.size())));
  const float fnorm = float(norm);
  expect_close("clip.norm", &fnorm, get("clip.norm"), kFwdAtol, kFwdRtol);
  const double coef = meta("clip.max_norm") / (norm + meta("clip.coef_eps"));
  ASSERT_LT(coef, 1.0) << "the fixture is meant to exercise an active clip";
  ops::scale_inplace(op_context(), all.data(), int64_t(all.size()), float(coef));
  expect_close("clip.g0_clipped", all.data(), get("clip.g0_clipped"), kGradAtol, kGradRtol);
  expect_close("clip.g1_clipped", all.data() + g0.size(), get("clip.g1_clipped"), kGradAtol,
               kGradRtol);
}

// The global gradient norm's sum of squares: fixed chunks of 2^14 elements, each summed from zero
// element after element in double (each square exact, so one rounding a step), the chunks' sums
// then added in order. That definition, bit for bit, on 1 and 2 threads: within one chunk, a whole
// set of 8 chunks the kernel runs side by side, a set with a short last chunk, and more chunks than
// one group of partials (256).
TEST_P(Ops, SumOfSquaresIsTheChunksSumsInOrder) {
  constexpr int64_t kChunk = 1 << 14;
  for (const int64_t n : {int64_t(1000), 8 * kChunk, 19 * kChunk + 123, 300 * kChunk + 5}) {
    const auto g = random_vector(n, 91);
    double want = 0.0;
    for (int64_t lo = 0; lo < n; lo += kChunk) {
      double s = 0.0;
      for (int64_t i = lo; i < std::min(n, lo + kChunk); ++i) s += double(g[i]) * double(g[i]);
      want += s;
    }
    for (const int threads : {1, 2}) {
      const double got = ops::sum_squares(op_context(threads), g.data(), n);
      EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0)
          << "n " << n << ", " << threads << " threads: " << got << " against " << want;
    }
  }
}

// ---- Finite differences: L = sum(g * f(inputs)) for a random upstream g, in double.

TEST_P(OpsFiniteDiff, LayerNorm) {
  const int R = 5, D = 12;
  auto x = random_vector(R * D, 1, 2.0, 0.5), w = random_vector(D, 2, 0.3, 1.0);
  auto b = random_vector(D, 3, 0.1), g = random_vector(R * D, 4);
  std::vector<float> y(R * D), mean(R), rstd(R), dx(R * D), dw(D, 0.0f), db(D, 0.0f);
  auto loss = [&] {
    ops::layernorm_forward(op_context(), y.data(), mean.data(), rstd.data(), x.data(), w.data(),
                           b.data(), R, D, 1e-6f);
    return dot(g.data(), y.data(), R * D);
  };
  loss();
  ops::layernorm_backward(op_context(), dx.data(), dw.data(), db.data(), g.data(), x.data(),
                          mean.data(), rstd.data(), w.data(), R, D);
  expect_fd("layernorm dx", x.data(), R * D, dx.data(), loss);
  expect_fd("layernorm dw", w.data(), D, dw.data(), loss);
  expect_fd("layernorm db", b.data(), D, db.data(), loss);
}

TEST_P(OpsFiniteDiff, Linear) {
  const int R = 6, I = 9, O = 7;
  auto x = random_vector(R * I, 5), w = random_vector(O * I, 6, 0.3), b = random_vector(O, 7);
  auto g = random_vector(R * O, 8);
  std::vector<float> y(R * O), dx(R * I), dw(O * I, 0.0f), db(O, 0.0f);
  auto loss = [&] {
    ops::linear_forward(op_context(), y.data(), x.data(), w.data(), b.data(), R, I, O);
    return dot(g.data(), y.data(), R * O);
  };
  ops::linear_backward(op_context(), dx.data(), dw.data(), db.data(), g.data(), x.data(), w.data(),
                       R, I, O);
  expect_fd("linear dx", x.data(), R * I, dx.data(), loss);
  expect_fd("linear dw", w.data(), O * I, dw.data(), loss);
  expect_fd("linear db", b.data(), O, db.data(), loss);
}

TEST_P(OpsFiniteDiff, Gelu) {
  const int n = 200;
  auto x = random_vector(n, 9, 3.0), g = random_vector(n, 10);
  std::vector<float> y(n), dx(n);
  auto loss = [&] {
    ops::gelu_forward(op_context(), y.data(), nullptr, x.data(), n);
    return dot(g.data(), y.data(), n);
  };
  ops::gelu_backward(op_context(), dx.data(), g.data(), x.data(), nullptr, n);
  expect_fd("gelu dx", x.data(), n, dx.data(), loss, n, 1e-3f);
}

// GELU's tanh approximation against its formula in float64, 0.5 x (1 + tanh(u)) with
// u = sqrt(2/pi) (x + 0.044715 x^3) (PyTorch's gelu(approximate="tanh")), and its slope against
// the formula's derivative and finite differences. Error bound: the float u carries a few ulp
// (relative 2.4e-7); e^(-2u) adds that times 2|u| and 2 ulp of its own, and 1/(1 + e) and x * s one
// ulp each, so y is within (4.8e-7 |u| + 3e-7) |y| (plus an absolute 1e-37 where s underflows;
// x reaches -9, where 2|u| nears exp's limit of 87); the slope's two terms likewise, plus its own
// few products.
TEST_P(OpsFiniteDiff, GeluTanh) {
  std::vector<float> x;
  for (int i = -90; i <= 90; ++i) x.push_back(0.1f * float(i) + 0.013f);
  for (float v : {0.0f, -0.0f, 1e-6f, -1e-6f, 30.0f}) x.push_back(v);
  const int n = int(x.size());
  std::vector<float> y(n), slope(n), in_place = x;
  ops::gelu_tanh_forward(op_context(), y.data(), slope.data(), x.data(), n);
  const double a = std::sqrt(2.0 / M_PI), c = 0.044715;
  int worst = 0;
  double worst_ratio = 0;
  for (int i = 0; i < n; ++i) {
    const double v = x[size_t(i)], u = a * (v + c * v * v * v);
    // 0.5 (1 + tanh(u)), which cancels in float64 too once u < -18 (tanh(u) = -1 + 2e-16):
    // there its equal 1 / (1 + e^(-2u)).
    const double s = u > -4 ? 0.5 * (1 + std::tanh(u)) : 1 / (1 + std::exp(-2 * u));
    const double ref = v * s, second = v * s * (1 - s) * 2 * a * (1 + 3 * c * v * v);
    const double ref_slope = s + second;
    const double rel = 4.8e-7 * std::abs(u) + 3e-7;
    const double tol_y = rel * std::abs(ref) + 1e-37;
    const double tol_slope = (rel + 4e-7) * (std::abs(s) + std::abs(second)) + 1e-37;
    const double ratio = std::max(std::abs(y[size_t(i)] - ref) / tol_y,
                                  std::abs(slope[size_t(i)] - ref_slope) / tol_slope);
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
  }
  EXPECT_LE(worst_ratio, 1.0) << "worst at x = " << x[size_t(worst)] << ": y " << y[size_t(worst)]
                              << ", slope " << slope[size_t(worst)];
  ops::gelu_tanh_forward(op_context(), in_place.data(), nullptr, in_place.data(), n);
  expect_close("gelu_tanh in place", in_place.data(), y.data(), n, 0, 0);

  // The slope is the backward: L = g . gelu_tanh(x) over random x.
  const int m = 64;
  auto xr = random_vector(m, 44, 3.0), g = random_vector(m, 45);
  std::vector<float> act(m), sl(m), dx(m);
  auto loss = [&] {
    ops::gelu_tanh_forward(op_context(), act.data(), sl.data(), xr.data(), m);
    return dot(g.data(), act.data(), m);
  };
  loss();
  for (int i = 0; i < m; ++i) dx[size_t(i)] = g[size_t(i)] * sl[size_t(i)];
  expect_fd("gelu_tanh dx", xr.data(), m, dx.data(), loss, m, 1e-3f);
}

// Attention forward (both paths) and backward against a float64 loop implementation, at head
// widths with their own compiled kernels (16, 32, 64) and a generic one (24), and at token counts
// whose padded score rows end in each kind of column block (Np = 16, 64, 80, 96, 112).
TEST_P(Ops, AttentionMatchesDoubleReferenceAcrossShapes) {
  struct Shape {
    int N, Dh, H;
  };
  for (const Shape sh :
       {Shape{7, 16, 2}, Shape{50, 16, 4}, Shape{70, 64, 2}, Shape{90, 32, 3}, Shape{100, 24, 2}}) {
    const int B = 2, N = sh.N, H = sh.H, Dh = sh.Dh, D = H * Dh;
    const int64_t row = 3 * int64_t(D);
    auto qkv = random_vector(int64_t(B) * N * row, 31, 1.0),
         dout = random_vector(int64_t(B) * N * D, 32);
    // Reference: out = softmax(Q K^T / sqrt(Dh)) V per (b, h); then its gradients.
    std::vector<double> ref_out(size_t(B) * N * D), ref_dqkv(qkv.size(), 0.0);
    const double scale = 1.0 / std::sqrt(double(Dh));
    for (int b = 0; b < B; ++b) {
      for (int h = 0; h < H; ++h) {
        auto q = [&](int i, int d) { return double(qkv[(size_t(b) * N + i) * row + h * Dh + d]); };
        auto k = [&](int i, int d) {
          return double(qkv[(size_t(b) * N + i) * row + D + h * Dh + d]);
        };
        auto v = [&](int i, int d) {
          return double(qkv[(size_t(b) * N + i) * row + 2 * D + h * Dh + d]);
        };
        std::vector<double> a(size_t(N) * N), da(size_t(N) * N);
        for (int i = 0; i < N; ++i) {
          double mx = -1e300, sum = 0;
          for (int j = 0; j < N; ++j) {
            double sc = 0;
            for (int d = 0; d < Dh; ++d) sc += q(i, d) * k(j, d);
            a[size_t(i) * N + j] = sc * scale;
            mx = std::max(mx, sc * scale);
          }
          for (int j = 0; j < N; ++j)
            sum += (a[size_t(i) * N + j] = std::exp(a[size_t(i) * N + j] - mx));
          for (int j = 0; j < N; ++j) a[size_t(i) * N + j] /= sum;
        }
        for (int i = 0; i < N; ++i) {
          const float* g = dout.data() + (size_t(b) * N + i) * D + h * Dh;
          for (int d = 0; d < Dh; ++d) {
            double o = 0;
            for (int j = 0; j < N; ++j) o += a[size_t(i) * N + j] * v(j, d);
            ref_out[(size_t(b) * N + i) * D + h * Dh + d] = o;
          }
          double delta = 0;
          for (int j = 0; j < N; ++j) {
            double s = 0;
            for (int d = 0; d < Dh; ++d) s += g[d] * v(j, d);
            da[size_t(i) * N + j] = s;
            delta += s * a[size_t(i) * N + j];
          }
          for (int j = 0; j < N; ++j) {
            const double ds = a[size_t(i) * N + j] * (da[size_t(i) * N + j] - delta) * scale;
            for (int d = 0; d < Dh; ++d) {
              ref_dqkv[(size_t(b) * N + i) * row + h * Dh + d] += ds * k(j, d);
              ref_dqkv[(size_t(b) * N + j) * row + D + h * Dh + d] += ds * q(i, d);
              ref_dqkv[(size_t(b) * N + j) * row + 2 * D + h * Dh + d] +=
                  a[size_t(i) * N + j] * g[d];
            }
          }
        }
      }
    }
    std::vector<float> out(size_t(B) * N * D), out_online(out.size()), att(size_t(B) * H * N * N);
    std::vector<float> dqkv(qkv.size(), 123.0f);
    ops::attention_forward(op_context(), out.data(), att.data(), qkv.data(), B, N, D, H);
    ops::attention_forward(op_context(), out_online.data(), nullptr, qkv.data(), B, N, D, H);
    ops::attention_backward(op_context(), dqkv.data(), dout.data(), qkv.data(), att.data(),
                            out.data(), B, N, D, H);
    const std::string shape = " (N " + std::to_string(N) + ", Dh " + std::to_string(Dh) + ")";
    std::vector<float> ref_out_f(ref_out.begin(), ref_out.end()),
        ref_dqkv_f(ref_dqkv.begin(), ref_dqkv.end());
    expect_close("attention out" + shape, out.data(), ref_out_f, kFwdAtol, kFwdRtol);
    expect_close("attention out, inference path" + shape, out_online.data(), ref_out_f, kFwdAtol,
                 kFwdRtol);
    expect_close("attention dqkv" + shape, dqkv.data(), ref_dqkv_f, kGradAtol, kGradRtol);
  }
}

TEST_P(OpsFiniteDiff, Attention) {
  const int B = 2, N = 7, D = 12, H = 3;
  auto qkv = random_vector(B * N * 3 * D, 11, 1.2), g = random_vector(B * N * D, 12);
  std::vector<float> out(B * N * D), att(B * H * N * N), dqkv(qkv.size());
  auto loss = [&] {
    ops::attention_forward(op_context(), out.data(), att.data(), qkv.data(), B, N, D, H);
    return dot(g.data(), out.data(), B * N * D);
  };
  loss();
  ops::attention_backward(op_context(), dqkv.data(), g.data(), qkv.data(), att.data(), out.data(),
                          B, N, D, H);
  expect_fd("attention dqkv", qkv.data(), int64_t(qkv.size()), dqkv.data(), loss, 200, 5e-3f);
}

// Convolutions as im2col + linear: the patch embedding (kernel = stride), overlapping, padded
// ones on either layout (the convolutional stem's 3 x 3 / 2 on images, a kernel wider than its
// stride on channels-last rows), and at patch dropout's kept patches alone (one kept twice).
TEST_P(OpsFiniteDiff, Conv) {
  const int32_t keep[] = {3, 0, 1, 2, 2, 0};  // 2 images x 3 of 4 patches of 2 x 2 positions
  const ops::ConvGeom geoms[] = {
      {.B = 2, .C = 2, .S = 6, .k = 3, .stride = 3},
      {.B = 2, .C = 2, .S = 7, .k = 3, .stride = 2, .pad = 1},
      {.B = 2, .C = 3, .S = 5, .k = 3, .stride = 1, .pad = 2, .channels_last = true},
      {.B = 2, .C = 2, .S = 8, .k = 3, .stride = 2, .pad = 1, .keep = keep, .count = 3, .ps = 2}};
  for (const ops::ConvGeom& g : geoms) {
    const int D = 4, K = g.cols();
    const int64_t R = g.rows();
    auto img = random_vector(int64_t(g.B) * g.C * g.S * g.S, 13),
         w = random_vector(int64_t(D) * K, 14, 0.3);
    auto b = random_vector(D, 15), dout = random_vector(R * D, 16);
    std::vector<float> out(R * D), cols(R * K), dimg(img.size(), 7.0f), dw(D * K, 0.0f),
        db(D, 0.0f);
    auto loss = [&] {
      ops::im2col(op_context(), cols.data(), img.data(), g);
      ops::linear_forward(op_context(), out.data(), cols.data(), w.data(), b.data(), R, K, D);
      return dot(dout.data(), out.data(), R * D);
    };
    loss();
    // Each row's image and output position: raster order, or (keep) each kept patch's block of
    // ps x ps positions in turn.
    const int G = g.G();
    std::vector<std::array<int, 3>> at;  // (image, gy, gx)
    for (int n = 0; n < g.B; ++n) {
      if (!g.keep) {
        for (int i = 0; i < G * G; ++i) at.push_back({n, i / G, i % G});
        continue;
      }
      for (int j = 0; j < g.count; ++j) {
        const int p = g.keep[n * g.count + j], side = G / g.ps;
        for (int i = 0; i < g.ps * g.ps; ++i)
          at.push_back({n, p / side * g.ps + i / g.ps, p % side * g.ps + i % g.ps});
      }
    }
    ASSERT_EQ(int64_t(at.size()), R);
    // The forward against the convolution's definition, summed in double: each output a sum of at
    // most K + 1 products, so within (K + 1) u of the sum of their magnitudes (u = 2^-24).
    double worst = 0;  // |out - sum| / ((K + 1) u sum|terms|)
    for (int64_t row = 0; row < R; ++row) {
      const auto [n, gy, gx] = at[size_t(row)];
      for (int d = 0; d < D; ++d) {
        double sum = b[size_t(d)], mag = std::abs(b[size_t(d)]);
        for (int c = 0; c < g.C; ++c) {
          for (int ky = 0; ky < g.k; ++ky) {
            for (int kx = 0; kx < g.k; ++kx) {
              const int y = gy * g.stride + ky - g.pad, x = gx * g.stride + kx - g.pad;
              if (y < 0 || y >= g.S || x < 0 || x >= g.S) continue;
              const int64_t pixel = g.channels_last ? ((int64_t(n) * g.S + y) * g.S + x) * g.C + c
                                                    : ((int64_t(n) * g.C + c) * g.S + y) * g.S + x;
              const double t =
                  double(w[size_t((d * g.C + c) * g.k * g.k + ky * g.k + kx)]) * img[size_t(pixel)];
              sum += t;
              mag += std::abs(t);
            }
          }
        }
        const double bound = (K + 1) * std::ldexp(1.0, -24) * mag + 1e-30;
        worst = std::max(worst, std::abs(out[size_t(row * D + d)] - sum) / bound);
      }
    }
    EXPECT_LE(worst, 1.0) << "k " << g.k << " stride " << g.stride << " pad " << g.pad
                          << (g.keep ? " kept patches" : "");
    ops::linear_backward(op_context(), cols.data(), dw.data(), db.data(), dout.data(), cols.data(),
                         w.data(), R, K, D);
    ops::col2im(op_context(), dimg.data(), cols.data(), g);
    const std::string what =
        "conv k" + std::to_string(g.k) + " s" + std::to_string(g.stride) + (g.keep ? " kept" : "");
    expect_fd(what + " dimages", img.data(), int64_t(img.size()), dimg.data(), loss);
    expect_fd(what + " dweight", w.data(), D * K, dw.data(), loss);
    expect_fd(what + " dbias", b.data(), D, db.data(), loss);
  }
}

TEST_P(OpsFiniteDiff, TokensAndPooling) {
  // Two prefix rows (a class token and a second one, as DeiT's distillation token) from separate
  // arrays, positions on every token or (no_embed_class) on the patches only, and the three
  // poolings: the first token, the first two (token-major), the mean of the patch tokens.
  const int B = 3, Np = 4, F = 2, N = F + Np, D = 6;
  auto tok = random_vector(B * Np * D, 17), cls = random_vector(D, 18), dist = random_vector(D, 21);
  auto pos = random_vector(N * D, 19), g = random_vector(2 * B * D, 20);
  std::vector<float> pe(B * Np * D), x(B * N * D), pooled(2 * B * D), dx(B * N * D),
      dtok(B * Np * D), dcls(D), ddist(D), dpos(N * D);
  const float* rows[] = {cls.data(), dist.data()};
  float* drows[] = {dcls.data(), ddist.data()};
  for (int pool = 0; pool < 3; ++pool) {
    for (bool patches_only : {false, true}) {
      const int T = pool == 2 ? 2 : 1;
      auto loss = [&] {
        pe = tok;
        if (patches_only)
          ops::pos_add_forward(op_context(), pe.data(), pe.data(), pos.data(), B, Np, D);
        ops::prefix_prepend_forward(op_context(), x.data(), pe.data(), rows, B, F, Np, D);
        if (!patches_only)
          ops::pos_add_forward(op_context(), x.data(), x.data(), pos.data(), B, N, D);
        if (pool == 0) {
          ops::mean_pool_forward(op_context(), pooled.data(), x.data(), B, N, D, F);
        } else {
          ops::prefix_pool_forward(op_context(), pooled.data(), x.data(), B, N, D, T);
        }
        return dot(g.data(), pooled.data(), (pool == 0 ? 1 : T) * B * D);
      };
      std::fill(dcls.begin(), dcls.end(), 0.0f);
      std::fill(ddist.begin(), ddist.end(), 0.0f);
      std::fill(dpos.begin(), dpos.end(), 0.0f);
      std::fill(dx.begin(), dx.end(), 9.0f);  // stale values must be overwritten
      if (pool == 0) {
        ops::mean_pool_backward(op_context(), dx.data(), g.data(), B, N, D, F);
      } else {
        ops::prefix_pool_backward(op_context(), dx.data(), g.data(), B, N, D, T);
      }
      if (!patches_only)
        ops::pos_add_backward(op_context(), dx.data(), dpos.data(), dx.data(), B, N, D);
      ops::prefix_prepend_backward(op_context(), dtok.data(), drows, dx.data(), B, F, Np, D);
      if (patches_only)
        ops::pos_add_backward(op_context(), dtok.data(), dpos.data(), dtok.data(), B, Np, D);
      const std::string tag =
          " (pool " + std::to_string(pool) + (patches_only ? ", patch positions)" : ")");
      expect_fd("tokens" + tag, tok.data(), B * Np * D, dtok.data(), loss);
      expect_fd("cls_token" + tag, cls.data(), D, dcls.data(), loss);
      expect_fd("dist_token" + tag, dist.data(), D, ddist.data(), loss);
      expect_fd("pos_embed" + tag, pos.data(), (patches_only ? Np : N) * D, dpos.data(), loss);
    }
  }
}

TEST_P(OpsFiniteDiff, LayerScaleQkNormQuickGelu) {
  const int R = 5, D = 8, H = 2;
  // LayerScale: L = g . (residual + gamma * y).
  auto res = random_vector(R * D, 31), y = random_vector(R * D, 32), gamma = random_vector(D, 33);
  auto g = random_vector(R * 3 * D, 34);
  std::vector<float> out(R * 3 * D), dy(R * D), dgamma(D, 0.0f);
  auto ls_loss = [&] {
    ops::scale_add_forward(op_context(), out.data(), res.data(), y.data(), gamma.data(), nullptr, 1,
                           R, D);
    return dot(g.data(), out.data(), R * D);
  };
  ops::scale_add_backward(op_context(), dy.data(), dgamma.data(), g.data(), y.data(), gamma.data(),
                          nullptr, 1, R, D);
  expect_fd("layer scale dy", y.data(), R * D, dy.data(), ls_loss);
  expect_fd("layer scale dgamma", gamma.data(), D, dgamma.data(), ls_loss);
  // In place (inference): out = residual.
  std::vector<float> inplace = res;
  ops::scale_add_forward(op_context(), inplace.data(), inplace.data(), y.data(), gamma.data(),
                         nullptr, 1, R, D);
  ls_loss();
  expect_close("layer scale in place", inplace.data(), out.data(), R * D, 0, 0);
  // Drop-path: images of N = 2 rows scaled by their factor (0: the branch dropped), with and
  // without LayerScale; dy of a dropped image is 0, and without gamma nothing else is computed.
  {
    const int N = 2, R2 = 6;
    const std::vector<float> sample = {1.25f, 0.0f, 2.0f};
    auto r2 = random_vector(R2 * D, 41), y2 = random_vector(R2 * D, 42),
         g2 = random_vector(R2 * D, 43);
    std::vector<float> o2(R2 * D), dy2(R2 * D), dgamma2(D, 0.0f);
    for (bool with_gamma : {true, false}) {
      const float* gm = with_gamma ? gamma.data() : nullptr;
      const std::string tag = with_gamma ? " (LayerScale)" : "";
      auto dp_loss = [&] {
        ops::scale_add_forward(op_context(), o2.data(), r2.data(), y2.data(), gm, sample.data(), N,
                               R2, D);
        return dot(g2.data(), o2.data(), R2 * D);
      };
      std::fill(dgamma2.begin(), dgamma2.end(), 0.0f);
      ops::scale_add_backward(op_context(), dy2.data(), with_gamma ? dgamma2.data() : nullptr,
                              g2.data(), y2.data(), gm, sample.data(), N, R2, D);
      expect_fd("drop-path dy" + tag, y2.data(), R2 * D, dy2.data(), dp_loss);
      if (with_gamma) expect_fd("drop-path dgamma", gamma.data(), D, dgamma2.data(), dp_loss);
      dp_loss();
      for (int i = 2 * D; i < 4 * D; ++i) {  // image 1, dropped: out = residual, dy = 0
        ASSERT_EQ(o2[size_t(i)], r2[size_t(i)]) << i << tag;
        ASSERT_EQ(dy2[size_t(i)], 0.0f) << i << tag;
      }
    }
  }

  // qk-norm: L = g . qk_norm(qkv); also in place for inference.
  const int Dh = D / H;
  auto qkv = random_vector(R * 3 * D, 35), qw = random_vector(Dh, 36), qb = random_vector(Dh, 37),
       kw = random_vector(Dh, 38), kb = random_vector(Dh, 39);
  for (float& v : qkv) v = 3.0f * v + 1.0f;  // rows away from zero mean and unit scale
  std::vector<float> mean(R * 2 * H), rstd(R * 2 * H), dqkv(R * 3 * D), dqw(Dh, 0.0f),
      dqb(Dh, 0.0f), dkw(Dh, 0.0f), dkb(Dh, 0.0f);
  auto qk_loss = [&] {
    ops::qk_norm_forward(op_context(), out.data(), mean.data(), rstd.data(), qkv.data(), qw.data(),
                         qb.data(), kw.data(), kb.data(), R, D, H, 1e-6f);
    return dot(g.data(), out.data(), R * 3 * D);
  };
  qk_loss();
  dqkv = g;  // in place, as the model runs it
  ops::qk_norm_backward(op_context(), dqkv.data(), dqw.data(), dqb.data(), dkw.data(), dkb.data(),
                        dqkv.data(), qkv.data(), mean.data(), rstd.data(), qw.data(), kw.data(), R,
                        D, H);
  expect_fd("qk_norm dqkv", qkv.data(), R * 3 * D, dqkv.data(), qk_loss);
  expect_fd("qk_norm dq weight", qw.data(), Dh, dqw.data(), qk_loss);
  expect_fd("qk_norm dq bias", qb.data(), Dh, dqb.data(), qk_loss);
  expect_fd("qk_norm dk weight", kw.data(), Dh, dkw.data(), qk_loss);
  expect_fd("qk_norm dk bias", kb.data(), Dh, dkb.data(), qk_loss);
  std::vector<float> normed = qkv;
  ops::qk_norm_forward(op_context(), normed.data(), nullptr, nullptr, normed.data(), qw.data(),
                       qb.data(), kw.data(), kb.data(), R, D, H, 1e-6f);
  qk_loss();
  expect_close("qk_norm in place", normed.data(), out.data(), R * 3 * D, 0, 0);

  // QuickGELU: L = g . qgelu(x); the slope is the backward.
  auto x = random_vector(R * D, 40);
  for (float& v : x) v *= 4.0f;
  std::vector<float> act(R * D), slope(R * D), dx(R * D);
  auto qg_loss = [&] {
    ops::quick_gelu_forward(op_context(), act.data(), slope.data(), x.data(), R * D);
    return dot(g.data(), act.data(), R * D);
  };
  qg_loss();
  for (int i = 0; i < R * D; ++i) dx[i] = g[i] * slope[i];
  expect_fd("quick_gelu", x.data(), R * D, dx.data(), qg_loss);
}

TEST_P(OpsFiniteDiff, CrossEntropy) {
  const int B = 5, K = 9;
  auto logits = random_vector(B * K, 23, 2.0);
  std::vector<int32_t> labels = {0, 8, 3, 3, 5};
  std::vector<float> probs(B * K), dlogits(B * K);
  for (float eps : {0.0f, 0.2f}) {
    auto loss = [&] {
      return ops::cross_entropy_forward(op_context(), probs.data(), logits.data(), labels.data(), B,
                                        K, eps);
    };
    loss();
    ops::cross_entropy_backward(op_context(), dlogits.data(), probs.data(), labels.data(), B, K,
                                eps);
    expect_fd("cross_entropy dlogits, smoothing " + std::to_string(eps), logits.data(), B * K,
              dlogits.data(), loss, B * K, 1e-2f, 2e-4, 1e-2);
  }
}

}  // namespace
}  // namespace vit::test
