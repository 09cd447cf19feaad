// The whole model against PyTorch float64 fixtures (model_{a..k}.safetensors; d, e and f are
// timm's variants: register tokens, no_embed_class, LayerScale, norm_pre, qk-norm, QuickGELU,
// DeiT's distillation token; g and h drop-path; i and j average pooling's variants; k a
// convolutional stem): logits, loss, every parameter gradient, and five AdamW steps; plus init,
// names and memory behaviour.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "model/executor.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"
#include "vit/classify.hpp"
#include "vit/error.hpp"
#include "vit/model.hpp"
#include "vit/optim.hpp"
#include "vit/threads.hpp"
#include "vit/train.hpp"

namespace vit::test {
namespace {

constexpr double kFwdAtol = 1e-5, kFwdRtol = 1e-4, kGradAtol = 1e-4, kGradRtol = 1e-3;

struct Loaded {
  Config cfg;
  nlohmann::json recipe;
  std::vector<float> images, logits;
  std::vector<float> drop_path;  // drop-path's factors [B, depth, 2] (empty: none)
  std::vector<int32_t> labels;
  float loss = 0;
  int B = 0;
};

// Builds the model of a fixture file with the fixture's weights; every model parameter must be in
// the file, and every parameter-like name in the file must be a model parameter.
Loaded load_fixture(const SafetensorsReader& f, Model** out) {
  Loaded L;
  L.cfg = Config::from_json(f.metadata().at("config"));
  L.recipe = nlohmann::json::parse(f.metadata().at("recipe"));
  auto* model = new Model(L.cfg);
  for (const ParamInfo& p : model->params()) {
    EXPECT_TRUE(f.contains(p.name)) << "fixture lacks parameter " << p.name;
    EXPECT_EQ(f.info(p.name).shape, p.shape) << p.name;
    f.read_f32(p.name, model->param(p.name).data, p.numel);
  }
  for (const TensorInfo& t : f.tensors()) {
    const bool other = t.name.starts_with("input.") || t.name.starts_with("out.") ||
                       t.name.starts_with("grad.") || t.name.starts_with("adamw.");
    if (!other) EXPECT_NO_THROW(model->param_info(t.name)) << "unexpected tensor " << t.name;
  }
  L.images = f.read_f32("input.images");
  auto fl = f.read_f32("input.labels");
  L.labels.assign(fl.begin(), fl.end());
  L.B = int(fl.size());
  L.logits = f.read_f32("out.logits");
  if (f.contains("input.drop_path")) L.drop_path = f.read_f32("input.drop_path");
  L.loss = f.read_f32("out.loss")[0];
  *out = model;
  return L;
}

class ModelFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(ModelFixture, ForwardBackwardMatchPyTorch) {
  SafetensorsReader f(fixture(GetParam()));
  Model* raw;
  Loaded L = load_fixture(f, &raw);
  std::unique_ptr<Model> model(raw);
  const int B = L.B, K = L.cfg.num_classes;
  const float smoothing = L.recipe["label_smoothing"].get<float>();

  model->enable_training(B + 3);  // a larger arena than the batch must not matter
  const float* drop = L.drop_path.empty() ? nullptr : L.drop_path.data();
  const float* logits = model->forward(L.images.data(), B, nullptr, 0, drop);
  double max_logit = expect_close("logits", logits, L.logits, kFwdAtol, kFwdRtol);
  std::vector<float> probs(B * K), dlogits(B * K);
  const float loss =
      float(cross_entropy(logits, L.labels.data(), B, K, smoothing, probs.data(), dlogits.data()));
  expect_close("loss", &loss, &L.loss, 1, kFwdAtol, kFwdRtol);

  // The inference path gives the same logits without saved activations (and without drop-path,
  // which training alone has).
  if (!drop) {
    std::vector<float> inf(B * K);
    model->predict(L.images.data(), B, inf.data());
    expect_close("predict logits", inf.data(), L.logits, kFwdAtol, kFwdRtol);
  }

