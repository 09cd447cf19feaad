// The training loop: epochs of shuffled, augmented batches; AdamW with warm-up + cosine schedule;
// evaluation after every epoch; atomic checkpoints (last, best, optimizer state) and exact resume.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vit/checkpoint.hpp"
#include "vit/error.hpp"
#include "vit/optim.hpp"
#include "vit/safetensors.hpp"
#include "vit/train.hpp"

namespace vit {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kLast = "last.safetensors";
constexpr const char* kLastTrain = "last.train.safetensors";
constexpr const char* kBest = "best.safetensors";
constexpr const char* kMetrics = "metrics.jsonl";

// Everything a run carries from epoch to epoch.
struct Run {
  std::string dir, data_spec, data_dir;
  Config config;
  Recipe recipe;
  DatasetSplits data;
  Normalization norm;
  std::unique_ptr<Model> model;
  std::unique_ptr<AdamW> opt;
  int64_t epochs_done = 0, step = 0;
  double best_acc = -1;
  int best_epoch = 0;
};

std::string path_in(const Run& r, const char* name) {
  return (fs::path(r.dir) / name).string();
}

AdamWOptions optimizer_options(const Recipe& r) {
  AdamWOptions o;
  o.lr = r.lr;
  o.beta1 = r.beta1;
  o.beta2 = r.beta2;
  o.weight_decay = r.weight_decay;
  o.decoupled = r.optimizer == "adamw";
  return o;
}

void check_data_fits(const Config& c, const DatasetSplits& d) {
  VIT_CHECK(d.train.channels == c.channels && d.train.image_size == c.image_size,
            "dataset '" + d.name + "' has " + std::to_string(d.train.channels) + "x" +
                std::to_string(d.train.image_size) + "x" + std::to_string(d.train.image_size) +
                " images but the model expects " + std::to_string(c.channels) + "x" +
                std::to_string(c.image_size) + "x" + std::to_string(c.image_size) +
                "; set --image-size and --channels to match the data");
  VIT_CHECK(d.train.size() > 0, "dataset '" + d.name + "' has no training images");
}

ModelMeta model_meta(const Run& r) {
  return {r.config, r.data.class_names, r.norm};
}

// last.safetensors, then last.train.safetensors; both carry the same epoch and step, which resume
// checks, so a crash between the two writes is detected rather than resumed wrongly.
void save_last(Run& r) {
  const std::map<std::string, std::string> progress = {{"epoch", std::to_string(r.epochs_done)},
                                                       {"step", std::to_string(r.step)}};
  save_model(path_in(r, kLast), *r.model, model_meta(r), progress);
  std::vector<TensorToWrite> tensors;
  for (const ParamInfo& p : r.model->params()) {
    if (!p.trainable) continue;
    tensors.push_back({"exp_avg." + p.name, p.shape, r.opt->exp_avg() + p.offset});
    tensors.push_back({"exp_avg_sq." + p.name, p.shape, r.opt->exp_avg_sq() + p.offset});
  }
  std::map<std::string, std::string> md = progress;
  md["format"] = "vitcpp-train";
  md["version"] = VIT_VERSION;
  md["recipe"] = r.recipe.to_json();
  md["data"] = r.data_spec;
  md["data_dir"] = r.data_dir;
  md["best_acc"] = std::to_string(r.best_acc);
  md["best_epoch"] = std::to_string(r.best_epoch);
  md["optimizer_step"] = std::to_string(r.opt->step_count());
  write_safetensors(path_in(r, kLastTrain), tensors, md);
}

void append_metrics(const Run& r, const EpochMetrics& m) {
  std::ofstream f(path_in(r, kMetrics), std::ios::app);
  f << m.to_json() << "\n";
  f.flush();
  VIT_CHECK(f.good(), "cannot append to '" + path_in(r, kMetrics) + "'");
}

TrainSummary run_epochs(Run& r, TrainReporter& rep) {
  const Recipe& rc = r.recipe;
  const Dataset& train = r.data.train;
  const int K = r.config.num_classes;
  const int64_t n = train.size();
  const int B = int(std::min<int64_t>(rc.batch_size, n));
  const int64_t steps = (n + B - 1) / B;
  const int64_t total = steps * rc.epochs, warmup = steps * rc.warmup_epochs;
  r.model->enable_training(B);

  std::vector<float> images(size_t(B) * train.image_pixels()), probs(size_t(B) * K),
      dlogits(size_t(B) * K);
  std::vector<int32_t> labels(B);
  TrainSummary summary;
  const auto run_start = Clock::now();
  if (r.epochs_done >= rc.epochs)
    summary.final_test_acc = evaluate(*r.model, r.data.test, r.norm).accuracy;
  for (int64_t e = r.epochs_done; e < rc.epochs; ++e) {
    const auto start = Clock::now();
    const std::vector<int64_t> order = epoch_order(n, rc.seed, e);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    float lr = rc.lr;
    for (int64_t s = 0; s < steps; ++s) {
      const int b = int(std::min<int64_t>(B, n - s * B));
      make_batch(train, order.data() + s * B, b, r.norm, rc.augment, rc.seed, e, images.data(),
                 labels.data());
      lr = rc.lr_at(r.step, total, warmup);
      r.model->zero_grad();
      const float* logits = r.model->forward(images.data(), b);
      const double loss = cross_entropy(logits, labels.data(), b, K, rc.label_smoothing,
                                        probs.data(), dlogits.data());
      if (!std::isfinite(loss)) {
        std::ostringstream msg;
        msg << "training diverged at epoch " << e + 1 << ", step " << s + 1 << " of " << steps
            << ": the loss is " << loss << ". The last good checkpoint is " << path_in(r, kLast)
            << " (epoch " << r.epochs_done << "). Try a lower learning rate (--lr, now " << rc.lr
            << ")" << (rc.clip_grad > 0 ? "" : " or gradient clipping (--clip-grad 1)") << ".";
        throw Error(msg.str());
      }
      for (int i = 0; i < b; ++i) {
        const float* z = logits + int64_t(i) * K;
        correct += int(std::max_element(z, z + K) - z) == labels[i];
      }
      loss_sum += loss * b;
      seen += b;
      r.model->backward(dlogits.data());
      if (rc.clip_grad > 0) clip_grad_norm(*r.model, rc.clip_grad);
      r.opt->step(lr);
      ++r.step;

      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      StepProgress p;
      p.epoch = int(e + 1);
      p.epochs = rc.epochs;
      p.step = s + 1;
      p.steps = steps;
      p.loss = loss_sum / seen;
      p.acc = double(correct) / seen;
      p.img_per_s = seen / std::max(elapsed, 1e-9);
      p.eta_seconds = (n - seen) / std::max(p.img_per_s, 1e-9);
      rep.step(p);
    }
    const double train_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const EvalResult ev = evaluate(*r.model, r.data.test, r.norm);
    r.epochs_done = e + 1;

    EpochMetrics m;
    m.epoch = int(e + 1);
    m.train_loss = loss_sum / seen;
    m.train_acc = double(correct) / seen;
    m.test_loss = ev.loss;
    m.test_acc = ev.accuracy;
    m.lr = lr;
    m.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    m.img_per_s = seen / std::max(train_seconds, 1e-9);
    if (ev.accuracy > r.best_acc) {
      r.best_acc = ev.accuracy;
      r.best_epoch = m.epoch;
      save_model(path_in(r, kBest), *r.model, model_meta(r),
                 {{"epoch", std::to_string(m.epoch)}, {"test_acc", std::to_string(ev.accuracy)}});
    }
    save_last(r);
    append_metrics(r, m);
    rep.epoch(m, rc.epochs);
    summary.final_test_acc = ev.accuracy;
    if (rep.stop_requested()) break;
  }
  summary.best_test_acc = r.best_acc;
  summary.best_epoch = r.best_epoch;
  summary.epochs = int(r.epochs_done);
  summary.seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
  return summary;
}

// Keeps the metrics lines of epochs up to `epochs` (a crash may have left later ones, or the
// checkpoint may be older than the last line).
void truncate_metrics(const Run& r, int64_t epochs) {
  const std::string path = path_in(r, kMetrics);
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).at("epoch").get<int64_t>() <= epochs) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {
      // A torn last line from a crash: dropped.
    }
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  out << kept;
  VIT_CHECK(out.good(), "cannot rewrite '" + path + "'");
}

