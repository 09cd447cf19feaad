// timm / Hugging Face model files (vit/pretrained.hpp): the config read from the tensors' names and
// shapes, checked against config.json, and the pretrained_cfg's preprocessing.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/atomic_file.hpp"
#include "core/numbers.hpp"
#include "data/resample.hpp"
#include "io/imagenet_classes.hpp"
#include "io/weights.hpp"
#include "vit/error.hpp"
#include "vit/pretrained.hpp"
#include "vit/transforms.hpp"

namespace vit {
namespace {

namespace fs = std::filesystem;

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

// Features of timm's VisionTransformer (and relatives) that vitcpp's graph does not have, found by
// a part of a tensor's name.
struct Unsupported {
  const char* part;
  const char* feature;
};
constexpr Unsupported kUnsupported[] = {
    {"relative_position", "relative position biases"},
    {"rel_pos", "relative position biases"},
    {"attn_pool", "an attention-pooling head"},
    {"mlp.fc1_g", "a SwiGLU MLP"},
    {"mlp.w12", "a SwiGLU MLP"},
    {"patch_embed.backbone", "a convolutional stem (hybrid ViT)"},
    {"patch_embed.proj.0", "a convolutional stem"},
    {".gamma_1", "LayerScale (BEiT-style)"},
    {"mask_token", "a mask token (BEiT-style)"},
};

// Whether a tensor's name is a Hugging Face transformers ViT's or DeiT's
// (ViTForImageClassification's vit.*, DeiTForImageClassificationWithTeacher's deit.*, the
// backbones' embeddings.*), not timm's.
bool transformers_name(const std::string& name) {
  return name.starts_with("vit.") || name.starts_with("deit.") || name.starts_with("embeddings.");
}

const TensorInfo& need(const SafetensorsReader& f, const std::string& name, size_t rank) {
  VIT_CHECK(f.contains(name), "'" + f.path() + "' has no tensor '" + name +
                                  "': not a timm VisionTransformer state dict vitcpp can read");
  const TensorInfo& t = f.info(name);
  VIT_CHECK(t.shape.size() == rank &&
                std::all_of(t.shape.begin(), t.shape.end(), [](int64_t d) { return d >= 1; }),
            "'" + f.path() + "': tensor '" + name + "' has shape " + shape_text(t.shape) +
                "; a timm ViT's has " + std::to_string(rank) + " dimensions");
  return t;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  VIT_CHECK(in.good(), "cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error("'" + path + "' is not valid JSON: " + e.what());
  }
}

// timm's defaults for its ViTs when a file says nothing (vision_transformer.py's _cfg).
void timm_vit_defaults(ModelMeta& m) {
  m.normalize = {std::vector<float>(size_t(m.config.channels), 0.5f),
                 std::vector<float>(size_t(m.config.channels), 0.5f)};
  m.preprocess = Preprocess{.crop_pct = 0.9, .interpolation = Interpolation::kBicubic};
}

// o[key], when o has it, as `channels` finite numbers into out; otherwise a vit::Error that names
// it as where + key ("'DIR': pretrained_cfg." + "mean").
void read_channel_values(const nlohmann::json& o, const char* key, const std::string& where,
                         int channels, std::vector<float>& out) {
  if (!o.contains(key)) return;
  const nlohmann::json& v = o[key];
  VIT_CHECK(v.is_array() && int(v.size()) == channels,
            where + key + " must hold " + std::to_string(channels) + " numbers");
  out.clear();
  for (const auto& x : v) {
    VIT_CHECK(x.is_number() && std::isfinite(x.get<double>()), where + key + " must hold numbers");
    out.push_back(x.get<float>());
  }
}

// config.json's pretrained_cfg and labels into meta, each checked against the tensors' config.
void apply_config_json(const nlohmann::json& j, const std::string& path, ModelMeta& m) {
  const Config& c = m.config;
  auto bad = [&](const std::string& what) { return "'" + path + "': " + what; };
  VIT_CHECK(j.is_object(), bad("config.json must be a JSON object"));
  if (j.contains("num_classes")) {
    VIT_CHECK(j["num_classes"].is_number_integer() && j["num_classes"] == c.num_classes,
              bad("num_classes " + j["num_classes"].dump() + " contradicts head.weight's " +
                  std::to_string(c.num_classes) + " rows"));
  }
  if (j.contains("global_pool") && j["global_pool"].is_string()) {
    const std::string pool = j["global_pool"];
    const bool token = c.pool == Pool::kCls;
    VIT_CHECK(pool == "token" || pool == "avg",
              bad("global_pool '" + pool + "': vitcpp reads token and avg pooling only"));
    VIT_CHECK((pool == "token" && token) || (pool == "avg" && !token),
              bad("global_pool '" + pool + "' contradicts the tensors (" +
                  (token ? "a class token and norm: token"
                         : (c.has_class_token() ? "a class token and fc_norm: avg"
                                                : "no class token: avg")) +
                  "); vitcpp reads token and avg pooling"));
  }
  if (j.contains("pretrained_cfg")) {
    const nlohmann::json& p = j["pretrained_cfg"];
    VIT_CHECK(p.is_object(), bad("pretrained_cfg must be an object"));
    if (p.contains("input_size")) {
      const nlohmann::json& s = p["input_size"];
      // An input size the patch does not divide (SigLIP's 384 in patches of 14: a 27 x 27 grid
      // of 378 pixels) is the image size: timm's patch embedding, as vitcpp's, leaves the last
      // rows and columns unseen (Config::grid), and the tensors say only the grid.
      if (s.is_array() && s.size() == 3 && s[1].is_number_integer() && s[1] == s[2] &&
          s[1].get<int64_t>() > c.image_size && s[1].get<int64_t>() / c.patch_size == c.grid()) {
        m.config.image_size = s[1].get<int>();
      }
      VIT_CHECK(s.is_array() && s.size() == 3 && s[0] == c.channels && s[1] == c.image_size &&
                    s[2] == c.image_size,
                bad("pretrained_cfg.input_size " + s.dump() + " contradicts the tensors' " +
                    std::to_string(c.channels) + "x" + std::to_string(c.image_size) + "x" +
                    std::to_string(c.image_size)));
    }
    read_channel_values(p, "mean", bad("pretrained_cfg."), c.channels, m.normalize.mean);
    read_channel_values(p, "std", bad("pretrained_cfg."), c.channels, m.normalize.std);
    for (float s : m.normalize.std) VIT_CHECK(s > 0, bad("pretrained_cfg.std must be positive"));
    // crop_pct, crop_mode and interpolation as the field lists read them.
    nlohmann::json pre = nlohmann::json::object();
    for (const char* key : {"crop_pct", "crop_mode", "interpolation"}) {
      if (p.contains(key)) pre[key] = p[key];
    }
    try {
      const Preprocess defaults = m.preprocess;
      m.preprocess = Preprocess::from_json(pre.dump());
      if (!pre.contains("crop_pct")) m.preprocess.crop_pct = defaults.crop_pct;
      if (!pre.contains("interpolation")) m.preprocess.interpolation = defaults.interpolation;
    } catch (const Error& e) {
      throw Error(bad(std::string("pretrained_cfg: ") + e.what() +
                      " (vitcpp resizes with bilinear, bicubic or nearest)"));
    }
  }
  // Class names: label_names (a list, or ids to names), else transformers' id2label.
  const char* names_key = j.contains("label_names") ? "label_names"
                          : j.contains("id2label")  ? "id2label"
                                                    : nullptr;
  if (names_key) {
    const nlohmann::json& v = j[names_key];
    std::vector<std::string> names(size_t(c.num_classes));
    if (v.is_array()) {
      VIT_CHECK(int(v.size()) == c.num_classes,
                bad(std::string(names_key) + " has " + std::to_string(v.size()) + " names for " +
                    std::to_string(c.num_classes) + " classes"));
      for (size_t k = 0; k < v.size(); ++k) {
        VIT_CHECK(v[k].is_string(), bad(std::string(names_key) + " must hold strings"));
        names[k] = v[k].get<std::string>();
      }
    } else {
      VIT_CHECK(v.is_object(), bad(std::string(names_key) + " must be a list or an object"));
      for (auto it = v.begin(); it != v.end(); ++it) {
        char* end = nullptr;
        const long k = std::strtol(it.key().c_str(), &end, 10);
        VIT_CHECK(end && *end == '\0' && k >= 0 && k < c.num_classes && it.value().is_string(),
                  bad(std::string(names_key) + ": '" + it.key() + "' is not a class index"));
        names[size_t(k)] = it.value().get<std::string>();
      }
    }
    for (int k = 0; k < c.num_classes; ++k) {
      if (names[size_t(k)].empty()) names[size_t(k)] = std::to_string(k);
    }
    m.class_names = names;
  }
}

}  // namespace

namespace {
const TimmSize* size_of_width(int dim);

// Whether hints say how many heads a model dim wide has (model_args, `--arch`, or the size its
// architecture's name gives, when the width is that size's).
bool heads_given(const TimmHints& hints, int dim) {
  return hints.heads > 0 || (hints.size && hints.size->dim == dim);
}
}  // namespace

Config timm_config(const SafetensorsReader& f, const TimmHints& hints) {
  const std::string& path = f.path();
  for (const TensorInfo& t : f.tensors()) {
    VIT_CHECK(!transformers_name(t.name),
              "'" + path + "' holds '" + t.name +
                  "': a Hugging Face transformers checkpoint, which vitcpp reads from its folder "
                  "(config.json says its shape); or use the timm version of the model (hub names "
                  "timm/...)");
    for (const Unsupported& u : kUnsupported) {
      VIT_CHECK(t.name.find(u.part) == std::string::npos, "'" + path + "' holds '" + t.name +
                                                              "': " + u.feature +
                                                              ", which vitcpp's ViT does not have");
    }
  }
  Config c;
  const TensorInfo& pw = need(f, "patch_embed.proj.weight", 4);
  VIT_CHECK(pw.shape[2] == pw.shape[3], "'" + path + "': patch_embed.proj.weight " +
                                            shape_text(pw.shape) +
                                            " has non-square patches, which vitcpp does not have");
  c.dim = int(pw.shape[0]);
  c.channels = int(pw.shape[1]);
  c.patch_size = int(pw.shape[2]);
  const bool cls = f.contains("cls_token");
  const bool fc_norm = f.contains("fc_norm.weight"), norm = f.contains("norm.weight");
  VIT_CHECK(fc_norm != norm, "'" + path + "' has " +
                                 (norm ? "both norm.weight and fc_norm.weight"
                                       : "neither norm.weight nor fc_norm.weight") +
                                 ": not a timm ViT with one final LayerNorm");
  // Token pooling needs the class token and `norm`; anything else averages the patch tokens.
  const bool avg = !cls || fc_norm || hints.avg_pool.value_or(false);
  c.pool = avg ? Pool::kMean : Pool::kCls;
  c.mean_class_token = avg && cls;
  c.mean_after_norm = avg && norm;
  c.pos_embed = PosEmbed::kLearned;
  if (cls) need(f, "cls_token", 3);
  // The variants, each from its tensors.
  auto token_rows = [&](const char* name) {
    const TensorInfo& t = need(f, name, 3);
    VIT_CHECK(t.shape[0] == 1 && t.shape[2] == c.dim, "'" + path + "': " + name + " " +
                                                          shape_text(t.shape) + " is not [1, n, " +
                                                          std::to_string(c.dim) + "]");
    return t.shape[1];
  };
  if (cls) {
    VIT_CHECK(token_rows("cls_token") == 1, "'" + path + "': cls_token must be one row");
  }
  if (f.contains("dist_token")) {
    VIT_CHECK(cls && token_rows("dist_token") == 1 && f.contains("head_dist.weight") &&
                  f.contains("head_dist.bias"),
              "'" + path +
                  "' has dist_token: DeiT distilled, which also has a class token, one "
                  "dist_token row and head_dist.weight / .bias");
    c.dist_token = true;
  }
  VIT_CHECK(c.dist_token || !f.contains("head_dist.weight"),
            "'" + path + "' has head_dist.weight but no dist_token");
  if (f.contains("reg_token")) {
    const int64_t r = token_rows("reg_token");
    VIT_CHECK(r <= 256, "'" + path + "': " + std::to_string(r) + " register tokens is too many");
    c.reg_tokens = int(r);
  }
  c.layer_scale = f.contains("blocks.0.ls1.gamma");
  c.norm_pre = f.contains("norm_pre.weight");
  c.patch_bias = f.contains("patch_embed.proj.bias");
  c.qk_norm = f.contains("blocks.0.attn.q_norm.weight");
  c.act = hints.act;
  c.ln_eps = hints.ln_eps;
  // pos_embed: a square grid of patches, after the prefix tokens' rows unless no_embed_class
  // (then the patches' alone). The rows decide, or the hint where both readings are squares.
  const TensorInfo& pos = need(f, "pos_embed", 3);
  const int F = c.num_prefix_tokens();
  auto grid_of = [](int64_t n) {
    const int64_t g = n >= 1 ? std::llround(std::sqrt(double(n))) : 0;
    return g >= 1 && g * g == n ? int(g) : 0;
  };
  const int with_prefix = grid_of(pos.shape[1] - F),
            patches_only = F > 0 ? grid_of(pos.shape[1]) : 0;
  if (hints.no_embed_class) {
    c.no_embed_class = *hints.no_embed_class && F > 0;
  } else {
    c.no_embed_class = with_prefix == 0 && patches_only > 0;
  }
  const int grid = c.no_embed_class ? patches_only : with_prefix;
  VIT_CHECK(pos.shape[0] == 1 && pos.shape[2] == c.dim && grid >= 1,
            "'" + path + "': pos_embed " + shape_text(pos.shape) +
                " is not a square grid of patches (after " + std::to_string(F) +
                " prefix token rows, or without them: no_embed_class) of width " +
                std::to_string(c.dim) + " (dynamic sizes and non-square images are not read)");
  c.image_size = grid * c.patch_size;
  int depth = 0;
  while (f.contains("blocks." + std::to_string(depth) + ".norm1.weight")) ++depth;
  VIT_CHECK(depth >= 1, "'" + path + "' has no blocks.0.norm1.weight: not a timm ViT");
  c.depth = depth;
  c.mlp_dim = int(need(f, "blocks.0.mlp.fc1.weight", 2).shape[0]);
  // timm's packed SwiGLU (GluMlp: DINOv2 giant) keeps the names fc1 / fc2: fc1 gives the gate and
  // the value together, twice the width that fc2 reads.
  VIT_CHECK(!(f.contains("blocks.0.mlp.fc2.weight") &&
              need(f, "blocks.0.mlp.fc2.weight", 2).shape[1] * 2 == c.mlp_dim),
            "'" + path + "': blocks.0.mlp.fc1.weight has " + std::to_string(c.mlp_dim) +
                " rows, twice the " + std::to_string(c.mlp_dim / 2) +
                " that mlp.fc2 reads: a gated (SwiGLU) MLP, as DINOv2 giant's, which vitcpp's "
                "ViT does not have");
  c.qkv_bias = f.contains("blocks.0.attn.qkv.bias");
  const bool head = f.contains("head.weight");
  VIT_CHECK(head || hints.headless_ok,
            "'" + path +
                "' has no head.weight: a model without a classifier head (features only, as "
                "timm's DINOv2 backbones); vitcpp runs classifiers. Fine-tune it on your classes "
                "with `vit train --init " +
                (hints.model_path.empty() ? path : hints.model_path) + " --data ...`");
  VIT_CHECK(head || !f.contains("head.bias"), "'" + path + "' has head.bias but no head.weight");
  c.num_classes = head ? int(need(f, "head.weight", 2).shape[0]) : 2;  // placeholder
  int heads = hints.heads;
  if (heads <= 0 && hints.size && hints.size->dim == c.dim) heads = hints.size->heads;
  if (heads <= 0) {
    // Nothing says: timm's ViTs of this width have the table's heads (huge's 1280 has 16, not
    // 1280 / 64), and the others heads of 64.
    if (const TimmSize* s = size_of_width(c.dim)) {
      heads = s->heads;
    } else {
      VIT_CHECK(c.dim % 64 == 0, "'" + path + "': width " + std::to_string(c.dim) +
                                     " is not a multiple of 64, so the number of heads cannot be "
                                     "assumed; give it in config.json's model_args.num_heads");
      heads = c.dim / 64;
    }
  }
  c.heads = heads;
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error("'" + path + "': " + e.what());
  }
  return c;
}

