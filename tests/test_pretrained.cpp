// timm / Hugging Face model files (vit/pretrained.hpp) against PyTorch: a model folder and a bare
// state dict made by tests/reference/make_timm_fixtures.py give timm's logits on a picture after
// timm's eval transform; what vitcpp cannot run is refused, named.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "idx_writer.hpp"
#include "test_util.hpp"
#include "vit/image.hpp"
#include "vit/pretrained.hpp"
#include "vit/safetensors.hpp"
#include "vit/train.hpp"
#include "vit/transforms.hpp"

namespace vit::test {
namespace {

namespace fs = std::filesystem;

// text with its first `from` replaced by `to` (a test failure when text has none).
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// The model's logits for a picture (the fixture's by default), prepared as vit predict prepares
// it.
std::vector<float> logits_for_photo(LoadedModel& m,
                                    const std::string& photo = fixture("timm/photo.png")) {
  const Config& c = m.meta.config;
  PrepareOptions o;
  o.invert = Invert::kOff;
  o.fit_mnist = 0;
  o.preprocess = m.meta.preprocess;
  o.border_fill = border_fill(m.meta.normalize);
  const PreparedImage p = prepare_image(decode_image(photo, {.exif = o.preprocess.exif}),
                                        c.channels, c.image_size, InputStyle{}, o);
  std::vector<float> x(p.pixels.size()), z(size_t(c.num_classes));
  normalize_image(p.pixels.data(), c.channels, c.image_size, m.meta.normalize, x.data());
  m.model.predict(x.data(), 1, z.data());
  return z;
}

// The float32 engine against float64 PyTorch on the same uint8 input: within 1e-4 of each logit's
// size (the model's sums are of tens of terms of size ~1; the issue's bound is 1e-3).
void expect_logits(const std::vector<float>& got, const std::string& name) {
  const SafetensorsReader want(fixture("timm/expected.safetensors"));
  const std::vector<float> w = want.read_f32(name);
  ASSERT_EQ(got.size(), w.size());
  for (size_t k = 0; k < w.size(); ++k) {
    EXPECT_NEAR(got[k], w[k], 1e-4 * std::max(1.0f, std::fabs(w[k]))) << name << " class " << k;
  }
}

TEST(Pretrained, TimmFolderGivesTimmsLogits) {
  const std::string dir = fixture("timm/cls");
  ASSERT_TRUE(is_timm_model(dir));
  LoadedModel m = load_any_model(dir);
  const Config& c = m.meta.config;
  EXPECT_EQ(c.image_size, 32);
  EXPECT_EQ(c.patch_size, 8);
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.heads, 4) << "model_args.num_heads, not 64 / 64";
  EXPECT_EQ(c.depth, 2);
  EXPECT_EQ(c.mlp_dim, 128);
  EXPECT_EQ(c.pool, Pool::kCls);
  EXPECT_EQ(m.meta.class_names,
            (std::vector<std::string>{"apple", "bear", "cloud", "door", "egg"}));
  EXPECT_DOUBLE_EQ(m.meta.preprocess.crop_pct, 0.9);
  EXPECT_EQ(m.meta.preprocess.interpolation, Interpolation::kBicubic);
  EXPECT_FLOAT_EQ(m.meta.normalize.mean[2], 0.40f);
  EXPECT_FLOAT_EQ(m.meta.normalize.std[2], 0.26f);
  EXPECT_EQ(m.metadata.at("architecture"), "vit_test_patch8_32");
  EXPECT_FALSE(m.meta.preprocess.exif) << "timm reads JPEGs as stored";
  expect_logits(logits_for_photo(m), "cls.logits");
}

TEST(Pretrained, BareTimmStateDictInfersItsShape) {
  const std::string file = fixture("timm/avg.safetensors");
  ASSERT_TRUE(is_timm_model(file));
  EXPECT_FALSE(is_timm_model(fixture("demo_tiny28.f16.safetensors"))) << "vitcpp's own checkpoint";
  LoadedModel m = load_any_model(file);
  const Config& c = m.meta.config;
  EXPECT_EQ(c.pool, Pool::kMean);
  EXPECT_EQ(c.heads, 1) << "64 / 64";
  EXPECT_EQ(c.num_classes, 3);
  EXPECT_EQ(m.meta.class_names, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_DOUBLE_EQ(m.meta.preprocess.crop_pct, 0.9) << "timm's ViT defaults";
  EXPECT_FLOAT_EQ(m.meta.normalize.mean[0], 0.5f);
  expect_logits(logits_for_photo(m), "avg.logits");
}

// timm's variants, each detected from its tensors (and config.json's architecture for what
// tensors cannot show: CLIP's LayerNorm eps and QuickGELU), give timm's logits.
TEST(Pretrained, TimmVariantsGiveTimmsLogits) {
  LoadedModel dist = load_any_model(fixture("timm/dist"));
  EXPECT_TRUE(dist.meta.config.dist_token);
  EXPECT_EQ(dist.meta.config.heads, 2);
  EXPECT_EQ(dist.meta.config.num_prefix_tokens(), 2);
  expect_logits(logits_for_photo(dist), "dist.logits");

  LoadedModel clip = load_any_model(fixture("timm/clip"));
  const Config& c = clip.meta.config;
  EXPECT_TRUE(c.norm_pre);
  EXPECT_FALSE(c.patch_bias) << "timm's CLIP towers have no patch_embed.proj.bias";
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.act, Act::kQuickGelu) << "from the architecture's name";
  EXPECT_FLOAT_EQ(c.ln_eps, 1e-5f) << "CLIP's LayerNorm";
  EXPECT_DOUBLE_EQ(clip.meta.preprocess.crop_pct, 1.0);
  expect_logits(logits_for_photo(clip), "clip.logits");

  LoadedModel reg = load_any_model(fixture("timm/reg.safetensors"));
  EXPECT_EQ(reg.meta.config.reg_tokens, 4);
  EXPECT_TRUE(reg.meta.config.no_embed_class) << "pos_embed has the 16 patches' rows only";
  EXPECT_TRUE(reg.meta.config.layer_scale);
  EXPECT_EQ(reg.meta.config.image_size, 32);
  expect_logits(logits_for_photo(reg), "reg.logits");
}

// Real photographs (python3-skimage's rocket.jpg, and its cat saved as a 4:2:0 JPEG by Pillow)
// through the whole pipeline at 224: libjpeg-turbo decoding as PIL's, Pillow's bicubic resize to
// 248, timm's centre crop, the model: timm's logits within 1e-3 * max(1, |logit|) (the issue's
// bound) and the same top-5.
TEST(Pretrained, RealPhotographsGiveTimmsLogitsAndTop5) {
  LoadedModel m = load_any_model(fixture("timm/photos224"));
  const SafetensorsReader want(fixture("timm/expected.safetensors"));
  for (const std::string name : {"rocket", "chelsea"}) {
    const std::vector<float> got = logits_for_photo(m, fixture("timm/photos/" + name + ".jpg"));
    const std::vector<float> w = want.read_f32("photos." + name);
    ASSERT_EQ(got.size(), w.size());
    double worst = 0;
    for (size_t k = 0; k < w.size(); ++k) {
      worst = std::max(worst, std::fabs(double(got[k]) - w[k]) / std::max(1.0f, std::fabs(w[k])));
    }
    EXPECT_LE(worst, 1e-3) << name;
    auto top5 = [](std::vector<float> v) {
      std::vector<int> idx(v.size());
      for (size_t i = 0; i < v.size(); ++i) idx[i] = int(i);
      std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return v[a] > v[b]; });
      idx.resize(5);
      return idx;
    };
    EXPECT_EQ(top5(got), top5(w)) << name;
    std::printf("[ photo ] %s: max |logit diff| / max(1, |logit|) = %.3g\n", name.c_str(), worst);
  }
}

