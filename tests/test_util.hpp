// Shared test helpers: fixture loading, the small model shapes several tests train, tolerance
// comparisons that report the worst element, and central finite differences with double
// accumulation.
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include <omp.h>

#include "core/rng.hpp"
#include "ops/context.hpp"
#include "vit/config.hpp"
#include "vit/error.hpp"
#include "vit/isa.hpp"
#include "vit/safetensors.hpp"
#include "vit/threads.hpp"

namespace vit {
// How GoogleTest names a backend test's parameter (ctest's test names show it).
inline void PrintTo(Isa isa, std::ostream* os) {
  *os << isa_name(isa);
}
}  // namespace vit

namespace vit::test {

// A file's bytes (empty when it cannot be read).
inline std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The command that starts the `vit` tool: its path, after the emulator that runs it when the build
// is a cross build (CMAKE_CROSSCOMPILING_EMULATOR, such as qemu-aarch64: a child process of an
// emulated test is not emulated unless the kernel's binfmt_misc is set up to do it).
inline std::vector<std::string> cli_command() {
  std::vector<std::string> words;
#ifdef VIT_CLI_EMULATOR
  std::istringstream emulator(VIT_CLI_EMULATOR);
  for (std::string w; emulator >> w;) words.push_back(w);
#endif
  words.push_back(VIT_CLI_PATH);
  return words;
}

struct Result {
  int code = -1;
  std::string out;  // stdout and stderr together
};

// A shell command line's exit code and output (stdout and stderr together).
inline Result vit_shell(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  Result r;
  std::FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// args may start with environment settings (NAME=value ...), which go before the program.
inline Result vit(const std::string& args) {
  std::string env, rest = args;
  while (rest.find('=') != std::string::npos && rest.find('=') < rest.find(' ') &&
         rest.find('-') != 0) {
    const size_t sp = rest.find(' ');
    env += rest.substr(0, sp) + " ";
    rest = sp == std::string::npos ? "" : rest.substr(sp + 1);
  }
  std::string cmd = env;
  for (const std::string& w : cli_command()) cmd += w + " ";
  return vit_shell(cmd + rest);
}

// The context for ops a test calls: `threads` threads (default: the process's setting outside a
// parallel region, one inside it, as the model's executor gives them), scratch of the test
// process's own.
inline ops::Context op_context(int threads = 0) {
  static ops::CpuContext cpu;
  if (threads == 0) threads = omp_in_parallel() ? 1 : num_threads();
  return cpu.with_threads(threads);
}

// An op test run once per backend this binary and CPU have (today: the CPU kernel variants,
// scalar, avx2 and avx512, as vit::supported_isas() lists them), that backend active for the
// test's duration; a new backend added to the list inherits every op test. Instantiate a suite
// with VIT_BACKEND_SUITE(Suite).
class BackendTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    saved_ = active_isa();
    set_isa(GetParam());
  }
  void TearDown() override { set_isa(saved_); }

 private:
  Isa saved_ = Isa::kScalar;
};
#define VIT_BACKEND_SUITE(Suite)                                                     \
  INSTANTIATE_TEST_SUITE_P(Cpu, Suite, ::testing::ValuesIn(::vit::supported_isas()), \
                           [](const ::testing::TestParamInfo<::vit::Isa>& info) {    \
                             return std::string(::vit::isa_name(info.param));        \
                           })

inline std::string fixture(const std::string& name) {
  return std::string(VIT_FIXTURE_DIR) + "/" + name;
}

// Expects fn() to throw vit::Error whose message contains `phrase`.
template <typename Fn>
void expect_error(Fn fn, const std::string& phrase) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning '" << phrase << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos)
        << "message '" << e.what() << "' lacks '" << phrase << "'";
  }
}

// The small ViT that the quadrant datasets (idx_writer.hpp) train in seconds: 8x8x1 images, patch
// 2, D 32, 2 blocks, 2 heads, MLP 64, 4 classes.
inline Config quadrant_config() {
  Config c;
  c.image_size = 8;
  c.patch_size = 2;
  c.dim = 32;
  c.depth = 2;
  c.heads = 2;
  c.mlp_dim = 64;
  c.num_classes = 4;
  return c;
}

// That shape as `vit train` flags (with the CLI's default MLP ratio 4, so MLP 128), with the batch
// and learning rate the CLI and fault tests train it with.
inline const std::vector<std::string> kQuadrantFlags = {
    "--image-size", "8", "--patch",   "2", "--dim",   "32", "--depth", "2",
    "--heads",      "2", "--classes", "4", "--batch", "32", "--lr",    "3e-3"};

// Result of comparing actual against expected: the worst element by |a - e| - rtol * |e|.
struct Diff {
  double max_abs = 0.0;  // max |a - e| over all elements
  int64_t worst = -1;    // index of the element furthest beyond (or closest to) tolerance
  double worst_excess = -INFINITY;  // max of |a - e| - (atol + rtol |e|); > 0 means failure
  int64_t count = 0;
};

