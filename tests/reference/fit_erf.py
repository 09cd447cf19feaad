#!/usr/bin/python3
"""Derives the erf coefficients of src/ops/cpu/vmath.hpp and measures the float32 error.

    /usr/bin/python3 tests/reference/fit_erf.py

erf(a) for a = |x|: the Taylor series of erf(a)/a in a^2 below 1 (12 terms), and
1 - exp(-a^2) Q(u) on [1, 4], Q a degree-11 least-squares polynomial fit (Chebyshev nodes) of
erfc(a) exp(a^2) in u = (a - 2.5) / 1.5. The evaluation is simulated in float32, Horner step by step, as the
C++ does it, and compared with double-precision math.erf.
"""
import math

import numpy as np

f32 = np.float32
DEG = 11

a = np.cos(np.linspace(0, math.pi, 8000)) * 1.5 + 2.5
q = np.array([math.erfc(x) * math.exp(x * x) for x in a])
fit = np.polynomial.polynomial.polyfit((a - 2.5) / 1.5, q, DEG)
taylor = [2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(12)]
print("Taylor coefficients (a^0, a^2, ...):", ", ".join("%.7e" % c for c in taylor))
print("Q coefficients (u^0, u^1, ...):", ", ".join("%.9e" % c for c in fit))


def erf32(x):
    a = f32(abs(x))
    s = f32(a * a)
    p = f32(taylor[-1])
    for c in reversed(taylor[:-1]):
        p = f32(p * s + f32(c))
    if a < 1:
        r = f32(a * p)
    elif a < 4:
        u = f32((a - f32(2.5)) * f32(1 / 1.5))
        qq = f32(fit[-1])
        for c in reversed(fit[:-1]):
            qq = f32(qq * u + f32(c))
        r = f32(f32(1) - f32(np.exp(f32(-s))) * qq)
    else:
        r = f32(1)
    return math.copysign(r, x)


xs = np.linspace(-6, 6, 200001)
err = max(abs(erf32(x) - math.erf(x)) for x in xs)
gelu = max(abs(0.5 * x * (1 + erf32(x / math.sqrt(2))) - 0.5 * x * (1 + math.erf(x / math.sqrt(2))))
           for x in xs)
print("max |erf error| %.3g, max |GELU error| %.3g on [-6, 6]" % (err, gelu))
