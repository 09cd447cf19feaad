// Processes that train together (data parallelism): the communicator the ranks of a distributed
// run share. MPI's when the library was built with it (-DVIT_MPI=ON) and the process was started
// by mpirun or srun; otherwise one process alone, for which every operation is trivial.
//
// The gradient of a batch is an ordered sum (OrderedSum): micro-batch i's gradient g_i is added in
// the order of i, ((g_0 + g_1) + g_2) + ..., whichever rank and thread computed it. Each rank owns
// a slice of the parameters: it receives every other rank's g_i restricted to that slice, adds the
// M slices in order, and the ranks then gather the summed slices. An elementwise sum in a fixed
// order has one result, so the weights after a step are the same bits for any number of ranks and
// threads. The gradient is cut into buckets (runs of whole blocks) that travel as the backward
// finishes them, as DDP's do: a bucket of each rank's last micro-batch is sent as soon as its
// backward has finished it (the rank's other micro-batches are sent whole, while it computes the
// next), and a bucket is summed and its gather started as soon as every part of it is here,
// while the backward goes on with the next blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vit {

// Whether this build can run distributed (built with MPI).
bool mpi_built();

// This process's rank by its launcher's variables (mpirun's OMPI_COMM_WORLD_RANK, PMIx's, PMI's,
// srun's job step's SLURM_PROCID), read without starting MPI; 0 when none says.
int launcher_rank();

class Comm {
 public:
  // The process's communicator: MPI's world when built with MPI and started by an MPI launcher
  // (MPI_Init'ed here, once, unless the program did so itself: then it finalises MPI too), else
  // a one-process one. vit::Error when the launcher started
  // several processes that this one cannot reach (a build without MPI; srun without an MPI
  // plugin): each would otherwise train alone.
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
  // How many of this machine's ranks, this one among them, may run on this rank's cores (their
  // CPU affinities meet): local_size() where the launcher binds none, 1 where it binds each rank
  // to cores of its own, those of its socket or NUMA node where it binds ranks there together.
  int core_sharing() const;
  // This machine's name (MPI's processor name; the host name).
  std::string host() const;
  // The launcher that started the ranks: "srun" (a Slurm job step's variables and none of
  // mpirun's, read before MPI_Init, which may set mpirun's), else "mpirun"; "" for one process.
  std::string launcher() const;
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
  // owner[i]. bucket_starts (ascending, each in (0, floats); see gradient_buckets): where each
  // bucket after the first begins; none, one bucket. Allocates the receive buffers for this
  // rank's slice of the other ranks' parts.
  std::unique_ptr<OrderedSum> ordered_sum(int64_t floats, std::vector<int> owner,
                                          std::vector<int64_t> bucket_starts = {});

  struct Impl;

 private:
  explicit Comm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One batch's ordered gradient sum, run by every rank (Comm::ordered_sum).
class Comm::OrderedSum {
 public:
  ~OrderedSum();
  // Posts the receives of this step, whose sum goes to total (floats floats, untouched by the
  // caller until finish() returns). Then this rank calls ready() as it likes and contribute()
  // for every part it owns, from any threads (a part's calls from one thread at a time), and
  // finish() once.
  void begin(float* total);
  // Part i's gradient (a part this rank owns) is final from offset `from` to its end: if it is the
  // rank's last part, the buckets that lie wholly there are sent to the ranks owning their slices
  // (the other parts are sent whole, by contribute), and the buckets every part of which is here
  // are summed (by the calling thread) and their gather started. grads (the same pointer in every
  // call of a part) must stay untouched until finish() returns.
  void ready(int i, const float* grads, int64_t from);
  // Part i's gradient is final: ready(i, grads, 0).
  void contribute(int i, const float* grads);
  // Sums what is left and waits for the gathers: total = the ordered sum of the parts, on every
  // rank. vit::Error after the timeout, or when a part of this rank's was not contributed.
  void finish();

 private:
  friend class Comm;
  struct State;
  explicit OrderedSum(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

// The starts of the buckets (ascending, 0 left out) a gradient of `floats` floats is cut into for
// Comm::ordered_sum, given the offsets from which a backward has finished it, in the order it
// finishes them (descending; lanes::ready_offsets): each bucket runs from one of them to the
// next bucket, and holds at least min_floats floats where it can (the first bucket, finished
// last, joins the one after it when it is smaller).
std::vector<int64_t> gradient_buckets(const std::vector<size_t>& ready_offsets, int64_t floats,
                                      int64_t min_floats);

// The parts of `parts` micro-batches each of `ranks` ranks computes: contiguous runs, as even as
// can be (rank r owns [r * parts / ranks, (r + 1) * parts / ranks)).
std::vector<int> part_owners(int parts, int ranks);

}  // namespace vit