  model->zero_grad();
  model->backward(dlogits.data());
  double max_grad = 0;
  int checked = 0;
  for (const ParamInfo& p : model->params()) {
    if (!p.trainable) {
      EXPECT_FALSE(f.contains("grad." + p.name)) << p.name << " is fixed but has a gradient";
      continue;
    }
    auto expected = f.read_f32("grad." + p.name);
    max_grad = std::max(max_grad, expect_close("grad." + p.name, model->grad(p.name).data, expected,
                                               kGradAtol, kGradRtol));
    ++checked;
  }
  EXPECT_GT(checked, 10);
  std::printf("[ fixture ] %s: max |logits diff| %.3g, max |grad diff| %.3g over %d tensors\n",
              GetParam(), max_logit, max_grad, checked);
  if (drop) {
    // In micro-batches of 2 (each image's factors go with it): the same gradients, and the same
    // bits with 1 and 2 threads.
    auto micro = [&](int threads) {
      const int before = num_threads();
      set_num_threads(threads);
      batch_gradients(*model, L.images.data(), L.labels.data(), B, smoothing, nullptr, 0,
                      probs.data(), dlogits.data(), 2, nullptr, 1.0f, nullptr, drop);
      set_num_threads(before);
      return std::vector<float>(model->grad_data(), model->grad_data() + model->arena_floats());
    };
    const std::vector<float> one = micro(1);
    EXPECT_EQ(micro(2), one);
    for (const ParamInfo& p : model->params()) {
      if (!p.trainable) continue;
      expect_close("micro-batched grad." + p.name, one.data() + p.offset,
                   f.read_f32("grad." + p.name), kGradAtol, kGradRtol);
    }
  }
}

TEST_P(ModelFixture, FiveOptimizerStepsMatchPyTorch) {
  SafetensorsReader f(fixture(GetParam()));
  Model* raw;
  Loaded L = load_fixture(f, &raw);
  std::unique_ptr<Model> model(raw);
  const int B = L.B;
  const auto& r = L.recipe;
  // The trainer's step (vit::TrainStep) with the fixture's AdamW settings, the batch in one piece.
  Recipe recipe;
  recipe.optimizer = "adamw";
  recipe.lr = r["lr"].get<float>();
  recipe.beta1 = r["beta1"].get<float>();
  recipe.beta2 = r["beta2"].get<float>();
  recipe.weight_decay = r["weight_decay"].get<float>();
  recipe.clip_grad = r["clip_grad_norm"].get<float>();
  recipe.label_smoothing = r["label_smoothing"].get<float>();
  ASSERT_EQ(r["eps"].get<float>(), optimizer_options(recipe).eps);  // the recipe keeps the default
  const int steps = r["steps"].get<int>();

  TrainStep step(*model, recipe, B, B);
  std::vector<float> losses(steps), norms(steps);
  for (int t = 0; t < steps; ++t) {
    const StepStats s = step.run(L.images.data(), L.labels.data(), B, recipe.lr, nullptr, 0, 1.0f,
                                 L.drop_path.empty() ? nullptr : L.drop_path.data());
    ASSERT_TRUE(s.updated);
    losses[t] = float(s.loss);
    norms[t] = float(s.grad_norm);
  }
  EXPECT_EQ(step.optimizer().step_count(), steps);
  const double loss_diff =
      expect_close("adamw.loss", losses.data(), f.read_f32("adamw.loss"), 0.0, 1e-5);
  expect_close("adamw.grad_norm", norms.data(), f.read_f32("adamw.grad_norm"), 0.0, 1e-4);
  double max_w = 0;
  const int D = L.cfg.dim;
  for (const ParamInfo& p : model->params()) {
    if (!p.trainable) continue;
    const float* got = model->param(p.name).data;
    auto expected = f.read_f32("adamw.final." + p.name);
    if (p.name.ends_with("attn.k_norm.bias")) {
      // The same softmax invariance as the key bias below: qk-norm's k bias adds q.b to every
      // score of a row; its exact gradient is 0, so Adam's step on it is noise bounded by lr.
      auto initial = f.read_f32(p.name);
      expect_close("adamw.final." + p.name + ", bounded by steps * lr", got, initial.data(),
                   p.numel, 1.01 * steps * recipe.lr, 0.0);
      continue;
    }
    if (!p.name.ends_with("attn.qkv.bias")) {
      max_w =
          std::max(max_w, expect_close("adamw.final." + p.name, got, expected, kFwdAtol, kFwdRtol));
      continue;
    }
    // The key bias adds q.b_k to every score of a softmax row, which the softmax cancels: its
    // exact gradient is 0, and its fp32 gradient is rounding noise (~1e-9) that Adam's
    // normalisation m / (sqrt(v) + eps) turns into steps of up to lr. It cannot match a float64
    // reference (fp32 PyTorch cannot either), so the q and v parts are compared at the usual
    // tolerance and the k part is only bounded by Adam's largest possible move.
    max_w = std::max(max_w, expect_close("adamw.final." + p.name + " [q]", got, expected.data(), D,
                                         kFwdAtol, kFwdRtol));
    max_w = std::max(max_w, expect_close("adamw.final." + p.name + " [v]", got + 2 * D,
                                         expected.data() + 2 * D, D, kFwdAtol, kFwdRtol));
    auto initial = f.read_f32(p.name);
    expect_close("adamw.final." + p.name + " [k], bounded by steps * lr", got + D,
                 initial.data() + D, D, 1.01 * steps * recipe.lr, 0.0);
  }
  std::printf("[ fixture ] %s: 5 steps: max |loss diff| %.3g, max |weight diff| %.3g\n", GetParam(),
              loss_diff, max_w);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelFixture,
                         ::testing::Values("model_a.safetensors", "model_b.safetensors",
                                           "model_c.safetensors", "model_d.safetensors",
                                           "model_e.safetensors", "model_f.safetensors",
                                           "model_g.safetensors", "model_h.safetensors",
                                           "model_i.safetensors", "model_j.safetensors",
                                           "model_k.safetensors"),
                         [](const auto& info) { return std::string(1, info.param[6]); });

Config small_config() {
  Config c;
  c.image_size = 8;
  c.channels = 2;
  c.patch_size = 4;
  c.dim = 12;
  c.depth = 2;
  c.heads = 3;
  c.mlp_dim = 20;
  c.num_classes = 5;
  return c;
}

// init(seed), then normal(0, 0.3) noise from noise_seed on every trainable tensor: larger weights
// than the init, so every path carries signal.
void init_with_larger_weights(Model& model, uint64_t seed, uint64_t noise_seed) {
  model.init(seed);
  Rng rng(noise_seed);
  for (const ParamInfo& p : model.params()) {
    if (!p.trainable) continue;
    float* w = model.param(p.name).data;
    for (int64_t i = 0; i < p.numel; ++i) w[i] += float(0.3 * rng.normal());
  }
}

// Model-level finite differences (independent of PyTorch): for a few entries of every trainable
// tensor, d(loss)/dw by central differences matches the backward: class token, average pooling
// (with GELU's tanh approximation, as SigLIP 2's gap towers), timm's CLIP layout (norm_pre, no
// patch-embedding bias), and a convolutional stem.
TEST(ModelFiniteDiff, EveryParameterTensor) {
  for (int variant = 0; variant < 4; ++variant) {
    const Pool pool = variant == 1 ? Pool::kMean : Pool::kCls;
    Config c = small_config();
    c.pool = pool;
    c.pos_embed = pool == Pool::kCls ? PosEmbed::kLearned : PosEmbed::kSinCos;
    c.norm_pre = variant == 2;
    c.patch_bias = variant != 2;
    c.stem_channels = variant == 3 ? 3 : 0;
    if (variant == 1) c.act = Act::kGeluTanh;
    Model model(c);
    init_with_larger_weights(model, 7, 3);
    const int B = 3, K = c.num_classes;
    auto images = random_vector(int64_t(B) * c.channels * c.image_size * c.image_size, 4);
    std::vector<int32_t> labels = {1, 4, 0};
    std::vector<float> probs(B * K), dlogits(B * K);
    model.enable_training(B);
    auto loss = [&] {
      const float* logits = model.forward(images.data(), B);
      return cross_entropy(logits, labels.data(), B, K, 0.1f, probs.data(), nullptr);
    };
    const float* logits = model.forward(images.data(), B);
    cross_entropy(logits, labels.data(), B, K, 0.1f, probs.data(), dlogits.data());
    model.zero_grad();
    model.backward(dlogits.data());
    std::vector<float> grads(model.grad_data(), model.grad_data() + model.arena_floats());
    for (const ParamInfo& p : model.params()) {
      if (!p.trainable) continue;
      expect_fd(p.name + (variant == 0   ? " (cls)"
                          : variant == 1 ? " (mean)"
                          : variant == 2 ? " (clip)"
                                         : " (stem)"),
                model.param(p.name).data, p.numel, grads.data() + p.offset, loss, 6, 1e-2f, 1e-3,
                2e-2);
    }
  }
}

// A patch that does not divide the image (timm's SigLIP at 384 pixels in patches of 14): the
// last rows and columns are not seen, so a 30-pixel model in patches of 4 computes what the
// 28-pixel model with the same weights computes on the image's top-left 28 x 28, bit for bit,
// forward and backward.
TEST(Model, PixelsPastTheLastWholePatchAreNotSeen) {
  Config c28 = small_config(), c30 = small_config();
  c30.image_size = c28.image_size + c28.patch_size - 1;  // the same grid, 3 pixels more
  ASSERT_EQ(c30.grid(), c28.grid());
  Model m28(c28), m30(c30);
  m28.init(5);
  ASSERT_EQ(m28.arena_floats(), m30.arena_floats());
  std::copy_n(m28.param_data(), m28.arena_floats(), m30.param_data());
  const int B = 2, C = c28.channels, S28 = c28.image_size, S30 = c30.image_size;
  const std::vector<float> big = random_vector(int64_t(B) * C * S30 * S30, 6);
  std::vector<float> small(size_t(B) * C * S28 * S28);
  for (int p = 0; p < B * C; ++p) {
    for (int y = 0; y < S28; ++y) {
      std::copy_n(&big[(size_t(p) * S30 + y) * S30], S28, &small[(size_t(p) * S28 + y) * S28]);
    }
  }
  std::vector<float> z28(size_t(B) * c28.num_classes), z30(z28.size());
  m28.predict(small.data(), B, z28.data());
  m30.predict(big.data(), B, z30.data());
  EXPECT_EQ(z28, z30);
  m28.enable_training(B);
  m30.enable_training(B);
  const std::vector<float> dlogits = random_vector(int64_t(B) * c28.num_classes, 7);
  for (auto [m, x] : {std::pair<Model*, const float*>{&m28, small.data()},
                      std::pair<Model*, const float*>{&m30, big.data()}}) {
    m->forward(x, B);
    m->zero_grad();
    m->backward(dlogits.data());
  }
  EXPECT_EQ(0, std::memcmp(m28.grad_data(), m30.grad_data(), m28.arena_floats() * sizeof(float)));
}

TEST(Model, TimmNamesAndShapes) {
  Config c = small_config();
  Model model(c);
  std::vector<std::string> names;
  for (const ParamInfo& p : model.params()) names.push_back(p.name);
  const std::vector<std::string> head = {"cls_token", "pos_embed", "patch_embed.proj.weight",
                                         "patch_embed.proj.bias", "blocks.0.norm1.weight"};
  ASSERT_GE(names.size(), head.size());
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 5), head);
  EXPECT_EQ(names.back(), "head.bias");
  EXPECT_EQ(model.param_info("blocks.1.attn.qkv.weight").shape, (std::vector<int64_t>{36, 12}));
  EXPECT_EQ(model.param_info("blocks.1.mlp.fc1.weight").shape, (std::vector<int64_t>{20, 12}));
  EXPECT_EQ(model.param_info("patch_embed.proj.weight").shape, (std::vector<int64_t>{12, 2, 4, 4}));
  EXPECT_EQ(model.param_info("pos_embed").shape, (std::vector<int64_t>{1, 5, 12}));
  EXPECT_EQ(model.num_params(), c.num_params());
  EXPECT_THROW(model.param("blocks.2.norm1.weight"), Error);
  // Decay mask: matrices only.
  for (const ParamInfo& p : model.params()) {
    EXPECT_EQ(p.decay, p.shape.size() >= 2 && p.name != "cls_token" && p.name != "pos_embed")
        << p.name;
  }
  c.pool = Pool::kMean;
  c.qkv_bias = false;
  Model mean(c);
  EXPECT_THROW(mean.param("cls_token"), Error);
  EXPECT_THROW(mean.param("blocks.0.attn.qkv.bias"), Error);
  EXPECT_NO_THROW(mean.param("fc_norm.weight"));
  EXPECT_THROW(mean.param("norm.weight"), Error);
  EXPECT_EQ(mean.param_info("pos_embed").shape, (std::vector<int64_t>{1, 4, 12}));
  EXPECT_EQ(mean.num_params(), c.num_params());
  c.norm_pre = true;
  c.patch_bias = false;  // timm's CLIP towers
  Model clip(c);
  EXPECT_THROW(clip.param("patch_embed.proj.bias"), Error);
  EXPECT_NO_THROW(clip.param("norm_pre.weight"));
  EXPECT_EQ(clip.num_params(), c.num_params());
  EXPECT_EQ(clip.num_params() + 12 - 2 * 12, mean.num_params());
  // A convolutional stem: layer 0 of timm's ConvStem (its conv, before patch_embed.proj), the
  // projection 2 x 2 on its channels.
  c = small_config();
  c.stem_channels = 7;
  Model stem(c);
  EXPECT_EQ(stem.params()[2].name, "patch_embed.backbone.0.conv.weight");
  EXPECT_EQ(stem.params()[3].name, "patch_embed.backbone.0.conv.bias");
  EXPECT_EQ(stem.param_info("patch_embed.backbone.0.conv.weight").shape,
            (std::vector<int64_t>{7, 2, 3, 3}));
  EXPECT_EQ(stem.param_info("patch_embed.proj.weight").shape, (std::vector<int64_t>{12, 7, 2, 2}));
  EXPECT_EQ(stem.num_params(), c.num_params());
  // Its init is PyTorch's default for a convolution (timm leaves it): uniform in +-1/sqrt(2 * 9).
  stem.init(5);
  for (const char* name :
       {"patch_embed.backbone.0.conv.weight", "patch_embed.backbone.0.conv.bias"}) {
    const TensorView t = stem.param(name);
    float lo = 1, hi = -1;
    for (int64_t i = 0; i < t.numel(); ++i) {
      lo = std::min(lo, t.data[i]);
      hi = std::max(hi, t.data[i]);
    }
    EXPECT_GE(lo, -1 / std::sqrt(18.0f)) << name;
    EXPECT_LE(hi, 1 / std::sqrt(18.0f)) << name;
    EXPECT_GT(hi - lo, 0.5f / std::sqrt(18.0f)) << name;
  }
}

