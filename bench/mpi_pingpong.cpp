// MPI point-to-point costs between two ranks, for docs/DISTRIBUTED.md's scaling model: the
// one-way time of a message of each size (half a round trip, best of several), from which the
// latency (the smallest message's time) and the bandwidth (the largest's bytes over its time).
//   mpirun -np 2 --mca btl tcp,self build/bench/vit_mpi_pingpong
// Prints one JSON object: {"bytes": [...], "one_way_us": [...]}. Loopback TCP on one machine
// measures the MPI and TCP software path, not a network.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2) {
    if (rank == 0) std::fprintf(stderr, "vit_mpi_pingpong: run it with mpirun -np 2\n");
    MPI_Finalize();
    return 2;
  }
  const std::vector<long> sizes = {8, 1 << 10, 1 << 14, 1 << 17, 1 << 20, 1 << 22, 1 << 24};
  std::vector<char> buf(size_t(sizes.back()), 1);
  std::string json = "{\"bytes\": [";
  std::string times = "], \"one_way_us\": [";
  for (size_t s = 0; s < sizes.size(); ++s) {
    const int n = int(sizes[s]);
    const int reps = n <= (1 << 17) ? 200 : 20;
    double best = 1e30;
    for (int round = 0; round < 5; ++round) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      for (int r = 0; r < reps; ++r) {
        if (rank == 0) {
          MPI_Send(buf.data(), n, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
          MPI_Recv(buf.data(), n, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
          MPI_Recv(buf.data(), n, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          MPI_Send(buf.data(), n, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
        }
      }
      best = std::min(best, (MPI_Wtime() - t0) / reps / 2);
    }
    json += (s ? ", " : "") + std::to_string(n);
    char t[64];
    std::snprintf(t, sizeof t, "%s%.2f", s ? ", " : "", best * 1e6);
    times += t;
  }
  if (rank == 0) std::printf("%s%s]}\n", json.c_str(), times.c_str());
  MPI_Finalize();
  return 0;
}
