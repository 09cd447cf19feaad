// Attention maps: rollout, the last block's and its heads' against PyTorch's float64 products
// (tests/reference/make_attention_fixture.py), the forward that keeps the attention on a model
// whose attention is known in closed form, the heat map's geometry, and the PNG pictures.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "idx_writer.hpp"
#include "test_util.hpp"
#include "vit/attention.hpp"
#include "vit/image.hpp"
#include "vit/model.hpp"
#include "vit/picture.hpp"
#include "vit/safetensors.hpp"

namespace vit::test {
namespace {

// The fixture's shape: 3 blocks, 2 heads, a 3 x 3 patch grid (image 6, patch 2).
Config fixture_config(bool class_token) {
  Config c = quadrant_config();
  c.image_size = 6;
  c.depth = 3;
  if (!class_token) {
    c.pool = Pool::kMean;
    c.reg_tokens = 2;
  }
  return c;
}

TEST(Attention, MapsMatchPyTorch) {
  SafetensorsReader f(fixture("attention.safetensors"));
  for (const char* layout : {"cls", "mean"}) {
    SCOPED_TRACE(layout);
    const Config c = fixture_config(std::string(layout) == "cls");
    const std::vector<float> att = f.read_f32(std::string(layout) + ".att");
    ASSERT_EQ(int64_t(att.size()), int64_t(c.depth) * c.heads * c.num_tokens() * c.num_tokens());
    for (AttentionMethod m :
         {AttentionMethod::kRollout, AttentionMethod::kLast, AttentionMethod::kHeads}) {
      const std::string name = std::string(layout) + "." + attention_method_name(m);
      const std::vector<float> want = f.read_f32(name);
      const AttentionMaps got = attention_maps(c, att.data(), m);
      EXPECT_EQ(got.grid, 3);
      EXPECT_EQ(got.class_token, std::string(layout) == "cls");
      std::vector<float> flat;
      for (const std::vector<double>& map : got.maps)
        flat.insert(flat.end(), map.begin(), map.end());
      ASSERT_EQ(flat.size(), want.size()) << name;
      // Both sides in float64 from the same float32 inputs, in different orders (a few dozen
      // operations each), but vitcpp keeps each block's heads' mean rounded to float32 (2^-24
      // relative, carried through 3 blocks): within the reference's own float32 storage.
      expect_close(name, flat.data(), want, 1e-9, 1e-6);
    }
  }
}

// With the query and key weights zero every score is 0 and every attention row uniform, 1/N. Then
// A' = (J/N + I) / 2 with J/N idempotent, so A'^L = 2^-L (I + (2^L - 1) J/N): the class token's row
// gives each patch (1 - 2^-L) / N; the last block's gives 1/N. The first block left random shows
// that each block's probabilities reach their own place as the forward makes them.
TEST(Attention, ForwardKeepsTheAttentionOfAKnownModel) {
  Config c = quadrant_config();
  c.depth = 3;
  Model model(c);
  model.init(7);
  const int D = c.dim, N = c.num_tokens();
  auto zero_scores = [&](int l) {
    const std::string b = "blocks." + std::to_string(l) + ".attn.qkv.";
    TensorView w = model.param(b + "weight"), bias = model.param(b + "bias");
    std::fill(w.data, w.data + int64_t(2) * D * D, 0.0f);  // rows of q and k: [3D, D]
    std::fill(bias.data, bias.data + 2 * D, 0.0f);
  };
  for (int l = 0; l < c.depth; ++l) zero_scores(l);
  const std::vector<float> image =
      random_vector(int64_t(c.channels) * c.image_size * c.image_size, 3);
  std::vector<float> logits(c.num_classes), predicted(c.num_classes);
  AttentionProbs probs;  // made for the model's shape by the call
  model.forward_attention(image.data(), logits.data(), probs);
  ASSERT_EQ(probs.depth, c.depth);
  ASSERT_EQ(probs.tokens, N);
  for (float a : probs.mean) ASSERT_FLOAT_EQ(a, 1.0f / N);
  for (float a : probs.last) ASSERT_FLOAT_EQ(a, 1.0f / N);
  model.predict(image.data(), 1, predicted.data());
  expect_close("logits against predict", logits.data(), predicted, 1e-6, 1e-5);

  const AttentionMaps rollout = attention_maps(c, probs, AttentionMethod::kRollout);
  const AttentionMaps last = attention_maps(c, probs, AttentionMethod::kLast);
  ASSERT_EQ(rollout.maps.size(), 1u);
  ASSERT_EQ(int(rollout.maps[0].size()), c.num_patches());
  for (int p = 0; p < c.num_patches(); ++p) {
    EXPECT_NEAR(rollout.maps[0][p], (1 - std::pow(2.0, -c.depth)) / N, 1e-7) << "patch " << p;
    EXPECT_NEAR(last.maps[0][p], 1.0 / N, 1e-7) << "patch " << p;
  }
  EXPECT_EQ(attention_maps(c, probs, AttentionMethod::kHeads).maps.size(), size_t(c.heads));

  // Block 0 with random (and sharpened) queries and keys: its rows are softmaxes, not uniform;
  // blocks 1 and 2 stay uniform, the last block's heads too.
  model.init(7);  // every parameter drawn again
  zero_scores(1);
  zero_scores(2);
  TensorView q1 = model.param("blocks.0.attn.qkv.weight");  // init's scale is small: sharpen
  for (int64_t i = 0; i < int64_t(D) * D; ++i) q1.data[i] *= 30.0f;
  model.forward_attention(image.data(), logits.data(), probs);
  const int64_t nn = int64_t(N) * N;
  double spread = 0;
  for (int64_t i = 0; i < N; ++i) {
    double row = 0;
    for (int64_t j = 0; j < N; ++j) {
      const float a = probs.mean[size_t(i * N + j)];
      row += a;
      spread = std::max(spread, std::abs(a - 1.0 / N));
      ASSERT_FLOAT_EQ(probs.mean[size_t(nn + i * N + j)], 1.0f / N) << "block 1";
      ASSERT_FLOAT_EQ(probs.mean[size_t(2 * nn + i * N + j)], 1.0f / N) << "block 2";
    }
    EXPECT_NEAR(row, 1.0, 1e-5) << "block 0, row " << i;
  }
  EXPECT_GT(spread, 1e-3) << "block 0's attention came out uniform";
  for (float a : probs.last) ASSERT_FLOAT_EQ(a, 1.0f / N);
}

// A map with one hot patch, upsampled: the hottest pixel lies in that patch's square, for several
// grids (patch sizes) and picture sizes; a constant map stays constant; the square's centre pixel
// of an odd-sized cell is the patch's own value.
TEST(Attention, HeatMapGeometry) {
  struct Case {
    int grid, size;
  };
  for (const Case cs : {Case{7, 224}, Case{14, 224}, Case{16, 224}, Case{4, 32}, Case{3, 21}}) {
    for (int hot : {0, cs.grid + 1, cs.grid * cs.grid - 1}) {
      std::vector<double> map(size_t(cs.grid) * cs.grid, 0.0);
      map[size_t(hot)] = 1.0;
      const std::vector<double> up = upsample_map(map, cs.grid, cs.size);
      const size_t best = std::max_element(up.begin(), up.end()) - up.begin();
      const int y = int(best) / cs.size, x = int(best) % cs.size;
      const int r = hot / cs.grid, col = hot % cs.grid;
      EXPECT_TRUE(y >= r * cs.size / cs.grid && y < (r + 1) * cs.size / cs.grid &&
                  x >= col * cs.size / cs.grid && x < (col + 1) * cs.size / cs.grid)
          << "grid " << cs.grid << " size " << cs.size << " hot " << hot << ": peak at (" << y
          << ", " << x << ")";
    }
    const std::vector<double> flat =
        upsample_map(std::vector<double>(size_t(cs.grid) * cs.grid, 0.25), cs.grid, cs.size);
    for (double v : flat) ASSERT_DOUBLE_EQ(v, 0.25);
  }
  // Patches that cover 28 of 30 pixels (extent 28/30): the heat lies on the first 28 rows and
  // columns, with the map's peak in the last patch's square; the 2 past them get none.
  {
    std::vector<double> hot(49, 0.0);
    hot[48] = 1.0;
    const RgbImage grey{30, 30, std::vector<uint8_t>(30 * 30 * 3, 128)};
    const RgbImage over = heat_overlay(grey, hot, 7, 0.6, 28.0 / 30);
    const RgbImage cold = heat_overlay(grey, std::vector<double>(49, 0.0), 7, 0.6);
    auto px = [](const RgbImage& im, int y, int x) {
      return std::vector<uint8_t>(&im.rgb[(size_t(y) * 30 + x) * 3],
                                  &im.rgb[(size_t(y) * 30 + x) * 3] + 3);
    };
    for (int i = 0; i < 30; ++i) {
      for (int j : {28, 29}) {
        EXPECT_EQ(px(over, i, j), px(cold, i, j))
            << "heat past the patches at (" << i << ", " << j << ")";
        EXPECT_EQ(px(over, j, i), px(cold, j, i))
            << "heat past the patches at (" << j << ", " << i << ")";
      }
    }
    EXPECT_NE(px(over, 26, 26), px(cold, 26, 26)) << "no heat in the hot patch (24..27)";
  }
  std::vector<double> map = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<double> up = upsample_map(map, 3, 21);  // cells of 7 pixels, centres 3, 10, 17
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c)
      EXPECT_DOUBLE_EQ(up[size_t(3 + 7 * r) * 21 + 3 + 7 * c], map[r * 3 + c]);
  }
}

