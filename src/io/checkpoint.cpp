// Model checkpoints: timm-named F32 tensors plus the metadata needed to rebuild and use the model
// (config, class names, normalisation, preprocessing, input style), and read_weights, which timm
// files share.
#include "vit/checkpoint.hpp"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "io/weights.hpp"
#include "vit/error.hpp"
#include "vit/safetensors.hpp"

namespace vit {

void save_model(const std::string& path, Model& model, const ModelMeta& meta,
                const std::map<std::string, std::string>& extra,
                const std::vector<TensorToWrite>& extra_tensors) {
  const Config& c = model.config();
  VIT_CHECK(int(meta.class_names.size()) == c.num_classes,
            "save_model: " + std::to_string(meta.class_names.size()) + " class names for " +
                std::to_string(c.num_classes) + " classes");
  VIT_CHECK(
      int(meta.normalize.mean.size()) == c.channels && int(meta.normalize.std.size()) == c.channels,
      "save_model: normalisation must have one mean and std per channel");
  std::vector<TensorToWrite> tensors;
  for (const ParamInfo& p : model.params()) {
    tensors.push_back({p.name, p.shape, model.param_data() + p.offset});
  }
  tensors.insert(tensors.end(), extra_tensors.begin(), extra_tensors.end());
  std::map<std::string, std::string> md = extra;
  md["format"] = "vitcpp";
  md["version"] = VIT_VERSION;
  md["config"] = c.to_json();
  md["class_names"] = nlohmann::json(meta.class_names).dump();
  md["normalize"] =
      nlohmann::json{{"mean", meta.normalize.mean}, {"std", meta.normalize.std}}.dump();
  md["preprocess"] = meta.preprocess.to_json();
  if (!meta.dataset.empty()) md["dataset"] = meta.dataset;
  if (meta.input) {
    md["input"] = input_style_json(*meta.input).dump();
  }
  write_safetensors(path, tensors, md);
}

nlohmann::json input_style_json(const InputStyle& style) {
  const Background b = style.background;
  return {{"background", b == Background::kDark    ? "dark"
                         : b == Background::kLight ? "light"
                                                   : "mixed"},
          {"fit", style.fit_mnist ? "mnist" : "none"}};
}

InputStyle input_style_from_json(const nlohmann::json& j, const std::string& where) {
  // The index of j[key] among words, or vit::Error naming them.
  const auto word = [&](const char* key, std::initializer_list<const char*> words) {
    std::string list;
    int i = 0;
    for (const char* w : words) {
      if (j.is_object() && j.contains(key) && j[key].is_string() && j[key] == w) return i;
      list += std::string(i++ ? ", " : "") + "\"" + w + "\"";
    }
    throw Error(where + "." + key + " must be one of " + list);
  };
  return {.background = Background(word("background", {"dark", "light", "mixed"})),
          .fit_mnist = word("fit", {"mnist", "none"}) == 0};
}

std::string checkpoint_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return path;
  for (const char* name : {"best.safetensors", "last.safetensors"}) {
    const fs::path p = fs::path(path) / name;
    if (fs::exists(p, ec)) return p.string();
  }
  throw Error("'" + path +
              "' is a directory without best.safetensors or last.safetensors; pass "
              "a checkpoint file or a run directory that vit train wrote");
}

namespace {

std::string require(const std::map<std::string, std::string>& md, const std::string& key,
                    const std::string& path) {
  auto it = md.find(key);
  VIT_CHECK(it != md.end(),
            "'" + path + "' is not a vitcpp checkpoint: its metadata has no '" + key + "'");
  return it->second;
}

nlohmann::json parse_json(const std::string& text, const std::string& what,
                          const std::string& path) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error("'" + path + "': metadata '" + what + "' is not valid JSON: " + e.what());
  }
}

}  // namespace

LoadedModel load_model(const std::string& path, Dtype dtype) {
  return load_model(SafetensorsReader(path), "", dtype);
}

