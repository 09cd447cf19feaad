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
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

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

std::string hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

// Whether an MPI launcher (mpirun, mpiexec, srun) started this process.
[[maybe_unused]] bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(v)) return true;
  }
  return false;
}

}  // namespace

bool mpi_built() {
#ifdef VIT_MPI
  return true;
#else
  return false;
#endif
}

struct Comm::Impl {
  int rank = 0, size = 1, local_rank = 0, local_size = 1;
  std::string host = hostname();
  double timeout = 300;
  double waited = 0;  // seconds spent in waits since take_wait_seconds
  std::mutex mpi;     // one MPI call at a time (MPI_THREAD_SERIALIZED)
#ifdef VIT_MPI
  bool initialized = false;
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
  if (impl_->initialized) {
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
#ifdef VIT_MPI
  if (launched_by_mpi()) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    impl->initialized = true;
    if (provided < MPI_THREAD_SERIALIZED) {
      MPI_Finalize();
      throw Error(
          "this MPI library cannot be called from more than one thread "
          "(MPI_THREAD_SERIALIZED), which vitcpp needs; use another MPI build");
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &impl->world);
    MPI_Comm_rank(impl->world, &impl->rank);
    MPI_Comm_size(impl->world, &impl->size);
    MPI_Comm local;
    MPI_Comm_split_type(impl->world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &impl->local_rank);
    MPI_Comm_size(local, &impl->local_size);
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
std::string Comm::host() const {
  return impl_->host;
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

// ---- The ordered sum.

struct Comm::OrderedSum::State {
  Comm::Impl* comm = nullptr;
  int64_t floats = 0;
  std::vector<int> owner;
  std::vector<int64_t> lo;                // rank r's slice: [lo[r], lo[r + 1])
  std::vector<const float*> mine;         // this rank's parts, as contributed
  std::vector<std::vector<float>> recvd;  // other ranks' parts, this rank's slice of each
#ifdef VIT_MPI
  std::vector<MPI_Request> recv_reqs, send_reqs;
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
  int64_t slice(int r) const {
    return lo[size_t(r) + 1] - lo[size_t(r)];
  }
};

Comm::OrderedSum::OrderedSum(std::unique_ptr<State> s) : s_(std::move(s)) {}

Comm::OrderedSum::~OrderedSum() {
#ifdef VIT_MPI
  s_->stop_progress();
#endif
}

std::unique_ptr<Comm::OrderedSum> Comm::ordered_sum(int64_t floats, std::vector<int> owner) {
  const int n = size(), me = rank();
  VIT_CHECK(floats >= 1 && !owner.empty(), "ordered_sum: empty sum");
  for (int o : owner) VIT_CHECK(o >= 0 && o < n, "ordered_sum: an owner is not a rank");
  auto s = std::make_unique<OrderedSum::State>();
  s->comm = impl_.get();
  s->floats = floats;
  s->owner = std::move(owner);
  const int parts = int(s->owner.size());
  // Slices of whole 64-byte lines, as even as can be.
  s->lo.resize(size_t(n) + 1);
  for (int r = 0; r <= n; ++r) s->lo[size_t(r)] = std::min(floats, (floats * r / n) / 16 * 16);
  s->lo[size_t(n)] = floats;
  // (MPI counts and offsets are ints.)
  VIT_CHECK(floats < (int64_t(1) << 31),
            "ordered_sum: a gradient of more than 2^31 floats cannot be exchanged");
  s->mine.assign(size_t(parts), nullptr);
  s->recvd.resize(size_t(parts));
  for (int i = 0; i < parts; ++i) {
    if (s->owner[size_t(i)] != me) s->recvd[size_t(i)].resize(size_t(s->slice(me)));
  }
#ifdef VIT_MPI
  VIT_CHECK(parts - 1 <= impl_->tag_ub, "ordered_sum: more micro-batches (" +
                                            std::to_string(parts) +
                                            ") than this MPI library's message tags can number");
#endif
  return std::unique_ptr<OrderedSum>(new OrderedSum(std::move(s)));
}

void Comm::OrderedSum::begin() {
  State& s = *s_;
  std::fill(s.mine.begin(), s.mine.end(), nullptr);
#ifdef VIT_MPI
  Comm::Impl& c = *s.comm;
  if (c.size == 1) return;
  const int parts = int(s.owner.size());
  s.recv_reqs.assign(size_t(parts), MPI_REQUEST_NULL);
  s.send_reqs.clear();
  s.send_reqs.reserve(size_t(parts) * size_t(c.size));
  {
    std::lock_guard<std::mutex> lock(c.mpi);
    for (int i = 0; i < parts; ++i) {
      const int from = s.owner[size_t(i)];
      if (from == c.rank) continue;
      MPI_Irecv(s.recvd[size_t(i)].data(), int(s.slice(c.rank)), MPI_FLOAT, from, i, c.world,
                &s.recv_reqs[size_t(i)]);
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

void Comm::OrderedSum::contribute(int i, const float* grads) {
  State& s = *s_;
  VIT_CHECK(i >= 0 && i < int(s.owner.size()) && s.owner[size_t(i)] == s.comm->rank,
            "ordered_sum: part " + std::to_string(i) + " is not this rank's");
  s.mine[size_t(i)] = grads;
#ifdef VIT_MPI
  Comm::Impl& c = *s.comm;
  if (c.size == 1) return;
  std::lock_guard<std::mutex> lock(c.mpi);
  for (int r = 0; r < c.size; ++r) {
    if (r == c.rank || s.slice(r) == 0) continue;
    s.send_reqs.push_back(MPI_REQUEST_NULL);
    MPI_Isend(grads + s.lo[size_t(r)], int(s.slice(r)), MPI_FLOAT, r, i, c.world,
              &s.send_reqs.back());
  }
#endif
}

void Comm::OrderedSum::finish(float* total) {
  State& s = *s_;
  Comm::Impl& c = *s.comm;
  const int parts = int(s.owner.size());
  for (int i = 0; i < parts; ++i) {
    VIT_CHECK(s.owner[size_t(i)] != c.rank || s.mine[size_t(i)],
              "ordered_sum: part " + std::to_string(i) + " was not contributed");
  }
#ifdef VIT_MPI
  if (c.size > 1) {
    s.stop_progress();
    c.wait(s.recv_reqs.data(), int(s.recv_reqs.size()), "receiving gradients");
  }
#endif
  // This rank's slice: the parts in their order, as one process adds them (add_into's sum is
  // elementwise, so slicing changes no bit).
  const int64_t lo = s.lo[size_t(c.rank)], n = s.slice(c.rank);
  const ops::Context ctx{num_threads()};
  for (int i = 0; i < parts && n > 0; ++i) {
    const float* part =
        s.owner[size_t(i)] == c.rank ? s.mine[size_t(i)] + lo : s.recvd[size_t(i)].data();
    ops::add_into(ctx, total + lo, part, n, i == 0);
  }
#ifdef VIT_MPI
  if (c.size > 1) {
    c.wait(s.send_reqs.data(), int(s.send_reqs.size()), "sending gradients");
    std::vector<int> counts(size_t(c.size)), displs(size_t(c.size));
    for (int r = 0; r < c.size; ++r) {
      counts[size_t(r)] = int(s.slice(r));
      displs[size_t(r)] = int(s.lo[size_t(r)]);
    }
    MPI_Request req;
    {
      std::lock_guard<std::mutex> lock(c.mpi);
      MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, total, counts.data(), displs.data(), MPI_FLOAT,
                      c.world, &req);
    }
    c.wait(&req, 1, "gathering the summed gradient");
  }
#endif
}

}  // namespace vit