// The picture: a PNG that decodes back to the layout's size, with the heat map's colours in it.
TEST(Attention, PanelsDecodeBackAsPng) {
  if (!png_supported()) GTEST_SKIP() << "built without cairo";
  std::vector<uint8_t> gray(28 * 28);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = uint8_t(i % 28 * 9);
  const RgbImage image = to_rgb(gray.data(), 1, 28, 8);
  ASSERT_EQ(image.width, 224);
  std::vector<double> map(49, 0.0);
  map[24] = 1.0;
  const std::vector<Panel> panels = {{image, "input"},
                                     {heat_overlay(image, map, 7), "rollout"},
                                     {image, "a caption much longer than the panel is wide, cut"}};
  const std::string png = png_panels(panels, 2, "title");
  TempDir dir("attention-png");
  const std::string path = dir / "p.png";
  std::ofstream(path, std::ios::binary) << png;
  const Image back = decode_image(path);
  // 2 columns of 224 with 12-pixel margins; 2 rows of 224 + caption 24 + margin 12, title 30.
  EXPECT_EQ(back.width, 12 + 2 * (224 + 12));
  EXPECT_EQ(back.height, 30 + 2 * (224 + 24 + 12));
  ASSERT_EQ(back.channels, 3);
  int distinct = 0;
  std::vector<bool> seen(1 << 24);
  for (size_t i = 0; i + 2 < back.pixels.size(); i += 3) {
    const int v = back.pixels[i] << 16 | back.pixels[i + 1] << 8 | back.pixels[i + 2];
    if (!seen[size_t(v)]) seen[size_t(v)] = true, ++distinct;
  }
  EXPECT_GT(distinct, 100) << "the picture is (nearly) constant";
  // A title wider than the panels goes on to a second line, 20 pixels lower.
  const std::string two_lines = png_panels(
      panels, 2,
      "a_file_name_of_some_length.png: tabby, tabby cat (41.5%); rollout, mean over the patch "
      "tokens (which the model averages)");
  std::ofstream(path, std::ios::binary) << two_lines;
  EXPECT_EQ(decode_image(path).height, 30 + 20 + 2 * (224 + 24 + 12));
}

