// Image transforms against Pillow and torchvision (tests/fixtures/transforms.safetensors, made by
// tests/reference/make_transform_fixtures.py): resizing bit for bit, timm's eval transform in each
// crop mode, RandomResizedCrop's box from the same draws; and the training crop's determinism.
// RandAugment's ops against Pillow (tests/fixtures/rand_augment.safetensors, made by
// tests/reference/make_rand_augment_fixtures.py), its config strings and levels as timm's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <vector>

#include "core/rng.hpp"
#include "data/rand_augment.hpp"
#include "data/resample.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"
#include "vit/safetensors.hpp"
#include "vit/threads.hpp"
#include "vit/transforms.hpp"

namespace vit::test {
namespace {

// Run once per kernel variant (the resampling passes are ops): the same bytes from each.
class TransformFixture : public BackendTest {
 protected:
  static void SetUpTestSuite() {
    file_ = new SafetensorsReader(fixture("transforms.safetensors"));
    cases_ = nlohmann::json::parse(file_->metadata().at("cases"));
  }
  static void TearDownTestSuite() {
    delete file_;
    file_ = nullptr;
  }
  // A source image as decoded: interleaved [h, w, c].
  static Image source(const std::string& name) {
    const TensorInfo& t = file_->info("src." + name);
    Image im;
    im.height = int(t.shape[0]), im.width = int(t.shape[1]), im.channels = int(t.shape[2]);
    for (float v : file_->read_f32("src." + name)) im.pixels.push_back(uint8_t(v));
    return im;
  }
  static std::vector<uint8_t> bytes(const std::string& name) {
    std::vector<uint8_t> out;
    for (float v : file_->read_f32(name)) out.push_back(uint8_t(v));
    return out;
  }
  static Interpolation filter(const nlohmann::json& c) {
    Preprocess p;
    set_field(p, "interpolation", c["filter"].get<std::string>());
    return p.interpolation;
  }
  static SafetensorsReader* file_;
  static nlohmann::json cases_;
};
SafetensorsReader* TransformFixture::file_ = nullptr;
nlohmann::json TransformFixture::cases_;
VIT_BACKEND_SUITE(TransformFixture);

// The first sample that differs, for the failure message.
std::string first_difference(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want) {
  if (got.size() != want.size()) {
    return std::to_string(got.size()) + " samples, want " + std::to_string(want.size());
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      return "sample " + std::to_string(i) + ": " + std::to_string(got[i]) + ", Pillow " +
             std::to_string(want[i]);
    }
  }
  return "";
}

// Every byte as Pillow's Image.resize: shrinking, enlarging, one side only, 1x1, gray and RGB;
// bilinear, bicubic and nearest.
TEST_P(TransformFixture, ResizeIsPillowsBitForBit) {
  for (size_t i = 0; i < cases_["resize"].size(); ++i) {
    const auto& c = cases_["resize"][i];
    const Image im = source(c["src"]);
    const int w = c["w"], h = c["h"];
    std::vector<uint8_t> got(size_t(im.channels) * size_t(w) * size_t(h));
    data::resize_planes(data::Planes::interleaved(im), w, h, filter(c), got.data());
    EXPECT_EQ(first_difference(got, bytes("resize." + std::to_string(i))), "") << c.dump();
  }
}

// A window of the resize is the same window of the whole: what the eval crop computes alone.
TEST_P(TransformFixture, ResizeWindowIsPartOfTheWhole) {
  const Image im = source("c");
  for (Interpolation f : {Interpolation::kBilinear, Interpolation::kBicubic}) {
    std::vector<uint8_t> whole(3 * 90 * 70), part(3 * 20 * 30);
    data::resize_planes(data::Planes::interleaved(im), 90, 70, f, whole.data());
    data::resize_window(data::Planes::interleaved(im), 90, 70, 11, 37, 30, 20, f, part.data());
    for (int c = 0; c < 3; ++c) {
      for (int y = 0; y < 20; ++y) {
        for (int x = 0; x < 30; ++x) {
          ASSERT_EQ(part[size_t((c * 20 + y) * 30 + x)],
                    whole[size_t((c * 70 + 37 + y) * 90 + 11 + x)])
              << c << " " << y << " " << x;
        }
      }
    }
  }
}

// timm's eval transform in each crop mode (center, squash, border with the mean colour), crop_pct
// and filter, as torchvision and timm compute it.
TEST_P(TransformFixture, EvalTransformIsTimms) {
  const std::vector<uint8_t> fill = border_fill(Normalization::preset(Normalization::kImagenet, 3));
  EXPECT_EQ(fill, (std::vector<uint8_t>{124, 116, 104}));
  for (size_t i = 0; i < cases_["eval"].size(); ++i) {
    const auto& c = cases_["eval"][i];
    const Image im = source(c["src"]);
    Preprocess p;
    p.crop_pct = c["crop_pct"];
    set_field(p, "crop_mode", c["mode"]);
    p.interpolation = filter(c);
    const std::vector<uint8_t> f(fill.begin(), fill.begin() + im.channels);
    const std::vector<uint8_t> got = eval_transform(im, c["size"], p, f);
    EXPECT_EQ(first_difference(got, bytes("eval." + std::to_string(i))), "") << c.dump();
  }
}

class ResampleOps : public BackendTest {};
VIT_BACKEND_SUITE(ResampleOps);

// The blocked transpose (16 x 16 tiles and the edges past them) is the transpose, at every size.
TEST_P(ResampleOps, TransposeU8IsATranspose) {
  Rng rng(11);
  for (const auto& [R, W] : std::vector<std::pair<int, int>>{
           {1, 1}, {16, 16}, {17, 33}, {40, 7}, {5, 100}, {64, 48}, {31, 16}}) {
    const int64_t in_ld = W + 3, out_ld = R + 5;  // strides wider than the rows
    std::vector<uint8_t> in(size_t(R * in_ld)), out(size_t(W * out_ld), 0);
    for (uint8_t& v : in) v = uint8_t(rng.below(256));
    ops::transpose_u8(op_context(1), out.data(), out_ld, in.data(), in_ld, R, W);
    for (int y = 0; y < R; ++y) {
      for (int x = 0; x < W; ++x) {
        ASSERT_EQ(out[size_t(x * out_ld + y)], in[size_t(y * in_ld + x)])
            << R << "x" << W << " at " << y << "," << x;
      }
    }
  }
}

// The RGB split-and-transpose: channel c of pixel (y, x) at out[c * plane + x * out_ld + y], for
// whole 16 x 16 tiles and the edges past them.
TEST_P(ResampleOps, TransposeRgbU8SplitsAndTransposes) {
  Rng rng(12);
  for (const auto& [R, W] : std::vector<std::pair<int, int>>{
           {1, 1}, {16, 16}, {17, 33}, {40, 7}, {5, 100}, {64, 48}, {31, 16}}) {
    const int64_t in_ld = 3 * W + 2, out_ld = R + 3, plane = W * out_ld + 5;
    std::vector<uint8_t> in(size_t(R * in_ld)), out(size_t(3 * plane), 0);
    for (uint8_t& v : in) v = uint8_t(rng.below(256));
    ops::transpose_rgb_u8(op_context(1), out.data(), plane, out_ld, in.data(), in_ld, R, W);
    for (int c = 0; c < 3; ++c) {
      for (int y = 0; y < R; ++y) {
        for (int x = 0; x < W; ++x) {
          ASSERT_EQ(out[size_t(c * plane + x * out_ld + y)], in[size_t(y * in_ld + 3 * x + c)])
              << R << "x" << W << " at " << c << "," << y << "," << x;
        }
      }
    }
  }
}

// The pass down the rows is its definition (ops.hpp), exactly: widths that take the blocks of
// four registers, single registers and single columns, with negative weights and sums that clamp
// at 0 and 255.
TEST_P(ResampleOps, ResampleDownU8IsItsDefinition) {
  Rng rng(13);
  for (int W : {1, 7, 16, 31, 64, 65, 100, 129, 341}) {
    const int rows = 12, O = 5, ksize = 7;
    const int64_t in_ld = W + 9, out_ld = W + 4;
    std::vector<uint8_t> in(size_t(rows * in_ld));
    for (uint8_t& v : in) v = uint8_t(rng.below(256));
    std::vector<int> lo(O), n(O);
    std::vector<int32_t> k(size_t(O * ksize), 0);
    for (int o = 0; o < O; ++o) {
      n[size_t(o)] = 1 + int(rng.below(ksize));
      lo[size_t(o)] = int(rng.below(rows - n[size_t(o)] + 1));
      // Weights of (-0.6 .. 1.4) / n in 22 fraction bits: sums within int32, as Pillow's
      // normalised weights keep them.
      for (int t = 0; t < n[size_t(o)]; ++t) {
        k[size_t(o * ksize + t)] = (int32_t(rng.below(1 << 23)) - (6 << 22) / 10) / n[size_t(o)];
      }
    }
    std::vector<uint8_t> out(size_t(O * out_ld), 0);
    ops::resample_down_u8(op_context(1), out.data(), out_ld, in.data(), in_ld, W, O, lo.data(),
                          n.data(), k.data(), ksize);
    int clamped = 0;
    for (int o = 0; o < O; ++o) {
      for (int x = 0; x < W; ++x) {
        int64_t acc = 1 << 21;
        for (int t = 0; t < n[size_t(o)]; ++t) {
          acc += int64_t(in[size_t((lo[size_t(o)] + t) * in_ld + x)]) * k[size_t(o * ksize + t)];
        }
        const int64_t want = std::clamp<int64_t>(acc >> 22, 0, 255);
        clamped += want != acc >> 22;
        ASSERT_EQ(out[size_t(o * out_ld + x)], want) << "W " << W << " at " << o << "," << x;
      }
    }
    if (W >= 64) EXPECT_GT(clamped, 0) << "W " << W << ": no sum reached the clamp";
  }
}

// Draws replayed from a list, as torchvision took them.
struct Replay final : CropDraws {
  std::vector<double> uniforms;
  std::vector<int64_t> integers;
  size_t u = 0, k = 0;
  double uniform(double, double) override { return uniforms.at(u++); }
  int64_t below(int64_t n) override {
    const int64_t v = integers.at(k++);
    EXPECT_LT(v, n);
    return v;
  }
};

TEST_P(TransformFixture, RandomResizedCropBoxIsTorchvisions) {
  int fallbacks = 0;
  for (size_t i = 0; i < cases_["rrc"].size(); ++i) {
    const std::vector<float> row = file_->read_f32("rrc." + std::to_string(i));
    const int w = int(row[0]), h = int(row[1]);
    const size_t n = row.size();
    Replay draws;
    for (size_t j = 2; j + 4 < n; ++j) draws.uniforms.push_back(row[j]);
    const int top = int(row[n - 4]), left = int(row[n - 3]), bh = int(row[n - 2]),
              bw = int(row[n - 1]);
    const bool fallback = draws.uniforms.size() == 20 && (bw == w || bh == h);
    fallbacks += fallback;
    if (!fallback) draws.integers = {top, left};
    const CropBox b = random_resized_crop_box(w, h, 0.08, 4.0 / 3.0, draws);
    EXPECT_EQ(b.top, top) << "case " << i << " (" << w << "x" << h << ")";
    EXPECT_EQ(b.left, left) << "case " << i;
    EXPECT_EQ(b.height, bh) << "case " << i;
    EXPECT_EQ(b.width, bw) << "case " << i;
    EXPECT_EQ(draws.u, draws.uniforms.size()) << "case " << i << ": every draw taken";
  }
  // 5x200 cannot hold a box of ratio 3/4..4/3 covering 8% or more: the fallback, ratio-clamped.
  EXPECT_GE(fallbacks, 1);
}

// The training crop is seeded per sample: the same batch whatever the thread count, and another
// epoch draws other boxes; an ImageList's crop reads its whole image.
// A normalisation that does not cover the channels (a default ModelMeta's is empty) is an error,
// not a read past its end.
TEST(Transforms, NormalizationMustCoverTheChannels) {
  const std::vector<uint8_t> px(3 * 2 * 2, 128);
  std::vector<float> out(px.size());
  expect_error([&] { normalize_image(px.data(), 3, 2, Normalization{}, out.data()); },
               "normalize_image: the normalisation has 0 means and 0 standard deviations for 3 "
               "channels");
  expect_error(
      [&] {
        normalize_image(px.data(), 3, 2, {{0.5f}, {0.5f}}, out.data());
      },
      "has 1 means");
  expect_error(
      [&] {
        normalize_image(px.data(), 1, 2, {{0.5f}, {0.0f}}, out.data());
      },
      "channel 0's normalisation needs a finite mean and a positive std");
  expect_error([&] { denormalize_image(out.data(), 3, 2, {{0.5f}, {0.5f}}); }, "denormalize_image");
  normalize_image(px.data(), 1, 2, {{0.5f}, {0.5f}}, out.data());
  EXPECT_FLOAT_EQ(out[0], (128 / 255.0f - 0.5f) / 0.5f);
}

TEST(Transforms, RandomResizedCropIsSeededPerSample) {
  auto list = std::make_shared<ImageList>();
  list->channels = 3;
  list->image_size = 8;
  Rng rng(5);
  for (int i = 0; i < 6; ++i) {
    const int w = 9 + 3 * i, h = 20 - i;
    std::vector<uint8_t> px(size_t(3 * w * h));
    for (uint8_t& v : px) v = uint8_t(rng.below(256));
    list->add(px.data(), w, h, i % 2);
  }
  const Normalization norm{{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
  AugmentOptions aug;
  aug.rrc = true;
  const std::vector<int64_t> idx = {5, 0, 3, 1, 4, 2};
  const int before = num_threads();
  auto batch = [&](int threads, int64_t epoch, const AugmentOptions& a) {
    set_num_threads(threads);
    std::vector<float> images(6 * 3 * 64);
    std::vector<int32_t> labels(6);
    make_batch(*list, idx.data(), 6, norm, a, 9, epoch, images.data(), labels.data());
    set_num_threads(before);
    return images;
  };
  const std::vector<float> one = batch(1, 0, aug);
  EXPECT_EQ(batch(2, 0, aug), one);
  EXPECT_NE(batch(1, 1, aug), one);
  // Without augmentation: each image's centred 8 x 8.
  const std::vector<float> plain = batch(1, 0, AugmentOptions{});
  std::vector<uint8_t> centre(3 * 64);
  list->centre(5, nullptr, centre.data());
  std::vector<float> want(3 * 64);
  normalize_image(centre.data(), 3, 8, norm, want.data());
  EXPECT_EQ(std::vector<float>(plain.begin(), plain.begin() + 3 * 64), want);
}

// CutMix's box is timm's rand_bbox: sides int(S sqrt(1 - lam)), centred at the draw, clipped,
// and lam corrected to the share it leaves.
TEST(Transforms, CutMixBoxIsTimms) {
  // S 32, lam 0.75: cut int(32 * 0.5) = 16, from 20 - 8 to 20 + 8 rows, 2 - 8 -> 0 to 10 columns.
  Mixed m = cutmix_box(32, 0.75, 20, 2);
  EXPECT_EQ(m.top, 12);
  EXPECT_EQ(m.height, 16);
  EXPECT_EQ(m.left, 0);
  EXPECT_EQ(m.width, 10);
  EXPECT_FLOAT_EQ(m.lam, float(1.0 - 16.0 * 10 / 1024));
  // lam 0.1 at S 7: cut int(7 * sqrt(0.9)) = 6 (half 3), centre (6, 6): rows and columns 3..7.
  m = cutmix_box(7, 0.1, 6, 6);
  EXPECT_EQ(m.top, 3);
  EXPECT_EQ(m.height, 4);
  EXPECT_EQ(m.width, 4);
  EXPECT_FLOAT_EQ(m.lam, float(1.0 - 16.0 / 49));
}

// Mixup mixes each image with its partner in the reversed batch at lam; CutMix swaps the box
// between partners; the draws depend on (seed, epoch, step) alone; lam follows Beta(a, a).
TEST(Transforms, MixBatchMixesPartnersAsDrawn) {
  const int B = 5, C = 2, S = 6, per = C * S * S;
  const std::vector<float> x = random_vector(B * per, 3);
  AugmentOptions aug;
  aug.mixup_alpha = 0.8f;
  std::vector<float> y = x;
  const Mixed m = mix_batch(y.data(), B, C, S, aug, 1, 2, 3);
  ASSERT_FALSE(m.cutmix);
  ASSERT_LT(m.lam, 1.0f);
  for (int j = 0; j < B; ++j) {
    for (int k = 0; k < per; ++k) {
      const float own = x[size_t(j * per + k)], other = x[size_t((B - 1 - j) * per + k)];
      const float want = j == B / 2 ? own : m.lam * own + (1.0f - m.lam) * other;
      ASSERT_EQ(y[size_t(j * per + k)], want) << j << " " << k;
    }
  }
  std::vector<float> again = x;
  EXPECT_EQ(mix_batch(again.data(), B, C, S, aug, 1, 2, 3).lam, m.lam);
  EXPECT_EQ(again, y);
  EXPECT_NE(mix_batch(again.data(), B, C, S, aug, 1, 2, 4).lam, m.lam);
  // CutMix alone: inside the box each image holds its partner's pixels, outside its own.
  aug.mixup_alpha = 0.0f;
  aug.cutmix_alpha = 1.0f;
  Mixed cm;
  for (int step = 0; step < 100 && (cm.width == 0 || cm.height == 0); ++step) {
    std::copy(x.begin(), x.end(), y.begin());
    cm = mix_batch(y.data(), B, C, S, aug, 1, 2, step);
  }
  ASSERT_TRUE(cm.cutmix);
  ASSERT_GT(cm.width * cm.height, 0);
  EXPECT_FLOAT_EQ(cm.lam, 1.0f - float(cm.width * cm.height) / (S * S));
  for (int j = 0; j < B; ++j) {
    for (int c = 0; c < C; ++c) {
      for (int r = 0; r < S; ++r) {
        for (int q = 0; q < S; ++q) {
          const bool in =
              r >= cm.top && r < cm.top + cm.height && q >= cm.left && q < cm.left + cm.width;
          const int from = in ? B - 1 - j : j, k = (c * S + r) * S + q;
          ASSERT_EQ(y[size_t(j * per + k)], x[size_t(from * per + k)]) << j << c << r << q;
        }
      }
    }
  }
  // mix_prob 0 and no alphas leave the batch alone.
  aug.mix_prob = 0.0f;
  y = x;
  EXPECT_EQ(mix_batch(y.data(), B, C, S, aug, 1, 2, 3).lam, 1.0f);
  EXPECT_EQ(y, x);
  // lam ~ Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)); over n = 4000 draws the sample mean
  // is within 5 standard errors (sqrt(var / n)) of 1/2, and the variance within 10%.
  for (float a : {0.2f, 0.8f, 2.0f}) {
    AugmentOptions beta;
    beta.mixup_alpha = a;
    const int n = 4000;
    double sum = 0, sq = 0;
    float one[2] = {0, 1};
    for (int step = 0; step < n; ++step) {
      const double l = mix_batch(one, 2, 1, 1, beta, 9, 0, step).lam;
      sum += l, sq += l * l;
    }
    const double mean = sum / n, var = sq / n - mean * mean, want = 1.0 / (4 * (2 * a + 1));
    EXPECT_NEAR(mean, 0.5, 5 * std::sqrt(want / n)) << "alpha " << a;
    EXPECT_NEAR(var, want, 0.1 * want) << "alpha " << a;
  }
}

// Each RandAugment op with its argument gives Pillow's bytes: the lookup tables, the four
// enhancements (blends inside and outside [0, 1]), rotations (the transposes and the affine map)
// and shears and translations with the nearest, bilinear and bicubic filters, on gray and RGB.
TEST(RandAugment, OpsArePillowsBitForBit) {
  SafetensorsReader file(fixture("rand_augment.safetensors"));
  const nlohmann::json cases = nlohmann::json::parse(file.metadata().at("cases"));
  ASSERT_EQ(cases.size(), 252u);  // every case the script writes
  auto planar = [&](const std::string& name, int& C, int& h, int& w) {
    const TensorInfo& t = file.info(name);
    h = int(t.shape[0]), w = int(t.shape[1]), C = int(t.shape[2]);
    const std::vector<float> v = file.read_f32(name);
    std::vector<uint8_t> out(v.size());
    for (int c = 0; c < C; ++c) {
      for (int i = 0; i < h * w; ++i) out[size_t(c * h * w + i)] = uint8_t(v[size_t(i * C + c)]);
    }
    return out;
  };
  std::map<std::string, data::AugOp> ops;
  for (int k = 0; k < data::kNumAugOps; ++k) ops[data::to_string(data::AugOp(k))] = data::AugOp(k);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    int C = 0, h = 0, w = 0;
    std::vector<uint8_t> got = planar("src." + c["source"].get<std::string>(), C, h, w);
    const std::vector<uint8_t> want = planar("out." + std::to_string(i), C, h, w);
    Preprocess p;
    set_field(p, "interpolation", c["filter"].get<std::string>());
    const uint8_t fill[3] = {uint8_t(C == 1 ? 128 : 124), 116, 104};  // the fixture's
    ASSERT_TRUE(ops.count(c["op"].get<std::string>())) << c.dump();
    data::apply_aug_op(ops[c["op"]], c["arg"].get<double>(), p.interpolation, fill,
                       {got.data(), C, h, w});
    EXPECT_EQ(first_difference(got, want), "") << c.dump();
  }
}

// timm's config strings: the sections in any order, its defaults, and a message for the rest.
TEST(RandAugment, ParsesTimmsConfigStrings) {
  data::RandAugment ra = data::RandAugment::parse("rand-m9-mstd0.5-inc1");
  EXPECT_EQ(ra.magnitude, 9);
  EXPECT_EQ(ra.num_layers, 2);
  EXPECT_EQ(ra.prob, 0.5);
  EXPECT_EQ(ra.magnitude_std, 0.5);
  EXPECT_EQ(ra.magnitude_max, 10);
  EXPECT_TRUE(ra.increasing);
  ra = data::RandAugment::parse("rand-n3-p1.0-mmax20-mstd101-m7");
  EXPECT_EQ(ra.magnitude, 7);
  EXPECT_EQ(ra.num_layers, 3);
  EXPECT_EQ(ra.prob, 1.0);
  EXPECT_TRUE(std::isinf(ra.magnitude_std));  // above 100: uniform in [0, m]
  EXPECT_EQ(ra.magnitude_max, 20);
  EXPECT_FALSE(ra.increasing);
  ra = data::RandAugment::parse("rand");
  EXPECT_EQ(ra.magnitude, 10);
  EXPECT_FALSE(data::RandAugment::parse("rand-inc0").increasing);
  for (const char* bad : {"augmix-m3", "rand-", "rand-m", "rand-m9x", "rand-m9.5", "rand-p1.5",
                          "rand-inc2", "rand-q4", "rand-tweights", "randm9", "rand-mmax0"}) {
    EXPECT_THROW(
        {
          try {
            data::RandAugment::parse(bad);
          } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("rand-m9-mstd0.5-inc1"), std::string::npos)
                << bad << ": " << e.what();
            throw;
          }
        },
        Error)
        << bad;
  }
}

