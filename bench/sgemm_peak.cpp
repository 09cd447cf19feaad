// The machine's fp32 GEMM reference for bench/compare.py: OpenBLAS sgemm (the build vitcpp links)
// on square matrices with the given thread count, best GFLOP/s of a few runs, as JSON.
//   vit_sgemm_peak [threads] [n]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "vit/threads.hpp"

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : vit::available_cores();
  const int n = argc > 2 ? std::atoi(argv[2]) : 2048;
  vit::set_num_threads(threads);
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep > 0) best = std::max(best, 2.0 * n * n * n / s / 1e9);  // first run warms up
  }
  std::printf("{\"threads\": %d, \"n\": %d, \"sgemm_gflops\": %.1f}\n", threads, n, best);
  return 0;
}
