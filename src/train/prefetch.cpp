// The batch prefetcher (src/train/prefetch.hpp): one worker thread, two buffers.
#include "train/prefetch.hpp"

#include <utility>

namespace vit {

BatchPrefetcher::BatchPrefetcher(const Dataset& d, const Normalization& norm,
                                 const AugmentOptions& aug, uint64_t seed, int max_batch,
                                 int64_t pixels)
    : data_(d), norm_(norm), aug_(aug), seed_(seed) {
  for (int i = 0; i < 2; ++i) {
    images_[i].resize(size_t(max_batch) * size_t(pixels));
    labels_[i].resize(size_t(max_batch));
  }
  worker_ = std::thread([this] { work(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void BatchPrefetcher::start(const int64_t* idx, int b, int64_t epoch, int64_t step) {
  std::lock_guard<std::mutex> lock(mu_);
  idx_ = idx, b_ = b, epoch_ = epoch, step_ = step;
  pending_ = true, done_ = false;
  cv_.notify_all();
}

Mixed BatchPrefetcher::wait(const float** images, const int32_t** labels) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return done_; });
  done_ = false;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  *images = images_[fill_].data();
  *labels = labels_[fill_].data();
  fill_ ^= 1;
  return mixed_;
}

void BatchPrefetcher::work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return pending_ || quit_; });
    if (quit_) return;
    pending_ = false;
    const int64_t* idx = idx_;
    const int b = b_, buffer = fill_;
    const int64_t epoch = epoch_, step = step_;
    lock.unlock();
    std::exception_ptr error;
    Mixed mixed;
    try {
      // One thread: the caller's threads are training meanwhile.
      make_batch(data_, idx, b, norm_, aug_, seed_, epoch, images_[buffer].data(),
                 labels_[buffer].data(), 1);
      const SampleShape shape = data_.shape();
      mixed = mix_batch(images_[buffer].data(), b, shape.channels, shape.height, aug_, seed_, epoch,
                        step);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    error_ = error;
    mixed_ = mixed;
    done_ = true;
    cv_.notify_all();
  }
}

}  // namespace vit