Model read_weights(const SafetensorsReader& file, const Config& c, const std::string& extra_prefix,
                   bool headless, Dtype dtype) {
  const std::string& path = file.path();
  // Every tensor the config needs, with its shape, before a byte of the model is allocated.
  const std::vector<ParamInfo> layout = Model::layout(c);
  std::set<std::string> expected;
  for (const ParamInfo& p : layout) {
    expected.insert(p.name);
    if (headless && is_head_param(p.name) && !file.contains(p.name)) continue;
    VIT_CHECK(file.contains(p.name),
              "'" + path + "' lacks the tensor '" + p.name + "' that its config needs");
    const TensorInfo& t = file.info(p.name);
    VIT_CHECK(t.shape == p.shape, "'" + path + "': tensor '" + p.name + "' has shape " +
                                      shape_to_string(t.shape) + " but the config needs " +
                                      shape_to_string(p.shape));
  }
  for (const TensorInfo& t : file.tensors()) {
    const bool skipped = !extra_prefix.empty() && t.name.starts_with(extra_prefix);
    VIT_CHECK(skipped || expected.count(t.name),
              "'" + path + "' holds a tensor '" + t.name + "' that the config does not use");
  }
  Model model(c);
  model.load(
      [&](const ParamInfo& p, float* w) {
        if (headless && is_head_param(p.name) && !file.contains(p.name)) return;  // stays zero
        file.read_f32(p.name, w, p.numel);
        for (int64_t i = 0; i < p.numel; ++i) {
          VIT_CHECK(std::isfinite(w[i]),
                    "'" + path + "': tensor '" + p.name +
                        "' holds a non-finite value (NaN or infinity) at index " +
                        std::to_string(i) + "; the checkpoint is unusable");
        }
      },
      dtype);
  return model;
}

LoadedModel load_model(const SafetensorsReader& file, const std::string& extra_prefix,
                       Dtype dtype) {
  const std::string& path = file.path();
  const auto& md = file.metadata();
  const std::string format = require(md, "format", path);
  VIT_CHECK(format == "vitcpp",
            "'" + path + "' has format '" + format + "' in its metadata; expected 'vitcpp'");
  VIT_CHECK(!extra_prefix.empty() || !md.count("kind") || md.at("kind") != "train-state",
            "'" + path +
                "' is a training state (what resuming a run reads); load the model from "
                "last.safetensors or best.safetensors beside it");
  ModelMeta meta;
  try {
    meta.config = Config::from_json(require(md, "config", path));
  } catch (const Error& e) {
    throw Error("'" + path + "': " + e.what());
  }
  const Config& c = meta.config;

  const auto names = parse_json(require(md, "class_names", path), "class_names", path);
  VIT_CHECK(names.is_array() && int(names.size()) == c.num_classes,
            "'" + path + "': class_names must be a JSON array of " + std::to_string(c.num_classes) +
                " strings");
  for (const auto& n : names) {
    VIT_CHECK(n.is_string(), "'" + path + "': class_names must hold strings only");
    meta.class_names.push_back(n.get<std::string>());
  }
  const auto norm = parse_json(require(md, "normalize", path), "normalize", path);
  auto channel_values = [&](const char* key) {
    VIT_CHECK(norm.is_object() && norm.contains(key) && norm[key].is_array() &&
                  int(norm[key].size()) == c.channels,
              "'" + path + "': normalize." + key + " must be a list of " +
                  std::to_string(c.channels) + " numbers");
    std::vector<float> v;
    for (const auto& x : norm[key]) {
      VIT_CHECK(x.is_number() && std::isfinite(x.get<double>()),
                "'" + path + "': normalize." + key + " must hold finite numbers");
      v.push_back(x.get<float>());
    }
    return v;
  };
  meta.normalize.mean = channel_values("mean");
  meta.normalize.std = channel_values("std");
  for (float s : meta.normalize.std) {
    VIT_CHECK(s > 0.0f, "'" + path + "': normalize.std must be positive");
  }
  if (md.count("dataset")) meta.dataset = md.at("dataset");
  if (md.count("preprocess")) {
    try {
      meta.preprocess = Preprocess::from_json(md.at("preprocess"));
    } catch (const Error& e) {
      throw Error("'" + path + "': " + e.what());
    }
  }
  if (md.count("input")) {
    meta.input =
        input_style_from_json(parse_json(md.at("input"), "input", path), "'" + path + "': input");
  }

  Model model = read_weights(file, c, extra_prefix, false, dtype);
  return LoadedModel{std::move(model), std::move(meta), md};
}

}  // namespace vit
