// The vectorisable exp and erf (src/ops/cpu/vmath.hpp) against double-precision libm, and their
// vector forms against their scalar forms bit for bit, on every instruction-set variant this CPU
// runs (each variant compiles the scalar forms its own way: with fused multiply-adds or not).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "ops/ops.hpp"
#include "vit/isa.hpp"

namespace vit {
namespace {

struct Forms {
  std::vector<float> exp_vector, exp_scalar, erf_vector, erf_scalar;
};

Forms forms(const std::vector<float>& xs) {
  Forms f;
  for (auto* v : {&f.exp_vector, &f.exp_scalar, &f.erf_vector, &f.erf_scalar}) v->resize(xs.size());
  ops::vmath_forms(f.exp_vector.data(), f.exp_scalar.data(), f.erf_vector.data(),
                   f.erf_scalar.data(), xs.data(), int64_t(xs.size()));
  return f;
}

// Runs f(isa name) with each variant this CPU supports active, then restores the active one.
template <typename F>
void for_each_isa(F&& f) {
  const Isa before = active_isa();
  for (Isa isa : supported_isas()) {
    set_isa(isa);
    SCOPED_TRACE(std::string("VIT_ISA=") + isa_name(isa));
    f();
  }
  set_isa(before);
}

TEST(VMath, ExpWithinThreeUlp) {
  std::vector<float> xs;
  for (double x = -87.0; x <= 88.0; x += 1.0 / 4096) xs.push_back(float(x));
  const std::vector<float> specials = {0.0f, -100.0f, -std::numeric_limits<float>::infinity(),
                                       100.0f};
  for_each_isa([&] {
    const Forms f = forms(xs);
    double worst = 0, at = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const double ref = std::exp(double(xs[i]));
      const double rel = std::fabs(f.exp_scalar[i] - ref) / ref;
      if (rel > worst) worst = rel, at = xs[i];
    }
    EXPECT_LE(worst, 3 * 5.96e-8) << "max relative error " << worst << " at x = " << at;
    const Forms s = forms(specials);
    EXPECT_EQ(s.exp_scalar[0], 1.0f);
    EXPECT_EQ(s.exp_scalar[1], 0.0f);
    EXPECT_EQ(s.exp_scalar[2], 0.0f);
    EXPECT_EQ(s.exp_scalar[3], std::numeric_limits<float>::infinity());
  });
}

TEST(VMath, ErfWithinATenthOfAMillionth) {
  std::vector<float> xs, small;
  for (double x = -7.0; x <= 7.0; x += 1.0 / 8192) xs.push_back(float(x));
  for (double x = 1e-30; x < 0.25; x *= 1.01) small.push_back(float(x));
  const std::vector<float> specials = {0.0f, 10.0f, -10.0f, std::numeric_limits<float>::infinity()};
  for_each_isa([&] {
    const Forms f = forms(xs);
    double worst = 0, at = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const double err = std::fabs(f.erf_scalar[i] - std::erf(double(xs[i])));
      if (err > worst) worst = err, at = xs[i];
    }
    EXPECT_LE(worst, 1e-7) << "max absolute error " << worst << " at x = " << at;
    // Small arguments keep their relative accuracy (the first interval has no constant term).
    const Forms fs = forms(small);
    double worst_rel = 0;
    for (size_t i = 0; i < small.size(); ++i) {
      const double ref = std::erf(double(small[i]));
      worst_rel = std::max(worst_rel, std::fabs(fs.erf_scalar[i] - ref) / ref);
    }
    EXPECT_LE(worst_rel, 2e-7) << "max relative error below 0.25: " << worst_rel;
    const Forms s = forms(specials);
    EXPECT_EQ(s.erf_scalar[0], 0.0f);
    EXPECT_EQ(s.erf_scalar[1], 1.0f);
    EXPECT_EQ(s.erf_scalar[2], -1.0f);
    EXPECT_EQ(s.erf_scalar[3], 1.0f);
  });
}

// How many elements of the vector form differ from the scalar form in any bit (the first few
// reported).
int mismatches(const char* name, const std::vector<float>& xs, const std::vector<float>& vec,
               const std::vector<float>& scalar) {
  int n = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (std::memcmp(&vec[i], &scalar[i], sizeof(float)) != 0 && ++n <= 5) {
      ADD_FAILURE() << name << "(" << xs[i] << "): vector " << vec[i] << ", scalar " << scalar[i];
    }
  }
  return n;
}

const float kSpecials[] = {1e-30f,
                           -1e-38f,
                           0.0f,
                           -0.0f,
                           1e30f,
                           -1e30f,
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN()};

TEST(VMath, ExpVectorFormEqualsScalarForm) {
  std::vector<float> xs(std::begin(kSpecials), std::end(kSpecials));
  for (double x = -100.0; x <= 100.0; x += 1.0 / 512) xs.push_back(float(x));
  for (float edge : {-87.0f, 88.0f}) {
    xs.push_back(std::nextafter(edge, -1000.0f));
    xs.push_back(std::nextafter(edge, 1000.0f));
  }
  for_each_isa([&] {
    const Forms f = forms(xs);
    EXPECT_EQ(mismatches("exp", xs, f.exp_vector, f.exp_scalar), 0);
  });
}

// The vector form evaluates the same polynomials: equal to the scalar form bit for bit, on every
// interval, on the interval edges, past 4 and on infinities and NaN.
TEST(VMath, ErfVectorFormEqualsScalarForm) {
  std::vector<float> xs(std::begin(kSpecials), std::end(kSpecials));
  for (double x = -7.0; x <= 7.0; x += 1.0 / 4096) xs.push_back(float(x));
  for (int i = 0; i <= 16; ++i) {
    xs.push_back(std::nextafter(i * 0.25f, 0.0f));
    xs.push_back(-i * 0.25f);
  }
  for_each_isa([&] {
    const Forms f = forms(xs);
    EXPECT_EQ(mismatches("erf", xs, f.erf_vector, f.erf_scalar), 0);
  });
}

}  // namespace
}  // namespace vit
