// vit::Config: validation, parameter and FLOP counts, and the JSON form stored in checkpoints.
#include "vit/config.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/json_float.hpp"
#include "vit/error.hpp"

namespace vit {
namespace {

// Sizes above this are refused: they overflow the int indexing used in kernels long before
// they would fit in memory.
constexpr int kMaxSize = 1 << 16;

void check_range(const char* field, int value, int lo, int hi) {
  VIT_CHECK(value >= lo && value <= hi, std::string("config: ") + field + " must be in [" +
                                            std::to_string(lo) + ", " + std::to_string(hi) +
                                            "] (got " + std::to_string(value) + ")");
}

}  // namespace

void Config::validate() const {
  check_range("image_size", image_size, 1, kMaxSize);
  check_range("channels", channels, 1, 64);
  check_range("patch_size", patch_size, 1, image_size);
  VIT_CHECK(image_size % patch_size == 0, "config: image_size " + std::to_string(image_size) +
                                              " is not divisible by patch_size " +
                                              std::to_string(patch_size) +
                                              "; pick a patch size that divides the image");
  check_range("dim", dim, 1, kMaxSize);
  check_range("depth", depth, 1, 1024);
  check_range("heads", heads, 1, dim);
  VIT_CHECK(dim % heads == 0, "config: dim " + std::to_string(dim) + " is not divisible by heads " +
                                  std::to_string(heads) + "; each head needs dim/heads features");
  check_range("mlp_dim", mlp_dim, 1, 16 * kMaxSize);
  check_range("num_classes", num_classes, 2, kMaxSize);
  VIT_CHECK(
      std::isfinite(ln_eps) && ln_eps > 0.0f && ln_eps < 1.0f,
      "config: ln_eps must be a positive number below 1 (got " + std::to_string(ln_eps) + ")");
  // Products used as buffer sizes and loop bounds must stay well inside int32.
  const int64_t g = image_size / patch_size;
  const int64_t tokens = g * g + num_prefix_tokens();
  VIT_CHECK(tokens <= kMaxSize, "config: " + std::to_string(tokens) +
                                    " tokens per image is too many; use a larger patch_size");
  VIT_CHECK(int64_t(patch_dim()) <= kMaxSize,
            "config: channels * patch_size^2 = " + std::to_string(int64_t(patch_dim())) +
                " is too large; use a smaller patch_size");
}

int64_t Config::num_params() const {
  const int64_t D = dim, M = mlp_dim, K = num_classes;
  int64_t n = int64_t(patch_dim()) * D + D;                               // patch_embed.proj
  n += int64_t(num_tokens()) * D + num_prefix_tokens() * D;               // pos_embed, cls_token
  const int64_t block = 2 * D                                             // norm1
                        + 3 * D * D + (qkv_bias ? 3 * D : 0) + D * D + D  // attn
                        + 2 * D                                           // norm2
                        + M * D + M + D * M + D;                          // mlp
  n += depth * block;
  n += 2 * D + K * D + K;  // final norm, head
  return n;
}

int64_t Config::forward_flops() const {
  const int64_t N = num_tokens(), D = dim, M = mlp_dim;
  int64_t f = 2 * int64_t(num_patches()) * patch_dim() * D;  // patch embedding
  const int64_t block = 2 * N * D * 3 * D                    // qkv
                        + 2 * N * N * D * 2                  // QK^T and AV over all heads
                        + 2 * N * D * D                      // proj
                        + 2 * N * D * M * 2;                 // fc1, fc2
  f += depth * block;
  f += 2 * D * num_classes;  // head
  return f;
}

const char* to_string(PosEmbed p) {
  return p == PosEmbed::kLearned ? "learned" : "sincos";
}
const char* to_string(Pool p) {
  return p == Pool::kCls ? "cls" : "mean";
}

PosEmbed parse_pos_embed(const std::string& s) {
  if (s == "learned") return PosEmbed::kLearned;
  if (s == "sincos") return PosEmbed::kSinCos;
  throw Error("pos_embed must be 'learned' or 'sincos' (got '" + s + "')");
}

Pool parse_pool(const std::string& s) {
  if (s == "cls") return Pool::kCls;
  if (s == "mean") return Pool::kMean;
  throw Error("pool must be 'cls' or 'mean' (got '" + s + "')");
}

std::string Config::to_json() const {
  nlohmann::ordered_json j;
  j["image_size"] = image_size;
  j["channels"] = channels;
  j["patch_size"] = patch_size;
  j["dim"] = dim;
  j["depth"] = depth;
  j["heads"] = heads;
  j["mlp_dim"] = mlp_dim;
  j["num_classes"] = num_classes;
  j["pos_embed"] = to_string(pos_embed);
  j["pool"] = to_string(pool);
  j["qkv_bias"] = qkv_bias;
  j["ln_eps"] = json_float(ln_eps);
  return j.dump();
}

Config Config::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("model config is not valid JSON: ") + e.what());
  }
  VIT_CHECK(j.is_object(), "model config must be a JSON object");
  static const std::set<std::string> kKeys = {"image_size", "channels", "patch_size", "dim",
                                              "depth",      "heads",    "mlp_dim",    "num_classes",
                                              "pos_embed",  "pool",     "qkv_bias",   "ln_eps"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    VIT_CHECK(kKeys.count(it.key()), "model config has an unknown key '" + it.key() + "'");
  }
  for (const std::string& k : kKeys) {
    VIT_CHECK(j.contains(k), "model config is missing the key '" + k + "'");
  }
  auto get_int = [&](const char* k) {
    const auto& v = j[k];
    VIT_CHECK(v.is_number_integer(), std::string("model config: '") + k + "' must be an integer");
    int64_t x = v.get<int64_t>();
    VIT_CHECK(x >= 0 && x <= (int64_t(1) << 30),
              std::string("model config: '") + k + "' is out of range");
    return static_cast<int>(x);
  };
  auto get_string = [&](const char* k) {
    VIT_CHECK(j[k].is_string(), std::string("model config: '") + k + "' must be a string");
    return j[k].get<std::string>();
  };
  Config c;
  c.image_size = get_int("image_size");
  c.channels = get_int("channels");
  c.patch_size = get_int("patch_size");
  c.dim = get_int("dim");
  c.depth = get_int("depth");
  c.heads = get_int("heads");
  c.mlp_dim = get_int("mlp_dim");
  c.num_classes = get_int("num_classes");
  c.pos_embed = parse_pos_embed(get_string("pos_embed"));
  c.pool = parse_pool(get_string("pool"));
  VIT_CHECK(j["qkv_bias"].is_boolean(), "model config: 'qkv_bias' must be true or false");
  c.qkv_bias = j["qkv_bias"].get<bool>();
  VIT_CHECK(j["ln_eps"].is_number(), "model config: 'ln_eps' must be a number");
  c.ln_eps = j["ln_eps"].get<float>();
  c.validate();
  return c;
}

}  // namespace vit