// The ops' arguments at a magnitude are timm's level_to_arg functions' (m 9: rotations of +-27
// degrees, shears +-0.27, translations +-0.45 * 0.9, enhancements 1.72 or 1 +- 0.81), and the
// signed ones take either sign.
TEST(RandAugment, ArgumentsAreTimmsLevels) {
  using data::AugOp;
  Rng rng(3);
  auto arg = [&](AugOp op, bool inc, double m) { return data::aug_op_arg(op, inc, m, rng); };
  EXPECT_EQ(arg(AugOp::kPosterize, false, 9), 3);     // int(0.9 * 4)
  EXPECT_EQ(arg(AugOp::kPosterize, true, 9), 1);      // 4 - 3
  EXPECT_EQ(arg(AugOp::kSolarize, false, 9), 230);    // int(0.9 * 256)
  EXPECT_EQ(arg(AugOp::kSolarize, true, 9), 26);      // 256 - 230
  EXPECT_EQ(arg(AugOp::kSolarizeAdd, false, 9), 99);  // int(0.9 * 110)
  EXPECT_EQ(arg(AugOp::kSolarizeAdd, false, 10), 110);
  EXPECT_DOUBLE_EQ(arg(AugOp::kColor, false, 9), 0.9 * 1.8 + 0.1);
  EXPECT_DOUBLE_EQ(arg(AugOp::kBrightness, false, 0), 0.1);
  EXPECT_DOUBLE_EQ(arg(AugOp::kContrast, true, 10.0 * 1.0 / 0.9), 0.1);  // max(0.1, 1 - 1)
  std::map<AugOp, std::set<double>> seen;
  for (int i = 0; i < 64; ++i) {
    for (AugOp op : {AugOp::kRotate, AugOp::kShearX, AugOp::kTranslateYRel, AugOp::kSharpness}) {
      seen[op].insert(arg(op, true, 9));
    }
  }
  EXPECT_EQ(seen[AugOp::kRotate], (std::set<double>{-0.9 * 30, 0.9 * 30}));
  EXPECT_EQ(seen[AugOp::kShearX], (std::set<double>{-0.9 * 0.3, 0.9 * 0.3}));
  EXPECT_EQ(seen[AugOp::kTranslateYRel], (std::set<double>{-0.9 * 0.45, 0.9 * 0.45}));
  EXPECT_EQ(seen[AugOp::kSharpness], (std::set<double>{1.0 - 0.9 * 0.9, 1.0 + 0.9 * 0.9}));
}

