// vit::Comm (include/vit/dist.hpp): MPI's world communicator when built with VIT_MPI and started
// by an MPI launcher, else one process alone; and the ordered gradient sum over its ranks.
//
// Every wait is a loop of MPI_Test calls with a deadline (Comm::timeout), sleeping a little
// between them: a rank that died or hangs ends the others' waits with a vit::Error instead of
// hanging them, and ranks sharing cores (more ranks than cores) do not spin against each other.
// MPI is called from several threads (the lanes that finish micro-batches, a progress thread),
// one call at a time under a mutex: MPI_THREAD_SERIALIZED.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/host.hpp"
#include "ops/ops.hpp"
#include "vit/dist.hpp"
#include "vit/error.hpp"
#include "vit/threads.hpp"

#ifdef VIT_MPI
#include <mpi.h>
#endif

namespace vit {

namespace {

using Clock = std::chrono::steady_clock;
[[maybe_unused]] constexpr double kSpinSeconds = 2e-3;

// Whether an MPI launcher (mpirun, mpiexec, srun) started this process.
[[maybe_unused]] bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(v)) return true;
  }
  return false;
}

// How many processes the launcher started together, by its own variables: mpirun's, srun's job
// step's (a batch script's own SLURM_NTASKS is not one), PMI's; 1 when none says.
int launched_processes() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS", "PMI_SIZE"}) {
    const char* s = std::getenv(v);
    if (!s || !*s) continue;
    char* end = nullptr;
    const long n = std::strtol(s, &end, 10);
    if (*end == '\0' && n >= 1 && n <= 1 << 24) return int(n);
  }
  return 1;
}

}  // namespace

int launcher_rank() {
  const bool step = std::getenv("SLURM_STEP_NUM_TASKS") != nullptr;  // inside srun's job step
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    if (std::string(v) == "SLURM_PROCID" && !step) continue;  // a batch script's own
    const char* s = std::getenv(v);
    if (!s || !*s) continue;
    char* end = nullptr;
    const long r = std::strtol(s, &end, 10);
    if (*end == '\0' && r >= 0 && r < 1 << 24) return int(r);
  }
  return 0;
}

bool mpi_built() {
#ifdef VIT_MPI
  return true;
#else
  return false;
#endif
}

struct Comm::Impl {
  int rank = 0, size = 1, local_rank = 0, local_size = 1;
  int core_sharing = 1;  // this machine's ranks whose CPU affinity meets this one's
  std::string host = host_name();
  bool by_srun = false;  // Slurm's job-step variables and none of mpirun's, before MPI_Init
  double timeout = 300;
  double waited = 0;  // seconds spent in waits since take_wait_seconds
  std::mutex mpi;     // one MPI call at a time (MPI_THREAD_SERIALIZED)
#ifdef VIT_MPI
  bool initialized = false;        // MPI in use
  bool owned = false;              // ... started here (MPI_Init_thread), so finalised here
  MPI_Comm world = MPI_COMM_NULL;  // a duplicate of MPI_COMM_WORLD: our messages only
  int tag_ub = 32767;

  // Waits for every request in reqs (MPI_REQUEST_NULL ones are done), at most until the deadline
  // of `timeout` seconds from now (bounded), else for as long as it takes.
  void wait(MPI_Request* reqs, int n, const char* what, bool bounded = true) {
    const auto start = Clock::now();
    auto sleep = std::chrono::microseconds(0);
    for (;;) {
      int done = 0;
      {
        std::lock_guard<std::mutex> lock(mpi);
        MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
      }
      if (done) break;
      const double s = std::chrono::duration<double>(Clock::now() - start).count();
      if (bounded && s > timeout) {
        throw Error("rank " + std::to_string(rank) + " waited " + std::to_string(int(s)) +
                    " s for the other ranks (" + what +
                    "): one of them has stopped or hangs. Check the other ranks' messages; if a "
                    "step can take longer than that, raise the `timeout`");
      }
      // The first 2 ms yield the core between tests: a transfer under way moves only while MPI
      // is called, and an answer on its way comes sooner than a sleep would end; then growing
      // sleeps, up to 1 ms. (tiny28 on 2 ranks, a step's median wait for the gathered gradient:
      // 1.6-2.3 ms sleeping after 200 us, 0.55 ms after 2 ms.)
      if (s < kSpinSeconds) {
        std::this_thread::yield();
        continue;
      }
      if (sleep.count() > 0) std::this_thread::sleep_for(sleep);
      sleep = std::min(std::chrono::microseconds(1000), sleep + std::chrono::microseconds(20));
    }
    waited += std::chrono::duration<double>(Clock::now() - start).count();
  }
#endif
};

