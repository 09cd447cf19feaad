// Faults a user will cause: SIGKILL at random moments (also inside checkpoint writes), Ctrl-C and
// SIGTERM, divergence, a full disk, an unwritable or absurd request, lying checkpoints. Each must
// end in a clear error or a clean stop, and never cost a good checkpoint.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/rng.hpp"
#include "idx_writer.hpp"
#include "test_util.hpp"
#include "vit/checkpoint.hpp"
#include "vit/error.hpp"
#include "vit/safetensors.hpp"
#include "vit/train.hpp"

namespace vit::test {
namespace {

namespace fs = std::filesystem;

// Starts `vit` with args, stdout and stderr to log; returns the pid.
pid_t spawn(const std::vector<std::string>& args, const std::string& log,
            const std::vector<std::string>& env = {}) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    const std::vector<std::string> command = cli_command();
    std::vector<char*> argv;
    for (const std::string& a : command) argv.push_back(const_cast<char*>(a.c_str()));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The run the kill and signal tests interrupt: long enough for 20+ kills. One thread, so that
// ctest -j2 runs two of these without OpenMP threads contending for the two cores.
constexpr const char* kEpochs = "60";

std::vector<std::string> train_args(const std::string& data, const std::string& out,
                                    const char* epochs = kEpochs) {
  // With a validation split, so that best.safetensors is written too.
  std::vector<std::string> a = {"train", "--data", data,          "--epochs", epochs,
                                "--out", out,      "--val-split", "0.1"};
  a.insert(a.end(), kQuadrantFlags.begin(), kQuadrantFlags.end());
  a.insert(a.end(), {"--threads", "1"});
  return a;
}

// Every tensor of two safetensors files is bitwise equal.
void expect_same_weights(const std::string& a_path, const std::string& b_path) {
  SafetensorsReader a(a_path), b(b_path);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const TensorInfo& t : a.tensors()) {
    auto va = a.read_f32(t.name), vb = b.read_f32(t.name);
    EXPECT_EQ(std::memcmp(va.data(), vb.data(), va.size() * 4), 0) << t.name;
  }
}

// (epoch, train_loss, test_acc) of each metrics.jsonl line.
std::vector<std::tuple<int, double, double>> metrics(const std::string& path) {
  std::vector<std::tuple<int, double, double>> m;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    m.emplace_back(j["epoch"].get<int>(), j["train_loss"].get<double>(),
                   j["test_acc"].get<double>());
  }
  return m;
}

class Reliability : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("reliability");
    write_quadrant_dataset(*dir_ / "data", 2000, 200, 8);
    // A short finished run whose files the checkpoint tests start from.
    ASSERT_EQ(wait_exit(spawn(train_args(data(), *dir_ / "short", "2"), *dir_ / "short.log")), 0);
  }
  // The uninterrupted run of `epochs` that interrupted ones must reproduce bit for bit (made once).
  static std::string reference(const char* epochs = kEpochs) {
    const std::string ref = *dir_ / (std::string("ref") + epochs);
    if (!fs::exists(ref + "/last.safetensors")) {
      EXPECT_EQ(wait_exit(spawn(train_args(data(), ref, epochs), ref + ".log")), 0);
    }
    return ref;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string data() { return "idx:" + (*dir_ / "data"); }
  static TempDir* dir_;
};
TempDir* Reliability::dir_ = nullptr;

// Polls until pred() or 60 s.
template <typename Pred>
bool wait_for(Pred pred) {
  for (int i = 0; i < 12000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// Whether process pid is inside a checkpoint write: its temporary file (name.tmp-<pid>) exists.
bool writing(const std::string& dir, pid_t pid) {
  if (!fs::exists(dir)) return false;
  const std::string suffix = ".tmp-" + std::to_string(pid);
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().string().ends_with(suffix)) return true;
  }
  return false;
}