// Position embeddings resampled for another image size as timm's resample_abs_pos_embed does
// (float32 in torch; the weights here in double): the class token's row kept.
TEST(Pretrained, PosEmbedResamplesAsTimm) {
  const SafetensorsReader f(fixture("timm/posembed.safetensors"));
  const std::vector<float> in = f.read_f32("in");
  for (const auto& [name, g] : {std::pair<std::string, int>{"out6", 6}, {"out3", 3}}) {
    const std::vector<float> want = f.read_f32(name);
    std::vector<float> got(want.size());
    resample_pos_embed(in.data(), 1, 4, g, 8, got.data());
    // Values of size ~1 through two passes of 4-8 taps in float32: a few ulps each.
    expect_close(name, got.data(), want, 2e-6, 2e-6);
    EXPECT_EQ(std::vector<float>(got.begin(), got.begin() + 8),
              std::vector<float>(in.begin(), in.begin() + 8));
  }
}

// a's and b's logits on one random image (seed), the same bit for bit.
void expect_same_logits(LoadedModel& a, LoadedModel& b, uint64_t seed) {
  const Config& c = a.meta.config;
  const std::vector<float> x =
      random_vector(int64_t(c.channels) * c.image_size * c.image_size, seed);
  std::vector<float> za(size_t(c.num_classes)), zb(za.size());
  a.model.predict(x.data(), 1, za.data());
  b.model.predict(x.data(), 1, zb.data());
  EXPECT_EQ(za, zb);
}

// How write_transformers_tensors names a timm fixture's tensors: ViT's or DeiT's classifier
// models (prefix "vit." or "deit."), or the backbone (prefix "", a pooler, no classifier).
struct TransformersForm {
  std::string prefix = "vit.";
  bool classifier = true;
  bool teacher = false;  // DeiTForImageClassificationWithTeacher's cls_ and distillation_classifier
  int swap_fc1 = -1;     // that layer's intermediate.dense.weight declared [in, out] (-1: none)
};

// Writes the timm fixture's tensors under transformers' names (q, k and v apart) into d's
// model.safetensors.
void write_transformers_tensors(const SafetensorsReader& timm, const std::string& d,
                                const TransformersForm& form) {
  auto hf_name = [&](const std::string& name) -> std::string {
    static const std::map<std::string, std::string> top = {
        {"cls_token", "embeddings.cls_token"},
        {"dist_token", "embeddings.distillation_token"},
        {"pos_embed", "embeddings.position_embeddings"},
        {"patch_embed.proj.weight", "embeddings.patch_embeddings.projection.weight"},
        {"patch_embed.proj.bias", "embeddings.patch_embeddings.projection.bias"},
        {"norm.weight", "layernorm.weight"},
        {"norm.bias", "layernorm.bias"}};
    static const std::map<std::string, std::string> block = {
        {"norm1", "layernorm_before"},
        {"norm2", "layernorm_after"},
        {"attn.proj", "attention.output.dense"},
        {"mlp.fc1", "intermediate.dense"},
        {"mlp.fc2", "output.dense"}};
    if (name.starts_with("head."))
      return (form.teacher ? "cls_classifier" : "classifier") + name.substr(4);
    if (name.starts_with("head_dist.")) return "distillation_classifier" + name.substr(9);
    if (top.count(name)) return form.prefix + top.at(name);
    const size_t dot = name.find('.', 7), last = name.rfind('.');
    const std::string layer = name.substr(7, dot - 7);
    return form.prefix + "encoder.layer." + layer + "." +
           block.at(name.substr(dot + 1, last - dot - 1)) + name.substr(last);
  };
  fs::create_directories(d);
  std::vector<std::vector<float>> keep;
  std::vector<TensorToWrite> t;
  for (const TensorInfo& info : timm.tensors()) {
    if (!form.classifier && info.name.starts_with("head")) continue;
    std::vector<float> v = timm.read_f32(info.name);
    if (info.name.find("attn.qkv.") != std::string::npos) {
      const std::string layer = info.name.substr(7, info.name.find('.', 7) - 7);
      const std::string what = info.name.ends_with("weight") ? "weight" : "bias";
      const int64_t third = int64_t(v.size()) / 3;
      std::vector<int64_t> shape = info.shape;
      shape[0] /= 3;
      const char* parts[] = {"query", "key", "value"};
      for (int i = 0; i < 3; ++i) {
        keep.emplace_back(v.begin() + i * third, v.begin() + (i + 1) * third);
        t.push_back({form.prefix + "encoder.layer." + layer + ".attention.attention." + parts[i] +
                         "." + what,
                     shape, nullptr});
      }
      continue;
    }
    keep.push_back(std::move(v));
    t.push_back({hf_name(info.name), info.shape, nullptr});
    if (info.name == "blocks." + std::to_string(form.swap_fc1) + ".mlp.fc1.weight")
      std::swap(t.back().shape[0], t.back().shape[1]);
  }
  if (!form.classifier) {  // the backbone's pooler: dense + tanh on the class token
    const int64_t D = timm.info("cls_token").shape[2];
    keep.emplace_back(size_t(D * D), 0.5f);
    t.push_back({"pooler.dense.weight", {D, D}, nullptr});
    keep.emplace_back(size_t(D), 0.0f);
    t.push_back({"pooler.dense.bias", {D}, nullptr});
  }
  for (size_t i = 0; i < t.size(); ++i) t[i].data = keep[i].data();
  write_safetensors(d + "/model.safetensors", t, {{"format", "pt"}});
}