Comm::Comm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Comm::~Comm() {
#ifdef VIT_MPI
  if (impl_->owned) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
#endif
}

Comm& Comm::world() {
  static std::unique_ptr<Comm> comm;
  if (comm) return *comm;
  auto impl = std::make_unique<Impl>();
  impl->by_srun = std::getenv("SLURM_STEP_NUM_TASKS") && !std::getenv("OMPI_COMM_WORLD_SIZE");
#ifdef VIT_MPI
  if (launched_by_mpi()) {
    // A program that started MPI itself keeps it (and finalises it): vitcpp uses its level.
    int started = 0, provided = 0;
    MPI_Initialized(&started);
    if (started) {
      MPI_Query_thread(&provided);
    } else {
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
      impl->owned = true;
    }
    impl->initialized = true;
    if (provided < MPI_THREAD_SERIALIZED) {
      if (impl->owned) MPI_Finalize();
      throw Error(started ? "the program started MPI for one thread only; vitcpp calls it from "
                            "more (MPI_THREAD_SERIALIZED): start it with MPI_Init_thread(..., "
                            "MPI_THREAD_SERIALIZED, ...)"
                          : "this MPI library cannot be called from more than one thread "
                            "(MPI_THREAD_SERIALIZED), which vitcpp needs; use another MPI build");
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &impl->world);
    MPI_Comm_rank(impl->world, &impl->rank);
    MPI_Comm_size(impl->world, &impl->size);
    MPI_Comm local;
    MPI_Comm_split_type(impl->world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &impl->local_rank);
    MPI_Comm_size(local, &impl->local_size);
    // Each rank's CPUs, to count the ranks that may run on this one's (every CPU where the
    // affinity cannot be read).
    cpu_set_t mine = cpu_affinity();
    if (CPU_COUNT(&mine) == 0) {
      for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) CPU_SET(cpu, &mine);
    }
    std::vector<cpu_set_t> all(size_t(impl->local_size));
    MPI_Allgather(&mine, int(sizeof mine), MPI_BYTE, all.data(), int(sizeof mine), MPI_BYTE, local);
    impl->core_sharing = int(std::count_if(all.begin(), all.end(), [&](const cpu_set_t& other) {
      cpu_set_t both;
      CPU_AND(&both, &mine, &other);
      return CPU_COUNT(&both) > 0;
    }));
    MPI_Comm_free(&local);
    int* ub = nullptr;
    int found = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &ub, &found);
    if (found && ub) impl->tag_ub = *ub;
    char name[MPI_MAX_PROCESSOR_NAME] = {};
    int len = 0;
    MPI_Get_processor_name(name, &len);
    impl->host.assign(name, size_t(len));
  }
#endif
  // Processes started together that cannot reach each other would each train alone, into the
  // same run directory.
  if (const int started = launched_processes(); started > 1 && impl->size == 1) {
    const std::string n = std::to_string(started);
    throw Error(mpi_built()
                    ? "this process is one of " + n +
                          " started together, but MPI sees it alone, so each would train by "
                          "itself into the same run directory: under Slurm, start them with "
                          "`srun --mpi=pmix` (or set MpiDefault=pmix in slurm.conf)"
                    : "this process is one of " + n +
                          " started together (by mpirun or srun), but this vit was built "
                          "without MPI, so each would train by itself into the same run "
                          "directory: rebuild with MPI (Debian's libopenmpi-dev; cmake "
                          "-DVIT_MPI=ON) or start one process");
  }
  comm.reset(new Comm(std::move(impl)));
  return *comm;
}

int Comm::rank() const {
  return impl_->rank;
}
int Comm::size() const {
  return impl_->size;
}
int Comm::local_rank() const {
  return impl_->local_rank;
}
int Comm::local_size() const {
  return impl_->local_size;
}
int Comm::core_sharing() const {
  return impl_->core_sharing;
}
std::string Comm::host() const {
  return impl_->host;
}
std::string Comm::launcher() const {
  return !distributed() ? "" : impl_->by_srun ? "srun" : "mpirun";
}
double Comm::timeout() const {
  return impl_->timeout;
}
void Comm::set_timeout(double seconds) {
  VIT_CHECK(seconds > 0, "the timeout must be positive");
  impl_->timeout = seconds;
}