int64_t metadata_int(const std::map<std::string, std::string>& md, const std::string& key,
                     const std::string& path) {
  auto it = md.find(key);
  VIT_CHECK(it != md.end(), "'" + path + "' has no '" + key + "' in its metadata");
  try {
    return std::stoll(it->second);
  } catch (const std::exception&) {
    throw Error("'" + path + "': metadata '" + key + "' is not an integer");
  }
}

}  // namespace

TrainSummary train(const Config& config, const Recipe& recipe, const TrainOptions& options,
                   TrainReporter& reporter) {
  config.validate();
  recipe.validate();
  VIT_CHECK(!options.out_dir.empty(), "an output directory is needed (--out DIR)");
  Run r;
  r.dir = options.out_dir;
  r.data_spec = options.data;
  r.data_dir = options.data_dir;
  r.config = config;
  r.recipe = recipe;
  for (const char* f : {kLast, kLastTrain, kMetrics}) {
    VIT_CHECK(!fs::exists(path_in(r, f)), "'" + r.dir + "' already holds a training run (" + f +
                                              "); continue it with `vit train --resume " + r.dir +
                                              "` or choose another --out directory");
  }
  std::error_code ec;
  fs::create_directories(r.dir, ec);
  VIT_CHECK(!ec && fs::is_directory(r.dir),
            "cannot create the output directory '" + r.dir + "': " + ec.message());

  r.data = load_dataset(options.data, config.num_classes, options.data_dir);
  check_data_fits(config, r.data);
  r.norm = compute_normalization(r.data.train);
  r.model = std::make_unique<Model>(config);
  r.model->init(recipe.seed, {recipe.qkv_init_std, recipe.pos_init_sincos});
  r.opt = std::make_unique<AdamW>(*r.model, optimizer_options(recipe));
  reporter.message("training on " + options.data + ": " + std::to_string(r.data.train.size()) +
                   " train / " + std::to_string(r.data.test.size()) + " test images, " +
                   std::to_string(r.model->num_params()) + " parameters, run directory " + r.dir);
  return run_epochs(r, reporter);
}