TEST_F(Reliability, SigkillAtRandomMomentsLosesNothing) {
  const std::string run = *dir_ / "killed", log = *dir_ / "killed.log";
  Rng rng(2024);
  int kills = 0, inside_write = 0;
  for (; kills < 24; ++kills) {
    const bool have_state = fs::exists(run + "/last.train.safetensors");
    // Every sixth kill is aimed inside a checkpoint write: writes are held open 1 s before their
    // rename and the kill comes once the temporary file exists. The others come at a random
    // moment 20-300 ms after the run has a checkpoint to resume from (writes held 15 ms, so
    // some of these land inside a write too).
    const bool aim_at_write = kills % 6 == 5;
    const std::vector<std::string> env = {std::string("VIT_FAULT_WRITE_DELAY_MS=") +
                                          (aim_at_write ? "1000" : "15")};
    const pid_t pid =
        spawn(have_state ? std::vector<std::string>{"train", "--resume", run, "--threads", "1"}
                         : train_args(data(), run),
              log, env);
    if (aim_at_write) {
      EXPECT_TRUE(wait_for([&] { return writing(run, pid); })) << "no write started in 60 s";
    } else {
      EXPECT_TRUE(wait_for([&] { return fs::exists(run + "/last.train.safetensors"); }))
          << "no checkpoint in 60 s";
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng.below(280)));
    }
    const bool in_write = writing(run, pid);
    kill(pid, SIGKILL);
    const int code = wait_exit(pid);
    if (code != 128 + SIGKILL) {  // the run ended before the kill: it must have finished
      std::ifstream f(log);
      const std::string out((std::istreambuf_iterator<char>(f)), {});
      ASSERT_EQ(code, 0) << "exit " << code << " after " << kills << " kills:\n" << out;
      break;
    }
    inside_write += in_write;
    // Whatever the moment, every checkpoint on disk is whole and loads.
    for (const char* f : {"last.safetensors", "best.safetensors"}) {
      if (fs::exists(run + "/" + f)) EXPECT_NO_THROW(load_model(run + "/" + f)) << f;
    }
    if (fs::exists(run + "/last.train.safetensors")) {
      EXPECT_NO_THROW(load_model(SafetensorsReader(run + "/last.train.safetensors"), "optimizer."));
    }
  }
  EXPECT_GE(kills, 20) << "the run finished too early to be killed 20 times";
  EXPECT_GE(inside_write, 4) << "too few kills landed inside a checkpoint write";
  std::printf("[ reliability ] %d SIGKILLs, %d inside a checkpoint write\n", kills, inside_write);
  // Finish, and land exactly where the uninterrupted run did.
  ASSERT_EQ(wait_exit(spawn({"train", "--resume", run, "--threads", "1"}, log)), 0);
  const std::string ref = reference();
  expect_same_weights(run + "/last.safetensors", ref + "/last.safetensors");
  EXPECT_EQ(metrics(run + "/metrics.jsonl"), metrics(ref + "/metrics.jsonl"));
}

TEST_F(Reliability, SigintAndSigtermStopCleanlyAndResumeExactly) {
  const char* epochs = "10";
  for (int sig : {SIGINT, SIGTERM}) {
    const std::string run = *dir_ / ("sig" + std::to_string(sig));
    const std::string log = run + ".log";
    const pid_t pid = spawn(train_args(data(), run, epochs), log);
    // Early in the second epoch (mid-epoch or at the first epoch's end), long before the end.
    EXPECT_TRUE(wait_for([&] { return fs::exists(run + "/metrics.jsonl"); }));
    kill(pid, sig);
    EXPECT_EQ(wait_exit(pid), 128 + sig);
    std::ifstream f(log);
    const std::string out((std::istreambuf_iterator<char>(f)), {});
    EXPECT_NE(out.find("vit train --resume " + run), std::string::npos) << out;
    ASSERT_EQ(wait_exit(spawn({"train", "--resume", run, "--threads", "1"}, log)), 0);
    const std::string ref = reference(epochs);
    expect_same_weights(run + "/last.safetensors", ref + "/last.safetensors");
    EXPECT_EQ(metrics(run + "/metrics.jsonl"), metrics(ref + "/metrics.jsonl"));
  }
}