double Comm::take_wait_seconds() {
  const double s = impl_->waited;
  impl_->waited = 0;
  return s;
}

void Comm::barrier(bool bounded) {
#ifdef VIT_MPI
  if (!distributed()) return;
  MPI_Request req;
  {
    std::lock_guard<std::mutex> lock(impl_->mpi);
    MPI_Ibarrier(impl_->world, &req);
  }
  impl_->wait(&req, 1, "barrier", bounded);
#else
  (void)bounded;
#endif
}

void Comm::broadcast(std::string& bytes) {
#ifdef VIT_MPI
  if (!distributed()) return;
  int64_t n = int64_t(bytes.size());
  MPI_Request req;
  {
    std::lock_guard<std::mutex> lock(impl_->mpi);
    MPI_Ibcast(&n, 1, MPI_INT64_T, 0, impl_->world, &req);
  }
  impl_->wait(&req, 1, "broadcast");
  VIT_CHECK(n >= 0 && n < (int64_t(1) << 31),
            "broadcast: a message of " + std::to_string(n) + " bytes is too large");
  bytes.resize(size_t(n));
  {
    std::lock_guard<std::mutex> lock(impl_->mpi);
    MPI_Ibcast(bytes.data(), int(n), MPI_CHAR, 0, impl_->world, &req);
  }
  impl_->wait(&req, 1, "broadcast");
#else
  (void)bytes;
#endif
}

bool Comm::any(bool mine) {
#ifdef VIT_MPI
  if (!distributed()) return mine;
  int in = mine ? 1 : 0, out = 0;
  MPI_Request req;
  {
    std::lock_guard<std::mutex> lock(impl_->mpi);
    MPI_Iallreduce(&in, &out, 1, MPI_INT, MPI_MAX, impl_->world, &req);
  }
  impl_->wait(&req, 1, "agreeing on a flag");
  return out != 0;
#else
  return mine;
#endif
}

void Comm::all_gather(const double* mine, const std::vector<int>& counts, double* all) {
  VIT_CHECK(int(counts.size()) == size(), "all_gather: one count per rank is needed");
  std::vector<int> displs(counts.size() + 1, 0);
  for (size_t r = 0; r < counts.size(); ++r) displs[r + 1] = displs[r] + counts[r];
  if (!distributed()) {
    std::copy(mine, mine + counts[0], all);
    return;
  }
#ifdef VIT_MPI
  MPI_Request req;
  {
    std::lock_guard<std::mutex> lock(impl_->mpi);
    MPI_Iallgatherv(mine, counts[size_t(rank())], MPI_DOUBLE, all, counts.data(), displs.data(),
                    MPI_DOUBLE, impl_->world, &req);
  }
  impl_->wait(&req, 1, "gathering results");
#endif
}

void Comm::abort(int code) {
#ifdef VIT_MPI
  if (impl_->initialized) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::_Exit(code);
}

std::vector<int> part_owners(int parts, int ranks) {
  VIT_CHECK(parts >= 1 && ranks >= 1, "part_owners: parts and ranks must be at least 1");
  std::vector<int> owner(size_t(parts), 0);
  for (int r = 0; r < ranks; ++r) {
    const int64_t lo = int64_t(r) * parts / ranks, hi = int64_t(r + 1) * parts / ranks;
    for (int64_t i = lo; i < hi; ++i) owner[size_t(i)] = r;
  }
  return owner;
}

std::vector<int64_t> gradient_buckets(const std::vector<size_t>& ready_offsets, int64_t floats,
                                      int64_t min_floats) {
  VIT_CHECK(floats >= 1 && min_floats >= 1, "gradient_buckets: empty gradient or bucket");
  std::vector<int64_t> starts;  // descending while they are found
  int64_t end = floats, previous = floats + 1;
  for (size_t from : ready_offsets) {
    const int64_t o = int64_t(from);
    VIT_CHECK(o < previous && o <= floats,
              "gradient_buckets: the offsets must descend within the gradient");
    previous = o;
    if (o > 0 && end - o >= min_floats) {
      starts.push_back(o);
      end = o;
    }
  }
  if (!starts.empty() && end < min_floats) starts.pop_back();  // the first joins the next
  std::reverse(starts.begin(), starts.end());
  return starts;
}

// ---- The ordered sum.