namespace {
constexpr TimmSize kTimmSizes[] = {{"tiny", 192, 12, 3},     {"small", 384, 12, 6},
                                   {"medium", 512, 12, 8},   {"base", 768, 12, 12},
                                   {"large", 1024, 24, 16},  {"huge", 1280, 32, 16},
                                   {"giant", 1408, 40, 16},  {"gigantic", 1664, 48, 16},
                                   {"so400m", 1152, 27, 16}, {"giantopt", 1536, 40, 16}};
// timm's one base-named ViT of another head count.
constexpr TimmSize kBaseGap{"base", 768, 12, 16};

// An architecture's name without a "timm/" prefix or a ".tag" suffix.
std::string bare_architecture(const std::string& architecture) {
  std::string name = architecture;
  if (name.starts_with("timm/")) name = name.substr(5);
  return name.substr(0, name.find('.'));
}

// timm's architectures with GELU's tanh approximation (act_layer gelu_tanh: SigLIP towers, 2's),
// which neither their tensors nor their config.json say.
constexpr const char* kGeluTanh[] = {
    "vit_base_patch32_siglip_256",         "vit_large_patch16_siglip_512",
    "vit_so400m_patch16_siglip_256",       "vit_so400m_patch16_siglip_384",
    "vit_so400m_patch16_siglip_512",       "vit_giantopt_patch16_siglip_256",
    "vit_giantopt_patch16_siglip_384",     "vit_base_patch32_siglip_gap_256",
    "vit_large_patch16_siglip_gap_512",    "vit_so400m_patch16_siglip_gap_256",
    "vit_so400m_patch16_siglip_gap_384",   "vit_so400m_patch16_siglip_gap_512",
    "vit_giantopt_patch16_siglip_gap_256", "vit_giantopt_patch16_siglip_gap_384"};

// Whether timm builds the architecture `name` (bare: no tag) with GELU's tanh approximation.
bool gelu_tanh_architecture(const std::string& name) {
  for (const char* tanh : kGeluTanh) {
    if (name == tanh) return true;
  }
  return false;
}

// vit::Error for the timm architectures whose tensors read as a ViT vitcpp runs but which compute
// otherwise, as only their name tells.
void check_architecture(const std::string& path, const std::string& architecture) {
  const std::string name = bare_architecture(architecture);
  VIT_CHECK(name.find("_rpn_") == std::string::npos,
            "'" + path + "' is " + architecture +
                ", timm's ViT with its norms after attention and the MLP (ResPostBlock), which "
                "vitcpp's ViT (norms before them) is not");
}

// The size named `word`, or null.
const TimmSize* find_size(const std::string& word) {
  for (const TimmSize& s : kTimmSizes) {
    if (word == s.name) return &s;
  }
  return nullptr;
}

// The size dim wide (each size has its own width), or null.
const TimmSize* size_of_width(int dim) {
  for (const TimmSize& s : kTimmSizes) {
    if (dim == s.dim) return &s;
  }
  return nullptr;
}
}  // namespace