inline Diff compare(const float* actual, const float* expected, int64_t n, double atol,
                    double rtol) {
  Diff d;
  d.count = n;
  for (int64_t i = 0; i < n; ++i) {
    const double a = actual[i], e = expected[i];
    const double err = std::isfinite(a) ? std::fabs(a - e) : INFINITY;
    d.max_abs = std::max(d.max_abs, err);
    const double excess = err - (atol + rtol * std::fabs(e));
    if (excess > d.worst_excess) {
      d.worst_excess = excess;
      d.worst = i;
    }
  }
  return d;
}

// EXPECTs every element within atol + rtol |expected|; on failure names the tensor, the max
// difference and the worst element. Returns the max absolute difference (for reports).
inline double expect_close(const std::string& what, const float* actual, const float* expected,
                           int64_t n, double atol, double rtol) {
  Diff d = compare(actual, expected, n, atol, rtol);
  EXPECT_LE(d.worst_excess, 0.0) << what << ": max |diff| " << d.max_abs << "; worst at flat index "
                                 << d.worst << ": got " << actual[d.worst] << ", expected "
                                 << expected[d.worst] << " (atol " << atol << ", rtol " << rtol
                                 << ", " << n << " elements)";
  return d.max_abs;
}

inline double expect_close(const std::string& what, const float* actual,
                           const std::vector<float>& expected, double atol, double rtol) {
  return expect_close(what, actual, expected.data(), int64_t(expected.size()), atol, rtol);
}

// EXPECTs |actual[i] - expected[i]| <= bound[i] for every i (a bound derived per element, as from
// an error analysis); on failure names the tensor and the element furthest past its bound.
inline void expect_within(const std::string& what, const float* actual, const float* expected,
                          const std::vector<double>& bound) {
  int64_t worst = -1;
  double excess = -INFINITY;
  for (int64_t i = 0; i < int64_t(bound.size()); ++i) {
    const double e = std::fabs(double(actual[i]) - double(expected[i])) - bound[size_t(i)];
    if (!(e <= excess)) {  // also NaN
      excess = e;
      worst = i;
    }
  }
  EXPECT_LE(excess, 0.0) << what << ": element " << worst << " is " << actual[worst]
                         << ", expected " << expected[worst] << " within " << bound[size_t(worst)];
}

// gamma(n) = n u / (1 - n u), u = 2^-24: a sum or dot product of n float terms is within
// gamma(n) * sum |terms| of the exact value, in any order of summation (Higham, Accuracy and
// Stability of Numerical Algorithms, 3.1).
inline double gamma_n(int64_t n) {
  const double u = std::ldexp(1.0, -24);
  return double(n) * u / (1.0 - double(n) * u);
}

inline std::vector<float> random_vector(int64_t n, uint64_t seed, double std = 1.0,
                                        double mean = 0.0) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = float(mean + std * rng.normal());
  return v;
}

inline double dot(const float* a, const float* b, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return s;
}

// Checks grad (the analytic gradient of loss() with respect to x[0..n)) by central differences
// on up to `samples` elements spread over x: |numeric - analytic| <= atol + rtol |numeric|.
// loss() must recompute from the current x and return a double.
inline void expect_fd(const std::string& what, float* x, int64_t n, const float* grad,
                      const std::function<double()>& loss, int samples = 64, float h = 1e-2f,
                      double atol = 2e-3, double rtol = 1e-2) {
  const int64_t step = std::max<int64_t>(1, n / samples);
  double worst = 0.0;
  int64_t worst_i = -1;
  double worst_num = 0, worst_ana = 0;
  for (int64_t i = 0; i < n; i += step) {
    const float saved = x[i];
    x[i] = saved + h;
    const double lp = loss();
    x[i] = saved - h;
    const double lm = loss();
    x[i] = saved;
    // The effective step is what float arithmetic actually applied.
    const double num = (lp - lm) / (double(saved + h) - double(saved - h));
    const double excess = std::fabs(num - grad[i]) - (atol + rtol * std::fabs(num));
    if (worst_i < 0 || excess > worst) {
      worst = excess;
      worst_i = i;
      worst_num = num;
      worst_ana = grad[i];
    }
  }
  EXPECT_LE(worst, 0.0) << what << ": finite differences disagree at flat index " << worst_i
                        << ": numeric " << worst_num << ", analytic " << worst_ana;
}

// Reads a tensor from a fixture file, checking its element count.
inline std::vector<float> read(const SafetensorsReader& f, const std::string& name,
                               int64_t expect_numel = -1) {
  std::vector<float> v = f.read_f32(name);
  if (expect_numel >= 0) EXPECT_EQ(int64_t(v.size()), expect_numel) << name;
  return v;
}

// The tensors of the safetensors file `from` but those named head.*, written to `to` (which may
// be `from`) as a bare timm state dict: a backbone without its classifier.
inline void write_without_head(const std::string& from, const std::string& to) {
  std::vector<std::vector<float>> values;
  std::vector<TensorToWrite> t;
  {
    const SafetensorsReader f(from);
    values.reserve(f.tensors().size());
    for (const TensorInfo& i : f.tensors()) {
      if (i.name.starts_with("head.")) continue;
      values.push_back(f.read_f32(i.name));
      t.push_back({i.name, i.shape, values.back().data()});
    }
  }
  write_safetensors(to, t, {{"format", "pt"}});
}

}  // namespace vit::test