TEST(Model, InitIsDeterministicAndTimmLike) {
  Config c = small_config();
  c.dim = 64;
  c.heads = 4;
  c.mlp_dim = 256;
  Model a(c), b(c), other(c);
  a.init(42);
  b.init(42);
  other.init(43);
  const size_t bytes = a.arena_floats() * sizeof(float);
  EXPECT_EQ(std::memcmp(a.param_data(), b.param_data(), bytes), 0);
  EXPECT_NE(std::memcmp(a.param_data(), other.param_data(), bytes), 0);
  for (const ParamInfo& p : a.params()) {
    const float* w = a.param(p.name).data;
    double sum = 0, sq = 0, maxabs = 0;
    for (int64_t i = 0; i < p.numel; ++i) {
      sum += w[i];
      sq += double(w[i]) * w[i];
      maxabs = std::max(maxabs, double(std::fabs(w[i])));
    }
    const double mean = sum / p.numel, std = std::sqrt(sq / p.numel - mean * mean);
    if (p.name.ends_with("norm1.weight") || p.name.ends_with("norm2.weight") ||
        p.name == "norm.weight") {
      EXPECT_EQ(mean, 1.0) << p.name;
      EXPECT_EQ(std, 0.0) << p.name;
    } else if (p.decay || p.name == "cls_token" || p.name == "pos_embed") {
      if (p.numel >= 4096) EXPECT_NEAR(std, 0.02 * 0.8796, 0.002) << p.name;  // 2-sigma truncation
      EXPECT_LE(maxabs, 0.04 + 1e-7) << p.name;
      EXPECT_GT(maxabs, 0.0) << p.name;
    } else {
      EXPECT_EQ(maxabs, 0.0) << p.name << " (biases start at zero)";
    }
  }
}

