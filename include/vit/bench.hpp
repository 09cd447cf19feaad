// Benchmark: timed training steps (forward + backward + AdamW) and inference batches on random
// data, with throughput, step-time statistics, achieved GFLOP/s and peak memory.
#pragma once

#include <cstdint>
#include <string>

#include "vit/config.hpp"
#include "vit/dataset.hpp"
#include "vit/model.hpp"
#include "vit/transforms.hpp"

namespace vit {

struct BenchOptions {
  int batch = 32;
  int steps = 10;  // timed steps (per mode)
  int warmup = 2;  // untimed steps first
  bool train = true, infer = true;
  int micro_batch = 0;  // training's most images per micro-batch (batch_gradients); 0: automatic
  // The products' precision: training's (Recipe::dtype) and inference's (set_inference_dtype).
  Dtype dtype = Dtype::kF32;
};

struct BenchTiming {
  double img_per_s = 0;
  double ms_median = 0, ms_min = 0, ms_max = 0;  // per step
  double gflops = 0;  // forward FLOPs (Config::forward_flops) x images / time; training counts 3x
};

struct BenchResult {
  BenchTiming train, infer;
  // The most images in one micro-batch (the batch: none) of training and of inference.
  int micro_batch = 0, infer_micro_batch = 0;
  double peak_rss_mb = 0;  // the process's peak resident memory at the end
};

BenchResult benchmark(const Config& config, const BenchOptions& options);

// The input pipeline on a real dataset: opening it (for an image folder, decoding every file to
// the model's input) and then assembling training batches (random samples, augmented and
// normalised as training does) without any model.
struct DataBenchOptions {
  std::string data, data_dir;  // load_dataset's spec and where it lives
  std::string cache_dir;       // DatasetOptions::cache_dir
  int num_classes = 10;        // the model's, for a dataset that cannot tell its own
                               // (dataset_classes); one that can is opened with its own
  SampleShape shape;           // the model's input: channels, side
  Preprocess preprocess;       // how image files are resized
  int train_scale = 0;         // DatasetOptions::train_scale
  AugmentOptions augment;
  int batch = 128, steps = 50;
};
struct DataBenchResult {
  int64_t images = 0;       // in all splits that were opened
  double open_seconds = 0;  // load_dataset
  double batch_img_per_s = 0;
};
DataBenchResult benchmark_data(const DataBenchOptions& options);

}  // namespace vit
