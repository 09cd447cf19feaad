// The CPU backend's execution contexts: CpuContext owns the scratch memory of each thread of an
// executor (thread t of its parallel regions: the same memory whether t runs a whole op alone or
// its part of an op split over the threads) and makes the ops::Context values that point at it.
#pragma once

#include <memory>
#include <vector>

#include "ops/ops.hpp"

namespace vit::ops {

// Scratch regions [thread][slot] (src/ops/cpu/scratch.hpp's slots), each grown on first use.
struct ScratchSet {
  std::vector<std::vector<float>> regions;
};

class CpuContext {
 public:
  CpuContext();
  // The context for an op split over `threads` threads (at least 1), thread t of its parallel
  // region using scratch t; scratch for that many threads is made here, so call it outside any
  // parallel region.
  Context with_threads(int threads);
  // The context for an op that thread t of a parallel region runs alone, with scratch t (made by
  // an earlier with_threads(n) with n > t).
  Context on_thread(int t) const { return Context{1, scratch_.get(), t}; }

 private:
  std::unique_ptr<ScratchSet> scratch_;  // its address stays put when the CpuContext moves
};

}  // namespace vit::ops