TEST(Model, InitOptionsChangeOnlyWhatTheyName) {
  Config c = small_config();
  c.dim = 64;
  c.heads = 4;
  Model base(c), wide(c), sincos(c);
  base.init(9);
  wide.init(9, {.qkv_std = 0.2f});
  sincos.init(9, {.sincos_pos = true});
  for (const ParamInfo& p : base.params()) {
    const float* a = base.param(p.name).data;
    const float* b = wide.param(p.name).data;
    const float* s = sincos.param(p.name).data;
    const bool qkv = p.name.ends_with("attn.qkv.weight");
    // qkv_std scales the same draws: wide = base * 10 exactly where it applies.
    for (int64_t i = 0; i < p.numel; ++i) {
      ASSERT_FLOAT_EQ(b[i], qkv ? a[i] * 10.0f : a[i]) << p.name << "[" << i << "]";
    }
    if (p.name == "pos_embed") {
      EXPECT_TRUE(p.trainable);
      std::vector<float> table(p.numel);
      ops::sincos_table(op_context(), table.data(), c.num_tokens(), c.dim);
      expect_close("sincos-initialised pos_embed", s, table, 0, 0);
    } else {
      EXPECT_EQ(std::memcmp(a, s, p.numel * 4), 0) << p.name;
    }
  }
}

// PyTorch's defaults (the seed tutorial's model): every layer's weight and bias uniform in
// +-1/sqrt(fan_in), filling that range (min and max within 2% of it for the large tensors); the
// class token uniform in [0, 1); LayerNorms 1 and 0.
TEST(Model, TorchInitIsPyTorchsDefaults) {
  Config c = small_config();
  c.dim = 64;
  c.heads = 4;
  c.mlp_dim = 256;
  Model model(c);
  model.init(3, {.scheme = Model::InitOptions::kTorch});
  auto fan_in = [&](const std::string& weight) {
    const ParamInfo& w = model.param_info(weight);
    return double(w.numel / w.shape[0]);
  };
  for (const ParamInfo& p : model.params()) {
    const float* v = model.param(p.name).data;
    const auto [lo, hi] = std::minmax_element(v, v + p.numel);
    if (p.name.find("norm") != std::string::npos) {
      EXPECT_EQ(*lo, p.name.ends_with(".weight") ? 1.0f : 0.0f) << p.name;
      EXPECT_EQ(*hi, *lo) << p.name;
    } else if (p.name == "cls_token") {
      EXPECT_GE(*lo, 0.0f);
      EXPECT_LT(*hi, 1.0f);
      EXPECT_GT(*hi - *lo, 0.8f) << "64 draws of U[0, 1)";
    } else if (p.name == "pos_embed") {
      EXPECT_LE(std::max(-*lo, *hi), 0.04f + 1e-7f) << "a learned pos_embed keeps timm's draw";
    } else {
      const std::string weight =
          p.name.ends_with(".bias") ? p.name.substr(0, p.name.size() - 5) + ".weight" : p.name;
      const double bound = 1.0 / std::sqrt(fan_in(weight));
      EXPECT_LE(std::max(-*lo, *hi), bound) << p.name;
      if (p.numel >= 1000) {
        EXPECT_GT(-*lo, 0.98 * bound) << p.name;
        EXPECT_GT(*hi, 0.98 * bound) << p.name;
      }
    }
  }
}

TEST(Model, SinCosPositionsAreFixed) {
  Config c = small_config();
  c.pos_embed = PosEmbed::kSinCos;
  Model model(c);
  model.init(1);
  const ParamInfo& p = model.param_info("pos_embed");
  EXPECT_FALSE(p.trainable);
  std::vector<float> table(p.numel);
  ops::sincos_table(op_context(), table.data(), c.num_tokens(), c.dim);
  expect_close("pos_embed", model.param("pos_embed").data, table, 0, 0);
  // Training steps (the trainer's, AdamW without weight decay) do not move it.
  Recipe recipe;
  recipe.weight_decay = 0.0f;
  TrainStep step(model, recipe, 2);
  auto images = random_vector(2 * 2 * 8 * 8, 5);
  std::vector<int32_t> labels = {0, 1};
  for (int t = 0; t < 3; ++t) step.run(images.data(), labels.data(), 2, recipe.lr);
  expect_close("pos_embed after steps", model.param("pos_embed").data, table, 0, 0);
}

