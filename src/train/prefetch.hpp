// Batches prepared ahead: a worker thread assembles the next training batch (make_batch) while
// the caller's threads train on the current one, so that a step waits for its images only when
// the pipeline cannot keep up.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "vit/transforms.hpp"

namespace vit {

class BatchPrefetcher {
 public:
  // Batches of up to max_batch samples of d, each sample `pixels` floats.
  BatchPrefetcher(const Dataset& d, const Normalization& norm, const AugmentOptions& aug,
                  uint64_t seed, int max_batch, int64_t pixels);
  ~BatchPrefetcher();  // waits for a batch in progress
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // Starts assembling the samples idx[0..b) of epoch `epoch` as its step `step` (idx must stay
  // valid until wait()): make_batch, then mix_batch when the augmentation mixes.
  void start(const int64_t* idx, int b, int64_t epoch, int64_t step = 0);
  // Waits for the batch start() began and returns it, and what mix_batch did to it; it stays
  // valid until the start() after next. The worker's vit::Error, if it failed, is thrown here.
  Mixed wait(const float** images, const int32_t** labels);

 private:
  void work();

  const Dataset& data_;
  const Normalization& norm_;
  const AugmentOptions aug_;
  const uint64_t seed_;
  std::vector<float> images_[2];
  std::vector<int32_t> labels_[2];
  int fill_ = 0;  // the buffer start() fills next

  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false, done_ = false, quit_ = false;
  const int64_t* idx_ = nullptr;
  int b_ = 0;
  int64_t epoch_ = 0, step_ = 0;
  Mixed mixed_;
  std::exception_ptr error_;
  std::thread worker_;
};

}  // namespace vit