// A Hugging Face transformers ViT folder (ViTForImageClassification's names, q, k and v apart, its
// config.json and preprocessor_config.json), made here from the timm fixture's tensors: the same
// network, so the same logits bit for bit on the same input; the shape from config.json, the
// class names from id2label, and the processor's stretch to the model's size, resample and
// statistics. Also ViTModel's backbone (its pooler unread) for fine-tuning, and what is refused.
TEST(Pretrained, TransformersViTFolders) {
  TempDir dir("transformers");
  const SafetensorsReader timm(fixture("timm/cls/model.safetensors"));
  // The fixture's tensors under transformers' names in folder d, with a config.json and a
  // ViTImageProcessor's preprocessor_config.json.
  auto write_folder = [&](const std::string& d, bool classifier, const std::string& prefix,
                          int swap_fc1 = -1) {
    write_transformers_tensors(timm, d,
                               {.prefix = prefix, .classifier = classifier, .swap_fc1 = swap_fc1});
    std::ofstream(d + "/config.json") << R"({
  "architectures": [")" << (classifier ? "ViTForImageClassification" : "ViTModel")
                                      << R"("],
  "model_type": "vit", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
  "intermediate_size": 128, "hidden_act": "gelu", "image_size": 32, "patch_size": 8,
  "num_channels": 3, "qkv_bias": true, "layer_norm_eps": 1e-06,
  "id2label": {"0": "apple", "1": "bear", "2": "cloud", "3": "door", "4": "egg"}
})";
    std::ofstream(d + "/preprocessor_config.json") << R"({
  "image_processor_type": "ViTImageProcessor", "do_resize": true,
  "size": {"height": 32, "width": 32}, "resample": 3, "do_normalize": true,
  "image_mean": [0.5, 0.4, 0.3], "image_std": [0.25, 0.2, 0.15]
})";
  };
  const std::string hf = dir / "vit-hf";
  write_folder(hf, true, "vit.");
  LoadedModel a = load_any_model(fixture("timm/cls"));
  LoadedModel b = load_any_model(hf);
  EXPECT_EQ(b.meta.config.to_json(), a.meta.config.to_json());
  EXPECT_EQ(b.meta.class_names,
            (std::vector<std::string>{"apple", "bear", "cloud", "door", "egg"}));
  EXPECT_EQ(b.meta.preprocess.crop_mode, CropMode::kSquash);
  EXPECT_EQ(b.meta.preprocess.crop_pct, 1.0);
  EXPECT_EQ(b.meta.preprocess.interpolation, Interpolation::kBicubic);
  EXPECT_EQ(b.meta.normalize.mean, (std::vector<float>{0.5f, 0.4f, 0.3f}));
  EXPECT_EQ(b.meta.normalize.std, (std::vector<float>{0.25f, 0.2f, 0.15f}));
  EXPECT_EQ(b.metadata.at("architecture"), "ViTForImageClassification");
  expect_same_logits(a, b, 11);
  // Exported, it is a timm folder with the same logits and preprocessing.
  export_timm(b, dir / "as-timm");
  LoadedModel back = load_any_model(dir / "as-timm");
  expect_same_logits(a, back, 11);
  EXPECT_EQ(back.meta.preprocess.crop_mode, CropMode::kSquash);
  // config.json with `from` replaced by `to` (the original kept aside for the next case).
  const std::string original = file_bytes(hf + "/config.json");
  auto config_with = [&](const std::string& from, const std::string& to) {
    std::ofstream(hf + "/config.json") << replaced(original, from, to);
  };
  // transformers' own default eps (1e-12), when config.json leaves it out.
  config_with(", \"layer_norm_eps\": 1e-06", "");
  {
    LoadedModel tiny_eps = load_any_model(hf);
    EXPECT_FLOAT_EQ(tiny_eps.meta.config.ln_eps, 1e-12f);
    // ... which timm's config.json cannot say: export refuses it, naming it.
    expect_error(
        [&] { export_timm(tiny_eps, dir / "eps-export"); },
        "this model has 1e-12 (a transformers ViT's default), which timm's config.json cannot say");
  }
  config_with("\"model_type\": \"vit\"", "\"model_type\": \"dinov2\"");
  expect_error([&] { load_any_model(hf); }, "a Hugging Face transformers \"dinov2\" checkpoint");
  std::ofstream(hf + "/config.json") << original;
  // A processor step vitcpp would not run as written is refused, not ignored.
  const std::string processor = file_bytes(hf + "/preprocessor_config.json");
  for (const auto& [from, to, phrase] : std::vector<std::array<std::string, 3>>{
           {"\"do_normalize\": true", "\"do_normalize\": false", "do_normalize false"},
           {"\"height\": 32", "\"height\": 48", "size {\"height\":48,\"width\":32} is not"},
           {"\"resample\": 3", "\"resample\": 1", "resample 1"}}) {
    std::ofstream(hf + "/preprocessor_config.json") << replaced(processor, from, to);
    expect_error([&] { load_any_model(hf); }, phrase);
  }
  std::ofstream(hf + "/preprocessor_config.json") << processor;
  // Refused, saying why: an activation vitcpp lacks, a layer count the tensors contradict, the
  // file without its folder.
  config_with("\"gelu\"", "\"silu\"");
  expect_error([&] { load_any_model(hf); }, "hidden_act 'silu' is not an activation");
  config_with("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
  expect_error([&] { load_any_model(hf); }, "num_hidden_layers contradicts the tensors' 2 layers");
  expect_error([&] { load_any_model(hf + "/model.safetensors"); }, "give its folder");
  std::ofstream(hf + "/config.json") << original;
  write_folder(dir / "swapped0", true, "vit.", /*swap_fc1=*/0);
  expect_error([&] { load_any_model(dir / "swapped0"); },
               "config.json's hidden_size or intermediate_size contradicts the tensors' 64 and 64");
  write_folder(dir / "swapped1", true, "vit.", /*swap_fc1=*/1);
  expect_error([&] { load_any_model(dir / "swapped1"); },
               "'vit.encoder.layer.1.intermediate.dense.weight' has shape [64, 128] where "
               "blocks.1.mlp.fc1.weight needs [128, 64]");
  // ViTModel (no prefix, a pooler, no classifier): a backbone that fine-tuning starts from.
  const std::string backbone = dir / "vit-model";
  write_folder(backbone, false, "");
  expect_error([&] { load_any_model(backbone); }, "`vit train --init " + backbone);
  LoadedModel c = load_any_model(backbone, nullptr, /*headless_ok=*/true);
  EXPECT_EQ(c.metadata.at("headless"), "true");
  EXPECT_EQ(c.meta.config.dim, 64);
}

