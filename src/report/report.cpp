// A run's pictures and its report page (vit/report.hpp).
#include "vit/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/numbers.hpp"
#include "report/markup.hpp"
#include "vit/classify.hpp"
#include "vit/error.hpp"
#include "vit/picture.hpp"
#include "vit/plot.hpp"
#include "vit/transforms.hpp"

namespace vit {
namespace {

using report::escape;

// The whole-pixel factor that brings a side of `size` to about `target` pixels (at least 1).
int enlarge(int size, int target) {
  return std::max(1, (target + size / 2) / size);
}

std::string percent(double v) {
  if (std::isnan(v)) return "-";
  return fixed_text(100 * v, 2) + "%";
}

std::string base64(const std::string& bytes) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t v = 0;
    for (size_t j = 0; j < 3; ++j) v = v << 8 | (j < n ? uint8_t(bytes[i + j]) : 0);
    for (size_t j = 0; j < 4; ++j) out += j <= n ? k[(v >> (18 - 6 * j)) & 63] : '=';
  }
  return out;
}

std::string png_img(const std::string& png, const std::string& alt) {
  return "<img alt=\"" + escape(alt) + "\" src=\"data:image/png;base64," + base64(png) + "\">\n";
}

// A JSON object's fields as a two-column table.
std::string json_table(const std::string& json) {
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(json);
  std::string s = "<table>\n";
  for (const auto& [key, value] : j.items()) {
    s += "<tr><th>" + escape(key) + "</th><td>" +
         escape(value.is_string() ? value.get<std::string>() : value.dump()) + "</td></tr>\n";
  }
  return s + "</table>\n";
}

std::string epoch_row(const char* what, const EpochMetrics& m) {
  std::string s = "<tr><th>" + std::string(what) + "</th><td>" + std::to_string(m.epoch) +
                  "</td><td>" + fixed_text(m.train_loss, 4) + "</td><td>" + percent(m.train_acc) +
                  "</td><td>" + (m.val_acc ? percent(*m.val_acc) : "-") + "</td>";
  if (!m.test_acc) return s + "<td>-</td><td>-</td></tr>\n";  // an epoch eval_every skipped
  return s + "<td>" + fixed_text(*m.test_loss, 4) + "</td><td>" + percent(*m.test_acc) +
         "</td></tr>\n";
}

// Sample i of split as the model sees it: its input (split's eval transform, normalised) into
// image [C, S, S] and, back from the normalisation, its pixels; returns its label.
int32_t model_view(const Dataset& split, int64_t i, const ModelMeta& meta, float* image,
                   std::vector<uint8_t>* pixels) {
  const Config& c = meta.config;
  int32_t label = 0;
  make_batch(split, &i, 1, meta.normalize, AugmentOptions{}, 0, 0, image, &label);
  *pixels = denormalize_image(image, c.channels, c.image_size, meta.normalize);
  return label;
}

}  // namespace

std::string mistakes_png(const EvalResult& r, const Dataset& split, const ModelMeta& meta,
                         const std::string& what) {
  const Config& c = meta.config;
  const int scale = enlarge(c.image_size, 112);
  std::vector<float> image(size_t(c.channels) * c.image_size * c.image_size);
  std::vector<uint8_t> pixels;
  std::vector<Panel> panels;
  for (const Mistake& e : r.mistakes) {
    model_view(split, e.index, meta, image.data(), &pixels);
    const std::string caption = meta.class_names[size_t(e.label)] + " as " +
                                meta.class_names[size_t(e.predicted)] + " (" +
                                fixed_text(100 * e.prob, 0) + "%)";
    panels.push_back({to_rgb(pixels.data(), c.channels, c.image_size, scale), caption});
  }
  const std::string title =
      what + (panels.empty() ? ": no misclassified images"
                             : ": true as predicted, the " + std::to_string(panels.size()) +
                                   " most confident mistakes");
  if (panels.empty()) panels.push_back({RgbImage{1, 1, {255, 255, 255}}, ""});
  return png_panels(panels, 4, title);
}

std::string attention_png(const Config& c, const uint8_t* pixels, const AttentionMaps& maps,
                          AttentionMethod method, const std::string& predicted, double prob,
                          const std::string& name) {
  const RgbImage image = to_rgb(pixels, c.channels, c.image_size, enlarge(c.image_size, 224));
  const std::string p = fixed_text(100 * prob, 1) + "%";
  const std::string how = attention_method_name(method);
  std::vector<Panel> panels = {{image, "input, as the model sees it"}};
  for (size_t h = 0; h < maps.maps.size(); ++h) {
    const std::string caption = method == AttentionMethod::kHeads
                                    ? "head " + std::to_string(h)
                                    : how + ": " + predicted + " " + p;
    panels.push_back({heat_overlay(image, maps.maps[h], maps.grid, 0.6, maps.extent), caption});
  }
  // A distilled model predicts from both its tokens' heads; the map is the class token's.
  const std::string whose =
      !maps.class_token ? "mean over the patch tokens (which the model averages)"
      : c.dist_token    ? "class token (the distillation token's head, also predicting, not shown)"
                        : "class token";
  const std::string title = name + ": " + predicted + " (" + p + "); " + how + ", " + whose;
  return png_panels(panels, method == AttentionMethod::kHeads ? 4 : 2, title);
}