struct Comm::OrderedSum::State {
  Comm::Impl* comm = nullptr;
  int64_t floats = 0;
  std::vector<int> owner;
  std::vector<int64_t> lo;      // rank r's slice: [lo[r], lo[r + 1])
  std::vector<int64_t> bucket;  // bucket b: [bucket[b], bucket[b + 1])
  float* total = nullptr;
  std::vector<const float*> mine;         // this rank's parts, as contributed
  std::vector<std::vector<float>> recvd;  // other ranks' parts, this rank's slice of each
  // For each of this rank's parts, the lowest bucket sent (buckets from it to the last are
  // final); the bucket count when none is. Written by the part's thread, read by the summing one.
  std::unique_ptr<std::atomic<int>[]> sent;
  std::mutex summing;  // held by the thread that sums buckets
  int next = -1;       // the next bucket to sum (the last first), under `summing`
#ifdef VIT_MPI
  // Bucket b of part i: [b * parts + i]; a part sent whole is received at its last bucket's
  // place (the first one summed).
  std::vector<MPI_Request> recv_reqs;
  std::vector<MPI_Request> send_reqs, gather_reqs;
  bool progressing = false;  // under `stop`
  std::mutex stop;
  std::condition_variable stopped;  // progressing became false
  std::thread progress;             // keeps the transfers moving while the lanes compute
  void stop_progress() {
    {
      std::lock_guard<std::mutex> lock(stop);
      progressing = false;
    }
    stopped.notify_all();
    if (progress.joinable()) progress.join();
  }
#endif
  int parts() const {
    return int(owner.size());
  }
  int buckets() const {
    return int(bucket.size()) - 1;
  }
  int64_t slice(int r) const {
    return lo[size_t(r) + 1] - lo[size_t(r)];
  }
  // Whether part i travels whole, in one message to each rank, rather than in buckets: all but
  // each rank's last part (their sending is hidden behind the rank's next part anyway, and buckets
  // would cost messages).
  bool whole(int i) const {
    return i + 1 < parts() && owner[size_t(i) + 1] == owner[size_t(i)];
  }
  // [a, a + n): buckets [b, e)'s floats in rank r's slice (n may be 0).
  void piece(int b, int r, int64_t& a, int64_t& n, int e = -1) const {
    a = std::max(bucket[size_t(b)], lo[size_t(r)]);
    n = std::max<int64_t>(0, std::min(bucket[size_t(e < 0 ? b + 1 : e)], lo[size_t(r) + 1]) - a);
  }
  // Sums the buckets from `next` down while every part of them is here (blocking: waiting for
  // the other ranks' parts; every one of this rank's must be final), each into total's slice of
  // this rank, the parts in their order, and starts its gather.
  void advance(bool blocking, const ops::Context& ctx);
};

Comm::OrderedSum::OrderedSum(std::unique_ptr<State> s) : s_(std::move(s)) {}

Comm::OrderedSum::~OrderedSum() {
#ifdef VIT_MPI
  s_->stop_progress();
#endif
}

std::unique_ptr<Comm::OrderedSum> Comm::ordered_sum(int64_t floats, std::vector<int> owner,
                                                    std::vector<int64_t> bucket_starts) {
  const int n = size(), me = rank();
  VIT_CHECK(floats >= 1 && !owner.empty(), "ordered_sum: empty sum");
  for (int o : owner) VIT_CHECK(o >= 0 && o < n, "ordered_sum: an owner is not a rank");
  auto s = std::make_unique<OrderedSum::State>();
  s->comm = impl_.get();
  s->floats = floats;
  s->owner = std::move(owner);
  const int parts = s->parts();
  // Slices of whole 64-byte lines, as even as can be.
  s->lo.resize(size_t(n) + 1);
  for (int r = 0; r <= n; ++r) s->lo[size_t(r)] = std::min(floats, (floats * r / n) / 16 * 16);
  s->lo[size_t(n)] = floats;
  s->bucket.push_back(0);
  for (int64_t b : bucket_starts) {
    VIT_CHECK(b > s->bucket.back() && b < floats,
              "ordered_sum: the bucket starts must ascend within the gradient");
    s->bucket.push_back(b);
  }
  s->bucket.push_back(floats);
  // (MPI counts and offsets are ints.)
  VIT_CHECK(floats < (int64_t(1) << 31),
            "ordered_sum: a gradient of more than 2^31 floats cannot be exchanged");
  s->mine.assign(size_t(parts), nullptr);
  s->recvd.resize(size_t(parts));
  for (int i = 0; i < parts; ++i) {
    if (s->owner[size_t(i)] != me) s->recvd[size_t(i)].resize(size_t(s->slice(me)));
  }
  s->sent.reset(new std::atomic<int>[size_t(parts)]);
#ifdef VIT_MPI
  VIT_CHECK(int64_t(parts) * s->buckets() - 1 <= impl_->tag_ub,
            "ordered_sum: more micro-batches x buckets (" + std::to_string(parts) + " x " +
                std::to_string(s->buckets()) + ") than this MPI library's message tags can number");
#endif
  return std::unique_ptr<OrderedSum>(new OrderedSum(std::move(s)));
}

