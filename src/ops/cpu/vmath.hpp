// exp and erf for float (glibc's expf/erff are scalar calls and took a fifth of a training step):
// exp written branch-free so that loops calling it vectorise; erf as a scalar function and, where
// the build has vector registers (simd.hpp), a kLanes-wide one with bitwise the same results.
// Accuracy, measured against double libm: exp within 2 ulp on its range; erf within 6.6e-8 absolute
// on [-7, 7] (1.6e-7 relative below 0.25), so GELU built on it is within 1.6e-7 of the exact value
// on [-6, 6].
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "ops/cpu/simd.hpp"

namespace vit::ops::VIT_ISA_NS::vmath {

// e^x = 2^n e^r with n = round(x / ln 2) and |r| <= ln(2)/2, where e^r is its Taylor series to
// degree 7 (remainder below 1e-8 relative). 2^n is built in the exponent bits; inputs below
// -87 (where e^x is under float's normal range) give 0, inputs above 88 give +inf.
inline float exp(float x) {
  // Plain compares and the 1.5 * 2^23 rounding trick instead of fmin/fmax/nearbyint: those are
  // library calls that stop the vectoriser. Each a * b + c is contracted into one fused
  // multiply-add where the CPU has FMA (GCC and clang do by default), as the 16-lane form does.
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

#if VIT_SIMD
// e^x of kLanes floats, the same steps as the scalar form (bitwise equal where the scalar form's
// multiply-adds are fused, as in the vector builds; tested).
inline simd::Vec exp(simd::Vec x) {
  using namespace simd;
  // max/min return their second operand when one is NaN: NaN stays NaN, as in the scalar form.
  const Vec xc = min(set1(88.0f), max(set1(-87.0f), x));
  const Vec round = set1(12582912.0f);
  const Vec n = sub(fmadd(xc, set1(1.44269504088896341f), round), round);
  const Vec r = fnmadd(n, set1(1.428606765330187e-06f), fnmadd(n, set1(0.693145751953125f), xc));
  Vec p = set1(1.0f / 5040.0f);
  for (const float c : {1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f})
    p = fmadd(p, r, set1(c));
  const Vec y = mul(p, pow2(truncate(n)));
  return select(greater(x, set1(88.0f)), set1(INFINITY), select(less(x, set1(-87.0f)), zero(), y));
}
#endif

// erf(x) = sign(x) p_i(|x| - i/4) for |x| < 4, where i = floor(4|x|) picks one of sixteen degree-7
// polynomials, least-squares fits of erf on [i/4, (i+1)/4] (tests/reference/fit_erf.py derives
// them and measures the errors above; the first has no constant term, so erf(0) = 0 and small
// arguments keep their relative accuracy), and 1 for |x| >= 4 (erfc(4) = 1.5e-8 is below half an
// ulp of 1). One polynomial per value instead of a series plus an exp: with the coefficients
// picked by register permutes (the AVX-512 form below), GELU's forward and backward together
// run 2.6 times faster than with that (BM_Gelu, one thread).
// kErfCoef[d][i]: coefficient of t^d in interval i.
alignas(64) inline constexpr float kErfCoef[8][16] = {
    {0.000000000e+00, 2.763263881e-01, 5.204998851e-01, 7.111556530e-01, 8.427007794e-01,
     9.229001403e-01, 9.661051631e-01, 9.866716862e-01, 9.953222871e-01, 9.985373020e-01,
     9.995930195e-01, 9.998993874e-01, 9.999778867e-01, 9.999957085e-01, 9.999992847e-01,
     9.999998808e-01},
    {1.128379226e+00, 1.060014129e+00, 8.787825704e-01, 6.429310441e-01, 4.151074886e-01,
     2.365211248e-01, 1.189302877e-01, 5.277499557e-02, 2.066698484e-02, 7.142319344e-03,
     2.178284340e-03, 5.862772232e-04, 1.392530248e-04, 2.918901191e-05, 5.399421752e-06,
     8.814307080e-07},
    {-8.643468874e-08, -2.650037408e-01, -4.393914342e-01, -4.821982682e-01, -4.151073694e-01,
     -2.956513166e-01, -1.783954203e-01, -9.235627204e-02, -4.133399948e-02, -1.607022993e-02,
     -5.445711780e-03, -1.612259774e-03, -4.177568771e-04, -9.486319323e-05, -1.889756822e-05,
     -3.305246082e-06},
    {-3.761235178e-01, -3.091636598e-01, -1.464592069e-01, 2.678791061e-02, 1.383653730e-01,
     1.675329506e-01, 1.387515068e-01, 9.015815705e-02, 4.822387174e-02, 2.172496356e-02,
     8.350127377e-03, 2.760304371e-03, 7.890274865e-04, 1.957726927e-04, 4.228169928e-05,
     7.965546502e-06},
    {-4.523602183e-05, 1.268691421e-01, 1.830067784e-01, 1.506994814e-01, 6.924392283e-02,
     -6.114077289e-03, -4.459044337e-02, -4.811573401e-02, -3.445930406e-02, -1.908996888e-02,
     -8.623031899e-03, -3.256799653e-03, -1.043238095e-03, -2.859784290e-04, -6.749622116e-05,
     -1.377560420e-05},
    {1.132090539e-01, 8.100277930e-02, 7.962752134e-03, -5.333162472e-02, -6.968724728e-02,
     -4.757529870e-02, -1.494584978e-02, 6.737269461e-03, 1.321261376e-02, 1.071569137e-02,
     6.123865955e-03, 2.744737780e-03, 1.006527455e-03, 3.086369543e-04, 8.016631909e-05,
     1.778922160e-05},
    {-1.589750755e-03, -4.498365894e-02, -5.319619551e-02, -2.659620717e-02, 6.954211276e-03,
     2.322158031e-02, 1.976440847e-02, 8.450784720e-03, -1.337944705e-04, -3.192963079e-03,
     -2.836761065e-03, -1.606288948e-03, -6.897462881e-04, -2.381983941e-04, -6.804923760e-05,
     -1.634726141e-05},
    {-2.388091199e-02, -5.454431754e-03, 1.378277689e-02, 1.848149672e-02, 9.594082832e-03,
     -1.363841235e-03, -6.134740543e-03, -4.915581550e-03, -1.879367162e-03, 1.114274273e-04,
     6.754990900e-04, 5.279969773e-04, 2.673772688e-04, 1.029391497e-04, 3.187401671e-05,
     8.162957783e-06},
};

inline float erf(float x) {
  const float a = std::fabs(x);
  if (!(a < 4.0f)) return std::copysign(1.0f, x);  // also NaN, as the vector form does
  const int i = static_cast<int>(a * 4.0f);
  const float t = a - static_cast<float>(i) * 0.25f;  // exact
  float p = kErfCoef[7][i];
  for (int d = 6; d >= 0; --d) p = p * t + kErfCoef[d][i];  // fused, as in the vector form
  return std::copysign(p, x);
}

#if VIT_SIMD
// erf of kLanes floats, the same polynomials: each coefficient row (16 intervals) is looked up per
// lane (simd::lookup16: a register permute). Bitwise equal to the scalar form where that one's
// multiply-adds are fused (tested).
inline simd::Vec erf(simd::Vec x) {
  using namespace simd;
  const Vec a = abs(x);
  // min() maps |x| >= 4 (and NaN: min returns its second operand) to interval 15; those lanes
  // are replaced by 1 below.
  const VecI i = truncate(min(mul(a, set1(4.0f)), set1(15.0f)));
  const Vec t = fnmadd(to_float(i), set1(0.25f), a);
  Vec p = lookup16(kErfCoef[7], i);
  for (int d = 6; d >= 0; --d) p = fmadd(p, t, lookup16(kErfCoef[d], i));
  p = select(not_less(a, set1(4.0f)), set1(1.0f), p);
  return bit_or(p, bit_and(x, set1(-0.0f)));  // the sign of x
}
#endif

}  // namespace vit::ops::VIT_ISA_NS::vmath
