// The vectorisable exp and erf (src/ops/cpu/vmath.hpp) against double-precision libm.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

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

TEST(VMath, ErfWithinTwoTenthsOfAMillionth) {
  double worst = 0, at = 0;
  for (double x = -7.0; x <= 7.0; x += 1.0 / 8192) {
    const double err = std::fabs(vmath::erf(float(x)) - std::erf(double(float(x))));
    if (err > worst) worst = err, at = x;
  }
  EXPECT_LE(worst, 2e-7) << "max absolute error " << worst << " at x = " << at;
  EXPECT_EQ(vmath::erf(0.0f), 0.0f);
  EXPECT_EQ(vmath::erf(10.0f), 1.0f);
  EXPECT_EQ(vmath::erf(-10.0f), -1.0f);
}

}  // namespace
}  // namespace vit