// Patch dropout (forward with kept patch indices; only the kept patches are embedded), for both
// poolings and with a convolutional stem: keeping every patch in order is the plain forward bit
// for bit; the blocks see a set of tokens, so the order of the kept indices does not change the
// logits; finite differences check the backward through the selection (embedding, class token
// and positions of kept patches only).
TEST(Model, PatchDropout) {
  for (int variant = 0; variant < 3; ++variant) {
    const Pool pool = variant == 1 ? Pool::kMean : Pool::kCls;
    const std::string tag = variant == 0 ? " (cls)" : variant == 1 ? " (mean)" : " (stem)";
    Config c = small_config();
    c.patch_size = 2;  // 16 patches
    c.pool = pool;
    c.stem_channels = variant == 2 ? 3 : 0;  // only the kept patches' stem runs
    const int B = 3, K = c.num_classes, Np = c.num_patches(), Nk = 6;
    Model model(c);
    init_with_larger_weights(model, 11, 5);  // learned positions: every tensor is trainable
    auto images = random_vector(int64_t(B) * c.channels * c.image_size * c.image_size, 6);
    std::vector<int32_t> labels = {2, 0, 4};
    std::vector<float> probs(B * K), dlogits(B * K);
    model.enable_training(B);
    auto grads_of = [&](const int32_t* keep, int num_keep) {
      const float* logits = model.forward(images.data(), B, keep, num_keep);
      std::vector<float> out(logits, logits + B * K);
      cross_entropy(logits, labels.data(), B, K, 0.1f, probs.data(), dlogits.data());
      model.zero_grad();
      model.backward(dlogits.data());
      out.insert(out.end(), model.grad_data(), model.grad_data() + model.arena_floats());
      return out;  // logits, then every gradient
    };

    std::vector<int32_t> all;
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < Np; ++j) all.push_back(j);
    const std::vector<float> plain = grads_of(nullptr, 0), kept_all = grads_of(all.data(), Np);
    ASSERT_EQ(plain.size(), kept_all.size());
    EXPECT_EQ(std::memcmp(plain.data(), kept_all.data(), plain.size() * 4), 0)
        << "keeping every patch differs from the plain forward" << tag;

    const std::vector<int32_t> keep = {0, 3, 5, 9, 12, 15, 1, 2, 7, 8, 10, 11, 4, 6, 13, 14, 15, 0};
    std::vector<int32_t> shuffled = keep;
    for (int b = 0; b < B; ++b)
      std::reverse(shuffled.begin() + b * Nk, shuffled.begin() + (b + 1) * Nk);
    const std::vector<float> a = grads_of(keep.data(), Nk), r = grads_of(shuffled.data(), Nk);
    const std::vector<float> plain_after = grads_of(nullptr, 0);  // a plain step after dropping
    EXPECT_EQ(std::memcmp(plain.data(), plain_after.data(), plain.size() * 4), 0)
        << "a plain forward after a dropout one differs" << tag;
    expect_close("logits, kept indices reversed" + tag, r.data(), a.data(), B * K, kFwdAtol,
                 kFwdRtol);
    expect_close("gradients, kept indices reversed" + tag, r.data() + B * K, a.data() + B * K,
                 int64_t(a.size()) - B * K, kGradAtol, kGradRtol);
    double moved = 0;
    for (int i = 0; i < B * K; ++i) moved = std::max(moved, double(std::fabs(a[i] - plain[i])));
    EXPECT_GT(moved, 1e-3) << "dropping patches did not change the logits" << tag;

    auto loss = [&] {
      const float* logits = model.forward(images.data(), B, keep.data(), Nk);
      return cross_entropy(logits, labels.data(), B, K, 0.1f, probs.data(), nullptr);
    };
    for (const ParamInfo& p : model.params()) {
      if (!p.trainable) continue;
      expect_fd(p.name + ", patch dropout" + tag, model.param(p.name).data, p.numel,
                a.data() + B * K + p.offset, loss, 6, 1e-2f, 1e-3, 2e-2);
    }
    // Positions of patches no image kept get no gradient.
    if (c.pos_embed == PosEmbed::kLearned) {
      const int F = c.num_prefix_tokens(), D = c.dim;
      const float* dpos = a.data() + B * K + model.param_info("pos_embed").offset;
      std::vector<bool> used(Np, false);
      for (int32_t k : keep) used[k] = true;
      for (int j = 0; j < Np; ++j) {
        double mag = 0;
        for (int d = 0; d < D; ++d) mag += std::fabs(dpos[(F + j) * D + d]);
        EXPECT_EQ(mag == 0, !used[j]) << "pos_embed row of patch " << j << tag;
      }
    }
  }
}

// Drop-path beside patch dropout (images of fewer tokens), with and without LayerScale: the
// backward matches finite differences of the loss, and an image whose every branch is dropped
// gets the logits of its embedding alone (the blocks pass the residual stream on).
TEST(Model, DropPathWithPatchDropout) {
  for (bool layer_scale : {false, true}) {
    const std::string tag = layer_scale ? " (LayerScale)" : "";
    Config c = small_config();
    c.patch_size = 2;  // 16 patches
    c.depth = 3;
    c.layer_scale = layer_scale;
    const int B = 3, K = c.num_classes, Nk = 5;
    Model model(c);
    init_with_larger_weights(model, 13, 7);
    auto images = random_vector(int64_t(B) * c.channels * c.image_size * c.image_size, 8);
    std::vector<int32_t> labels = {1, 3, 0};
    const std::vector<int32_t> keep = {0, 3, 5, 9, 12, 1, 2, 7, 8, 10, 4, 6, 13, 14, 15};
    // [B, depth, 2]: image 0 keeps everything, image 1 loses some branches, image 2 all of them.
    const std::vector<float> drop = {1, 1, 1, 1, 1, 1, 1, 0, 1.25f, 0, 2, 1.25f, 0, 0, 0, 0, 0, 0};
    std::vector<float> probs(B * K), dlogits(B * K);
    model.enable_training(B);
    const float* logits = model.forward(images.data(), B, keep.data(), Nk, drop.data());
    const std::vector<float> got(logits, logits + B * K);
    cross_entropy(logits, labels.data(), B, K, 0.1f, probs.data(), dlogits.data());
    model.zero_grad();
    model.backward(dlogits.data());
    std::vector<float> grads(model.grad_data(), model.grad_data() + model.arena_floats());
    auto loss = [&] {
      const float* l = model.forward(images.data(), B, keep.data(), Nk, drop.data());
      return cross_entropy(l, labels.data(), B, K, 0.1f, probs.data(), nullptr);
    };
    for (const ParamInfo& p : model.params()) {
      if (!p.trainable) continue;
      expect_fd(p.name + ", drop-path" + tag, model.param(p.name).data, p.numel,
                grads.data() + p.offset, loss, 6, 1e-2f, 1e-3, 2e-2);
    }
    // Image 2 alone, every branch dropped, against a forward whose blocks' every weight is zero
    // (each branch then adds exactly 0).
    Model bare(c);
    std::copy_n(model.param_data(), model.arena_floats(), bare.param_data());
    for (const ParamInfo& p : bare.params()) {
      if (p.name.starts_with("blocks.")) std::fill_n(bare.param(p.name).data, p.numel, 0.0f);
    }
    bare.enable_training(1);
    const int64_t pixels = int64_t(c.channels) * c.image_size * c.image_size;
    const float* alone = bare.forward(images.data() + 2 * pixels, 1, keep.data() + 2 * Nk, Nk);
    expect_close("all branches dropped" + tag, got.data() + 2 * K, alone, K, 1e-6, 1e-6);
  }
}

// The micro-batch rule: the most images whose widest activation fits in 512 KiB, unless that is
// under 256 tokens; and the count, rounded up to a multiple of 4.
// Reading logits: the first largest wins argmax, softmax sums to 1, top-k is sorted and clipped to
// K, and class_loss is -log softmax of the true class.
TEST(Classify, ArgmaxSoftmaxTopKAndLoss) {
  const float z[4] = {1.0f, 3.0f, 2.0f, 3.0f};
  EXPECT_EQ(argmax(z, 4), 1);
  double p[4];
  softmax(z, 4, p);
  EXPECT_NEAR(p[0] + p[1] + p[2] + p[3], 1.0, 1e-15);
  EXPECT_NEAR(p[1] / p[2], std::exp(1.0), 1e-12);
  EXPECT_EQ(p[1], p[3]);
  const std::vector<ClassScore> top = top_k(z, 4, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[2].index, 2);
  EXPECT_EQ(top[0].prob, p[1]);
  EXPECT_EQ(top[2].prob, p[2]);
  EXPECT_EQ(top_k(z, 4, 10).size(), 4u);
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(class_loss(z, 4, k), -std::log(p[k]), 1e-12) << k;
}

