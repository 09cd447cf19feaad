// Processes that train together (data parallelism): the communicator the ranks of a distributed
// run share. MPI's when the library was built with it (-DVIT_MPI=ON) and the process was started
// by mpirun or srun; otherwise one process alone, for which every operation is trivial.
//
// The gradient of a batch is an ordered sum (OrderedSum): micro-batch i's gradient g_i is added in
// the order of i, ((g_0 + g_1) + g_2) + ..., whichever rank and thread computed it. Each rank owns
// a slice of the parameters: it receives every other rank's g_i restricted to that slice (sent as
// soon as g_i is done, while the rank computes its next micro-batch), adds the M slices in order,
// and the ranks then gather the summed slices. An elementwise sum in a fixed order has one result,
// so the weights after a step are the same bits for any number of ranks and threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vit {

// Whether this build can run distributed (built with MPI).
bool mpi_built();

class Comm {
 public:
  // The process's communicator: MPI's world when built with MPI and started by an MPI launcher
  // (which MPI_Init's here, once), else a one-process one.
  static Comm& world();
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const;
  int size() const;
  bool distributed() const { return size() > 1; }
  // The ranks on this machine and this one's place among them.
  int local_rank() const;
  int local_size() const;
  // This machine's name (MPI's processor name; the host name).
  std::string host() const;
  // How long a rank waits for the others in any exchange before giving up (a rank that died or
  // hangs; 300 s unless set): it then throws vit::Error, and the caller should abort() the job.
  double timeout() const;
  void set_timeout(double seconds);

  // bounded false: no timeout, for a wait on work of unknown length (decoding a dataset; a rank
  // that dies meanwhile still ends the job, through mpirun).
  void barrier(bool bounded = true);
  // Rank 0's bytes, on every rank.
  void broadcast(std::string& bytes);
  // Whether any rank passes true.
  bool any(bool mine);
  // Every rank's doubles, in rank order: rank r passes counts[r] of them; all has sum(counts).
  void all_gather(const double* mine, const std::vector<int>& counts, double* all);

  // Ends every rank of the job now (MPI_Abort) with `code`; one process alone exits with it.
  [[noreturn]] void abort(int code);
  // Seconds this rank has spent waiting for the others in OrderedSum::finish and collectives
  // since the last call (the share of a step the network could not hide).
  double take_wait_seconds();

  class OrderedSum;
  // The ordered sum of `parts` gradients of `floats` floats each; part i is computed by rank
  // owner[i]. Allocates the receive buffers for this rank's slice of the other ranks' parts.
  std::unique_ptr<OrderedSum> ordered_sum(int64_t floats, std::vector<int> owner);

  struct Impl;

 private:
  explicit Comm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One batch's ordered gradient sum, run by every rank (Comm::ordered_sum).
class Comm::OrderedSum {
 public:
  ~OrderedSum();
  // Posts the receives of this step. Then this rank calls contribute() for every part it owns,
  // from any thread (one call at a time is not needed), and finish() once.
  void begin();
  // Part i's gradient (a part this rank owns): sent to the ranks owning its slices. grads must
  // stay untouched until finish() returns.
  void contribute(int i, const float* grads);
  // total = the ordered sum of the parts, on every rank. vit::Error after the timeout.
  void finish(float* total);

 private:
  friend class Comm;
  struct State;
  explicit OrderedSum(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

// The parts of `parts` micro-batches each of `ranks` ranks computes: contiguous runs, as even as
// can be (rank r owns [r * parts / ranks, (r + 1) * parts / ranks)).
std::vector<int> part_owners(int parts, int ranks);

}  // namespace vit
