// Thread-count policy: OpenMP's thread count is set here, and nothing about the BLAS (core neither
// calls nor names it). The ops keep OpenBLAS to the threads set here: gemm() runs every BLAS call
// inside an active OpenMP region or with one thread (src/ops/cpu/gemm.cpp, blas_in_pieces), so at
// any moment at most n threads compute.
#include "vit/threads.hpp"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "core/host.hpp"
#include "vit/error.hpp"

namespace vit {
namespace {

std::atomic<int> g_threads = 0;  // 0: not decided yet

// The default: OMP_NUM_THREADS where the program's environment sets it (OpenMP has read it), else
// every core this process may run on.
void ensure_initialized() {
  if (g_threads.load() == 0) {
    set_num_threads(std::getenv("OMP_NUM_THREADS") ? std::clamp(omp_get_max_threads(), 1, 1024)
                                                   : available_cores());
  }
}

}  // namespace

int available_cores() {
  const cpu_set_t set = cpu_affinity();
  if (const int n = CPU_COUNT(&set); n > 0) return n;
  return std::max(1, omp_get_num_procs());
}

void set_num_threads(int n) {
  VIT_CHECK(n >= 1 && n <= 1024,
            "threads must be between 1 and 1024 (got " + std::to_string(n) + ")");
  g_threads.store(n);
  omp_set_num_threads(n);
}

void set_openmp_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  if (setenv("GOMP_SPINCOUNT", "10000", 0) != 0) return;
  execv("/proc/self/exe", argv);
  // exec failed (no /proc?): carry on with libgomp's default.
}

int num_threads() {
  ensure_initialized();
  return g_threads;
}

}  // namespace vit