TEST(Model, MicroBatchImages) {
  const Config tiny = find_preset("tiny28").config;  // widest: the MLP's 256 floats a token
  EXPECT_EQ(micro_batch_images(tiny, 128, 50), 10);  // 10 x 50 x 256 x 4 B = 512,000 <= 2^19 B
  EXPECT_EQ(micro_batch_images(tiny, 128, 20), 25);  // patch dropout's 20 tokens: 25 images
  EXPECT_EQ(micro_batch_images(tiny, 7, 50), 7);     // never more than the batch
  // ViT-Ti: one image's 197 x 768 floats exceed 512 KiB, and 197 tokens are under 256: no split.
  EXPECT_EQ(micro_batch_images(find_preset("vit_tiny_patch16_224").config, 16, 197), 16);
  EXPECT_THROW(micro_batch_images(tiny, 0, 50), Error);
  EXPECT_EQ(micro_batch_images(tiny, 128, 50, 7), 7);  // a requested size, at most the batch
  EXPECT_EQ(micro_batch_images(tiny, 5, 50, 7), 5);
  EXPECT_THROW(micro_batch_images(tiny, 128, 50, -1), Error);
  EXPECT_EQ(micro_batch_count(128, 50, 10), 16);  // 13 made a multiple of 4: pieces of 8
  EXPECT_EQ(micro_batch_count(32, 50, 10), 4);
  EXPECT_EQ(micro_batch_count(45, 50, 10), 6);  // 8 pieces of 5 would be 250 tokens: 6 of 7-8
  EXPECT_EQ(micro_batch_count(45, 50, 20), 4);  // 3 made 4 pieces of 11-12
  EXPECT_EQ(micro_batch_count(7, 50, 7), 1);
  EXPECT_EQ(micro_batch_count(40, 50, 4), 10);  // pieces of 4 (200 tokens): as requested
  EXPECT_THROW(micro_batch_count(8, 50, 0), Error);
}

// The longest chain of float roundings from the pixels through the forward, and back through the
// backward, to one parameter gradient, for batches of B images whose blocks see N tokens. Each op
// counts the length of the longest sum it computes (a dot product over n terms plus a bias: n + 1;
// a LayerNorm either way: two sums over D and 10 more operations, the mean's division, x - mean,
// the square, the variance's division, + eps, the square root, its reciprocal, the scale, w and b),
// an add or a multiply 1, an exp, GELU or GELU slope 8 (vmath.hpp: exp within 2 ulp, GELU within
// 1.6e-7, under 3 u). An op's result is within gamma(n_op) of its exact value relative to the
// magnitudes of its terms (Higham 3.1); to first order the relative errors along a chain add, and
// sum gamma(n_op) <= gamma(sum n_op), so a gradient is within gamma(chain) of its exact value,
// relative to the magnitudes of its terms.
int64_t rounding_chain(const Config& c, int B, int N) {
  const int64_t D = c.dim, M = c.mlp_dim, hd = c.dim / c.heads, K = c.num_classes;
  const int64_t patch = int64_t(c.channels) * c.patch_size * c.patch_size, fn = 8;
  const int64_t norm = 2 * D + 10;
  // norm1, qkv, q.k and its scale, softmax (exp, a sum over N, a multiply), att.v, proj, the
  // residual add, norm2, fc1, GELU, fc2, the residual add.
  const int64_t block_forward = norm + (D + 1) + (hd + 1) + (fn + N + 1) + N + (D + 1) + 1 + norm +
                                (D + 1) + fn + (M + 1) + 1;
  // fc2's input gradient, times the GELU slope, fc1's, norm2's, the skip path's add, proj's, the
  // attention's (d att over hd, the softmax's backward over N, dq and dk over N with the scale),
  // qkv's (over 3D), norm1's, the skip path's add.
  const int64_t block_backward =
      D + 1 + M + norm + 1 + D + hd + (N + 2) + (N + 1) + 3 * D + norm + 1;
  // Forward: the patch embedding, the position add, the final norm, mean pooling (N), the head,
  // the softmax and dlogits; backward: the head's input gradient (K), the final norm, pooling.
  const int64_t ends = (patch + 1) + 1 + norm + N + (D + 1) + (fn + K + 4) + K + norm + 1;
  // Last, a parameter gradient sums over the batch's rows (tokens, or the patch embedding's
  // patches), and the micro-batches' sums are added up (at most B of them).
  const int64_t rows = int64_t(B) * std::max(N, c.num_patches()) + B;
  return int64_t(c.depth) * (block_forward + block_backward) + ends + rows;
}

// A bound on |g_i - plain_i| for each gradient element: g the gradient of a batch computed in
// micro-batches (with dlogits `dlogits`), plain the same batch's in one piece (with probs and
// plain_dlogits). The two compute the same float terms grouped differently: the weight gradients'
// sums over the rows are cut at the micro-batches, and OpenBLAS may block a micro-batch's fewer
// rows differently, so the activations and the dlogits can differ by rounding too. Each is within
// gamma(chain) M_i of the exact gradient (rounding_chain), M_i the magnitude of element i's terms,
// so they are within 2 gamma(chain) M_i of each other. The bound is not proportional to |plain_i|:
// an element that is a small sum of large terms of either sign is allowed what its terms' rounding
// can move it (on the scalar path one of tiny28's lies 1.4e-3 of its value apart).
//
// M_i, measured: the backward is linear in dlogits, so with J_bk the gradient of image b alone (a
// batch of one) for a unit dlogit at class k, S_i = sum_bk (p_bk + q_bk) / B |J_bk,i| takes each
// dlogit's two terms (p - q) / B and each image's and class's contribution by absolute value:
// cancellation between images or classes hides nothing. S_i cannot see cancellation between one
// image's tokens, which is complete for the key bias (softmax does not change when every key moves
// by the same vector, so its exact gradient is 0 and what either side computes is rounding alone);
// rounding on one token's activation gradients reaches every element of a tensor through the
// layers' mixing (the products over the features, LayerNorm's sums, attention's sums over tokens),
// so each element also gets the largest S of its tensor, a normwise term: M_i <= S_i + max_T S.
// The dlogits' own difference (checked above against its tolerance) reaches element i as at most
// sum_bk |dlogits_bk - plain_dlogits_bk| |J_bk,i|, added as it is.
std::vector<double> micro_batch_bound(Model& model, const float* images, const int32_t* labels,
                                      int B, float smoothing, const int32_t* keep, int num_keep,
                                      const float* probs, const float* plain_dlogits,
                                      const float* dlogits) {
  const Config& c = model.config();
  const int K = c.num_classes;
  const int64_t pixels = int64_t(c.channels) * c.image_size * c.image_size;
  const size_t floats = model.arena_floats();
  std::vector<double> S(floats, 0.0), P(floats, 0.0), bound(floats, 0.0);
  std::vector<float> unit(static_cast<size_t>(K));
  // Images one at a time run fastest on one thread (no barrier between a batch of one's ops).
  const int threads = num_threads();
  set_num_threads(1);
  for (int b = 0; b < B; ++b) {
    for (int k = 0; k < K; ++k) {
      const size_t bk = size_t(b) * K + k;
      const double q = (k == labels[b] ? 1.0 - smoothing : 0.0) + double(smoothing) / K;
      const double w = (probs[bk] + q) / B, dw = std::fabs(double(dlogits[bk]) - plain_dlogits[bk]);
      std::fill(unit.begin(), unit.end(), 0.0f);
      unit[size_t(k)] = 1.0f;
      model.zero_grad();
      model.forward(images + b * pixels, 1, keep ? keep + int64_t(b) * num_keep : nullptr,
                    num_keep);
      model.backward(unit.data());
      const float* J = model.grad_data();
      for (size_t i = 0; i < floats; ++i) {
        S[i] += w * std::fabs(J[i]);
        P[i] += dw * std::fabs(J[i]);
      }
    }
  }
  set_num_threads(threads);
  const int N = keep ? c.num_prefix_tokens() + num_keep : c.num_tokens();
  const double g = 2 * gamma_n(rounding_chain(c, B, N));
  for (const ParamInfo& p : model.params()) {
    const double top = *std::max_element(S.begin() + p.offset, S.begin() + p.offset + p.numel);
    for (size_t i = p.offset; i < p.offset + size_t(p.numel); ++i)
      bound[i] = g * (S[i] + top) + P[i];
  }
  return bound;
}