const TimmSize& timm_size(const std::string& word) {
  const TimmSize* s = find_size(word);
  VIT_CHECK(s, "timm has no ViT size '" + word + "'");
  return *s;
}

const TimmSize* timm_size_of(const std::string& architecture) {
  const std::string name = bare_architecture(architecture);
  if (name == "vit_base_patch16_gap_224") return &kBaseGap;
  for (const char* family : {"vit_", "deit3_", "deit_"}) {
    if (!name.starts_with(family)) continue;
    const std::string rest = name.substr(std::string(family).size());
    if (const TimmSize* s = find_size(rest.substr(0, rest.find('_')))) return s;
  }
  return nullptr;
}

bool is_timm_model(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return fs::exists(fs::path(path) / "config.json", ec) ||
           fs::exists(fs::path(path) / "pytorch_model.bin", ec);
  }
  if (!path.ends_with(".safetensors") || !fs::is_regular_file(path, ec)) return false;
  const SafetensorsReader f(path);
  return !f.metadata().count("format") || f.metadata().at("format") != "vitcpp";
}

namespace {

// A Hugging Face transformers image processor's steps (preprocessor_config.json, q; an empty
// object where the folder has none), as vitcpp runs them, into meta's preprocess and normalize.
// Its class (image_processor_type, or feature_extractor_type in older files; else the model's)
// sets the defaults: ViTImageProcessor stretches the image to the model's size (bilinear);
// DeiTImageProcessor stretches it to 256 x 256 (bicubic) and cuts the centre 224 x 224; both
// normalise with 0.5 and 0.5. vitcpp's crop_mode squash is that stretch, and its crop_pct the
// share the cut keeps. Any other step is refused, not ignored.
void read_processor(const nlohmann::json& q, const std::string& model_type, const Config& c,
                    const std::function<std::string(const std::string&)>& bad, ModelMeta& meta) {
  VIT_CHECK(q.is_object(), bad("preprocessor_config.json must be a JSON object"));
  std::string type = model_type == "deit" ? "DeiTImageProcessor" : "ViTImageProcessor";
  for (const char* key : {"image_processor_type", "feature_extractor_type"}) {
    if (!q.contains(key)) continue;
    VIT_CHECK(q[key].is_string(),
              bad(std::string("preprocessor_config.json's ") + key + " must be a string"));
    type = q[key].get<std::string>();
    // The slow and fast classes and the older feature extractors run the same steps.
    if (type.ends_with("Fast")) type.resize(type.size() - 4);
    if (type.ends_with("FeatureExtractor"))
      type = type.substr(0, type.size() - 16) + "ImageProcessor";
    break;
  }
  const bool deit = type == "DeiTImageProcessor";
  VIT_CHECK(deit || type == "ViTImageProcessor",
            bad("preprocessor_config.json's processor " + type +
                ": vitcpp runs ViTImageProcessor's and DeiTImageProcessor's steps"));
  meta.normalize = {std::vector<float>(size_t(c.channels), 0.5f),
                    std::vector<float>(size_t(c.channels), 0.5f)};
  meta.preprocess =
      Preprocess{.crop_pct = 1.0,
                 .crop_mode = CropMode::kSquash,
                 .interpolation = deit ? Interpolation::kBicubic : Interpolation::kBilinear,
                 .exif = false};
  auto flag = [&](const char* key, bool want) {
    VIT_CHECK(!q.contains(key) || q[key] == want,
              bad(std::string("preprocessor_config.json's ") + key + " " + q[key].dump() +
                  ": vitcpp runs " + type + "'s resize, rescale and normalisation (" + key + " " +
                  (want ? "true" : "false") + ")"));
  };
  flag("do_resize", true);
  flag("do_rescale", true);
  flag("do_normalize", true);
  if (!deit) flag("do_center_crop", false);
  VIT_CHECK(!q.contains("do_center_crop") || q["do_center_crop"].is_boolean(),
            bad("preprocessor_config.json's do_center_crop must be true or false"));
  const bool crop = deit && q.value("do_center_crop", true);
  VIT_CHECK(!q.contains("rescale_factor") ||
                (q["rescale_factor"].is_number() &&
                 std::abs(q["rescale_factor"].get<double>() * 255 - 1) < 1e-6),
            bad("preprocessor_config.json's rescale_factor " + q["rescale_factor"].dump() +
                ": vitcpp scales pixels by 1/255"));
  // A square side from {"height": n, "width": n} or, in older files, n; 0 for anything else (a
  // shortest_edge, a rectangle).
  auto square = [&](const char* key, int fallback) {
    if (!q.contains(key)) return fallback;
    const nlohmann::json& z = q[key];
    if (z.is_number_integer()) return z.get<int>();
    if (z.is_object() && z.size() == 2 && z.contains("height") && z.contains("width") &&
        z["height"].is_number_integer() && z["height"] == z["width"])
      return z["height"].get<int>();
    return 0;
  };
  // The value as the file gives it, or the default's.
  auto said = [&](const char* key, int fallback) {
    return q.contains(key) ? q[key].dump() : "(" + std::to_string(fallback) + ", the default)";
  };
  const int n = c.image_size, default_size = deit ? 256 : n;
  const std::string model_side = std::to_string(n) + " x " + std::to_string(n);
  const int size = square("size", default_size);
  if (!crop) {
    VIT_CHECK(size == n, bad("preprocessor_config.json's size " + said("size", default_size) +
                             " is not the model's " + model_side));
  } else {
    const int cut = square("crop_size", 224);
    VIT_CHECK(cut == n, bad("preprocessor_config.json's crop_size " + said("crop_size", 224) +
                            " is not the model's " + model_side));
    VIT_CHECK(size >= cut && size <= 1 << 16,
              bad("preprocessor_config.json's size " + said("size", default_size) +
                  " is not a square at least as large as the crop, " + model_side));
    // transformers puts the cut at (size - crop) // 2; vitcpp, as torchvision, rounds half of it
    // to even. The two differ for some odd margins, which are refused.
    VIT_CHECK((size - cut) / 2 == centre_offset(size, cut),
              bad("preprocessor_config.json cuts " + std::to_string(cut) + " pixels from " +
                  std::to_string(size) +
                  ": a margin whose centre vitcpp would place a pixel "
                  "away from transformers'"));
    meta.preprocess.crop_pct = double(cut) / size;
    // floor(cut / crop_pct) must give the size back (Preprocess::scale_size).
    while (meta.preprocess.scale_size(cut) < size)
      meta.preprocess.crop_pct = std::nextafter(meta.preprocess.crop_pct, 0.0);
  }
  const std::string where = bad("preprocessor_config.json's ");
  read_channel_values(q, "image_mean", where, c.channels, meta.normalize.mean);
  read_channel_values(q, "image_std", where, c.channels, meta.normalize.std);
  if (q.contains("resample")) {
    VIT_CHECK(q["resample"] == 2 || q["resample"] == 3 || q["resample"] == 0,
              bad("preprocessor_config.json's resample " + q["resample"].dump() +
                  ": vitcpp resizes with bilinear (2), bicubic (3) or nearest (0)"));
    meta.preprocess.interpolation = q["resample"] == 2   ? Interpolation::kBilinear
                                    : q["resample"] == 3 ? Interpolation::kBicubic
                                                         : Interpolation::kNearest;
  }
}

// A Hugging Face transformers ViT (ViTForImageClassification, or ViTModel's backbone) or DeiT
// (DeiTForImageClassificationWithTeacher, whose logits are its two heads' mean, or DeiTModel's
// backbone): the same network as timm's with a class token (and DeiT's distillation token), its
// tensors under other names and q, k and v apart. The folder's config.json gives the shape
// (hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, image_size, patch_size,
// num_channels, layer_norm_eps, qkv_bias, hidden_act) and id2label; preprocessor_config.json the
// normalisation, the resize and the crop (read_processor).
LoadedModel load_transformers(const std::string& dir, const SafetensorsReader& f,
                              const nlohmann::json& j, bool headless_ok, Dtype dtype) {
  auto bad = [&](const std::string& what) { return "'" + dir + "': " + what; };
  VIT_CHECK(j.is_object(), bad("config.json must be a JSON object"));
  if (j.contains("model_type")) {
    VIT_CHECK(j["model_type"] == "vit" || j["model_type"] == "deit",
              bad("a Hugging Face transformers " + j["model_type"].dump() +
                  " checkpoint; vitcpp reads transformers' ViT and DeiT (model_type \"vit\", "
                  "\"deit\") and timm's models (hub names timm/...)"));
  }
  const std::string model_type = j.value("model_type", "vit");
  const std::string p = f.contains("vit.embeddings.cls_token")    ? "vit."
                        : f.contains("deit.embeddings.cls_token") ? "deit."
                                                                  : "";
  auto hf = [&](const std::string& name) { return p + name; };
  VIT_CHECK(f.contains(hf("embeddings.cls_token")) &&
                f.contains(hf("embeddings.patch_embeddings.projection.weight")),
            bad("a Hugging Face transformers checkpoint, but not a ViT's or DeiT's (their "
                "tensors embeddings.cls_token and embeddings.patch_embeddings.projection.weight); "
                "vitcpp reads transformers' ViT and DeiT, and timm's models (hub names timm/...)"));
  auto integer = [&](const char* key, int fallback) {
    if (!j.contains(key)) return fallback;
    VIT_CHECK(j[key].is_number_integer() && j[key].get<int64_t>() >= 1 &&
                  j[key].get<int64_t>() <= 1 << 16,
              bad(std::string("config.json's ") + key + " must be a positive integer"));
    return j[key].get<int>();
  };
  Config c;
  const TensorInfo& pw = need(f, hf("embeddings.patch_embeddings.projection.weight"), 4);
  c.dim = int(pw.shape[0]);
  c.channels = int(pw.shape[1]);
  c.patch_size = int(pw.shape[2]);
  c.image_size = integer("image_size", 224);
  c.heads = integer("num_attention_heads", 12);
  c.depth = 0;
  while (f.contains(hf("encoder.layer." + std::to_string(c.depth) + ".layernorm_before.weight")))
    ++c.depth;
  VIT_CHECK(c.depth >= 1, bad("has no " + hf("encoder.layer.0.layernorm_before.weight") +
                              ": not a transformers ViT vitcpp can read"));
  VIT_CHECK(c.depth == integer("num_hidden_layers", c.depth),
            bad("config.json's num_hidden_layers contradicts the tensors' " +
                std::to_string(c.depth) + " layers"));
  c.mlp_dim = int(need(f, hf("encoder.layer.0.intermediate.dense.weight"), 2).shape[0]);
  VIT_CHECK(c.dim == integer("hidden_size", c.dim) &&
                c.mlp_dim == integer("intermediate_size", c.mlp_dim),
            bad("config.json's hidden_size or intermediate_size contradicts the tensors' " +
                std::to_string(c.dim) + " and " + std::to_string(c.mlp_dim)));
  c.pos_embed = PosEmbed::kLearned;
  c.pool = Pool::kCls;
  c.qkv_bias = f.contains(hf("encoder.layer.0.attention.attention.query.bias"));
  c.ln_eps = j.contains("layer_norm_eps") && j["layer_norm_eps"].is_number()
                 ? j["layer_norm_eps"].get<float>()
                 : 1e-12f;
  VIT_CHECK(!j.contains("hidden_act") || j["hidden_act"].is_string(),
            bad("config.json's hidden_act must be a string"));
  const std::string act = j.contains("hidden_act") ? j["hidden_act"].get<std::string>() : "gelu";
  VIT_CHECK(act == "gelu" || act == "gelu_pytorch_tanh" || act == "gelu_new" || act == "quick_gelu",
            bad("hidden_act '" + act +
                "' is not an activation vitcpp has (gelu, gelu_new, gelu_pytorch_tanh, "
                "quick_gelu)"));
  c.act = act == "gelu"         ? Act::kGelu
          : act == "quick_gelu" ? Act::kQuickGelu
                                : Act::kGeluTanh;  // gelu_new, gelu_pytorch_tanh: the tanh form
  // DeiT's distillation token; with it, DeiTForImageClassificationWithTeacher's two heads.
  c.dist_token = f.contains(hf("embeddings.distillation_token"));
  const bool teacher = f.contains("cls_classifier.weight");
  VIT_CHECK(!c.dist_token || !f.contains("classifier.weight"),
            bad("is a DeiTForImageClassification, whose classifier reads the class token alone "
                "while its distillation token still takes part; vitcpp runs DeiT as "
                "DeiTForImageClassificationWithTeacher (and timm's deit_*_distilled) do, with the "
                "mean of the class and distillation heads"));
  VIT_CHECK(!teacher || c.dist_token,
            bad("has cls_classifier (DeiTForImageClassificationWithTeacher's) but no " +
                hf("embeddings.distillation_token")));
  const std::string head_name = teacher ? "cls_classifier" : "classifier";
  const bool head = f.contains(head_name + ".weight");
  VIT_CHECK(head || headless_ok,
            bad("has no classifier (a ViTModel or DeiTModel backbone): fine-tune it with `vit "
                "train --init " +
                dir + " --data ...`"));
  c.num_classes = head ? int(need(f, head_name + ".weight", 2).shape[0]) : 2;  // placeholder
  VIT_CHECK(need(f, hf("embeddings.position_embeddings"), 3).shape[1] == c.num_tokens(),
            bad("embeddings.position_embeddings has " +
                std::to_string(f.info(hf("embeddings.position_embeddings")).shape[1]) +
                " rows, not the " + std::to_string(c.num_tokens()) + " tokens of image_size " +
                std::to_string(c.image_size) + " in patches of " + std::to_string(c.patch_size)));
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(bad(e.what()));
  }
  // timm's name -> transformers' (qkv from three).
  auto source = [&](const std::string& name) -> std::string {
    if (name == "cls_token") return hf("embeddings.cls_token");
    if (name == "dist_token") return hf("embeddings.distillation_token");
    if (name == "pos_embed") return hf("embeddings.position_embeddings");
    if (name == "patch_embed.proj.weight")
      return hf("embeddings.patch_embeddings.projection.weight");
    if (name == "patch_embed.proj.bias") return hf("embeddings.patch_embeddings.projection.bias");
    if (name == "norm.weight") return hf("layernorm.weight");
    if (name == "norm.bias") return hf("layernorm.bias");
    if (name.starts_with("head.")) return head_name + name.substr(4);
    if (name.starts_with("head_dist.")) return "distillation_classifier" + name.substr(9);
    const size_t dot = name.find('.', 7);  // "blocks.<l>."
    const std::string layer = hf("encoder.layer." + name.substr(7, dot - 7) + ".");
    const std::string rest = name.substr(dot + 1);
    const std::map<std::string, std::string> in_block = {
        {"norm1.weight", "layernorm_before.weight"},
        {"norm1.bias", "layernorm_before.bias"},
        {"attn.proj.weight", "attention.output.dense.weight"},
        {"attn.proj.bias", "attention.output.dense.bias"},
        {"norm2.weight", "layernorm_after.weight"},
        {"norm2.bias", "layernorm_after.bias"},
        {"mlp.fc1.weight", "intermediate.dense.weight"},
        {"mlp.fc1.bias", "intermediate.dense.bias"},
        {"mlp.fc2.weight", "output.dense.weight"},
        {"mlp.fc2.bias", "output.dense.bias"}};
    const auto it = in_block.find(rest);
    return it == in_block.end() ? "" : layer + it->second;
  };
  std::set<std::string> used;
  Model model(c);
  model.load(
      [&](const ParamInfo& param, float* w) {
        if (!head && is_head_param(param.name)) return;  // stays zero
        std::vector<std::string> parts;
        if (param.name.ends_with("attn.qkv.weight") || param.name.ends_with("attn.qkv.bias")) {
          const std::string l = param.name.substr(7, param.name.find('.', 7) - 7);
          const std::string what = param.name.ends_with("weight") ? "weight" : "bias";
          for (const char* x : {"query", "key", "value"})
            parts.push_back(hf("encoder.layer." + l + ".attention.attention." + x + "." + what));
        } else {
          parts.push_back(source(param.name));
        }
        const int64_t each = param.numel / int64_t(parts.size());
        // Each part's shape: the parameter's, a third of its rows for q, k and v.
        std::vector<int64_t> shape = param.shape;
        shape[0] /= int64_t(parts.size());
        for (size_t i = 0; i < parts.size(); ++i) {
          VIT_CHECK(!parts[i].empty() && f.contains(parts[i]),
                    bad("lacks the tensor '" + (parts[i].empty() ? param.name : parts[i]) +
                        "' that a ViT of its config needs"));
          VIT_CHECK(
              f.info(parts[i]).shape == shape,
              bad("tensor '" + parts[i] + "' has shape " + shape_text(f.info(parts[i]).shape) +
                  " where " + param.name + " needs " + shape_text(shape)));
          f.read_f32(parts[i], w + int64_t(i) * each, each);
          used.insert(parts[i]);
        }
        for (int64_t i = 0; i < param.numel; ++i) {
          VIT_CHECK(std::isfinite(w[i]), bad("tensor for '" + param.name +
                                             "' holds a non-finite value (NaN or infinity)"));
        }
      },
      dtype);
  for (const TensorInfo& t : f.tensors()) {
    // ViTModel's pooler (dense + tanh on the class token) feeds no classifier: left unread.
    VIT_CHECK(used.count(t.name) || t.name.starts_with(hf("pooler.")),
              bad("holds a tensor '" + t.name +
                  "' that vitcpp's ViT does not read (ViTForImageClassification's, "
                  "DeiTForImageClassificationWithTeacher's and their backbones' are read)"));
  }
  ModelMeta meta;
  meta.config = c;
  if (head) apply_config_json(j, dir, meta);  // id2label
  if (meta.class_names.empty()) {
    for (int k = 0; k < c.num_classes; ++k) meta.class_names.push_back(std::to_string(k));
  }
  const fs::path processor = fs::path(dir) / "preprocessor_config.json";
  std::error_code ec;
  read_processor(
      fs::exists(processor, ec) ? read_json(processor.string()) : nlohmann::json::object(),
      model_type, c, bad, meta);
  std::map<std::string, std::string> md;
  if (!head) md["headless"] = "true";
  md["timm_source"] = dir;
  md["checkpoint_format"] = "transformers";
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    md["architecture"] = j["architectures"][0].get<std::string>();
  }
  return LoadedModel{std::move(model), std::move(meta), md};
}

}  // namespace

