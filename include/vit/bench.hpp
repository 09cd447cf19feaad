// Benchmark: timed training steps (forward + backward + AdamW) and inference batches on random
// data, with throughput, step-time statistics, achieved GFLOP/s and peak memory.
#pragma once

#include <cstdint>
#include <string>

#include "vit/config.hpp"

namespace vit {

struct BenchOptions {
  int batch = 32;
  int steps = 10;  // timed steps (per mode)
  int warmup = 2;  // untimed steps first
  bool train = true, infer = true;
  int micro_batch = 0;  // training's most images per micro-batch (batch_gradients); 0: automatic
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

}  // namespace vit
