// Distributed training (include/vit/dist.hpp): the ordered gradient sum of one process, and
// `mpirun -np N vit train` end to end (label mpi): N ranks give the bytes of one process, resume
// on another number of ranks, a rank with another command line is refused, SIGINT to mpirun saves
// once, and a killed rank ends the job. The mpirun runs use the TCP transport (--mca btl
// tcp,self), as ranks on several machines would; they are skipped where the build has no MPI or
// mpirun is missing.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/dir_lock.hpp"
#include "idx_writer.hpp"
#include "test_util.hpp"
#include "vit/checkpoint.hpp"
#include "vit/dist.hpp"
#include "vit/isa.hpp"
#include "vit/train.hpp"

namespace vit::test {
namespace {

namespace fs = std::filesystem;

TEST(Dist, PartOwnersAreContiguousAndEven) {
  EXPECT_EQ(part_owners(8, 2), (std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(part_owners(8, 3), (std::vector<int>{0, 0, 1, 1, 1, 2, 2, 2}));
  EXPECT_EQ(part_owners(2, 4), (std::vector<int>{1, 3}));  // ranks 0 and 2 compute nothing
  EXPECT_THROW(part_owners(0, 2), Error);
}

// One process: every part is its own, and the sum is ((g0 + g1) + g2) exactly as floats add,
// whether a part comes whole or bucket by bucket as a backward would finish it.
TEST(Dist, OrderedSumOfOneProcessAddsInOrder) {
  Comm& comm = Comm::world();
  if (comm.distributed()) GTEST_SKIP() << "run by mpirun";
  const int64_t n = 1000;
  std::vector<std::vector<float>> parts;
  for (int i = 0; i < 3; ++i) parts.push_back(random_vector(n, 40 + i, 1e3));
  auto check = [&](const std::vector<float>& total, const std::string& what) {
    for (int64_t j = 0; j < n; ++j) {
      const float expected = (parts[0][size_t(j)] + parts[1][size_t(j)]) + parts[2][size_t(j)];
      ASSERT_EQ(total[size_t(j)], expected) << what << ", element " << j;
    }
  };
  for (const std::vector<int64_t>& buckets : {std::vector<int64_t>{}, {100, 640, 999}}) {
    auto sum = comm.ordered_sum(n, {0, 0, 0}, buckets);
    for (int round = 0; round < 2; ++round) {  // reusable step after step
      std::vector<float> total(size_t(n), -1.0f);
      sum->begin(total.data());
      sum->ready(2, parts[2].data(), 700);  // only [999, 1000) lies wholly past 700
      sum->contribute(1, parts[1].data());  // in any order
      sum->ready(0, parts[0].data(), 999);  // (a part but the rank's last goes whole)
      sum->ready(2, parts[2].data(), 640);
      sum->contribute(0, parts[0].data());
      sum->contribute(2, parts[2].data());
      sum->finish();
      check(total, std::to_string(buckets.size() + 1) + " buckets");
    }
    std::vector<float> total(size_t(n), -1.0f);
    sum->begin(total.data());
    sum->contribute(0, parts[0].data());
    sum->ready(1, parts[1].data(), 0);  // contributed whole
    sum->ready(2, parts[2].data(), 1);  // not: its first bucket is missing
    EXPECT_THROW(sum->finish(), Error);
    EXPECT_THROW(sum->contribute(3, parts[0].data()), Error);
    EXPECT_THROW(sum->contribute(1, parts[0].data()), Error);  // part 1 is elsewhere
  }
  EXPECT_THROW(comm.ordered_sum(n, {0}, {500, 400}), Error);
  EXPECT_THROW(comm.ordered_sum(n, {0}, {0}), Error);
  EXPECT_THROW(comm.ordered_sum(n, {0}, {n}), Error);
}

// Buckets from a backward's ready offsets: each at least the minimum where it can be, cut only
// where the backward reports, the first (finished last) joining the next when it is smaller.
TEST(Dist, GradientBucketsAreWholeStagesOfAtLeastTheMinimum) {
  // A gradient of 1000 floats finished from 950 (the heads), then 700, 400, 390 (blocks), then
  // the rest (the embeddings).
  const std::vector<size_t> ready{950, 700, 400, 390};
  EXPECT_EQ(gradient_buckets(ready, 1000, 1), (std::vector<int64_t>{390, 400, 700, 950}));
  EXPECT_EQ(gradient_buckets(ready, 1000, 100), (std::vector<int64_t>{400, 700}));
  // [0, 400) is big enough; [400, 700) and [700, 1000) hold 300 each.
  EXPECT_EQ(gradient_buckets(ready, 1000, 300), (std::vector<int64_t>{400, 700}));
  // [0, 390) would be smaller than 500 and joins the one above.
  EXPECT_EQ(gradient_buckets(ready, 1000, 500), (std::vector<int64_t>{}));
  EXPECT_EQ(gradient_buckets(ready, 1000, 2000), (std::vector<int64_t>{}));
  EXPECT_EQ(gradient_buckets({}, 1000, 1), (std::vector<int64_t>{}));
  EXPECT_THROW(gradient_buckets({400, 700}, 1000, 1), Error);
  EXPECT_THROW(gradient_buckets({1001}, 1000, 1), Error);
}

// ---- mpirun end to end.

std::string mpirun(int ranks);

// Whether this build and machine can run the tests below (else the reason): MPI built in, and
// mpirun able to start two processes here at all (a container without networking may not).
std::string mpi_missing() {
  if (!mpi_built()) return "this build has no MPI (-DVIT_MPI=OFF or libopenmpi-dev missing)";
  if (vit_shell("command -v mpirun").code != 0) return "mpirun is not installed (openmpi-bin)";
  static const Result probe = vit_shell(mpirun(2) + "true");
  if (probe.code != 0) return "mpirun cannot start processes on this machine:\n" + probe.out;
  return "";
}

#define REQUIRE_MPI()                                                 \
  do {                                                                \
    const std::string why_ = mpi_missing();                           \
    if (!why_.empty()) GTEST_SKIP() << why_;                          \
    if (Comm::world().distributed()) GTEST_SKIP() << "run by mpirun"; \
  } while (0)

// mpirun's command for `ranks` ranks over TCP (as separate machines would talk), any number of
// them on this machine's cores, as root too (CI containers).
std::string mpirun(int ranks) {
  return "mpirun --oversubscribe --allow-run-as-root --bind-to none --mca btl tcp,self -np " +
         std::to_string(ranks) + " ";
}

std::string vit_words() {
  std::string s;
  for (const std::string& w : cli_command()) s += w + " ";
  return s;
}

// `vit train` on the quadrant data: 400 training images, micro-batches of 8 in batches of 32 (4
// per step), a fifth held out for validation (so the validation split, its evaluation and the best
// checkpoint are compared too).
std::string train_args(const std::string& data, const std::string& out, int epochs) {
  std::string a = "train --data idx:" + data + " --out " + out + " --epochs " +
                  std::to_string(epochs) + " --micro-batch 8 --val-split 0.2 --threads 1";
  for (const std::string& w : kQuadrantFlags) a += " " + w;
  return a;
}

// The path of an executable script (written at `path`) that runs its arguments as a command, rank
// 1 doing `rank1` (a shell command) first and every other rank `others`: mpirun starts each rank
// through it to give one rank another environment, directory or argument.
std::string rank1_wrapper(const std::string& path, const std::string& rank1,
                          const std::string& others = ":") {
  std::ofstream(path) << "#!/bin/sh\nif [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then " << rank1
                      << "; else " << others << "; fi\nexec \"$@\"\n";
  fs::permissions(path, fs::perms::owner_all);
  return path;
}

// The run's metrics lines less the fields that measure time.
std::string metrics_without_times(const std::string& dir) {
  std::ifstream f(dir + "/metrics.jsonl");
  std::string out;
  for (std::string line; std::getline(f, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    for (const char* k : {"seconds", "img_per_s", "data_share", "wait_share"}) j.erase(k);
    out += j.dump() + "\n";
  }
  return out;
}

// Every file a run leaves that must not depend on how it was run.
void expect_same_run(const std::string& a, const std::string& b, const std::string& what) {
  for (const char* f : {"last.train.safetensors", "last.safetensors", "best.safetensors"}) {
    const std::string x = file_bytes(a + "/" + f), y = file_bytes(b + "/" + f);
    EXPECT_FALSE(x.empty()) << a << "/" << f;
    EXPECT_TRUE(x == y) << what << ": " << f << " differs from one process's";
  }
  EXPECT_EQ(metrics_without_times(a), metrics_without_times(b)) << what;
}

// Processes a launcher started together that cannot reach each other (srun without an MPI plugin,
// which sets its SLURM_STEP_NUM_TASKS and no PMI variables; or mpirun with a vit built without MPI)
// would each train alone into the same run directory: each is refused before it writes anything.
TEST(Dist, ProcessesThatCannotReachEachOtherAreRefused) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE")) GTEST_SKIP() << "run by mpirun";
  TempDir dir("dist-alone");
  write_quadrant_dataset(dir / "data", 40, 10, 8);
  std::vector<std::string> launchers = {"SLURM_STEP_NUM_TASKS=2 "};
  if (!mpi_built()) launchers.push_back("OMPI_COMM_WORLD_SIZE=2 ");
  for (const std::string& env : launchers) {
    const Result r = vit_shell(env + vit_words() + train_args(dir / "data", dir / "run", 1));
    EXPECT_EQ(r.code, 1) << env << r.out;
    EXPECT_NE(r.out.find("this process is one of 2 started together"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(mpi_built() ? "srun --mpi=pmix" : "built without MPI"), std::string::npos)
        << r.out;
    EXPECT_FALSE(fs::exists(dir / "run")) << env << "wrote its run directory";
  }
  // One task of a job step is one process alone, as without a launcher.
  const Result one =
      vit_shell("SLURM_STEP_NUM_TASKS=1 " + vit_words() + train_args(dir / "data", dir / "run", 1));
  EXPECT_EQ(one.code, 0) << one.out;
}

TEST(Mpi, RanksGiveTheBytesOfOneProcess) {
  REQUIRE_MPI();
  TempDir dir("mpi-same");
  write_quadrant_dataset(dir / "data", 400, 100, 8);
  // D 128: blocks of 198k floats, so that each rank's last micro-batch travels in two buckets on
  // 2 and 3 ranks, in one on 4 (src/train/step.cpp: at least 65536 floats a rank each).
  auto args_for = [&](const std::string& out, int threads) {
    std::string a = train_args(dir / "data", out, 2);
    a.replace(a.find("--dim 32"), 8, "--dim 128");
    a.replace(a.find("--threads 1"), 11, "--threads " + std::to_string(threads));
    return a;
  };
  const Result one = vit(args_for(dir / "one", 1));
  ASSERT_EQ(one.code, 0) << one.out;
  // 4 parts a step on 2 and 4 ranks, and on 3 (parts 0, 1 | 2 | 3): the sum is in part order
  // whoever computes them; 2 ranks x 2 threads too.
  for (const auto& [ranks, threads] : {std::pair{2, 1}, {4, 1}, {3, 1}, {2, 2}}) {
    const std::string out = dir / ("ranks" + std::to_string(ranks) + "x" + std::to_string(threads));
    const std::string args = args_for(out, threads);
    const Result r = vit_shell(mpirun(ranks) + vit_words() + args);
    ASSERT_EQ(r.code, 0) << r.out;
    expect_same_run(dir / "one", out,
                    std::to_string(ranks) + " ranks x " + std::to_string(threads) + " threads");
    // Rank 0 alone reports: one line per epoch.
    size_t lines = 0;
    for (size_t at = r.out.find("epoch 2/2"); at != std::string::npos;
         at = r.out.find("epoch 2/2", at + 1)) {
      ++lines;
    }
    EXPECT_EQ(lines, 1u) << r.out;
    EXPECT_NE(r.out.find(std::to_string(ranks) + " ranks"), std::string::npos) << r.out;
    // More threads than the machine has cores: said once (by its first rank).
    const bool over = ranks * threads > available_cores();
    EXPECT_EQ(
        r.out.find("vit: warning: " + std::to_string(ranks) + " ranks x ") != std::string::npos,
        over)
        << r.out;
  }
}

// Without --threads, the ranks of a machine that may run on the same cores (unbound, or bound
// together, as mpirun's socket binding does with several ranks a socket) split them: with both
// ranks confined to one core (taskset, inherited through mpirun), each runs 1 thread and the
// first says that they take turns; unbound, they share the machine's cores without a warning.
TEST(Mpi, RanksSharingCoresSplitThem) {
  REQUIRE_MPI();
  TempDir dir("mpi-cores");
  write_quadrant_dataset(dir / "data", 80, 20, 8);
  auto run = [&](const std::string& prefix, const std::string& out) {
    std::string a = train_args(dir / "data", out, 1);
    a.replace(a.find(" --threads 1"), 12, "");
    return vit_shell(prefix + mpirun(2) + vit_words() + a);
  };
  const Result one_core = run("taskset -c 0 ", dir / "one-core");
  ASSERT_EQ(one_core.code, 0) << one_core.out;
  EXPECT_NE(one_core.out.find("2 ranks x 1 thread"), std::string::npos) << one_core.out;
  EXPECT_NE(one_core.out.find("vit: warning: 2 ranks x 1 thread on "), std::string::npos)
      << one_core.out;
  EXPECT_NE(one_core.out.find(" share 1 core: they will take turns"), std::string::npos)
      << one_core.out;
  const int cores = available_cores();
  if (cores < 2) GTEST_SKIP() << "one core";
  const Result unbound = run("", dir / "unbound");
  ASSERT_EQ(unbound.code, 0) << unbound.out;
  const int each = cores / 2;
  EXPECT_NE(
      unbound.out.find("2 ranks x " + std::to_string(each) + (each == 1 ? " thread" : " threads")),
      std::string::npos)
      << unbound.out;
  EXPECT_EQ(unbound.out.find("vit: warning"), std::string::npos) << unbound.out;
}

// A folder dataset: decoded into a fresh cache by the machine's local rank 0 while the other waits,
// then read by both; the run is one process's, byte for byte.
TEST(Mpi, FolderDatasetGivesTheBytesOfOneProcess) {
  REQUIRE_MPI();
  TempDir dir("mpi-folder");
  for (const char* split : {"train/a", "train/b", "test/a", "test/b"}) {
    fs::create_directories(dir / split);
    for (int i = 0; i < 40; ++i) {
      std::string pgm = "P5\n10 9\n255\n" +
                        std::string(90, char(split[std::strlen(split) - 1] == 'a' ? 40 : 190));
      pgm[13 + (i * 7) % 90] = char(i * 6);
      write_bytes(dir / (std::string(split) + "/" + std::to_string(i) + ".pgm"),
                  std::vector<uint8_t>(pgm.begin(), pgm.end()), false);
    }
  }
  const std::string args = "train --data folder:" + dir.path +
                           " --image-size 8 --patch 2 --dim 16 --depth 1 --heads 2 --epochs 2 "
                           "--batch 16 --micro-batch 4 --threads 1 --out ";
  const Result one = vit("VIT_CACHE=" + (dir / "cache1") + " " + args + (dir / "one"));
  ASSERT_EQ(one.code, 0) << one.out;
  const Result two = vit_shell("VIT_CACHE=" + (dir / "cache2") + " " + mpirun(2) + vit_words() +
                               args + (dir / "two"));
  ASSERT_EQ(two.code, 0) << two.out;
  for (const char* f : {"last.train.safetensors", "last.safetensors"}) {
    EXPECT_TRUE(file_bytes(dir / "one/" + f) == file_bytes(dir / "two/" + f)) << f;
  }
  // The same cache files (one per split), written whole once.
  auto files = [](const std::string& d) {
    std::vector<std::string> names;
    for (const auto& e : fs::recursive_directory_iterator(d)) {
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  };
  EXPECT_EQ(files(dir / "cache1"), files(dir / "cache2"));
  EXPECT_FALSE(files(dir / "cache2").empty());
}

TEST(Mpi, ResumesOnAnotherNumberOfRanks) {
  REQUIRE_MPI();
  TempDir dir("mpi-resume");
  write_quadrant_dataset(dir / "data", 400, 100, 8);
  // One process: an epoch, then resumed for a second; 2 ranks, then resumed on 3.
  ASSERT_EQ(vit(train_args(dir / "data", dir / "one", 1)).code, 0);
  ASSERT_EQ(vit("train --resume " + (dir / "one") + " --epochs 2").code, 0);
  const Result first =
      vit_shell(mpirun(2) + vit_words() + train_args(dir / "data", dir / "mpi", 1));
  ASSERT_EQ(first.code, 0) << first.out;
  const Result second =
      vit_shell(mpirun(3) + vit_words() + "train --resume " + (dir / "mpi") + " --epochs 2");
  ASSERT_EQ(second.code, 0) << second.out;
  expect_same_run(dir / "one", dir / "mpi", "2 ranks, resumed on 3");
  // A run begun in one process with the automatic micro-batches (here one a step) keeps them on 2
  // ranks: the same bits, a rank waiting.
  std::string automatic = train_args(dir / "data", dir / "auto", 1);
  automatic.replace(automatic.find(" --micro-batch 8"), 16, "");
  ASSERT_EQ(vit(automatic).code, 0);
  fs::copy(dir / "auto", dir / "auto2");
  ASSERT_EQ(vit("train --resume " + (dir / "auto") + " --epochs 2").code, 0);
  const Result two =
      vit_shell(mpirun(2) + vit_words() + "train --resume " + (dir / "auto2") + " --epochs 2");
  ASSERT_EQ(two.code, 0) << two.out;
  EXPECT_NE(two.out.find("note: this run began in one process, whose cut of each step into 1 "
                         "micro-batch it keeps, so as to train the same bits: 1 of the 2 ranks "
                         "waits"),
            std::string::npos)
      << two.out;
  expect_same_run(dir / "auto", dir / "auto2", "one process, resumed on 2 ranks");
}

// The same path on each machine holding other files (here: each rank in its own directory, with
// the same relative --data) is refused on every rank, before training.
TEST(Mpi, RanksWithDifferentDataAreRefused) {
  REQUIRE_MPI();
  TempDir dir("mpi-data");
  write_quadrant_dataset(dir / "a/data", 400, 100, 8);
  write_quadrant_dataset(dir / "b/data", 300, 100, 8);
  const std::string script = rank1_wrapper(dir / "cd.sh", "cd " + (dir / "b"), "cd " + (dir / "a"));
  const Result r =
      vit_shell(mpirun(2) + script + " " + vit_words() + train_args("data", dir / "run", 1));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(
      r.out.find("the ranks read different datasets from 'idx:data' (rank 0: 400 train / 100 test "
                 "images of 4 classes; rank 1: 300 train / 100 test images of 4 classes)"),
      std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir / "run/last.safetensors"));
}

// The ranks share every gradient, so a non-finite one stops all of them at the same step, and the
// last good checkpoint stays as it was.
TEST(Mpi, DivergenceStopsEveryRank) {
  REQUIRE_MPI();
  TempDir dir("mpi-diverge");
  write_quadrant_dataset(dir / "data", 400, 100, 8);
  const std::string run = dir / "run";
  ASSERT_EQ(vit_shell(mpirun(2) + vit_words() + train_args(dir / "data", run, 1)).code, 0);
  // Huge (finite) head weights: the logits overflow and the loss is not finite.
  const std::string state_path = run + "/last.train.safetensors";
  std::vector<std::vector<float>> data;
  std::vector<TensorToWrite> tensors;
  std::map<std::string, std::string> metadata;
  {
    SafetensorsReader state(state_path);
    metadata = state.metadata();
    for (const TensorInfo& t : state.tensors()) {
      data.push_back(state.read_f32(t.name));
      if (t.name == "head.weight") std::fill(data.back().begin(), data.back().end(), 3e38f);
    }
    size_t i = 0;
    for (const TensorInfo& t : state.tensors())
      tensors.push_back({t.name, t.shape, data[i++].data()});
  }
  write_safetensors(state_path, tensors, metadata);
  const std::string before = file_bytes(run + "/last.safetensors");
  const Result r = vit_shell(mpirun(2) + vit_words() + "train --resume " + run + " --epochs 2");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("vit (rank 0 of 2): training diverged at epoch 2, step 1"),
            std::string::npos)
      << r.out;
  // Met by both ranks together: rank 0 reports it and both end as a run does, with no abort.
  EXPECT_EQ(r.out.find("rank 1 of 2"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("MPI_ABORT"), std::string::npos) << r.out;
  EXPECT_TRUE(file_bytes(run + "/last.safetensors") == before)
      << "the last good checkpoint changed";
}

// A run directory another process trains in (here this test holds its lock) is refused on every
// rank: rank 0 locks it and tells the others, and all end together, nothing written.
TEST(Mpi, ARunDirectoryInUseIsRefusedOnEveryRank) {
  REQUIRE_MPI();
  TempDir dir("mpi-locked");
  write_quadrant_dataset(dir / "data", 400, 100, 8);
  const std::string run = dir / "run";
  fs::create_directories(run);
  DirLock held(run);
  const Result r = vit_shell(mpirun(2) + vit_words() + train_args(dir / "data", run, 1));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("vit (rank 0 of 2): '" + run + "' is in use: another process (pid " +
                       std::to_string(getpid())),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("MPI_ABORT"), std::string::npos) << r.out;
  EXPECT_EQ(existing_run_file(run), "");
}

TEST(Mpi, RanksMustRunTheSameCommand) {
  REQUIRE_MPI();
  TempDir dir("mpi-differ");
  write_quadrant_dataset(dir / "data", 400, 100, 8);
  // Rank 1 is given another seed.
  const std::string script = rank1_wrapper(dir / "differ.sh", "exec \"$@\" --seed 7");
  const Result r =
      vit_shell(mpirun(2) + script + " " + vit_words() + train_args(dir / "data", dir / "run", 1));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("rank 1 was started with another command line than rank 0"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir / "run/last.safetensors"));
  // Rank 1 runs other kernels (the scalar ones, which every CPU has).
  const Result isa = vit_shell(mpirun(2) + rank1_wrapper(dir / "isa.sh", "export VIT_ISA=scalar") +
                               " " + vit_words() + train_args(dir / "data", dir / "run", 1));
  if (isa_name(active_isa()) != std::string("scalar")) {
    EXPECT_EQ(isa.code, 2) << isa.out;
    EXPECT_NE(isa.out.find("rank 1 runs the scalar kernels"), std::string::npos) << isa.out;
  }
}

// bf16 training with AMX on one rank and AVX512-BF16 on another (VIT_AMX=0), whose products
// round differently, is refused on every rank.
TEST(Mpi, Bf16KernelsMustMatch) {
  REQUIRE_MPI();
  if (!amx_active()) GTEST_SKIP() << "this CPU has no AMX-BF16";
  TempDir dir("mpi-amx");
  write_quadrant_dataset(dir / "data", 400, 100, 8);
  const std::string script = rank1_wrapper(dir / "amx.sh", "export VIT_AMX=0");
  const Result r = vit_shell(mpirun(2) + script + " " + vit_words() +
                             train_args(dir / "data", dir / "run", 1) + " --dtype bf16");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("rank 0 runs bf16's products on AMX-BF16 and rank 1 on AVX512-BF16"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir / "run/last.safetensors"));
}

// A background mpirun of a long run, each rank's pid and exit code in files of dir.
struct Job {
  pid_t pid = -1;
  std::string dir;
  Job(const std::string& d, int ranks, const std::string& args) : dir(d) {
    const std::string script = dir + "/rank.sh";
    // The shell ignores the SIGTERM mpirun sends (vit has its own handler) and writes vit's exit
    // code, then lingers a little: the first rank process to end makes mpirun kill the others,
    // which might not have written theirs yet.
    std::ofstream(script) << "#!/bin/sh\ntrap '' TERM INT\necho $$ > " << dir
                          << "/pid.$OMPI_COMM_WORLD_RANK\n\"$@\"\n"
                          << "echo $? > " << dir << "/rc.$OMPI_COMM_WORLD_RANK\nsleep 0.5\n";
    fs::permissions(script, fs::perms::owner_all);
    const std::string cmd =
        mpirun(ranks) + script + " " + vit_words() + args + " > " + dir + "/out.txt 2>&1";
    pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char*)nullptr);
      _exit(127);
    }
  }
  // Waits up to `seconds` for mpirun to end; its exit status, or -1 when it did not.
  int wait(double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
  ~Job() {
    if (pid > 0) {
      kill(-pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  std::string file(const std::string& name) const {
    std::string s = file_bytes(dir + "/" + name);
    while (!s.empty() && (s.back() == '\n')) s.pop_back();
    return s;
  }
};

// Waits until path exists (up to a minute).
bool wait_for(const std::string& path) {
  for (int i = 0; i < 1200 && !fs::exists(path); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return fs::exists(path);
}

// Once the job has finished an epoch, sends rank 1's vit (the child of the shell that started it)
// signal sig.
void signal_rank1_after_an_epoch(const Job& job, int sig) {
  ASSERT_TRUE(wait_for(job.dir + "/run/metrics.jsonl")) << job.file("out.txt");
  ASSERT_TRUE(wait_for(job.dir + "/pid.1"));
  const Result child = vit_shell("pgrep -P " + job.file("pid.1"));
  ASSERT_EQ(child.code, 0) << child.out;
  kill(pid_t(std::stol(child.out)), sig);
}

// The run's last checkpoint reads back whole.
void expect_whole_checkpoint(const std::string& run) {
  const LoadedModel saved = load_model(run + "/last.safetensors");
  EXPECT_GT(saved.model.num_params(), 0);
}

TEST(Mpi, SigintToMpirunSavesOnceOnEveryRank) {
  REQUIRE_MPI();
  TempDir dir("mpi-sigint");
  write_quadrant_dataset(dir / "data", 400, 100, 8);
  Job job(dir.path, 2, train_args(dir / "data", dir / "run", 1000));
  ASSERT_TRUE(wait_for(dir / "run/metrics.jsonl")) << job.file("out.txt");
  kill(job.pid, SIGINT);  // mpirun sends its ranks SIGTERM, and SIGKILL a second later
  const int code = job.wait(60);
  const std::string out = job.file("out.txt");
  // OpenMPI's mpirun reports 1 for a job it was asked to end; each rank ended as vit does on
  // SIGTERM, having saved where it stopped.
  EXPECT_NE(code, 0) << out;
  EXPECT_EQ(job.file("rc.0"), "143") << out;
  EXPECT_EQ(job.file("rc.1"), "143") << out;
  // Rank 0 alone saved and said so, once.
  const size_t said = out.find("stopped by SIGTERM after step");
  ASSERT_NE(said, std::string::npos) << out;
  EXPECT_EQ(out.find("stopped by", said + 1), std::string::npos) << out;
  // The saved state is whole.
  SafetensorsReader state(dir / "run/last.train.safetensors");
  EXPECT_GE(std::stol(state.metadata().at("epoch")), 1);
  expect_whole_checkpoint(dir / "run");
}

// A 2-rank job of `timeout` seconds whose rank 1 gets `sig` once an epoch is done: mpirun's exit
// status (-1: still running a minute later) and output. The last checkpoint must read back whole.
std::pair<int, std::string> end_rank1(const std::string& tag, int sig, int timeout) {
  TempDir dir(tag);
  write_quadrant_dataset(dir / "data", 400, 100, 8);
  Job job(dir.path, 2,
          train_args(dir / "data", dir / "run", 1000) + " --timeout " + std::to_string(timeout));
  signal_rank1_after_an_epoch(job, sig);
  const int code = job.wait(60);
  expect_whole_checkpoint(dir / "run");
  return {code, job.file("out.txt")};
}

TEST(Mpi, AKilledRankEndsTheJob) {
  REQUIRE_MPI();
  // mpirun notices a dead rank at once (--timeout 30 would end it too).
  const auto [code, out] = end_rank1("mpi-kill", SIGKILL, 30);
  EXPECT_NE(code, -1) << "the job still runs a minute after a rank was killed\n" << out;
  EXPECT_NE(code, 0) << out;
}

// A rank that hangs (stopped) is not noticed by mpirun: the other's wait ends after --timeout.
TEST(Mpi, AHungRankEndsTheJobAfterTheTimeout) {
  REQUIRE_MPI();
  const auto [code, out] = end_rank1("mpi-hang", SIGSTOP, 5);
  EXPECT_NE(code, -1) << "the job still runs a minute after a rank hung\n" << out;
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("vit (rank 0 of 2): rank 0 waited 5 s for the other ranks"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace vit::test
