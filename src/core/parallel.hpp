// Coarse-grained parallelism: independent tasks (micro-batches), each run whole by one thread.
#pragma once

#include <omp.h>

#include <exception>

namespace vit {

// How `tasks` independent tasks use `threads` threads: whole rounds of them (the first `solo`) run
// one per thread, each thread on a lane (buffers) of its own; the rest run one at a time on lane 0,
// every op inside split over the threads. `lanes`: how many lanes that takes.
struct LanePlan {
  int solo = 0, lanes = 1;
};
inline LanePlan plan_lanes(int tasks, int threads) {
  const int solo = threads > 1 ? tasks / threads * threads : 0;
  return {solo, solo > 0 ? threads : 1};
}

// Runs f(); an exception from it, which must not leave the OpenMP region the caller is in, is kept
// in `error` instead (the first one caught on any thread). Returns whether f returned normally.
template <class F>
bool capture_error(std::exception_ptr& error, F&& f) {
  try {
    f();
    return true;
  } catch (...) {
#pragma omp critical(vit_capture_error)
    if (!error) error = std::current_exception();
    return false;
  }
}

// Runs f(lane, i) for every i in [0, tasks) as plan_lanes(tasks, threads) says: the solo tasks in
// an OpenMP region, round-robin over the threads (the same way on every call, so that per-thread
// scratch grown on the first call covers later ones), lane being the thread's number, the ops f
// calls serial inside (nested regions get one thread); then the rest on lane 0, outside any
// region. An exception from f is rethrown after the region (the first one caught).
template <class F>
void run_on_lanes(int tasks, int threads, F&& f) {
  const int solo = plan_lanes(tasks, threads).solo;
  std::exception_ptr error;
#pragma omp parallel num_threads(threads) if (solo > 0)
  {
    const int lane = omp_get_thread_num(), team = omp_get_num_threads();
    for (int i = lane; i < solo; i += team) capture_error(error, [&] { f(lane, i); });
  }
  if (error) std::rethrow_exception(error);
  for (int i = solo; i < tasks; ++i) f(0, i);
}

// As run_on_lanes, and then(lane, i) after each f(lane, i) in the order of i (in the region,
// OpenMP's ordered construct: a thread whose task finished early waits for the ones before it;
// solo task i runs on thread i % threads). then is not called for a task whose f threw.
template <class F, class G>
void run_on_lanes_ordered(int tasks, int threads, F&& f, G&& then) {
  const int solo = plan_lanes(tasks, threads).solo;
  std::exception_ptr error;
#pragma omp parallel num_threads(threads) if (solo > 0)
  {
    const int lane = omp_get_thread_num();
#pragma omp for schedule(static, 1) ordered
    for (int i = 0; i < solo; ++i) {
      const bool ok = capture_error(error, [&] { f(lane, i); });
#pragma omp ordered
      if (ok) capture_error(error, [&] { then(lane, i); });
    }
  }
  if (error) std::rethrow_exception(error);
  for (int i = solo; i < tasks; ++i) {
    f(0, i);
    then(0, i);
  }
}

}  // namespace vit
