#!/usr/bin/python3
"""Derives the erf coefficients of src/ops/cpu/vmath.hpp and measures their float32 error.

    /usr/bin/python3 tests/reference/fit_erf.py

erf(a) for a = |x| < 4: [0, 4) is cut into 16 intervals [i/4, (i+1)/4); on each, a degree-7
least-squares polynomial (Chebyshev nodes) in t = a - i/4. The first has no constant term, so that
erf(0) = 0 and small arguments keep their relative accuracy. For a >= 4, erf = 1. The evaluation is
simulated in float32, Horner with one rounding per fused multiply-add as the C++ does it, and
compared with double-precision math.erf. Prints the table as C++ (kErfCoef[degree][interval]).
"""
import math

import numpy as np

f32 = np.float32
INTERVALS, WIDTH, DEG = 16, 0.25, 7

rows = []
for i in range(INTERVALS):
    t = (np.cos(np.linspace(0, math.pi, 400)) + 1) * (WIDTH / 2)
    y = np.array([math.erf(i * WIDTH + v) for v in t])
    if i == 0:
        basis = np.stack([t**d for d in range(1, DEG + 1)], 1)
        c = np.concatenate([[0.0], np.linalg.lstsq(basis, y, rcond=None)[0]])
    else:
        c = np.polynomial.polynomial.polyfit(t, y, DEG)
    rows.append(c)
coef = np.array(rows, dtype=np.float32)  # [interval, degree]


def erf32(x):
    a = f32(abs(x))
    if not a < 4:
        return math.copysign(1.0, x)
    i = int(a * f32(4))
    t = f32(a - f32(i * WIDTH))
    p = coef[i, DEG]
    for d in range(DEG - 1, -1, -1):
        p = f32(np.float64(p) * np.float64(t) + np.float64(coef[i, d]))
    return math.copysign(float(p), x)


print("inline constexpr float kErfCoef[%d][%d] = {" % (DEG + 1, INTERVALS))
for d in range(DEG + 1):
    print("    {" + ", ".join("%.9e" % coef[i, d] for i in range(INTERVALS)) + "},")
print("};")
xs = np.linspace(-7, 7, 400001)
err = max(abs(erf32(x) - math.erf(x)) for x in xs)
small = np.geomspace(1e-30, 0.25, 2000)
rel = max(abs(erf32(x) - math.erf(x)) / math.erf(x) for x in small)
gelu = max(abs(0.5 * x * (1 + erf32(x / math.sqrt(2))) - 0.5 * x * (1 + math.erf(x / math.sqrt(2))))
           for x in np.linspace(-6, 6, 200001))
print("max |erf error| %.3g on [-7, 7]; max relative error %.3g below 0.25; max |GELU error| %.3g on [-6, 6]"
      % (err, rel, gelu))
