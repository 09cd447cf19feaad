// Thread counts: the one place that decides how many threads OpenMP kernels and OpenBLAS use, so
// the two never oversubscribe the cores.
#pragma once

namespace vit {

// Threads available to this process (its CPU affinity mask), at least 1.
int available_cores();

// Sets the threads used by both the OpenMP kernels and OpenBLAS. n must be in [1, 1024]; otherwise
// vit::Error. The library starts with available_cores().
void set_num_threads(int n);
int num_threads();

}  // namespace vit