// A kill while a folder dataset's image cache is being built leaves no cache file, only the
// build's temporary file, which the next build of it removes; that build is whole and used.
TEST_F(Reliability, KillDuringImageCacheBuildLeavesNoCache) {
  const std::string root = *dir_ / "many", cache = *dir_ / "cache";
  for (int k = 0; k < 2; ++k) {
    for (const char* split : {"train", "test"}) {
      const std::string folder = root + "/" + split + "/c" + std::to_string(k);
      fs::create_directories(folder);
      const int n = std::string(split) == "train" ? 2000 : 10;
      for (int i = 0; i < n; ++i) {
        std::string ppm = "P6\n64 48\n255\n";
        for (int j = 0; j < 64 * 48 * 3; ++j) ppm += char((i * 7 + j * (k + 1)) & 255);
        std::ofstream(folder + "/" + std::to_string(i) + ".ppm", std::ios::binary) << ppm;
      }
    }
  }
  auto files = [&](const std::string& part) {  // names holding `part` (".vitcache" ends one)
    int n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(cache, ec)) {
      const std::string name = e.path().filename().string();
      n += part == ".vitcache" ? name.ends_with(part) : name.find(part) != std::string::npos;
    }
    return n;
  };
  const std::vector<std::string> args = {
      "bench",     "--preset", "cifar",   "--data", "folder:" + root, "--cache-dir", cache,
      "--threads", "1",        "--steps", "1"};
  const pid_t pid = spawn(args, *dir_ / "cache.log");
  // Killed as soon as the build's temporary file appears (it is written a chunk at a time).
  bool seen = false;
  for (int i = 0; i < 20000 && !seen; ++i) {
    seen = files(".tmp-") > 0;
    if (!seen) usleep(100);
  }
  kill(pid, SIGKILL);
  wait_exit(pid);
  ASSERT_TRUE(seen) << "the build's temporary file never appeared";
  EXPECT_EQ(files(".vitcache"), 0) << "only the temporary file: no cache a later run could take";
  EXPECT_EQ(wait_exit(spawn(args, *dir_ / "cache2.log")), 0);
  EXPECT_EQ(files(".tmp-"), 0) << "the abandoned temporary file is removed";
  EXPECT_EQ(files(".vitcache"), 2) << "train and test";
}

TEST_F(Reliability, DivergenceStopsAndKeepsTheLastGoodCheckpoint) {
  const std::string run = *dir_ / "diverge";
  fs::create_directories(run);
  fs::copy_file(*dir_ / "short/last.train.safetensors", run + "/last.train.safetensors");
  fs::copy_file(*dir_ / "short/last.safetensors", run + "/last.safetensors");
  // A state whose head weights are huge (finite, so the state loads): the logits overflow to
  // infinity and the loss is not finite.
  SafetensorsReader state(run + "/last.train.safetensors");
  std::vector<std::vector<float>> data;
  std::vector<TensorToWrite> tensors;
  for (const TensorInfo& t : state.tensors()) {
    data.push_back(state.read_f32(t.name));
    if (t.name == "head.weight") {
      for (float& v : data.back()) v = 3e38f;
    }
  }
  size_t i = 0;
  for (const TensorInfo& t : state.tensors())
    tensors.push_back({t.name, t.shape, data[i++].data()});
  write_safetensors(run + "/last.train.safetensors", tensors, state.metadata());
  std::ifstream before_file(run + "/last.safetensors", std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(before_file)), {});
  // Extend the finished run by one epoch: it must stop at its first step.
  const pid_t pid = spawn({"train", "--resume", run, "--epochs", "3"}, run + ".log");
  EXPECT_EQ(wait_exit(pid), 1);
  std::ifstream f(run + ".log");
  const std::string out((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(out.find("diverged at epoch 3, step 1"), std::string::npos) << out;
  EXPECT_NE(out.find("--lr"), std::string::npos) << out;
  std::ifstream after_file(run + "/last.safetensors", std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(after_file)), {});
  EXPECT_TRUE(before == after) << "the last good checkpoint changed";
}

