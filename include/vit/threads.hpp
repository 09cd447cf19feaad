// Thread counts: the one place that decides how many threads the kernels use (OpenMP's; the BLAS
// they call is single-threaded, so nothing else spawns threads).
#pragma once

namespace vit {

// Threads available to this process (its CPU affinity mask), at least 1.
int available_cores();

// Sets the threads the kernels use (and OpenMP's count for the calling program). n must be in
// [1, 1024]; otherwise vit::Error. The library starts with OMP_NUM_THREADS's count where the
// environment sets it, else available_cores().
void set_num_threads(int n);
int num_threads();

// libgomp fixes how long idle threads busy-wait when it loads, before main(). Its default spin
// makes two processes sharing the cores collapse (tiny28 training, 2 cores: 926 img/s alone,
// 58 img/s each for two at once); GOMP_SPINCOUNT=10000 keeps 923 img/s alone and 373 each for
// two. Programs call this first thing in main(): when neither OMP_WAIT_POLICY nor
// GOMP_SPINCOUNT is set, it sets GOMP_SPINCOUNT=10000 and re-executes the program once
// (/proc/self/exe) so the setting takes effect; otherwise, or if exec fails, it returns.
void set_openmp_wait_policy(char** argv);

}  // namespace vit