void Comm::OrderedSum::begin(float* total) {
  State& s = *s_;
  VIT_CHECK(total, "ordered_sum: no total to sum into");
  s.total = total;
  std::fill(s.mine.begin(), s.mine.end(), nullptr);
  for (int i = 0; i < s.parts(); ++i) s.sent[size_t(i)].store(s.buckets());
  s.next = s.buckets() - 1;
#ifdef VIT_MPI
  Comm::Impl& c = *s.comm;
  if (c.size == 1) return;
  s.stop_progress();  // a step that threw before its finish() left it running
  const int parts = s.parts(), buckets = s.buckets();
  s.recv_reqs.assign(size_t(parts) * size_t(buckets), MPI_REQUEST_NULL);
  s.gather_reqs.assign(size_t(buckets), MPI_REQUEST_NULL);
  s.send_reqs.clear();
  s.send_reqs.reserve(size_t(parts) * size_t(buckets) * size_t(c.size));
  {
    std::lock_guard<std::mutex> lock(c.mpi);
    for (int i = 0; i < parts; ++i) {
      const int from = s.owner[size_t(i)];
      if (from == c.rank) continue;
      const bool whole = s.whole(i);
      for (int b = 0; b < (whole ? 1 : buckets); ++b) {
        int64_t a, n;
        s.piece(b, c.rank, a, n, whole ? buckets : -1);
        if (n == 0) continue;
        const int at = whole ? buckets - 1 : b;
        MPI_Irecv(s.recvd[size_t(i)].data() + (a - s.lo[size_t(c.rank)]), int(n), MPI_FLOAT, from,
                  i * buckets + at, c.world, &s.recv_reqs[size_t(at) * size_t(parts) + size_t(i)]);
      }
    }
  }
  // Large messages move only while MPI is being called: a thread calls it every 2 ms until
  // finish() wakes it to stop, so that the parts travel while the lanes compute the next ones.
  // (tiny28, 2 ranks x
  // 1 thread on 2 cores: 727 img/s with 200 us, 798 with 2 ms, against 915 for one process with
  // 2 threads; means of 3 alternated runs of an epoch of mnist.)
  s.progressing = true;
  s.progress = std::thread([&s] {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(s.comm->mpi);
        int flag = 0;
        MPI_Testall(int(s.recv_reqs.size()), s.recv_reqs.data(), &flag, MPI_STATUSES_IGNORE);
        MPI_Testall(int(s.send_reqs.size()), s.send_reqs.data(), &flag, MPI_STATUSES_IGNORE);
        MPI_Testall(int(s.gather_reqs.size()), s.gather_reqs.data(), &flag, MPI_STATUSES_IGNORE);
      }
      std::unique_lock<std::mutex> lock(s.stop);
      if (s.stopped.wait_for(lock, std::chrono::microseconds(2000),
                             [&s] { return !s.progressing; })) {
        break;
      }
    }
  });
#endif
}

