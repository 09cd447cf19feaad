// Softmax cross-entropy from logits with label smoothing, fused: one log-softmax, no double
// softmax (the seed's bug), and the gradient probs - target.
#include <algorithm>
#include <cmath>

#include "ops/cpu/kernels.hpp"

namespace vit::ops::VIT_ISA_NS {

double cross_entropy_forward(const Context& /*ctx: serial*/, float* probs, const float* logits,
                             const int32_t* labels, int B, int K, float smoothing) {
  check_loss_inputs(labels, B, K, smoothing);
  // loss_b = logsumexp(z) - (1 - eps) z_y - (eps / K) sum_k z_k, from the max-shifted logits.
  double total = 0.0;
  for (int b = 0; b < B; ++b) {
    const float* z = logits + int64_t(b) * K;
    float* p = probs + int64_t(b) * K;
    const float mx = *std::max_element(z, z + K);
    double sum = 0.0, sum_z = 0.0;
    for (int k = 0; k < K; ++k) {
      p[k] = std::exp(z[k] - mx);
      sum += p[k];
      sum_z += z[k] - mx;
    }
    const float inv = float(1.0 / sum);
    for (int k = 0; k < K; ++k) p[k] *= inv;
    const double lse = std::log(sum);
    const double zy = z[labels[b]] - mx;
    total += lse - (1.0 - smoothing) * zy - smoothing / K * sum_z;
  }
  return total / B;
}

void cross_entropy_backward(const Context& /*ctx: serial*/, float* dlogits, const float* probs,
                            const int32_t* labels, int B, int K, float smoothing, float scale) {
  const float off = smoothing / K;
  const float on = 1.0f - smoothing + off;
  const float s = scale / B;
  for (int b = 0; b < B; ++b) {
    const float* p = probs + int64_t(b) * K;
    float* g = dlogits + int64_t(b) * K;
    for (int k = 0; k < K; ++k) g[k] = s * (p[k] - (k == labels[b] ? on : off));
  }
}

}  // namespace vit::ops::VIT_ISA_NS