// A Hugging Face transformers DeiT folder (DeiTForImageClassificationWithTeacher: deit.* names,
// the distillation token, cls_classifier and distillation_classifier), made from the timm DeiT
// fixture's tensors: the same network, so the same logits bit for bit. Its DeiTImageProcessor
// stretches the image to a square and cuts the model's size from its centre: crop_mode squash
// with the crop_pct that gives that square back. DeiTModel's backbone loads for fine-tuning;
// DeiTForImageClassification (one head on the class token beside a distillation token) and a
// cut vitcpp would centre elsewhere are refused.
TEST(Pretrained, TransformersDeiTFolders) {
  TempDir dir("transformers-deit");
  const SafetensorsReader timm(fixture("timm/dist/model.safetensors"));
  const std::string hf = dir / "deit-hf";
  write_transformers_tensors(timm, hf, {.prefix = "deit.", .teacher = true});
  const std::string config = R"({
  "architectures": ["DeiTForImageClassificationWithTeacher"], "model_type": "deit",
  "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
  "hidden_act": "gelu", "image_size": 32, "patch_size": 8, "num_channels": 3, "qkv_bias": true,
  "layer_norm_eps": 1e-06
})";
  std::ofstream(hf + "/config.json") << config;
  // The older feature extractor's form (sides as numbers), as facebook/deit-*-distilled-* have.
  const std::string processor = R"({
  "feature_extractor_type": "DeiTFeatureExtractor", "do_resize": true, "size": 36,
  "do_center_crop": true, "crop_size": 32, "resample": 3, "do_normalize": true,
  "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]
})";
  std::ofstream(hf + "/preprocessor_config.json") << processor;
  LoadedModel a = load_any_model(fixture("timm/dist"));
  LoadedModel b = load_any_model(hf);
  EXPECT_EQ(b.meta.config.to_json(), a.meta.config.to_json());
  ASSERT_TRUE(b.meta.config.dist_token);
  EXPECT_EQ(b.metadata.at("architecture"), "DeiTForImageClassificationWithTeacher");
  expect_same_logits(a, b, 12);
  // The processor's steps: stretched to 36 x 36 (bicubic), then the 32 x 32 at (36 - 32) // 2.
  const Preprocess& pre = b.meta.preprocess;
  EXPECT_EQ(pre.crop_mode, CropMode::kSquash);
  EXPECT_EQ(pre.interpolation, Interpolation::kBicubic);
  EXPECT_EQ(pre.scale_size(32), 36);
  EXPECT_EQ(b.meta.normalize.mean, (std::vector<float>{0.485f, 0.456f, 0.406f}));
  const Image photo = decode_image(fixture("timm/photo.png"), {.exif = false});
  const std::vector<uint8_t> got = eval_transform(photo, 32, pre, {0, 0, 0});
  const std::vector<uint8_t> whole = eval_transform(
      photo, 36, Preprocess{.crop_pct = 1.0, .crop_mode = CropMode::kSquash, .exif = false},
      {0, 0, 0});
  ASSERT_EQ(got.size(), size_t(3 * 32 * 32));
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < 32; ++y) {
      for (int xx = 0; xx < 32; ++xx) {
        ASSERT_EQ(got[size_t((c * 32 + y) * 32 + xx)],
                  whole[size_t((c * 36 + y + 2) * 36 + xx + 2)])
            << "channel " << c << " row " << y << " column " << xx;
      }
    }
  }
  // Exported, it is timm's DeiT distilled with the same logits and preprocessing.
  export_timm(b, dir / "as-timm");
  LoadedModel back = load_any_model(dir / "as-timm");
  expect_same_logits(a, back, 12);
  EXPECT_EQ(back.meta.preprocess.to_json(), pre.to_json());
  // The processor's newer form says the same; without a cut, the size must be the model's.
  auto processor_with = [&](const std::string& from, const std::string& to) {
    std::ofstream(hf + "/preprocessor_config.json") << replaced(processor, from, to);
    return hf;
  };
  processor_with(
      "\"feature_extractor_type\": \"DeiTFeatureExtractor\", \"do_resize\": true, "
      "\"size\": 36,",
      "\"image_processor_type\": \"DeiTImageProcessor\", \"size\": {\"height\": 36, "
      "\"width\": 36},");
  EXPECT_EQ(load_any_model(hf).meta.preprocess.to_json(), pre.to_json());
  processor_with("\"do_center_crop\": true", "\"do_center_crop\": false");
  expect_error([&] { load_any_model(hf); }, "size 36 is not the model's 32 x 32");
  std::ofstream(hf + "/preprocessor_config.json")
      << replaced(replaced(processor, "\"do_center_crop\": true", "\"do_center_crop\": false"),
                  "\"size\": 36", "\"size\": 32");
  EXPECT_EQ(load_any_model(hf).meta.preprocess.crop_pct, 1.0);
  std::ofstream(hf + "/preprocessor_config.json")
      << replaced(replaced(processor, "\"do_center_crop\": true", "\"do_center_crop\": false"),
                  "\"size\": 36,", "");
  expect_error([&] { load_any_model(hf); }, "size (256, the default) is not the model's 32 x 32");
  // Refused: a processor vitcpp does not run, DeiT's default sizes (256, 224) for a 32-pixel
  // model, a cut of 32 from 35 (transformers' margin 1, vitcpp's 2), a shortest edge.
  for (const auto& [from, to, phrase] : std::vector<std::array<std::string, 3>>{
           {"DeiTFeatureExtractor", "BitImageProcessor",
            "processor BitImageProcessor: vitcpp runs"},
           {"\"size\": 36,", "", "do_center_crop false"},
           {"\"size\": 36", "\"size\": 35", "cuts 32 pixels from 35: a margin whose centre"},
           {"\"size\": 36", "\"size\": {\"shortest_edge\": 36}", "is not a square at least"}}) {
    if (from == "\"size\": 36,") {  // no size, no crop_size: DeiT's defaults
      std::ofstream(hf + "/preprocessor_config.json")
          << replaced(replaced(processor, "\"size\": 36,", ""), "\"crop_size\": 32,", "");
      expect_error([&] { load_any_model(hf); }, "crop_size (224, the default) is not the model's");
      continue;
    }
    processor_with(from, to);
    expect_error([&] { load_any_model(hf); }, phrase);
  }
  // Without preprocessor_config.json, DeiTImageProcessor's defaults: 224 from 256.
  fs::remove(hf + "/preprocessor_config.json");
  expect_error([&] { load_any_model(hf); }, "crop_size (224, the default) is not the model's");
  // DeiTForImageClassification: one classifier on the class token, the distillation token kept.
  const std::string one_head = dir / "one-head";
  write_transformers_tensors(timm, one_head, {.prefix = "deit."});
  std::ofstream(one_head + "/config.json") << config;
  expect_error([&] { load_any_model(one_head); }, "is a DeiTForImageClassification");
  // DeiTModel (no prefix, a pooler, no classifier): a backbone that fine-tuning starts from.
  const std::string backbone = dir / "deit-model";
  write_transformers_tensors(timm, backbone, {.prefix = "", .classifier = false});
  std::ofstream(backbone + "/config.json") << config;
  std::ofstream(backbone + "/preprocessor_config.json") << processor;
  expect_error([&] { load_any_model(backbone); }, "`vit train --init " + backbone);
  LoadedModel c = load_any_model(backbone, nullptr, /*headless_ok=*/true);
  EXPECT_EQ(c.metadata.at("headless"), "true");
  EXPECT_TRUE(c.meta.config.dist_token);
}

