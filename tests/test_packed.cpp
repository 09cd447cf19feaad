// fp32 weights packed once for inference, in place (ops::PackedWeights::pack_f32): the GEMM on the
// panels gives the same bits as on the unpacked weight, for every kernel variant, thread count,
// epilogue and blocking; restoring gives the weight back bit for bit; a product the panels cannot
// serve is refused; and a model packed by set_inference_dtype(kF32) predicts the same bits and
// gives its parameters back unchanged to whatever reads them next.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "ops/ops.hpp"
#include "ops/packed.hpp"
#include "test_util.hpp"
#include "vit/isa.hpp"
#include "vit/model.hpp"
#include "vit/threads.hpp"

namespace vit::test {
namespace {

class PackedF32 : public BackendTest {};
VIT_BACKEND_SUITE(PackedF32);

struct Shape {
  int M, N, K;
  float alpha, beta;
};

// Which epilogue a product ends in.
enum class Ending { kNone, kGelu, kResidualNorm };

// C = alpha A w^T + bias (+ C0) with the epilogue, once on w as it is and once on w packed in
// place, on `threads` threads: expects the same bits in C (and in what the epilogue wrote).
void check_same_bits(const Shape& s, Ending ending, int threads) {
  const int width = ops::gemm_panel_width(s.N, s.K, ending == Ending::kResidualNorm);
  ASSERT_GT(width, 0) << "N " << s.N << " K " << s.K;
  auto A = random_vector(int64_t(s.M) * s.K, 11), w = random_vector(int64_t(s.N) * s.K, 12, 0.2);
  auto C0 = random_vector(int64_t(s.M) * s.N, 13), bias = random_vector(s.N, 14);
  auto res = random_vector(int64_t(s.M) * s.N, 15), nw = random_vector(s.N, 16);
  auto nb = random_vector(s.N, 17);
  const std::vector<float> original = w;
  struct Out {
    std::vector<float> C, extra, mean, rstd;
  };
  auto run = [&](const ops::PackedWeights* packs) {
    Out o{C0, std::vector<float>(size_t(s.M) * s.N), std::vector<float>(size_t(s.M)),
          std::vector<float>(size_t(s.M))};
    ops::Epilogue e;
    if (ending == Ending::kGelu) {
      e.kind = ops::Epilogue::kGelu;
      e.out = o.C.data();
      e.slope = o.extra.data();
      e.ld = s.N;
    } else if (ending == Ending::kResidualNorm) {
      e.kind = ops::Epilogue::kResidualNorm;
      e.residual = res.data();
      e.norm = o.extra.data();
      e.mean = o.mean.data();
      e.rstd = o.rstd.data();
      e.norm_w = nw.data();
      e.norm_b = nb.data();
      e.eps = 1e-6f;
      e.ld = s.N;
    }
    ops::Context ctx = op_context(threads);
    ctx.packed = packs;
    ops::gemm(ctx, false, true, s.M, s.N, s.K, s.alpha, A.data(), s.K, w.data(), s.K, s.beta,
              o.C.data(), s.N, bias.data(), e);
    return o;
  };
  const Out plain = run(nullptr);
  ops::PackedWeights packs;
  packs.pack_f32(w.data(), s.N, s.K, width, ops::gemm_pack_weight, ops::gemm_unpack_weight);
  if (s.K > 1) {  // (one depth: the panels are w's rows in order)
    EXPECT_NE(std::memcmp(w.data(), original.data(), w.size() * 4), 0)
        << "packing left the weight as it was";
  }
  const Out packed = run(&packs);
  const std::string what = "M " + std::to_string(s.M) + " N " + std::to_string(s.N) + " K " +
                           std::to_string(s.K) + ", ending " + std::to_string(int(ending)) + ", " +
                           std::to_string(threads) + " threads";
  auto same = [&](const std::vector<float>& a, const std::vector<float>& b, const char* name) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::memcmp(&a[i], &b[i], 4) != 0) {
        ADD_FAILURE() << what << ": " << name << "[" << i << "] is " << b[i] << " packed, " << a[i]
                      << " unpacked";
        return;
      }
    }
  };
  same(plain.C, packed.C, "C");
  same(plain.extra, packed.extra, ending == Ending::kGelu ? "slope" : "norm");
  same(plain.mean, packed.mean, "mean");
  same(plain.rstd, packed.rstd, "rstd");
  packs.restore();
  EXPECT_EQ(std::memcmp(w.data(), original.data(), w.size() * 4), 0) << what << ": restore()";
  EXPECT_TRUE(packs.entries.empty());
}

