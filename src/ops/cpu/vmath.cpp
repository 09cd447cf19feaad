// vmath.hpp's exp and erf, each form, for the tests (ops.hpp: vmath_forms): the vector forms must
// equal the scalar ones bit for bit, on every variant.
#include <algorithm>

#include "ops/cpu/kernels.hpp"
#include "ops/cpu/vmath.hpp"

namespace vit::ops::VIT_ISA_NS {

void vmath_forms(float* exp_vector, float* exp_scalar, float* erf_vector, float* erf_scalar,
                 const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    exp_scalar[i] = vmath::exp(x[i]);
    erf_scalar[i] = vmath::erf(x[i]);
  }
#if VIT_SIMD
  for (int64_t i = 0; i < n; i += simd::kLanes) {
    const int w = int(std::min<int64_t>(simd::kLanes, n - i));
    const simd::Vec v = simd::load_first(x + i, w);
    simd::store_first(exp_vector + i, w, vmath::exp(v));
    simd::store_first(erf_vector + i, w, vmath::erf(v));
  }
#else
  std::copy_n(exp_scalar, n, exp_vector);
  std::copy_n(erf_scalar, n, erf_vector);
#endif
}

}  // namespace vit::ops::VIT_ISA_NS