LoadedModel load_timm(const std::string& path, const TimmArch* arch, bool headless_ok,
                      Dtype dtype) {
  std::error_code ec;
  std::string weights = path;
  nlohmann::json config;
  bool folder = fs::is_directory(path, ec);
  if (folder) {
    const fs::path dir(path);
    weights = (dir / "model.safetensors").string();
    if (!fs::exists(weights, ec)) {
      VIT_CHECK(!fs::exists(dir / "pytorch_model.bin", ec),
                "'" + path +
                    "' holds pytorch_model.bin, a pickle, which vitcpp does not read (it can run "
                    "code). Convert it once with Python: torch.load it and save the state dict "
                    "with safetensors.torch.save_file(state_dict, 'model.safetensors')");
      throw Error("'" + path + "' has no model.safetensors");
    }
    VIT_CHECK(fs::exists(dir / "config.json", ec),
              "'" + path + "' has model.safetensors but no config.json");
    config = read_json((dir / "config.json").string());
  }
  const SafetensorsReader f(weights);
  const bool transformers =
      std::any_of(f.tensors().begin(), f.tensors().end(),
                  [](const TensorInfo& t) { return transformers_name(t.name); });
  if (transformers) {
    VIT_CHECK(folder, "'" + path +
                          "' holds a Hugging Face transformers checkpoint: give its folder, whose "
                          "config.json says its shape (or use the timm version of the model, hub "
                          "names timm/...)");
    return load_transformers(path, f, config, headless_ok, dtype);
  }
  TimmHints hints;
  hints.headless_ok = headless_ok;
  hints.model_path = path;
  if (arch) {
    hints.heads = arch->config.heads;
    hints.act = arch->config.act;
    hints.ln_eps = arch->config.ln_eps;
    hints.no_embed_class = arch->config.no_embed_class;
    hints.avg_pool = arch->config.pool == Pool::kMean;
  }
  if (config.is_object()) {
    std::string name;
    if (config.contains("architecture") && config["architecture"].is_string()) {
      name = config["architecture"].get<std::string>();
    }
    // timm's CLIP towers use LayerNorm eps 1e-5 (their norm_layer, which config.json cannot
    // say), and the *_quickgelu_* ones QuickGELU.
    if (name.find("_clip_") != std::string::npos) hints.ln_eps = 1e-5f;
    if (name.find("quickgelu") != std::string::npos) hints.act = Act::kQuickGelu;
    if (gelu_tanh_architecture(bare_architecture(name))) hints.act = Act::kGeluTanh;
    check_architecture(path, name);
    hints.size = timm_size_of(name);
    // The pooling: model_args' global_pool, else the top level's (timm writes both).
    for (const nlohmann::json* o :
         {&config, config.contains("model_args") ? &config["model_args"] : &config}) {
      if (o->is_object() && o->contains("global_pool") && (*o)["global_pool"].is_string()) {
        hints.avg_pool = (*o)["global_pool"] == "avg";
      }
    }
    if (config.contains("model_args") && config["model_args"].is_object()) {
      const nlohmann::json& a = config["model_args"];
      if (a.contains("num_heads")) {
        const auto& h = a["num_heads"];
        VIT_CHECK(h.is_number_integer() && h.get<int64_t>() >= 1 && h.get<int64_t>() <= 4096,
                  "'" + path + "': model_args.num_heads must be a positive integer");
        hints.heads = h.get<int>();
      }
      if (a.contains("no_embed_class")) {
        VIT_CHECK(a["no_embed_class"].is_boolean(),
                  "'" + path + "': model_args.no_embed_class must be true or false");
        hints.no_embed_class = a["no_embed_class"].get<bool>();
      }
      if (a.contains("act_layer")) {
        const auto& act = a["act_layer"];
        VIT_CHECK(act.is_string() && (act == "gelu" || act == "quick_gelu" || act == "gelu_tanh"),
                  "'" + path + "': model_args.act_layer " + act.dump() +
                      " is not an activation vitcpp has (gelu, quick_gelu, gelu_tanh)");
        hints.act = act == "gelu"         ? Act::kGelu
                    : act == "quick_gelu" ? Act::kQuickGelu
                                          : Act::kGeluTanh;
      }
    }
  }
  ModelMeta meta;
  meta.config = timm_config(f, hints);
  timm_vit_defaults(meta);
  if (arch) {
    Config want = arch->config;
    want.num_classes = meta.config.num_classes;
    VIT_CHECK(want.to_json() == meta.config.to_json(),
              "'" + path + "' is not " + arch->name + "'s shape: its tensors say " +
                  meta.config.to_json() + ", " + arch->name + " is " + want.to_json());
    meta.normalize = arch->normalize;
    meta.preprocess = arch->preprocess;
  }
  const bool headless = !f.contains("head.weight");
  if (folder && !headless) apply_config_json(config, path, meta);
  if (folder && headless) {  // its num_classes (0) and labels describe no head
    nlohmann::json j = config;
    for (const char* key : {"num_classes", "label_names", "id2label"}) j.erase(key);
    if (j.contains("pretrained_cfg") && j["pretrained_cfg"].is_object()) {
      j["pretrained_cfg"].erase("num_classes");
    }
    apply_config_json(j, path, meta);
  }
  if (meta.class_names.empty()) {
    if (meta.config.num_classes == 1000) {
      meta.class_names = imagenet_class_names();
    } else {
      for (int k = 0; k < meta.config.num_classes; ++k) {
        meta.class_names.push_back(std::to_string(k));
      }
    }
  }
  meta.preprocess.exif = false;  // timm reads images with PIL, which leaves EXIF alone
  if (config.is_object()) {      // ... but vitcpp's exports keep what timm does not read
    if (config.contains("vitcpp_input")) {
      meta.input = input_style_from_json(config["vitcpp_input"], "'" + path + "': vitcpp_input");
    }
    if (config.contains("vitcpp_exif")) {
      VIT_CHECK(config["vitcpp_exif"].is_boolean(),
                "'" + path + "': vitcpp_exif must be true or false");
      meta.preprocess.exif = config["vitcpp_exif"].get<bool>();
    }
  }
  Model model = read_weights(f, meta.config, "", headless, dtype);
  std::map<std::string, std::string> md = f.metadata();
  if (headless) md["headless"] = "true";
  if (!heads_given(hints, meta.config.dim)) {
    const TimmSize* s = size_of_width(meta.config.dim);
    md["heads_assumed"] = std::to_string(meta.config.heads) + " (" +
                          (s ? std::string("timm's ") + s->name + " ViTs'" : "heads of 64") +
                          "): the file does not say; config.json's model_args.num_heads or "
                          "--arch would";
  }
  md["timm_source"] = folder ? path : weights;
  if (config.is_object() && config.contains("architecture") && config["architecture"].is_string()) {
    md["architecture"] = config["architecture"].get<std::string>();
  }
  return LoadedModel{std::move(model), std::move(meta), md};
}

