// Coarse-grained parallelism: independent tasks (micro-batches), each run whole by one thread.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <vector>

namespace vit {

// How `tasks` independent tasks use `threads` threads: whole rounds of them (the first `solo`) run
// on `lanes` threads, each thread on a lane (buffers) of its own, a thread taking the next task
// when it finishes one (so a thread slowed down by another process on its core takes fewer); the
// rest run one at a time on lane 0, every op inside split over the threads. `buffers`: how many
// result buffers (run_on_lanes_ordered's) the solo tasks cycle through: two per thread, so that a
// fast thread can run ahead of a slow one by a few tasks before the in-order folding holds it.
struct LanePlan {
  int solo = 0, lanes = 1, buffers = 1;
};
inline LanePlan plan_lanes(int tasks, int threads) {
  const int solo = threads > 1 ? tasks / threads * threads : 0;
  if (solo == 0) return {};
  return {solo, threads, std::min(solo, 2 * threads)};
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
// an OpenMP region, lane being the thread's number, the ops f calls serial inside (nested regions
// get one thread); then the rest on lane 0, outside any region. In the region thread t runs task
// t first (so every thread runs at least one task on every call: per-thread scratch grown on the
// first call covers later ones where the tasks are of one size), then each thread takes the next
// task not taken yet: no thread waits for another before the region's end. An exception from f is
// rethrown after the region (the first one caught).
template <class F>
void run_on_lanes(int tasks, int threads, F&& f) {
  const int solo = plan_lanes(tasks, threads).solo;
  std::exception_ptr error;
  std::atomic<int> taken{0};  // tasks taken beyond each thread's first
#pragma omp parallel num_threads(threads) if (solo > 0)
  {
    const int lane = omp_get_thread_num(), team = omp_get_num_threads();
    for (int i = lane; i < solo; i = team + taken.fetch_add(1, std::memory_order_relaxed)) {
      capture_error(error, [&] { f(lane, i); });
    }
  }
  if (error) std::rethrow_exception(error);
  for (int i = solo; i < tasks; ++i) f(0, i);
}

// As run_on_lanes, with each task's result in a buffer of its own until it is folded: f(lane,
// buffer, i) computes task i into buffer (of plan_lanes(tasks, threads).buffers), then(buffer, i)
// folds it, called in the order of i, one at a time, by whichever thread completes the next task
// in that order (the one that ran it, or one that ran a later task and finds it done), after
// which the buffer is free for a later task. A thread finding every buffer taken waits, asleep,
// for the next fold. Outside the region (the rest, and one thread) the buffer is 0. After an
// exception from f or then, no more tasks start, no more are folded, and the first is rethrown.
template <class F, class G>
void run_on_lanes_ordered(int tasks, int threads, F&& f, G&& then) {
  const LanePlan plan = plan_lanes(tasks, threads);
  const int solo = plan.solo, buffers = plan.buffers;
  std::exception_ptr error;
  if (solo > 0) {
    // Shared state, under `mutex` (a few operations per task, each task milliseconds long): the
    // free buffers, the most recently freed on top (its memory is the likeliest to be cached);
    // each buffer's task (-1: none) and whether that task is finished. In the calling thread's
    // storage, grown once: a training step allocates nothing.
    thread_local std::vector<int> storage;
    storage.resize(size_t(3 * buffers));
    int* free_stack = storage.data();
    int* holds = free_stack + buffers;
    int* finished = holds + buffers;
    int free_count = 0;
    std::mutex mutex;
    std::condition_variable freed;  // a buffer was freed, or an error stops the work
    bool started = false, folding = false, failed = false;
    int next = 0, next_fold = 0;  // the next task to take (beyond the first ones), to fold
#pragma omp parallel num_threads(threads)
    {
      const int lane = omp_get_thread_num(), team = omp_get_num_threads();
      int task = lane, buffer = lane;  // the thread's first task, with the buffer of its number
      std::unique_lock<std::mutex> lock(mutex);
      if (!started) {  // the first thread here: buffers [0, team) hold the first tasks
        started = true;
        next = team;
        for (int b = 0; b < buffers; ++b) {
          holds[b] = b < team ? b : -1;
          finished[b] = 0;
        }
        for (int b = buffers - 1; b >= team; --b) free_stack[free_count++] = b;
      }
      // The buffer holding task i, finished, or -1.
      auto finished_buffer = [&](int i) {
        for (int b = 0; b < buffers; ++b) {
          if (holds[b] == i && finished[b]) return b;
        }
        return -1;
      };
      for (;;) {
        if (task >= 0) {
          lock.unlock();
          const bool ok = capture_error(error, [&] { f(lane, buffer, task); });
          lock.lock();
          finished[buffer] = 1;
          task = -1;
          if (!ok) failed = true;
        }
        // Fold every finished task that is next in order (unless another thread is folding: it
        // finds this one finished when it looks again).
        if (!folding && !failed) {
          folding = true;
          while (!failed && next_fold < solo) {
            const int i = next_fold, b = finished_buffer(i);
            if (b < 0) break;
            lock.unlock();
            const bool ok = capture_error(error, [&] { then(b, i); });
            lock.lock();
            if (!ok) failed = true;
            holds[b] = -1;
            finished[b] = 0;
            free_stack[free_count++] = b;
            ++next_fold;
            freed.notify_all();
          }
          folding = false;
        }
        if (failed) {
          freed.notify_all();
          break;
        }
        // Nothing left to take: what this thread finished is folded by it (above) or by the
        // thread that finishes the task before it.
        if (next >= solo) break;
        if (free_count == 0) {
          freed.wait(lock);
          continue;
        }
        task = next++;
        buffer = free_stack[--free_count];
        holds[buffer] = task;
      }
    }
  }
  if (error) std::rethrow_exception(error);
  for (int i = solo; i < tasks; ++i) {
    f(0, 0, i);
    then(0, i);
  }
}

}  // namespace vit