// export_timm writes a folder that load_timm reads back to the same model: the same tensors byte
// for byte, shape, class names, preprocessing and normalisation, so the same logits.
TEST(Pretrained, ExportRoundTrips) {
  TempDir dir("export");
  for (const std::string& source :
       {fixture("timm/cls"), fixture("timm/avg.safetensors"), fixture("timm/dist"),
        fixture("timm/clip"), fixture("timm/reg.safetensors")}) {
    LoadedModel a = load_any_model(source);
    const std::string out = dir / fs::path(source).stem().string();
    export_timm(a, out);
    ASSERT_TRUE(is_timm_model(out));
    LoadedModel b = load_any_model(out);
    EXPECT_EQ(b.meta.config.to_json(), a.meta.config.to_json()) << source;
    EXPECT_EQ(b.meta.class_names, a.meta.class_names);
    EXPECT_EQ(b.meta.preprocess.to_json(), a.meta.preprocess.to_json());
    EXPECT_EQ(b.meta.normalize.mean, a.meta.normalize.mean);
    EXPECT_EQ(b.meta.normalize.std, a.meta.normalize.std);
    const SafetensorsReader from(fs::is_directory(source) ? source + "/model.safetensors" : source);
    const SafetensorsReader to(out + "/model.safetensors");
    ASSERT_EQ(to.tensors().size(), from.tensors().size());
    for (const TensorInfo& t : from.tensors()) {
      EXPECT_EQ(to.read_f32(t.name), from.read_f32(t.name)) << t.name;
    }
    EXPECT_EQ(logits_for_photo(b), logits_for_photo(a));
  }
  // A vitcpp model keeps what timm does not read (config.json's vitcpp_input and vitcpp_exif), so
  // that its prediction follows it: the MNIST demo's fit and inversion, and the EXIF orientation.
  LoadedModel demo = load_any_model(fixture("demo_tiny28.f16.safetensors"));
  ASSERT_TRUE(demo.meta.input.has_value());
  demo.meta.preprocess.exif = true;
  export_timm(demo, dir / "demo");
  const LoadedModel back = load_any_model(dir / "demo");
  ASSERT_TRUE(back.meta.input.has_value());
  EXPECT_EQ(back.meta.input->background, demo.meta.input->background);
  EXPECT_EQ(back.meta.input->fit_mnist, demo.meta.input->fit_mnist);
  EXPECT_TRUE(back.meta.preprocess.exif);
  EXPECT_FALSE(load_any_model(fixture("timm/cls")).meta.preprocess.exif) << "timm's own: PIL's";
}

// A model of config c with the fixture file f's tensors of its parameters, and the metadata an
// export writes (normalisation, preprocessing, class names).
LoadedModel model_from_fixture(const SafetensorsReader& f, const Config& c) {
  LoadedModel a{Model(c), {}, {}};
  for (const ParamInfo& p : a.model.params())
    f.read_f32(p.name, a.model.param(p.name).data, p.numel);
  a.meta.config = c;
  a.meta.normalize = {std::vector<float>(size_t(c.channels), 0.5f),
                      std::vector<float>(size_t(c.channels), 0.25f)};
  a.meta.preprocess = Preprocess{.crop_pct = 0.9};
  for (int k = 0; k < c.num_classes; ++k) a.meta.class_names.push_back("c" + std::to_string(k));
  return a;
}

// Average pooling's variants (a class token beside it; the norm before it, timm fc_norm=False)
// export with the model_args timm rebuilds them from (class_token, global_pool, fc_norm) and read
// back as the same model, from the folder and from the bare file (its tensors say which: a class
// token with fc_norm, or `norm` without a class token).
TEST(Pretrained, ExportRoundTripsAveragePoolingVariants) {
  TempDir dir("export-avg");
  // model_j again with GELU's tanh approximation: a SigLIP 2 gap tower's layout.
  for (const std::string name : {"model_i", "model_j", "model_j_tanh"}) {
    const bool tanh = name.ends_with("_tanh");
    const SafetensorsReader f(fixture(name.substr(0, 7) + ".safetensors"));
    Config fixture_config = Config::from_json(f.metadata().at("config"));
    if (tanh) fixture_config.act = Act::kGeluTanh;
    LoadedModel a = model_from_fixture(f, fixture_config);
    const Config& c = a.model.config();
    const std::string out = dir / name;
    export_timm(a, out);
    std::ifstream in(out + "/config.json");
    const nlohmann::json j = nlohmann::json::parse(in);
    EXPECT_EQ(j["model_args"].value("act_layer", "gelu"), tanh ? "gelu_tanh" : "gelu") << name;
    EXPECT_EQ(j["model_args"]["class_token"], c.has_class_token()) << name;
    EXPECT_EQ(j["model_args"]["global_pool"], "avg") << name;
    EXPECT_EQ(j["model_args"]["fc_norm"], !c.mean_after_norm) << name;
    LoadedModel b = load_any_model(out);
    EXPECT_EQ(b.meta.config.to_json(), c.to_json()) << name;
    EXPECT_EQ(std::memcmp(b.model.param_data(), a.model.param_data(), a.model.arena_floats() * 4),
              0)
        << name;
    TimmHints heads;
    heads.heads = c.heads;  // a bare file's tensors say neither these nor the activation
    heads.act = c.act;
    EXPECT_EQ(timm_config(SafetensorsReader(out + "/model.safetensors"), heads).to_json(),
              c.to_json())
        << name;
  }
}