// Text that is not UTF-8 (a Latin-1 file name) is drawn with U+FFFD: cairo, given it, stops
// drawing, which left every later panel white. And inputs of any channel count are drawn.
TEST(Attention, PanelsSurviveTextThatIsNotUtf8) {
  if (!png_supported()) GTEST_SKIP() << "built without cairo";
  // 4 channels (RGBA): its first three; 2 (grey and alpha): its first.
  std::vector<uint8_t> rgba(4 * 2 * 2), ga(2 * 2 * 2);
  for (size_t i = 0; i < rgba.size(); ++i) rgba[i] = uint8_t(10 * i + 1);
  for (size_t i = 0; i < ga.size(); ++i) ga[i] = uint8_t(30 * i + 1);
  const RgbImage four = to_rgb(rgba.data(), 4, 2), two = to_rgb(ga.data(), 2, 2);
  EXPECT_EQ(four.rgb, (std::vector<uint8_t>{1, 41, 81, 11, 51, 91, 21, 61, 101, 31, 71, 111}));
  EXPECT_EQ(two.rgb, (std::vector<uint8_t>{1, 1, 1, 31, 31, 31, 61, 61, 61, 91, 91, 91}));

  std::vector<uint8_t> black(28 * 28, 0);
  const RgbImage image = to_rgb(black.data(), 1, 28, 2);
  const std::vector<Panel> panels = {{image, "caf\xe9.png"}, {image, "\xc3"}};
  const std::string png = png_panels(panels, 1, "caf\xe9.png: 3 (91.3%)");
  TempDir dir("attention-utf8");
  const std::string path = dir / "p.png";
  std::ofstream(path, std::ios::binary) << png;
  const Image back = decode_image(path);
  // The second panel (under the first, its caption and the margin) is black.
  const int y = 30 + 56 + 24 + 12 + 28, x = 12 + 28;
  const uint8_t* px = &back.pixels[(size_t(y) * back.width + x) * 3];
  EXPECT_EQ(px[0] + px[1] + px[2], 0) << "the second panel was not drawn";
}

}  // namespace
}  // namespace vit::test