std::string report_html(const ReportInputs& in) {
  VIT_CHECK(in.model != nullptr, "report_html: no model");
  LoadedModel& m = *in.model;
  const Config& c = m.meta.config;
  const std::string run = run_name(in.run_dir);
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>vitcpp run " +
      escape(run) +
      "</title>\n<style>\nbody{font-family:\"DejaVu Sans\",sans-serif;margin:24px;color:#222}\n"
      "table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:3px "
      "8px;text-align:left;font-size:13px}th{background:#f3f3f3}\nh2{margin-top:28px;border-"
      "bottom:1px solid #ddd}\nimg,svg{max-width:100%;height:auto}\n.note{color:#666}\n</style>\n"
      "</head>\n<body>\n<h1>Run " +
      escape(run) + "</h1>\n<p>Checkpoint <code>" + escape(in.checkpoint) +
      "</code>; trained on <code>" + escape(m.meta.dataset.empty() ? "?" : m.meta.dataset) +
      "</code>.</p>\n";

  const std::vector<EpochMetrics> epochs = read_metrics(in.run_dir);
  h += "<h2>Training</h2>\n";
  if (epochs.empty()) {
    h += "<p class=\"note\">metrics.jsonl has no finished epoch yet.</p>\n";
  } else {
    h += training_curves_svg({in.run_dir});
    // (Any epoch: a run stopped after one that eval_every skipped ends on a line without them.)
    const bool has_val = std::any_of(epochs.begin(), epochs.end(),
                                     [](const EpochMetrics& e) { return e.val_acc.has_value(); });
    const EpochMetrics* best = &epochs.front();
    for (const EpochMetrics& e : epochs) {
      const double a = (has_val ? e.val_acc : e.test_acc).value_or(-1);
      const double b = (has_val ? best->val_acc : best->test_acc).value_or(-1);
      if (a > b) best = &e;
    }
    h += "<table>\n<tr><th></th><th>epoch</th><th>train loss</th><th>train acc</th><th>val "
         "acc</th><th>test loss</th><th>test acc</th></tr>\n" +
         epoch_row("last", epochs.back()) +
         epoch_row(has_val ? "best (validation)" : "best (test)", *best) + "</table>\n";
  }
  h += "<h2>Model</h2>\n" + json_table(c.to_json());
  const auto recipe = m.metadata.find("recipe");
  if (recipe != m.metadata.end()) h += "<h2>Recipe</h2>\n" + json_table(recipe->second);

  if (!in.data) {
    h += "<h2>Evaluation</h2>\n<p class=\"note\">No evaluation: " + escape(in.no_data_reason) +
         ".</p>\n";
    return h + "</body>\n</html>\n";
  }
  const EvalResult r = evaluate(m.model, *in.data, m.meta.normalize, 256, in.mistakes);
  const std::string what = m.meta.dataset + " (" + in.split + " split)";
  h += "<h2>Evaluation</h2>\n<p>" + escape(what) + ", " + std::to_string(r.count) +
       " images: accuracy " + percent(r.accuracy) + ", loss " + fixed_text(r.loss, 4) + "</p>\n";
  h += svg_confusion(r.confusion, m.meta.class_names, what);
  h += "<h3>Per-class accuracy</h3>\n<table>\n<tr><th>class</th><th>accuracy</th></tr>\n";
  for (size_t k = 0; k < r.per_class_accuracy.size(); ++k) {
    h += "<tr><td>" + escape(m.meta.class_names[k]) + "</td><td>" +
         percent(r.per_class_accuracy[k]) + "</td></tr>\n";
  }
  h += "</table>\n";
  if (!png_supported()) {
    h += "<p class=\"note\">This vit was built without cairo: no pictures of images.</p>\n";
    return h + "</body>\n</html>\n";
  }
  h += "<h2>Most confident mistakes</h2>\n" +
       png_img(mistakes_png(r, *in.data, m.meta, what), "misclassified images");
  h += "<h2>Where the model looks</h2>\n<p>Attention rollout (Abnar &amp; Zuidema 2020) of the "
       "split's first images.</p>\n";
  const int K = c.num_classes;
  std::vector<float> image(size_t(c.channels) * c.image_size * c.image_size), logits(K);
  AttentionProbs probs(c);
  std::vector<uint8_t> pixels;
  for (int64_t i = 0; i < std::min<int64_t>(in.attention_images, in.data->size()); ++i) {
    const int32_t label = model_view(*in.data, i, m.meta, image.data(), &pixels);
    m.model.forward_attention(image.data(), logits.data(), probs);
    const ClassScore top = top_k(logits.data(), K, 1)[0];
    const std::string name =
        "image " + std::to_string(i) + " (" + m.meta.class_names[size_t(label)] + ")";
    h +=
        png_img(attention_png(c, pixels.data(), attention_maps(c, probs, AttentionMethod::kRollout),
                              AttentionMethod::kRollout, m.meta.class_names[size_t(top.index)],
                              top.prob, name),
                name);
  }
  return h + "</body>\n</html>\n";
}

}  // namespace vit