// A convolutional stem is vitcpp's own (timm's ConvStem has BatchNorm): export refuses it, saying
// so, before it writes anything.
TEST(Pretrained, ExportRefusesAConvolutionalStem) {
  TempDir dir("export-stem");
  const SafetensorsReader f(fixture("model_k.safetensors"));
  LoadedModel a = model_from_fixture(f, Config::from_json(f.metadata().at("config")));
  ASSERT_GT(a.model.config().stem_channels, 0);
  const std::string out = dir / "stem";
  try {
    export_timm(a, out);
    ADD_FAILURE() << "exported a model with a convolutional stem";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("convolutional stem"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
}

// timm's patch embedding has a bias exactly where it has no norm_pre. A model with norm_pre and a
// bias (a CLIP tower fine-tuned by vitcpp before patch_bias existed: model_d's variants) exports
// with the bias folded into pos_embed's patch rows; one with neither gets a zero bias. Both read
// back as timm's layout with the logits of the model exported: the fold moves one rounding per
// embedding value (2^-24 relative), which LayerNorm and two blocks keep far below 1e-5 of a logit;
// the zero bias adds +0, exactly.
TEST(Pretrained, ExportWritesTimmsPatchBias) {
  TempDir dir("export-bias");
  const SafetensorsReader f(fixture("model_d.safetensors"));
  for (bool drop_pre : {false, true}) {
    Config c = Config::from_json(f.metadata().at("config"));
    ASSERT_TRUE(c.norm_pre && c.patch_bias);
    if (drop_pre) {  // no norm_pre, and no patch bias either
      c.norm_pre = false;
      c.patch_bias = false;
    }
    LoadedModel a = model_from_fixture(f, c);
    const std::string out = dir / (drop_pre ? "plain" : "clip");
    export_timm(a, out);
    const SafetensorsReader written(out + "/model.safetensors");
    EXPECT_EQ(written.contains("patch_embed.proj.bias"), !c.norm_pre);
    LoadedModel b = load_any_model(out);
    EXPECT_EQ(b.meta.config.patch_bias, !c.norm_pre);
    const std::vector<float> want = logits_for_photo(a), got = logits_for_photo(b);
    for (size_t k = 0; k < want.size(); ++k) {
      if (drop_pre) {
        EXPECT_EQ(got[k], want[k]) << "logit " << k;
      } else {
        EXPECT_NEAR(got[k], want[k], 1e-5 * std::max(1.0f, std::abs(want[k]))) << "logit " << k;
      }
    }
  }
}

// --arch: a named architecture gives a bare file its heads and its weights' preprocessing, and
// refuses tensors of another shape; the timm presets carry what their weights expect.
TEST(Pretrained, ArchGivesHeadsAndPreprocessing) {
  const TimmArch deit = preset_arch("deit_small_patch16_224");
  EXPECT_EQ(deit.config.heads, 6);
  EXPECT_DOUBLE_EQ(deit.preprocess.crop_pct, 0.9) << "deit.py's _cfg";
  EXPECT_FLOAT_EQ(deit.normalize.mean[0], 0.485f);
  const TimmArch vit384 = preset_arch("vit_base_patch16_384");
  EXPECT_EQ(vit384.config.image_size, 384);
  EXPECT_DOUBLE_EQ(vit384.preprocess.crop_pct, 1.0);
  EXPECT_FLOAT_EQ(vit384.normalize.std[2], 0.5f);
  // CLIP: the OpenAI weights' crops (vision_transformer.py's openai tags).
  EXPECT_DOUBLE_EQ(preset_arch("vit_large_patch14_clip_quickgelu_224").preprocess.crop_pct, 1.0);
  EXPECT_DOUBLE_EQ(preset_arch("vit_base_patch16_clip_224").preprocess.crop_pct, 0.9);
  expect_error([] { preset_arch("tiny28"); }, "not a timm architecture");
  // The variants' presets, as timm's model definitions build them.
  const Config reg4 = preset_arch("vit_base_patch14_reg4_dinov2").config;
  EXPECT_EQ(reg4.patch_size, 14);
  EXPECT_EQ(reg4.image_size, 518);
  EXPECT_EQ(reg4.reg_tokens, 4);
  EXPECT_TRUE(reg4.no_embed_class && reg4.layer_scale && !reg4.norm_pre);
  EXPECT_EQ(reg4.num_tokens(), 37 * 37 + 5);
  const TimmArch clip = preset_arch("vit_base_patch16_clip_quickgelu_224");
  EXPECT_TRUE(clip.config.norm_pre);
  EXPECT_FLOAT_EQ(clip.config.ln_eps, 1e-5f);
  EXPECT_EQ(clip.config.act, Act::kQuickGelu);
  EXPECT_FLOAT_EQ(clip.normalize.mean[0], 0.48145466f);
  EXPECT_EQ(preset_arch("vit_base_patch16_clip_224").config.act, Act::kGelu);
  const Config deit3 = preset_arch("deit3_large_patch16_384").config;
  EXPECT_TRUE(deit3.no_embed_class && deit3.layer_scale);
  EXPECT_EQ(deit3.depth, 24);
  EXPECT_TRUE(preset_arch("deit_tiny_distilled_patch16_224").config.dist_token);
  // DeiT III's medium and huge: timm's parameter counts (38.85M, 632.13M).
  EXPECT_EQ(preset_arch("deit3_medium_patch16_224").config.num_params(), 38'849'512);
  const Config huge = preset_arch("deit3_huge_patch14_224").config;
  EXPECT_EQ(huge.num_params(), 632'126'440);
  EXPECT_TRUE(huge.layer_scale && huge.no_embed_class && huge.patch_size == 14);
  const std::string file = fixture("timm/avg.safetensors");
  TimmArch arch{"fixture_arch", load_any_model(file).meta.config, deit.normalize,
                Preprocess{.crop_pct = 0.95, .interpolation = Interpolation::kBilinear}};
  arch.config.num_classes = 1000;  // another head is still the architecture
  LoadedModel m = load_any_model(file, &arch);
  EXPECT_DOUBLE_EQ(m.meta.preprocess.crop_pct, 0.95);
  EXPECT_FLOAT_EQ(m.meta.normalize.mean[0], 0.485f);
  EXPECT_EQ(m.meta.config.num_classes, 3);
  arch.config.depth = 2;
  expect_error([&] { load_any_model(file, &arch); }, "is not fixture_arch's shape");
  expect_error([&] { load_any_model(fixture("demo_tiny28.f16.safetensors"), &deit); },
               "names its own architecture");
}

// config.json's architecture name gives the heads where model_args does not (timm's hub configs
// often have none): vit_huge's 1280 wide has 16 heads, not 1280 / 64 = 20. Only for the width the
// name's size has; other widths keep 64 a head.
TEST(Pretrained, ArchitectureNameGivesTheHeads) {
  EXPECT_EQ(timm_size_of("vit_huge_patch14_224")->heads, 16);
  EXPECT_EQ(timm_size_of("timm/deit3_huge_patch14_224.fb_in22k_ft_in1k")->dim, 1280);
  EXPECT_EQ(timm_size_of("vit_giant_patch14_dinov2.lvd142m")->heads, 16);
  EXPECT_EQ(timm_size_of("deit_small_patch16_224")->heads, 6);
  EXPECT_EQ(timm_size_of("vit_base_patch16_clip_224.openai")->heads, 12);
  EXPECT_EQ(timm_size_of("resnet50"), nullptr);
  EXPECT_EQ(timm_size_of("vit_wee_patch16_224"), nullptr);
  EXPECT_EQ(&timm_size("huge"), timm_size_of("vit_huge_patch14_clip_224"));
  expect_error([] { timm_size("wee"); }, "no ViT size 'wee'");
  // SigLIP's widths, and timm's one base of 16 heads: not width / 64 (18, 24) nor base's 12.
  EXPECT_EQ(timm_size_of("timm/vit_so400m_patch14_siglip_gap_224.webli")->heads, 16);
  EXPECT_EQ(timm_size_of("vit_so400m_patch14_siglip_gap_224")->dim, 1152);
  EXPECT_EQ(timm_size_of("vit_giantopt_patch16_siglip_gap_256")->heads, 16);
  EXPECT_EQ(timm_size_of("vit_base_patch16_gap_224")->heads, 16);
  EXPECT_EQ(timm_size_of("vit_base_patch16_224.augreg_in21k")->heads, 12);
  // The hint on the fixture (64 wide): a size of its width gives its heads, another width none.
  const SafetensorsReader f(fixture("timm/avg.safetensors"));
  const TimmSize narrow{"narrow", 64, 1, 2}, wide{"wide", 128, 1, 2};
  EXPECT_EQ(timm_config(f, {.size = &narrow}).heads, 2);
  EXPECT_EQ(timm_config(f, {.size = &wide}).heads, 1) << "64 / 64";
  EXPECT_EQ(timm_config(f, {.heads = 4, .size = &narrow}).heads, 4) << "model_args first";
}

// A bare state dict says no heads: a width of timm's size table gets that size's (huge's 1280:
// 16, not 1280 / 64 = 20), another width heads of 64; either way the model's metadata says it was
// assumed (vit info shows it), and a folder's config.json or --arch ends the guess.
TEST(Pretrained, BareFilesTakeTheirWidthsHeads) {
  TempDir dir("heads");
  for (const auto& [dim, heads] : {std::pair{1280, 16}, {320, 5}}) {
    Config c;
    c.channels = 3, c.image_size = 8, c.patch_size = 4, c.dim = dim, c.heads = heads;
    c.depth = 1, c.mlp_dim = 8, c.num_classes = 3;
    LoadedModel m{Model(c), {}, {}};
    m.model.init(7);
    m.meta.config = c;
    m.meta.class_names = {"a", "b", "c"};
    m.meta.normalize = {{0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}};
    const std::string out = dir / std::to_string(dim);
    export_timm(m, out);
    const LoadedModel bare = load_any_model(out + "/model.safetensors");
    EXPECT_EQ(bare.meta.config.heads, heads) << dim;
    ASSERT_TRUE(bare.metadata.count("heads_assumed")) << dim;
    EXPECT_EQ(bare.metadata.at("heads_assumed").rfind(std::to_string(heads) + " (", 0), 0u)
        << bare.metadata.at("heads_assumed");
    const LoadedModel folder = load_any_model(out);  // config.json's model_args.num_heads
    EXPECT_EQ(folder.meta.config.heads, heads);
    EXPECT_FALSE(folder.metadata.count("heads_assumed")) << dim;
  }
}

// Copies of the fixture's tensors, with one added or renamed, written as a bare state dict.
std::string with_tensor(const TempDir& dir, const std::string& name, const std::string& add,
                        const std::string& rename_from = "", const std::string& rename_to = "") {
  const SafetensorsReader f(fixture("timm/avg.safetensors"));
  std::vector<std::vector<float>> data;
  std::vector<TensorToWrite> t;
  data.reserve(f.tensors().size() + 1);
  for (const TensorInfo& i : f.tensors()) {
    data.push_back(f.read_f32(i.name));
    t.push_back({i.name == rename_from ? rename_to : i.name, i.shape, data.back().data()});
  }
  if (!add.empty()) {
    data.push_back(std::vector<float>(64, 0.0f));
    t.push_back({add, {1, 1, 64}, data.back().data()});
  }
  const std::string path = dir / name;
  write_safetensors(path, t, {{"format", "pt"}});
  return path;
}

TEST(Pretrained, WhatCannotRunIsRefusedNamed) {
  TempDir dir("pretrained");
  expect_error(
      [&] {
        load_any_model(
            with_tensor(dir, "rel.safetensors", "blocks.0.attn.relative_position_bias_table"));
      },
      "'blocks.0.attn.relative_position_bias_table': relative position biases");
  expect_error(
      [&] { load_any_model(with_tensor(dir, "attnpool.safetensors", "attn_pool.latent")); },
      "an attention-pooling head");
  {
    // timm's packed SwiGLU (GluMlp, DINOv2 giant): fc1 and fc2 by name, fc1 twice as wide as fc2
    // reads.
    const SafetensorsReader f(fixture("timm/avg.safetensors"));
    std::vector<std::vector<float>> data;
    std::vector<TensorToWrite> t;
    data.reserve(f.tensors().size());
    for (const TensorInfo& i : f.tensors()) {
      std::vector<int64_t> shape = i.shape;
      if (i.name.rfind("blocks.0.mlp.fc1.", 0) == 0) shape[0] *= 2;
      data.push_back(std::vector<float>(
          size_t(std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>()))));
      t.push_back({i.name, shape, data.back().data()});
    }
    write_safetensors(dir / "glu.safetensors", t, {{"format", "pt"}});
    expect_error([&] { load_any_model(dir / "glu.safetensors"); },
                 "blocks.0.mlp.fc1.weight has 128 rows, twice the 64 that mlp.fc2 reads: a gated "
                 "(SwiGLU) MLP");
  }
  // The variants' tensors must be whole and of their shapes.
  expect_error([&] { load_any_model(with_tensor(dir, "dist.safetensors", "dist_token")); },
               "DeiT distilled, which also has a class token");
  expect_error([&] { load_any_model(with_tensor(dir, "ls.safetensors", "blocks.0.ls1.gamma")); },
               "'blocks.0.ls1.gamma' has shape [1, 1, 64] but the config needs [64]");
  // A register token beside average pooling: pos_embed's 16 rows are then the patches' alone
  // (no_embed_class).
  EXPECT_EQ(load_any_model(with_tensor(dir, "reg.safetensors", "reg_token")).meta.config.reg_tokens,
            1);
  expect_error(
      [&] { load_any_model(with_tensor(dir, "hf.safetensors", "vit.embeddings.cls_token")); },
      "Hugging Face transformers checkpoint");
  expect_error(
      [&] { load_any_model(with_tensor(dir, "nohead.safetensors", "", "head.weight", "head_w")); },
      "has no head.weight");
  // ... which fine-tuning may start from when the head is wholly absent (a backbone).
  expect_error(
      [&] {
        load_any_model(with_tensor(dir, "nohead.safetensors", "", "head.weight", "head_w"), nullptr,
                       true);
      },
      "has head.bias but no head.weight");
  // A folder with only pytorch_model.bin: how to convert it.
  fs::create_directories(dir / "bin");
  write_bytes(dir / "bin/pytorch_model.bin", {1, 2, 3}, false);
  expect_error([&] { load_any_model(dir / "bin"); }, "safetensors.torch.save_file");
  // A config.json that contradicts the tensors, or asks for what vitcpp does not do.
  auto folder_with = [&](const std::string& name, const std::string& from, const std::string& to) {
    const std::string d = dir / name;
    fs::create_directories(d);
    fs::copy_file(fixture("timm/cls/model.safetensors"), d + "/model.safetensors");
    std::ofstream(d + "/config.json")
        << replaced(file_bytes(fixture("timm/cls/config.json")), from, to);
    return d;
  };
  expect_error(
      [&] { load_any_model(folder_with("k", "\"num_classes\": 5", "\"num_classes\": 7")); },
      "num_classes 7 contradicts head.weight's 5 rows");
  expect_error(
      [&] {
        load_any_model(
            folder_with("pool", "\"global_pool\": \"token\"", "\"global_pool\": \"map\""));
      },
      "global_pool 'map': vitcpp reads token and avg pooling only");
  {
    // A class token and `norm` with global_pool 'avg' is timm's class token beside average
    // pooling, with the norm on the tokens before it (fc_norm=False).
    const LoadedModel avg = load_any_model(
        folder_with("avg", "\"global_pool\": \"token\"", "\"global_pool\": \"avg\""));
    EXPECT_EQ(avg.meta.config.pool, Pool::kMean);
    EXPECT_TRUE(avg.meta.config.mean_class_token);
    EXPECT_TRUE(avg.meta.config.mean_after_norm);
  }
  expect_error([&] { load_any_model(folder_with("lanczos", "\"bicubic\"", "\"lanczos\"")); },
               "vitcpp resizes with bilinear, bicubic or nearest");
  expect_error(
      [&] {
        load_any_model(folder_with("size", "\"input_size\": [\n            3,\n            32",
                                   "\"input_size\": [\n            3,\n            64"));
      },
      "contradicts the tensors' 3x32x32");
  // An input size the patch does not divide (SigLIP's 384 in patches of 14) is the image size:
  // the grid the tensors say, and the last rows and columns unseen, as in timm.
  {
    LoadedModel uneven = load_any_model(
        folder_with("p14", "\"input_size\": [\n            3,\n            32,\n            32",
                    "\"input_size\": [\n            3,\n            35,\n            35"));
    EXPECT_EQ(uneven.meta.config.image_size, 35);
    EXPECT_EQ(uneven.meta.config.grid(), 4);
    const std::vector<float> z = logits_for_photo(uneven);
    // Exported, it reads back at the same size, with the same logits.
    export_timm(uneven, dir / "p14-export");
    LoadedModel back = load_any_model(dir / "p14-export");
    EXPECT_EQ(back.meta.config.image_size, 35);
    EXPECT_EQ(logits_for_photo(back), z);
  }
  // Architectures whose tensors read as a ViT that vitcpp runs, but which compute otherwise: only
  // the name tells.
  const std::string test_arch = "\"vit_test_patch8_32\"";
  expect_error(
      [&] {
        load_any_model(folder_with("rpn", test_arch, "\"vit_base_patch16_rpn_224.sw_in1k\""));
      },
      "norms after attention and the MLP (ResPostBlock)");
  // timm builds SigLIP 2's towers with GELU's tanh approximation, which only the name says (or
  // model_args.act_layer). The same tensors then give other logits: GELU's tanh form is within
  // 4.7e-4 of GELU everywhere, QuickGELU 43 times further (2.0e-2), so to first order the logits
  // move over 10 times less with it than with QuickGELU (measured: 1.2e-4 and 4.3e-3).
  {
    auto logits_of = [&](const std::string& d) {
      LoadedModel m = load_any_model(d);
      return std::make_pair(m.meta.config.act, logits_for_photo(m));
    };
    auto with_act = [&](const std::string& name, const std::string& act) {
      return folder_with(name, "\"num_heads\": 4",
                         "\"act_layer\": \"" + act + "\", \"num_heads\": 4");
    };
    const auto [gelu_act, gelu] = logits_of(fixture("timm/cls"));
    const auto [tanh_act, tanh] = logits_of(
        folder_with("tanh", test_arch, "\"timm/vit_so400m_patch16_siglip_gap_384.v2_webli\""));
    const auto [args_act, args] = logits_of(with_act("tanh_args", "gelu_tanh"));
    const auto [quick_act, quick] = logits_of(with_act("quick_args", "quick_gelu"));
    EXPECT_EQ(gelu_act, Act::kGelu);
    EXPECT_EQ(tanh_act, Act::kGeluTanh);
    EXPECT_EQ(args_act, Act::kGeluTanh);
    EXPECT_EQ(quick_act, Act::kQuickGelu);
    EXPECT_EQ(tanh, args);
    auto moved = [&](const std::vector<float>& z) {
      double m = 0;
      for (size_t k = 0; k < gelu.size(); ++k) m = std::max(m, double(std::abs(z[k] - gelu[k])));
      return m;
    };
    EXPECT_GT(moved(tanh), 0.0) << "gelu_tanh gave GELU's logits";
    EXPECT_LT(moved(tanh), moved(quick) / 10) << "gelu_tanh moved the logits as far as QuickGELU";
    expect_error([&] { load_any_model(with_act("swish", "silu")); },
                 "is not an activation vitcpp has (gelu, quick_gelu, gelu_tanh)");
  }
  // A headless folder: the advice names the folder, whose config.json --init then reads.
  {
    const std::string d = folder_with("headless", test_arch, test_arch);
    write_without_head(d + "/model.safetensors", d + "/model.safetensors");
    expect_error([&] { load_any_model(d); }, "`vit train --init " + d + " --data ...`");
  }
}

}  // namespace
}  // namespace vit::test
