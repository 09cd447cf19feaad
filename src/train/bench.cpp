// `vit bench`: times training steps (vit::TrainStep, the trainer's step) and
// inference batches of a model on random inputs.
#include "vit/bench.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/rng.hpp"
#include "model/executor.hpp"
#include "vit/error.hpp"
#include "vit/memory.hpp"
#include "vit/model.hpp"
#include "vit/train.hpp"
#include "vit/transforms.hpp"

namespace vit {
namespace {

template <typename Fn>
BenchTiming time_steps(Fn step, int warmup, int steps, int batch, double flops_per_image) {
  for (int i = 0; i < warmup; ++i) step();
  std::vector<double> ms;
  for (int i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  BenchTiming t;
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  t.ms_median = sorted[sorted.size() / 2];
  t.ms_min = sorted.front();
  t.ms_max = sorted.back();
  double total = 0;
  for (double v : ms) total += v;
  t.img_per_s = 1e3 * steps * batch / total;
  t.gflops = t.img_per_s * flops_per_image / 1e9;
  return t;
}

}  // namespace

BenchResult benchmark(const Config& config, const BenchOptions& o) {
  config.validate();
  VIT_CHECK(o.batch >= 1 && o.steps >= 1 && o.warmup >= 0,
            "bench: batch and steps must be at least 1, warmup at least 0");
  const int B = o.batch, K = config.num_classes;
  // Refused before anything is allocated, as training is (one model does both modes, so their
  // memory adds up).
  const int64_t pixels = int64_t(config.channels) * config.image_size * config.image_size;
  const int64_t need = (o.train ? Model::training_bytes(config, B) : 0) +
                       (o.infer ? Model::inference_bytes(config, B) : 0) +
                       int64_t(sizeof(float)) * B * (pixels + K + 1);  // inputs, logits, labels
  require_memory(need, "benchmarking this model with batch " + std::to_string(B),
                 "use a smaller `batch`");
  Model model(config);
  // Inference alone in bf16 starts as `vit predict --dtype bf16` does: no fp32 linear weights.
  const bool bf16_alone = !o.train && o.infer && o.dtype == Dtype::kBf16;
  model.init(1, Model::InitOptions{}, bf16_alone ? Dtype::kBf16 : Dtype::kF32);
  Rng rng(2);
  std::vector<float> images(size_t(B) * size_t(pixels));
  for (float& v : images) v = float(rng.normal());
  std::vector<int32_t> labels(B);
  for (int32_t& y : labels) y = int32_t(rng.below(uint64_t(K)));
  const double fwd = double(config.forward_flops());
  BenchResult r;
  // The largest of the micro-batches batch_gradients and predict cut the batch into.
  auto largest = [&](int requested) {
    const int N = config.num_tokens();
    const int parts = micro_batch_count(B, N, micro_batch_images(config, B, N, requested));
    return micro_batch_largest(B, parts);
  };
  r.infer_micro_batch = largest(0);
  if (o.train) {
    r.micro_batch = largest(o.micro_batch);
    Recipe recipe;
    recipe.lr = 1e-4f;
    recipe.weight_decay = 0.05f;
    recipe.label_smoothing = 0.1f;
    recipe.clip_grad = 1.0f;
    recipe.dtype = o.dtype;
    TrainStep step(model, recipe, B, o.micro_batch);
    r.train = time_steps([&] { step.run(images.data(), labels.data(), B, recipe.lr); }, o.warmup,
                         o.steps, B, 3 * fwd);
  }
  if (o.infer) {
    std::vector<float> logits(size_t(B) * K);
    model.set_inference_dtype(o.dtype);  // after training's steps changed the weights
    r.infer = time_steps([&] { model.predict(images.data(), B, logits.data()); }, o.warmup, o.steps,
                         B, fwd);
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  r.peak_rss_mb = ru.ru_maxrss / 1024.0;  // Linux reports KiB
  return r;
}

DataBenchResult benchmark_data(const DataBenchOptions& o) {
  VIT_CHECK(o.batch >= 1 && o.steps >= 1, "bench: batch and steps must be at least 1");
  DataBenchResult r;
  DatasetOptions d;
  const int own = dataset_classes(o.data, o.data_dir);
  d.num_classes = own > 0 ? own : o.num_classes;
  d.data_dir = o.data_dir;
  d.shape = o.shape;
  d.preprocess = o.preprocess;
  d.train_scale = o.train_scale;
  d.cache_dir = o.cache_dir;
  const auto t0 = std::chrono::steady_clock::now();
  const DatasetSplits s = load_dataset(o.data, d);
  r.open_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto* split : {s.train.get(), s.val.get(), s.test.get()}) {
    if (split) r.images += split->size();
  }
  const Dataset& train = *s.train;
  const Normalization norm = compute_normalization(train);
  const int B = o.batch;
  std::vector<float> images(size_t(B) * size_t(train.shape().pixels()));
  std::vector<int32_t> labels(static_cast<size_t>(B));
  std::vector<int64_t> idx(static_cast<size_t>(B));
  Rng rng(3);
  auto batch = [&](int step) {
    for (int64_t& i : idx) i = int64_t(rng.below(uint64_t(train.size())));
    make_batch(train, idx.data(), B, norm, o.augment, 0, step, images.data(), labels.data());
  };
  batch(0);  // warm-up
  const auto t1 = std::chrono::steady_clock::now();
  for (int step = 1; step <= o.steps; ++step) batch(step);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  r.batch_img_per_s = double(B) * o.steps / std::max(seconds, 1e-9);
  return r;
}

}  // namespace vit