TEST_P(PackedF32, GemmSameBitsAsUnpacked) {
  if (ops::gemm_panel_width(64, 64, false) == 0) {
    // The scalar kernels (OpenBLAS) read weights only as they are: nothing is packed for them.
    EXPECT_EQ(GetParam(), Isa::kScalar);
    EXPECT_THROW(ops::gemm_pack_weight(nullptr, nullptr, 64, 64), Error);
    return;
  }
  // ViT-B's one-image qkv (K 768: three chunks) and fc2 (K 3072, accumulating into C: the chunks'
  // partial sums in scratch), a short depth, a single-depth product, partial row tiles, a tall A
  // (split by rows on several threads, in row blocks each summed over every chunk: gemm_own's
  // row_block), the same accumulating over twelve chunks, and products wider than one column
  // block (N 2048 at K 300; ViT-S's one-image qkv, 1,024 + 128 columns), their panels shared
  // between the threads across the blocks; a tall A whose row blocks go panel by panel packed
  // (on AVX-512), row tile by row tile unpacked, with partial sums over 512 KB a thread there (on
  // one and two threads).
  const Shape shapes[] = {
      {197, 96, 768, 1.0f, 0.0f},  {197, 64, 3072, 1.0f, 1.0f},  {13, 64, 33, 0.5f, 1.0f},
      {300, 32, 1, 2.0f, 0.0f},    {700, 128, 300, 1.0f, 0.0f},  {611, 96, 3072, 0.5f, 1.0f},
      {40, 2048, 300, 1.0f, 0.0f}, {197, 1152, 384, 1.0f, 0.0f}, {2800, 128, 520, 1.0f, 1.0f}};
  for (const Shape& s : shapes) {
    for (int threads : {1, 2, 3}) check_same_bits(s, Ending::kNone, threads);
  }
  for (int threads : {1, 2}) {
    check_same_bits({197, 256, 96, 1.0f, 0.0f}, Ending::kGelu, threads);
    check_same_bits({197, 1536, 384, 1.0f, 0.0f}, Ending::kGelu, threads);  // ViT-S's fc1
    check_same_bits({600, 64, 640, 1.0f, 0.0f}, Ending::kGelu, threads);
    check_same_bits({197, 192, 768, 1.0f, 0.0f}, Ending::kResidualNorm, threads);
  }
}

TEST_P(PackedF32, RefusesWhatThePanelsCannotServe) {
  const int N = 64, K = 48;
  const int width = ops::gemm_panel_width(N, K, false);
  if (width == 0) GTEST_SKIP() << "nothing is packed for the scalar kernels";
  EXPECT_EQ(ops::gemm_panel_width(N + 1, K, false), 0) << "N not a multiple of the panels";
  EXPECT_EQ(ops::gemm_panel_width(1 << 14, 768, true), 0)
      << "a residual-and-norm epilogue wider than a column block";
  auto w = random_vector(int64_t(N) * K, 21), A = random_vector(int64_t(N) * K, 22);
  std::vector<float> C(size_t(N) * N);
  ops::PackedWeights packs;
  packs.pack_f32(w.data(), N, K, width, ops::gemm_pack_weight, ops::gemm_unpack_weight);
  ops::Context ctx = op_context(1);
  ctx.packed = &packs;
  // w as op(B) = w (not transposed) is not what the panels hold: an error, never garbage.
  expect_error(
      [&] {
        ops::gemm(ctx, false, false, N, K, N, 1.0f, A.data(), N, w.data(), K, 0.0f, C.data(), K);
      },
      "restore it first");
  expect_error(
      [&] {
        packs.pack_f32(w.data(), N, K, width, ops::gemm_pack_weight, ops::gemm_unpack_weight);
      },
      "packed already");
  expect_error([&] { packs.add_bf16(w.data(), N, K); }, "restore() it first");
}

