// The vectorisable exp and erf (src/ops/cpu/vmath.hpp) against double-precision libm.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <vector>

#include "ops/cpu/vmath.hpp"

namespace vit {
namespace {

TEST(VMath, ExpWithinThreeUlp) {
  double worst = 0, at = 0;
  for (double x = -87.0; x <= 88.0; x += 1.0 / 4096) {
    const double ref = std::exp(double(float(x)));
    const double rel = std::fabs(vmath::exp(float(x)) - ref) / ref;
    if (rel > worst) worst = rel, at = x;
  }
  EXPECT_LE(worst, 3 * 5.96e-8) << "max relative error " << worst << " at x = " << at;
  EXPECT_EQ(vmath::exp(0.0f), 1.0f);
  EXPECT_EQ(vmath::exp(-100.0f), 0.0f);
  EXPECT_EQ(vmath::exp(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(vmath::exp(100.0f), std::numeric_limits<float>::infinity());
}

TEST(VMath, ErfWithinATenthOfAMillionth) {
  double worst = 0, at = 0;
  for (double x = -7.0; x <= 7.0; x += 1.0 / 8192) {
    const double err = std::fabs(vmath::erf(float(x)) - std::erf(double(float(x))));
    if (err > worst) worst = err, at = x;
  }
  EXPECT_LE(worst, 1e-7) << "max absolute error " << worst << " at x = " << at;
  // Small arguments keep their relative accuracy (the first interval has no constant term).
  double worst_rel = 0;
  for (double x = 1e-30; x < 0.25; x *= 1.01) {
    const double ref = std::erf(double(float(x)));
    worst_rel = std::max(worst_rel, std::fabs(vmath::erf(float(x)) - ref) / ref);
  }
  EXPECT_LE(worst_rel, 2e-7) << "max relative error below 0.25: " << worst_rel;
  EXPECT_EQ(vmath::erf(0.0f), 0.0f);
  EXPECT_EQ(vmath::erf(10.0f), 1.0f);
  EXPECT_EQ(vmath::erf(-10.0f), -1.0f);
  EXPECT_EQ(vmath::erf(std::numeric_limits<float>::infinity()), 1.0f);
}

#ifdef __AVX512F__
// Runs the 16-lane form of f over xs and compares each lane with the scalar form, bit for bit.
template <typename F>
int vector_scalar_mismatches(const char* name, std::vector<float> xs, F f) {
  while (xs.size() % 16) xs.push_back(0.5f);
  int mismatches = 0;
  for (size_t i = 0; i < xs.size(); i += 16) {
    alignas(64) float out[16];
    _mm512_store_ps(out, f(_mm512_loadu_ps(&xs[i])));
    for (int j = 0; j < 16; ++j) {
      const float ref = f(xs[i + j]);
      if (std::memcmp(&out[j], &ref, sizeof(float)) != 0 && ++mismatches <= 5) {
        ADD_FAILURE() << name << "(" << xs[i + j] << "): vector " << out[j] << ", scalar " << ref;
      }
    }
  }
  return mismatches;
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
  EXPECT_EQ(vector_scalar_mismatches("exp", xs, [](auto v) { return vmath::exp(v); }), 0);
}

// The 16-lane form evaluates the same polynomials: equal to the scalar form bit for bit, on every
// interval, on the interval edges, past 4 and on infinities and NaN.
TEST(VMath, ErfVectorFormEqualsScalarForm) {
  std::vector<float> xs(std::begin(kSpecials), std::end(kSpecials));
  for (double x = -7.0; x <= 7.0; x += 1.0 / 4096) xs.push_back(float(x));
  for (int i = 0; i <= 16; ++i) {
    xs.push_back(std::nextafter(i * 0.25f, 0.0f));
    xs.push_back(-i * 0.25f);
  }
  EXPECT_EQ(vector_scalar_mismatches("erf", xs, [](auto v) { return vmath::erf(v); }), 0);
}
#endif

}  // namespace
}  // namespace vit