// In a batch: seeded per sample (the same for any thread count, other draws in another epoch);
// with no ops drawn (n0) exactly the batch without RandAugment; p1 changes nearly every image.
TEST(RandAugment, BatchesAreSeededPerSample) {
  auto array = std::make_shared<ImageArray>();
  array->channels = 3;
  array->image_size = 10;
  Rng rng(8);
  array->pixels.resize(size_t(16 * 3 * 100));
  for (uint8_t& v : array->pixels) v = uint8_t(rng.below(256));
  array->labels.assign(16, 0);
  const Normalization norm{{0.5f, 0.4f, 0.3f}, {0.25f, 0.2f, 0.3f}};
  std::vector<int64_t> idx(16);
  std::iota(idx.begin(), idx.end(), 0);
  const int before = num_threads();
  auto batch = [&](int threads, int64_t epoch, const AugmentOptions& a) {
    set_num_threads(threads);
    std::vector<float> images(16 * 300);
    std::vector<int32_t> labels(16);
    make_batch(*array, idx.data(), 16, norm, a, 4, epoch, images.data(), labels.data());
    set_num_threads(before);
    return images;
  };
  AugmentOptions aug{.crop_padding = 1, .hflip = true, .rand_augment = "rand-m9-mstd0.5-inc1"};
  const std::vector<float> one = batch(1, 0, aug);
  EXPECT_EQ(batch(2, 0, aug), one);
  EXPECT_NE(batch(1, 1, aug), one);
  AugmentOptions none = aug;
  none.rand_augment = "rand-n0";
  AugmentOptions off = aug;
  off.rand_augment = "";
  EXPECT_EQ(batch(1, 0, none), batch(1, 0, off));
  AugmentOptions always = off;
  always.rand_augment = "rand-m9-p1";
  const std::vector<float> a = batch(1, 0, always), b = batch(1, 0, off);
  int changed = 0;
  for (int i = 0; i < 16; ++i) {
    changed += !std::equal(a.begin() + i * 300, a.begin() + (i + 1) * 300, b.begin() + i * 300);
  }
  EXPECT_GE(changed, 14);  // two ops at m9 leave an image unchanged only by chance
  AugmentOptions bad = aug;
  bad.rand_augment = "rand-x";
  EXPECT_THROW(batch(1, 0, bad), Error);
}

}  // namespace
}  // namespace vit::test
