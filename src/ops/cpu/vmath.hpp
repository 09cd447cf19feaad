// exp and erf for float, written branch-free so loops calling them vectorise (glibc's expf/erff
// are scalar calls and took a fifth of a training step). Accuracy, measured against double
// libm over [-6, 6] in steps of 6e-5: exp within 2 ulp on its range; erf within 1.6e-7 absolute,
// so GELU built on it is within 1.2e-7 of the exact value.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace vit::vmath {

// e^x = 2^n e^r with n = round(x / ln 2) and |r| <= ln(2)/2, where e^r is its Taylor series to
// degree 7 (remainder below 1e-8 relative). 2^n is built in the exponent bits; inputs below
// -87 (where e^x is under float's normal range) give 0, inputs above 88 give +inf.
inline float exp(float x) {
  // Plain compares and the 1.5 * 2^23 rounding trick instead of fmin/fmax/nearbyint: those are
  // library calls that stop the vectoriser.
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  constexpr float kRound = 12582912.0f;  // adding it rounds |v| < 2^22 to the nearest integer
  const float n = (xc * 1.44269504088896341f + kRound) - kRound;
  // ln 2 split in two so that n * ln2_hi is exact.
  const float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  const float y = p * scale;
  return x < -87.0f ? 0.0f : (x > 88.0f ? INFINITY : y);
}

// erf(x) = sign(x) * f(|x|) with, for a = |x|:
//   a < 1:      a * sum_n c_n a^2n, the Taylor series of erf(a)/a (12 terms);
//   1 <= a < 4: 1 - e^(-a^2) Q(u), Q a degree-11 least-squares fit of erfc(a) e^(a^2) on
//               [1, 4] in u = (a - 2.5) / 1.5 (a polynomial in a, not 1/a: no division, which
//               was the slowest instruction of the GELU epilogue); tests/reference/fit_erf.py
//               derives the coefficients and measures the errors above;
//   a >= 4:     1 (erfc(4) = 1.5e-8 is below half an ulp of 1).
inline float erf(float x) {
  const float a = std::fabs(x);
  const float s = a * a;
  // Taylor: 2/sqrt(pi) * (-1)^n / (n! (2n + 1))
  float p = -1.2290555e-09f;
  p = p * s + 1.4807193e-08f;
  p = p * s - 1.6365845e-07f;
  p = p * s + 1.6462114e-06f;
  p = p * s - 1.4925650e-05f;
  p = p * s + 1.2055333e-04f;
  p = p * s - 8.5483270e-04f;
  p = p * s + 5.2239776e-03f;
  p = p * s - 2.6866171e-02f;
  p = p * s + 1.1283792e-01f;
  p = p * s - 3.7612639e-01f;
  p = p * s + 1.1283792e+00f;
  const float small = a * p;
  const float u = (a - 2.5f) * (1.0f / 1.5f);  // [1, 4] -> [-1, 1]
  float q = -3.692904952e-05f;
  q = q * u + 9.640540703e-05f;
  q = q * u - 1.439477830e-04f;
  q = q * u + 3.678666659e-04f;
  q = q * u - 1.017118508e-03f;
  q = q * u + 2.425886662e-03f;
  q = q * u - 5.567332624e-03f;
  q = q * u + 1.248403520e-02f;
  q = q * u - 2.700572533e-02f;
  q = q * u + 5.611095846e-02f;
  q = q * u - 1.115210047e-01f;
  q = q * u + 2.108063575e-01f;
  const float big = 1.0f - exp(-s) * q;
  const float r = a < 1.0f ? small : (a < 4.0f ? big : 1.0f);
  return std::copysign(r, x);
}

}  // namespace vit::vmath