void resample_pos_embed(const float* in, int prefix, int g_old, int g_new, int D, float* out,
                        Interpolation filter) {
  VIT_CHECK(prefix >= 0 && g_old >= 1 && g_new >= 1 && D >= 1, "resample_pos_embed: bad sizes");
  std::copy_n(in, int64_t(prefix) * D, out);
  // [g*g, D] rows to D planes [g, g], resized, and back.
  const int64_t n_old = int64_t(g_old) * g_old, n_new = int64_t(g_new) * g_new;
  std::vector<float> planes(size_t(D * n_old)), resized(size_t(D * n_new));
  const float* grid = in + int64_t(prefix) * D;
  for (int64_t j = 0; j < n_old; ++j) {
    for (int d = 0; d < D; ++d) planes[size_t(d * n_old + j)] = grid[j * D + d];
  }
  data::resize_float(planes.data(), D, g_old, g_old, g_new, g_new, filter, resized.data());
  float* dst = out + int64_t(prefix) * D;
  for (int64_t j = 0; j < n_new; ++j) {
    for (int d = 0; d < D; ++d) dst[j * D + d] = resized[size_t(d * n_new + j)];
  }
}

void export_timm(LoadedModel& m, const std::string& dir) {
  const Config& c = m.meta.config;
  // The architecture timm rebuilds the model from (model_args then give the shape): DeiT's
  // distilled class for a distillation token, a CLIP tower for LayerNorm eps 1e-5 (timm's CLIP
  // norm_layer; config.json cannot name an eps), else the plain VisionTransformer.
  const bool clip = c.ln_eps == 1e-5f;
  VIT_CHECK(c.ln_eps == 1e-6f || (clip && !c.dist_token),
            "timm's ViTs use LayerNorm eps 1e-6 (CLIP's 1e-5, without a distillation token); this "
            "model has " +
                general_text(c.ln_eps, 6) +
                (c.ln_eps == 1e-12f ? " (a transformers ViT's default)" : "") +
                ", which timm's config.json cannot say; keep it as the folder it came from, or as "
                "a vitcpp checkpoint");
  VIT_CHECK(c.stem_channels == 0,
            "this model has a convolutional stem, which timm's VisionTransformer cannot rebuild "
            "(its ConvStem adds BatchNorm); keep it as a vitcpp checkpoint");
  const double ratio = double(c.mlp_dim) / c.dim;
  VIT_CHECK(int(c.dim * ratio) == c.mlp_dim,
            "the MLP width " + std::to_string(c.mlp_dim) + " is no mlp_ratio timm can rebuild");
  const bool token = c.pool == Pool::kCls;
  const bool quick = c.act == Act::kQuickGelu;
  nlohmann::ordered_json j;
  j["architecture"] =
      c.dist_token ? "deit_base_distilled_patch16_224"
      : clip       ? (quick ? "vit_base_patch16_clip_quickgelu_224" : "vit_base_patch16_clip_224")
                   : "vit_base_patch16_224";
  j["num_classes"] = c.num_classes;
  j["num_features"] = c.dim;
  j["global_pool"] = token ? "token" : "avg";
  j["label_names"] = m.meta.class_names;
  j["model_args"] = {{"img_size", c.image_size},
                     {"patch_size", c.patch_size},
                     {"in_chans", c.channels},
                     {"num_classes", c.num_classes},
                     {"embed_dim", c.dim},
                     {"depth", c.depth},
                     {"num_heads", c.heads},
                     {"mlp_ratio", ratio},
                     {"qkv_bias", c.qkv_bias},
                     {"class_token", c.has_class_token()},
                     {"global_pool", token ? "token" : "avg"},
                     {"fc_norm", c.has_fc_norm()},
                     {"reg_tokens", c.reg_tokens},
                     {"no_embed_class", c.no_embed_class},
                     {"pre_norm", c.norm_pre},
                     {"qk_norm", c.qk_norm}};
  // LayerScale exists in timm when init_values is set; the file's gammas replace the value.
  if (c.layer_scale) j["model_args"]["init_values"] = 1e-5;
  if (quick && !clip) j["model_args"]["act_layer"] = "quick_gelu";
  if (c.act == Act::kGeluTanh) j["model_args"]["act_layer"] = "gelu_tanh";
  const Preprocess& p = m.meta.preprocess;
  const nlohmann::ordered_json pre = nlohmann::ordered_json::parse(p.to_json());
  // What timm does not read, for vitcpp's own prediction to give the same logits from the export:
  // how the training images looked (MNIST's fit, the background that inversion follows) and the
  // EXIF orientation. timm ignores config.json's keys it does not know.
  if (m.meta.input) j["vitcpp_input"] = input_style_json(*m.meta.input);
  if (p.exif) j["vitcpp_exif"] = true;
  j["pretrained_cfg"] = {{"input_size", {c.channels, c.image_size, c.image_size}},
                         {"fixed_input_size", true},
                         {"interpolation", pre["interpolation"]},
                         {"crop_pct", p.crop_pct},
                         {"crop_mode", pre["crop_mode"]},
                         {"mean", m.meta.normalize.mean},
                         {"std", m.meta.normalize.std},
                         {"num_classes", c.num_classes},
                         {"first_conv", "patch_embed.proj"},
                         {"classifier", "head"}};
  std::error_code ec;
  fs::create_directories(dir, ec);
  VIT_CHECK(!ec && fs::is_directory(dir, ec), "cannot make the directory '" + dir + "'");
  // timm's patch embedding has a bias exactly where it has no norm_pre (`bias=not pre_norm`). A
  // model without one elsewhere gets zeros; a model with both (a CLIP tower that vitcpp fine-tuned
  // before patch_bias existed) has its bias folded into pos_embed's patch rows, which every patch
  // token adds right after it: the same sum but for the order of one addition.
  std::vector<TensorToWrite> tensors;
  std::vector<float> zeros, folded;
  const float* bias = c.patch_bias ? m.model.param("patch_embed.proj.bias").data : nullptr;
  for (const ParamInfo& q : m.model.params()) {
    const float* data = m.model.param_data() + q.offset;
    if (q.name == "patch_embed.proj.bias" && c.norm_pre) continue;
    if (q.name == "pos_embed" && c.norm_pre && bias) {
      folded.assign(data, data + q.numel);
      const int64_t first = int64_t(c.pos_rows() - c.num_patches()) * c.dim;
      for (int64_t i = first; i < int64_t(folded.size()); ++i) folded[size_t(i)] += bias[i % c.dim];
      data = folded.data();
    }
    tensors.push_back({q.name, q.shape, data});
    if (q.name == "patch_embed.proj.weight" && !c.norm_pre && !bias) {
      zeros.assign(size_t(c.dim), 0.0f);
      tensors.push_back({"patch_embed.proj.bias", {c.dim}, zeros.data()});
    }
  }
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  const std::string text = j.dump(4) + "\n";
  write_atomically((fs::path(dir) / "config.json").string(), text.data(), text.size());
}

LoadedModel load_any_model(const std::string& path, const TimmArch* arch, bool headless_ok,
                           Dtype dtype) {
  if (is_timm_model(path)) return load_timm(path, arch, headless_ok, dtype);
  VIT_CHECK(!arch, "'" + path +
                       "' is a vitcpp checkpoint, which names its own architecture; "
                       "`arch` is for timm files");
  return load_model(checkpoint_path(path), dtype);
}

}  // namespace vit
