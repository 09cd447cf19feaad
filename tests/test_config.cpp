// vit::Config: every impossible configuration is refused with a message naming the field, the
// checkpoint JSON round-trips, and the parameter / FLOP counts match hand computations.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "vit/config.hpp"
#include "vit/error.hpp"

namespace vit {
namespace {

void expect_rejected(const std::function<void(Config&)>& edit, const std::string& phrase) {
  Config c;
  edit(c);
  try {
    c.validate();
    ADD_FAILURE() << "accepted a config that should fail with '" << phrase << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos)
        << "message '" << e.what() << "' does not mention '" << phrase << "'";
  }
}

TEST(Config, DefaultIsValid) {
  EXPECT_NO_THROW(Config{}.validate());
}

TEST(Config, RejectsImpossibleShapes) {
  // A patch that does not divide the image is timm's shape (the last rows and columns unseen),
  // but not with vitcpp's stem.
  Config uneven;
  uneven.image_size = 30;
  EXPECT_NO_THROW(uneven.validate());
  EXPECT_EQ(uneven.grid(), 7);
  EXPECT_NE(uneven.variants().find("patches covering 28 x 28 pixels (the last 2 rows and columns "
                                   "unseen)"),
            std::string::npos)
      << uneven.variants();
  expect_rejected(
      [](Config& c) {
        c.image_size = 30;
        c.stem_channels = 8;
      },
      "a convolutional stem needs an image_size divisible by patch_size");
  expect_rejected([](Config& c) { c.image_size = 0; }, "image_size");
  expect_rejected([](Config& c) { c.patch_size = 0; }, "patch_size");
  expect_rejected([](Config& c) { c.patch_size = 56; }, "patch_size");
  expect_rejected([](Config& c) { c.channels = 0; }, "channels");
  expect_rejected([](Config& c) { c.dim = 0; }, "dim");
  expect_rejected([](Config& c) { c.dim = 66; }, "not divisible by heads");
  expect_rejected([](Config& c) { c.heads = 0; }, "heads");
  expect_rejected([](Config& c) { c.depth = 0; }, "depth");
  expect_rejected([](Config& c) { c.depth = -2; }, "depth");
  expect_rejected([](Config& c) { c.mlp_dim = 0; }, "mlp_dim");
  expect_rejected([](Config& c) { c.num_classes = 1; }, "num_classes");
  expect_rejected([](Config& c) { c.ln_eps = 0.0f; }, "ln_eps");
  expect_rejected([](Config& c) { c.ln_eps = -1e-6f; }, "ln_eps");
  expect_rejected(
      [](Config& c) {
        c.image_size = 65536;
        c.patch_size = 1;
      },
      "tokens");
}

TEST(Config, JsonRoundTripAndStrictParsing) {
  // The keys, their order and the values checkpoints have always had (the default is tiny28's),
  // then the timm variants' and the convolutional stem's (off by default).
  const std::string old_keys =
      "{\"image_size\":28,\"channels\":1,\"patch_size\":4,\"dim\":64,\"depth\":6,\"heads\":4,"
      "\"mlp_dim\":256,\"num_classes\":10,\"pos_embed\":\"learned\",\"pool\":\"cls\","
      "\"qkv_bias\":true,\"ln_eps\":1e-06";
  EXPECT_EQ(
      Config{}.to_json(),
      old_keys +
          ",\"reg_tokens\":0,\"dist_token\":false,\"no_embed_class\":false,\"layer_scale\":"
          "false,\"norm_pre\":false,\"patch_bias\":true,\"qk_norm\":false,\"act\":"
          "\"gelu\",\"mean_class_token\":false,\"mean_after_norm\":false,\"stem_channels\":0}");
  // A checkpoint written before the variants existed reads as the same model; one with norm_pre
  // written before patch_bias existed has its patch bias (vitcpp's models always had one).
  EXPECT_EQ(Config::from_json(old_keys + "}"), Config{});
  EXPECT_TRUE(Config::from_json(old_keys + ",\"norm_pre\":true}").patch_bias);
  Config c;
  c.pos_embed = PosEmbed::kSinCos;
  c.pool = Pool::kMean;
  c.qkv_bias = false;
  c.ln_eps = 1e-5f;
  const std::string j = c.to_json();
  EXPECT_NE(j.find("\"ln_eps\":1e-05"), std::string::npos) << j;
  EXPECT_EQ(Config::from_json(j), c);
  EXPECT_THROW(Config::from_json("not json"), Error);
  EXPECT_THROW(Config::from_json("[1, 2]"), Error);
  std::string extra = j;
  extra.insert(1, "\"surprise\":1,");
  EXPECT_THROW(Config::from_json(extra), Error);
  std::string bad_pool = j;
  bad_pool.replace(bad_pool.find("\"mean\""), 6, "\"max\"");
  EXPECT_THROW(Config::from_json(bad_pool), Error);
  std::string bad_shape = j;
  bad_shape.replace(bad_shape.find("\"heads\":4"), 9, "\"heads\":5");
  EXPECT_THROW(Config::from_json(bad_shape), Error);  // from_json validates
}

TEST(Config, CountsMatchHandComputation) {
  Config c;  // 28x28x1, patch 4, D 64, depth 6, H 4, M 256, K 10, cls: the tiny28 shape
  const int64_t D = 64, M = 256, N = 50;
  const int64_t block = 2 * D + 3 * D * D + 3 * D + D * D + D + 2 * D + M * D + M + D * M + D;
  EXPECT_EQ(c.num_params(), 16 * D + D + N * D + D + 6 * block + 2 * D + 10 * D + 10);
  EXPECT_EQ(c.num_params(), 305'034);
  const int64_t flops = 2 * 49 * 16 * D +
                        6 * (2 * N * D * 3 * D + 4 * N * N * D + 2 * N * D * D + 4 * N * D * M) +
                        2 * D * 10;
  EXPECT_EQ(c.forward_flops(), flops);
  // A 32-channel stem: its 3 x 3 convolution (32 x 1 x 9 and a bias) at 14 x 14 positions, and
  // patch_embed.proj 2 x 2 on its 32 channels instead of 4 x 4 on the image's one.
  c.stem_channels = 32;
  EXPECT_EQ(c.patch_dim(), 128);
  EXPECT_EQ(c.num_params(), 305'034 + 32 * 10 + (128 - 16) * D);
  EXPECT_EQ(c.forward_flops(), flops + 2 * 196 * 9 * 32 + 2 * 49 * (128 - 16) * D);
  c.patch_size = 7;
  EXPECT_THROW(c.validate(), Error);  // the stem halves the image: P must be even
}

}  // namespace
}  // namespace vit