TrainSummary resume(const std::string& run_dir, int epochs, const std::string& data_dir,
                    TrainReporter& reporter) {
  Run r;
  r.dir = run_dir;
  const std::string last = path_in(r, kLast), state = path_in(r, kLastTrain);
  VIT_CHECK(
      fs::exists(last) && fs::exists(state),
      "'" + run_dir + "' holds no run to resume (it needs " + kLast + " and " + kLastTrain + ")");
  LoadedModel loaded = load_model(last);
  SafetensorsReader st(state);
  const auto& md = st.metadata();
  VIT_CHECK(md.count("format") && md.at("format") == "vitcpp-train",
            "'" + state + "' is not a vitcpp training state");
  r.epochs_done = metadata_int(md, "epoch", state);
  r.step = metadata_int(md, "step", state);
  VIT_CHECK(metadata_int(loaded.metadata, "epoch", last) == r.epochs_done &&
                metadata_int(loaded.metadata, "step", last) == r.step,
            "'" + last + "' and '" + state +
                "' are from different steps (a crash between the two writes?); resume is not "
                "possible from this pair");
  r.recipe = Recipe::from_json(md.count("recipe") ? md.at("recipe") : "");
  if (epochs > 0) {
    r.recipe.epochs = epochs;
    r.recipe.validate();
  }
  r.data_spec = md.count("data") ? md.at("data") : "";
  r.data_dir = !data_dir.empty() ? data_dir : (md.count("data_dir") ? md.at("data_dir") : "");
  r.best_epoch = int(metadata_int(md, "best_epoch", state));
  r.best_acc = std::stod(md.count("best_acc") ? md.at("best_acc") : "-1");
  r.config = loaded.meta.config;
  r.norm = loaded.meta.normalize;

  r.data = load_dataset(r.data_spec, r.config.num_classes, r.data_dir);
  check_data_fits(r.config, r.data);
  r.model = std::make_unique<Model>(std::move(loaded.model));
  r.opt = std::make_unique<AdamW>(*r.model, optimizer_options(r.recipe));
  for (const ParamInfo& p : r.model->params()) {
    if (!p.trainable) continue;
    st.read_f32("exp_avg." + p.name, r.opt->exp_avg() + p.offset, p.numel);
    st.read_f32("exp_avg_sq." + p.name, r.opt->exp_avg_sq() + p.offset, p.numel);
  }
  r.opt->set_step_count(metadata_int(md, "optimizer_step", state));
  truncate_metrics(r, r.epochs_done);
  if (r.epochs_done >= r.recipe.epochs) {
    reporter.message("'" + run_dir + "' has already trained " + std::to_string(r.epochs_done) +
                     " of " + std::to_string(r.recipe.epochs) +
                     " epochs; pass --epochs N to train longer");
  } else {
    reporter.message("resuming " + run_dir + " at epoch " + std::to_string(r.epochs_done + 1) +
                     " of " + std::to_string(r.recipe.epochs) + " (step " + std::to_string(r.step) +
                     ")");
  }
  return run_epochs(r, reporter);
}

}  // namespace vit
