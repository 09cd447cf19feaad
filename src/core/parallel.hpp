// Coarse-grained parallelism: independent tasks (micro-batches), each run whole by one thread.
#pragma once

#include <omp.h>

#include <exception>

namespace vit {

// Runs f(lane, i) for every i in [0, tasks), each on one of up to `threads` OpenMP threads, lane
// being that thread's number (< threads): a task may use the lane's own buffers. Tasks go to the
// threads round-robin, the same way on every call (so that per-thread scratch grown on the first
// call covers later ones). Inside the region the ops f calls run serially (nested regions get one
// thread). An exception from f, which must not leave the OpenMP region, is rethrown here after it
// (the first one caught).
template <class F>
void run_on_lanes(int tasks, int threads, F&& f) {
  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
    const int lane = omp_get_thread_num(), team = omp_get_num_threads();
    for (int i = lane; i < tasks; i += team) {
      try {
        f(lane, i);
      } catch (...) {
#pragma omp critical(vit_run_on_lanes)
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

// As run_on_lanes, and then(lane, i) after each f(lane, i) in the order of i (OpenMP's ordered
// construct: a thread whose task finished early waits for the ones before it). Tasks go to the
// threads round-robin (task i to thread i % threads). then is not called for a task whose f threw.
template <class F, class G>
void run_on_lanes_ordered(int tasks, int threads, F&& f, G&& then) {
  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
    const int lane = omp_get_thread_num();
#pragma omp for schedule(static, 1) ordered
    for (int i = 0; i < tasks; ++i) {
      bool ok = true;
      try {
        f(lane, i);
      } catch (...) {
        ok = false;
#pragma omp critical(vit_run_on_lanes)
        if (!error) error = std::current_exception();
      }
#pragma omp ordered
      if (ok) {
        try {
          then(lane, i);
        } catch (...) {
#pragma omp critical(vit_run_on_lanes)
          if (!error) error = std::current_exception();
        }
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace vit