// batch_gradients in micro-batches gives the batch's loss, predictions and gradients: against one
// pass (which equals the plain zero_grad/forward/cross_entropy/backward bit for bit), for several
// micro-batch sizes, both poolings, with and without patch dropout; the gradients within
// micro_batch_bound's rounding bound.
TEST(Model, MicroBatchesGiveTheBatchGradient) {
  for (Pool pool : {Pool::kCls, Pool::kMean}) {
    Config c = small_config();
    c.patch_size = 2;  // 16 patches
    c.pool = pool;
    const int B = 7, K = c.num_classes, Nk = 5;
    Model model(c);
    init_with_larger_weights(model, 21, 8);
    auto images = random_vector(int64_t(B) * c.channels * c.image_size * c.image_size, 9);
    const std::vector<int32_t> labels = {2, 0, 4, 1, 1, 3, 0};
    std::vector<int32_t> keep;
    for (int i = 0; i < B * Nk; ++i) keep.push_back((i * 7 + i / Nk) % c.num_patches());
    std::vector<float> probs(B * K), dlogits(B * K);
    model.enable_training(B);
    for (const bool drop : {false, true}) {
      const std::string tag =
          std::string(pool == Pool::kCls ? " (cls" : " (mean") + (drop ? ", patch dropout)" : ")");
      const int32_t* kp = drop ? keep.data() : nullptr;
      const int nk = drop ? Nk : 0;
      // The plain step.
      model.zero_grad();
      const float* logits = model.forward(images.data(), B, kp, nk);
      int64_t correct = 0;
      for (int b = 0; b < B; ++b) {
        const float* z = logits + b * K;
        correct += argmax(z, K) == labels[b];
      }
      const double loss =
          cross_entropy(logits, labels.data(), B, K, 0.1f, probs.data(), dlogits.data());
      model.backward(dlogits.data());
      const std::vector<float> plain(model.grad_data(), model.grad_data() + model.arena_floats());
      const std::vector<float> plain_dlogits = dlogits, plain_probs = probs;

      for (int micro : {B, 1, 2, 3}) {
        const std::string what = " in micro-batches of " + std::to_string(micro) + tag;
        std::fill(dlogits.begin(), dlogits.end(), 0.0f);
        model.grad_data()[0] = 1e6f;  // batch_gradients zeroes the gradients first
        const BatchStats st = batch_gradients(model, images.data(), labels.data(), B, 0.1f, kp, nk,
                                              probs.data(), dlogits.data(), micro);
        EXPECT_NEAR(st.loss, loss, 1e-6 * std::fabs(loss)) << "loss" << what;
        EXPECT_EQ(st.correct, correct) << "correct" << what;
        const std::vector<float> g(model.grad_data(), model.grad_data() + plain.size());
        if (micro == B) {
          EXPECT_EQ(std::memcmp(g.data(), plain.data(), plain.size() * 4), 0)
              << "one micro-batch differs from the plain step" << tag;
        }
        expect_close("dlogits" + what, dlogits.data(), plain_dlogits.data(), B * K, 1e-7, 1e-5);
        expect_within("gradients" + what, g.data(), plain.data(),
                      micro_batch_bound(model, images.data(), labels.data(), B, 0.1f, kp, nk,
                                        plain_probs.data(), plain_dlogits.data(), dlogits.data()));
      }
    }
  }
  {
    // At tiny28's shapes, where the rows are enough for our own GEMM kernels (the small config's
    // go to OpenBLAS): 48 images whole against the automatic size (eight pieces of 6, run one
    // per thread where there are two).
    const Config c = find_preset("tiny28").config;
    const int B = 48, K = c.num_classes;
    Model model(c);
    init_with_larger_weights(model, 5, 6);
    auto images = random_vector(int64_t(B) * c.channels * c.image_size * c.image_size, 13);
    std::vector<int32_t> labels(B);
    for (int b = 0; b < B; ++b) labels[b] = (b * 7) % K;
    std::vector<float> probs(B * K), dlogits(B * K);
    model.enable_training(B);
    const BatchStats whole = batch_gradients(model, images.data(), labels.data(), B, 0.1f, nullptr,
                                             0, probs.data(), dlogits.data(), B);
    const std::vector<float> g(model.grad_data(), model.grad_data() + model.arena_floats());
    const std::vector<float> whole_probs = probs, whole_dlogits = dlogits;
    const BatchStats parts = batch_gradients(model, images.data(), labels.data(), B, 0.1f, nullptr,
                                             0, probs.data(), dlogits.data());
    EXPECT_NEAR(parts.loss, whole.loss, 1e-6 * whole.loss);
    EXPECT_EQ(parts.correct, whole.correct);
    const std::vector<float> in_parts(model.grad_data(), model.grad_data() + g.size());
    expect_within("tiny28 gradients in micro-batches", in_parts.data(), g.data(),
                  micro_batch_bound(model, images.data(), labels.data(), B, 0.1f, nullptr, 0,
                                    whole_probs.data(), whole_dlogits.data(), dlogits.data()));
  }
  Model model(small_config());
  std::vector<float> x(3 * 2 * 8 * 8), p(15), d(15);
  std::vector<int32_t> y = {0, 1, 2};
  model.enable_training(3);
  EXPECT_THROW(batch_gradients(model, x.data(), y.data(), 0, 0.1f, nullptr, 0, p.data(), d.data()),
               Error);
  EXPECT_THROW(
      batch_gradients(model, x.data(), y.data(), 3, 0.1f, nullptr, 0, p.data(), d.data(), -1),
      Error);
}