TEST_F(Reliability, FullDiskFailsTheSaveAndKeepsThePreviousCheckpoint) {
  // RLIMIT_FSIZE makes every write past 64 KB fail (EFBIG), as a full disk would (ENOSPC): the
  // same error path. In a child process, so the limit stays there.
  const std::string ckpt = *dir_ / "disk.safetensors";
  fs::copy_file(*dir_ / "short/best.safetensors", ckpt, fs::copy_options::overwrite_existing);
  std::ifstream before_file(ckpt, std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(before_file)), {});
  const pid_t pid = fork();
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {64 << 10, 64 << 10};
    setrlimit(RLIMIT_FSIZE, &lim);
    Config c;
    c.dim = 128;  // 1.2M parameters: 4.8 MB, far past the limit
    c.heads = 4;
    c.mlp_dim = 512;
    Model m(c);
    try {
      save_model(ckpt, m, {c, std::vector<std::string>(10, "x"), {{0.1f}, {0.3f}}});
      _exit(3);  // the write succeeded: wrong
    } catch (const Error& e) {
      const std::string msg = e.what();
      _exit(msg.find("File too large") != std::string::npos && msg.find(ckpt) != std::string::npos
                ? 0
                : 4);
    }
  }
  EXPECT_EQ(wait_exit(pid), 0) << "3: the write succeeded; 4: the message lacks the cause or path";
  std::ifstream after_file(ckpt, std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(after_file)), {});
  EXPECT_TRUE(before == after) << "the previous checkpoint changed";
  for (const auto& e : fs::directory_iterator(dir_->path)) {
    EXPECT_EQ(e.path().string().find("disk.safetensors.tmp-"), std::string::npos) << e.path();
  }
}

TEST_F(Reliability, AbsurdRequestsAreRefusedBeforeAllocating) {
  struct Quiet : TrainReporter {
    void message(const std::string&) override {}
    void step(const StepProgress&) override {}
    void epoch(const EpochMetrics&, int) override {}
  } quiet;
  Config huge;
  huge.image_size = 224;
  huge.patch_size = 8;
  huge.dim = 4096;
  huge.heads = 32;
  huge.mlp_dim = 16384;
  huge.depth = 48;
  Recipe r;
  r.batch_size = 4096;
  try {
    train(huge, r, {data(), "", *dir_ / "huge", 256}, quiet);
    FAIL() << "accepted a run needing terabytes";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MiB"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(*dir_ / "huge")) << "refused, but after creating its directory";
  // An output directory that cannot be created (a path component is a file).
  std::ofstream(*dir_ / "afile") << "x";
  try {
    train(quadrant_config(), r, {data(), "", *dir_ / "afile/run", 256}, quiet);
    FAIL() << "trained into a path under a regular file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create the output directory"), std::string::npos)
        << e.what();
  }
}

TEST_F(Reliability, LyingCheckpointsAreRefused) {
  SafetensorsReader good(*dir_ / "short/best.safetensors");
  std::vector<std::vector<float>> data;
  std::vector<TensorToWrite> tensors;
  for (const TensorInfo& t : good.tensors()) data.push_back(good.read_f32(t.name));
  size_t i = 0;
  for (const TensorInfo& t : good.tensors()) tensors.push_back({t.name, t.shape, data[i++].data()});
  auto expect_refused = [&](const std::map<std::string, std::string>& md,
                            const std::string& phrase) {
    const std::string path = *dir_ / "lie.safetensors";
    write_safetensors(path, tensors, md);
    try {
      load_model(path);
      ADD_FAILURE() << "accepted a checkpoint that should fail with '" << phrase << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
  };
  auto md = good.metadata();
  // A config claiming a model far larger than the tensors: refused by shape, before allocation.
  auto cfg = nlohmann::json::parse(md.at("config"));
  cfg["dim"] = 65536;
  cfg["heads"] = 1;
  cfg["depth"] = 1000;
  auto lie = md;
  lie["config"] = cfg.dump();
  expect_refused(lie, "has shape");
  lie = md;
  lie["config"] = "{\"dim\": 3";
  expect_refused(lie, "not valid JSON");
  lie = md;
  lie["class_names"] = "[\"just one\"]";
  expect_refused(lie, "class_names");
  lie = md;
  lie["normalize"] = "{\"mean\": [0.1], \"std\": [0]}";
  expect_refused(lie, "positive");
  lie = md;
  lie.erase("format");
  expect_refused(lie, "not a vitcpp checkpoint");
  // Non-finite weights.
  data[0][0] = std::nanf("");
  expect_refused(md, "non-finite");
  // A training state handed to eval/predict says what to load instead.
  try {
    load_model(*dir_ / "short/last.train.safetensors");
    ADD_FAILURE() << "loaded a training state as a model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("last.safetensors or best.safetensors"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace vit::test