void Comm::OrderedSum::State::advance(bool blocking, const ops::Context& ctx) {
  Comm::Impl& c = *comm;
  const int me = c.rank, P = parts();
  for (; next >= 0; --next) {
    const int b = next;
    for (int i = 0; i < P; ++i) {
      if (owner[size_t(i)] == me && sent[size_t(i)].load(std::memory_order_acquire) > b) {
        VIT_CHECK(!blocking, "ordered_sum: part " + std::to_string(i) + " was not contributed");
        return;
      }
    }
#ifdef VIT_MPI
    if (c.size > 1) {
      MPI_Request* reqs = recv_reqs.data() + size_t(b) * size_t(P);
      if (blocking) {
        c.wait(reqs, P, "receiving gradients");
      } else {
        int done = 0;
        {
          std::lock_guard<std::mutex> lock(c.mpi);
          MPI_Testall(P, reqs, &done, MPI_STATUSES_IGNORE);
        }
        if (!done) return;
      }
    }
#endif
    // This rank's slice of bucket b: the parts in their order, as one process adds them
    // (add_into's sum is elementwise, so cutting changes no bit).
    int64_t a, n;
    piece(b, me, a, n);
    for (int i = 0; i < P && n > 0; ++i) {
      const float* part = owner[size_t(i)] == me ? mine[size_t(i)] + a
                                                 : recvd[size_t(i)].data() + (a - lo[size_t(me)]);
      ops::add_into(ctx, total + a, part, n, i == 0);
    }
#ifdef VIT_MPI
    if (c.size > 1) {
      std::vector<int> counts(size_t(c.size)), displs(size_t(c.size));
      for (int r = 0; r < c.size; ++r) {
        int64_t ra, rn;
        piece(b, r, ra, rn);
        counts[size_t(r)] = int(rn);
        displs[size_t(r)] = rn > 0 ? int(ra - bucket[size_t(b)]) : 0;
      }
      // Every rank starts the buckets' gathers in the same order (the last bucket first), as
      // MPI's collectives must be.
      std::lock_guard<std::mutex> lock(c.mpi);
      MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, total + bucket[size_t(b)], counts.data(),
                      displs.data(), MPI_FLOAT, c.world, &gather_reqs[size_t(b)]);
    }
#endif
  }
}

void Comm::OrderedSum::ready(int i, const float* grads, int64_t from) {
  State& s = *s_;
  Comm::Impl& c = *s.comm;
  VIT_CHECK(i >= 0 && i < s.parts() && s.owner[size_t(i)] == c.rank,
            "ordered_sum: part " + std::to_string(i) + " is not this rank's");
  VIT_CHECK(grads && (!s.mine[size_t(i)] || s.mine[size_t(i)] == grads),
            "ordered_sum: part " + std::to_string(i) + " came in two places");
  s.mine[size_t(i)] = grads;
  // The lowest bucket lying wholly in [from, floats) (a part sent whole: 0 or none).
  const int buckets = s.buckets();
  int final_from = buckets;
  while (final_from > 0 && s.bucket[size_t(final_from) - 1] >= from) --final_from;
  if (s.whole(i) && final_from > 0) final_from = buckets;
  const int sent = s.sent[size_t(i)].load(std::memory_order_relaxed);
  if (final_from >= sent) return;
#ifdef VIT_MPI
  if (c.size > 1) {
    std::lock_guard<std::mutex> lock(c.mpi);
    const bool whole = s.whole(i);  // then one message of buckets [0, buckets)
    for (int b = whole ? 0 : sent - 1; b >= final_from; --b) {
      for (int r = 0; r < c.size; ++r) {
        int64_t a, n;
        s.piece(b, r, a, n, whole ? buckets : -1);
        if (r == c.rank || n == 0) continue;
        s.send_reqs.push_back(MPI_REQUEST_NULL);
        MPI_Isend(grads + a, int(n), MPI_FLOAT, r, i * buckets + (whole ? buckets - 1 : b), c.world,
                  &s.send_reqs.back());
      }
    }
  }
#endif
  s.sent[size_t(i)].store(final_from, std::memory_order_release);
  // Sum what is complete now, unless another thread is at it (finish() sums what is left).
  std::unique_lock<std::mutex> lock(s.summing, std::try_to_lock);
  if (lock.owns_lock()) s.advance(false, ops::Context{1});
}

void Comm::OrderedSum::contribute(int i, const float* grads) {
  ready(i, grads, 0);
}

void Comm::OrderedSum::finish() {
  State& s = *s_;
  Comm::Impl& c = *s.comm;
  for (int i = 0; i < s.parts(); ++i) {
    VIT_CHECK(s.owner[size_t(i)] != c.rank || s.sent[size_t(i)].load() == 0,
              "ordered_sum: part " + std::to_string(i) + " was not contributed");
  }
#ifdef VIT_MPI
  if (c.size > 1) s.stop_progress();
#endif
  {
    std::lock_guard<std::mutex> lock(s.summing);
    s.advance(true, ops::Context{num_threads()});
  }
#ifdef VIT_MPI
  if (c.size > 1) {
    c.wait(s.gather_reqs.data(), int(s.gather_reqs.size()), "gathering the summed gradient");
    c.wait(s.send_reqs.data(), int(s.send_reqs.size()), "sending gradients");
  }
#endif
}

}  // namespace vit