// Mixed targets (mix_batch's lam with the batch reversed) train on timm's soft-target
// cross-entropy: the loss and dlogits against a float64 computation from the logits, whole and in
// micro-batches.
TEST(Model, MixedTargetsAreTheSoftTargetCrossEntropy) {
  const Config c = small_config();
  const int B = 6, K = c.num_classes;
  const float lam = 0.3f, smoothing = 0.1f;
  Model model(c);
  init_with_larger_weights(model, 7, 8);
  auto images = random_vector(int64_t(B) * c.channels * c.image_size * c.image_size, 21);
  const std::vector<int32_t> labels = {0, 3, 1, 4, 2, 2};
  const std::vector<int32_t> partners(labels.rbegin(), labels.rend());
  model.enable_training(B);
  const float* out = model.forward(images.data(), B, nullptr, 0);
  const std::vector<float> logits(out, out + B * K);
  // The reference: mean over images of -sum_k t_k log softmax(z)_k, t = lam q(y) + (1 - lam)
  // q(y'), q the smoothed one-hot; dlogits = (softmax - t) / B.
  double want_loss = 0;
  std::vector<float> want_d(size_t(B * K));
  for (int j = 0; j < B; ++j) {
    const float* z = logits.data() + j * K;
    double zmax = z[0], sum = 0;
    for (int k = 0; k < K; ++k) zmax = std::max(zmax, double(z[k]));
    for (int k = 0; k < K; ++k) sum += std::exp(z[k] - zmax);
    for (int k = 0; k < K; ++k) {
      const double logp = z[k] - zmax - std::log(sum);
      const double q1 = (k == labels[j] ? 1 - smoothing : 0) + smoothing / K;
      const double q2 = (k == partners[j] ? 1 - smoothing : 0) + smoothing / K;
      const double t = lam * q1 + (1 - lam) * q2;
      want_loss -= t * logp / B;
      want_d[size_t(j * K + k)] = float((std::exp(logp) - t) / B);
    }
  }
  for (int micro : {B, 2}) {
    std::vector<float> probs(B * K), dlogits(B * K);
    const BatchStats st =
        batch_gradients(model, images.data(), labels.data(), B, smoothing, nullptr, 0, probs.data(),
                        dlogits.data(), micro, partners.data(), lam);
    const std::string what = " (micro-batches of " + std::to_string(micro) + ")";
    EXPECT_NEAR(st.loss, want_loss, 1e-6 * want_loss) << what;
    // Each element is (p - t) / B from float probabilities good to a few ulps.
    expect_close("dlogits" + what, dlogits.data(), want_d, 1e-6 / B, 0);
  }
  std::vector<float> probs(B * K), dlogits(B * K);
  const std::vector<int32_t> bad(B, K);
  EXPECT_THROW(batch_gradients(model, images.data(), labels.data(), B, smoothing, nullptr, 0,
                               probs.data(), dlogits.data(), 0, bad.data(), lam),
               Error);
}

// predict runs a micro-batch at a time (tiny28: 20 images); each image's logits are the bits of a
// call with just its micro-batch, and of the training forward.
TEST(Model, PredictInMicroBatches) {
  const Config c = find_preset("tiny28").config;
  // Six micro-batches of 7-8 images (one per thread at a time where there are two); the pieces
  // of 15 below are cut in two.
  const int B = 45, K = c.num_classes;
  ASSERT_EQ(micro_batch_images(c, B, c.num_tokens()), 10);
  Model model(c);
  init_with_larger_weights(model, 4, 2);
  const int64_t pixels = int64_t(c.channels) * c.image_size * c.image_size;
  auto images = random_vector(B * pixels, 12);
  std::vector<float> all(B * K), parts(B * K);
  model.predict(images.data(), B, all.data());
  for (int b0 = 0; b0 < B; b0 += 15)
    model.predict(images.data() + b0 * pixels, 15, parts.data() + b0 * K);
  EXPECT_EQ(std::memcmp(all.data(), parts.data(), all.size() * 4), 0)
      << "predict of 45 images differs from its three micro-batches alone";
  model.enable_training(B);
  const float* logits = model.forward(images.data(), B);
  expect_close("predict against the training forward", all.data(), logits, B * K, kFwdAtol,
               kFwdRtol);
}

// The memory estimates that train and bench check before allocating: inference needs the
// parameters and its workspaces, training also gradients, two AdamW moments and saved
// activations; both grow with the batch.
TEST(Model, MemoryEstimatesHoldTheirParts) {
  Config c;
  c.depth = 2;
  Model m(c);
  const int64_t params = int64_t(sizeof(float)) * int64_t(m.arena_floats());
  for (int B : {1, 8, 64}) {
    const int64_t infer = Model::inference_bytes(c, B), train = Model::training_bytes(c, B);
    EXPECT_GT(infer, params) << B;  // the workspaces come on top
    EXPECT_GE(train, 4 * params) << B;
    EXPECT_GT(train, infer) << B;
    if (B > 1) {
      EXPECT_GE(Model::inference_bytes(c, B), Model::inference_bytes(c, 1)) << B;
      EXPECT_GT(Model::training_bytes(c, B), Model::training_bytes(c, 1)) << B;
    }
  }
  EXPECT_THROW(Model::inference_bytes(c, 0), Error);
}

TEST(Model, ErrorsAreClear) {
  Config c = small_config();
  Model model(c);
  std::vector<float> images(2 * 2 * 8 * 8), logits(10);
  EXPECT_THROW(model.forward(images.data(), 2), Error);  // enable_training first
  EXPECT_THROW(model.backward(logits.data()), Error);
  model.enable_training(2);
  EXPECT_THROW(model.forward(images.data(), 3), Error);
  EXPECT_THROW(model.backward(logits.data()), Error);  // no forward yet
  EXPECT_THROW(model.predict(images.data(), 0, logits.data()), Error);
  const int32_t keep[4] = {0, 3, 1, 4};  // 4 patches: index 4 is outside
  EXPECT_THROW(model.forward(images.data(), 2, keep, 2), Error);
  EXPECT_THROW(model.forward(images.data(), 2, keep, 0), Error);
  EXPECT_THROW(model.forward(images.data(), 1, keep, 5), Error);
  EXPECT_THROW(model.forward(images.data(), 1, nullptr, 2), Error);
  EXPECT_NO_THROW(model.forward(images.data(), 1, keep, 2));
  c.heads = 5;
  EXPECT_THROW(Model bad(c), Error);
}

}  // namespace
}  // namespace vit::test