// A model's predictions with its weights packed are those without, bit for bit, alone or in a
// batch, on 1 or 2 threads, with and without a convolutional stem; reading the parameters
// afterwards (param_data, training) gets them back as they were.
TEST_P(PackedF32, ModelPredictsTheSameBitsAndGivesItsWeightsBack) {
  for (const int stem : {0, 32}) {  // with a 32-channel convolutional stem too
    SCOPED_TRACE("stem_channels " + std::to_string(stem));
    Config c = quadrant_config();
    c.dim = 64;
    c.mlp_dim = 128;
    c.num_classes = 32;  // a packable head too
    c.stem_channels = stem;
    Model model(c);
    model.init(5);
    const std::vector<float> weights(model.param_data(), model.param_data() + model.arena_floats());
    const int B = 7, K = c.num_classes;
    const int64_t pixels = int64_t(c.channels) * c.image_size * c.image_size;
    auto images = random_vector(B * pixels, 31);
    std::vector<float> before(size_t(B) * K), after(size_t(B) * K), one(static_cast<size_t>(K));
    model.predict(images.data(), B, before.data());
    model.set_inference_dtype(Dtype::kF32);
    EXPECT_EQ(model.inference_dtype(), Dtype::kF32);
    const int threads_before = num_threads();
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      model.predict(images.data(), B, after.data());
      EXPECT_EQ(std::memcmp(after.data(), before.data(), after.size() * 4), 0)
          << threads << " threads";
      if (GetParam() != Isa::kScalar) {  // (OpenBLAS's rounding depends on the rows: CONVENTIONS)
        model.predict(images.data() + 3 * pixels, 1, one.data());
        EXPECT_EQ(std::memcmp(one.data(), before.data() + 3 * K, size_t(K) * 4), 0) << "alone";
      }
    }
    set_num_threads(threads_before);
    const float* p = model.param_data();  // restores the weights
    EXPECT_EQ(std::memcmp(p, weights.data(), weights.size() * 4), 0);
    model.predict(images.data(), B, after.data());  // unpacked again
    EXPECT_EQ(std::memcmp(after.data(), before.data(), after.size() * 4), 0) << "after restoring";
    // Training after packing reads the weights as they are: the same logits as a model never
    // packed.
    model.set_inference_dtype(Dtype::kF32);
    model.enable_training(B);
    const float* logits = model.forward(images.data(), B);
    EXPECT_EQ(std::memcmp(model.param_data(), weights.data(), weights.size() * 4), 0);
    Model fresh(c);
    fresh.init(5);
    fresh.enable_training(B);
    const float* expected = fresh.forward(images.data(), B);
    EXPECT_EQ(std::memcmp(logits, expected, size_t(B) * K * 4), 0) << "training forward";
    // A bf16 copy sits beside the weights: reading them keeps it (set_inference_dtype drops it).
    if (GetParam() == Isa::kAvx512 && cpu_has_bf16()) {
      model.set_inference_dtype(Dtype::kBf16);
      EXPECT_EQ(std::memcmp(model.param_data(), weights.data(), weights.size() * 4), 0);
      EXPECT_EQ(model.inference_dtype(), Dtype::kBf16);
      model.set_inference_dtype(Dtype::kF32);
      EXPECT_EQ(model.inference_dtype(), Dtype::kF32);
    }
  }
}

}  // namespace
}  // namespace vit::test
