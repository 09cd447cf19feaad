// One training batch's gradients, computed a micro-batch at a time (gradient accumulation).
#include <algorithm>

#include "ops/ops.hpp"
#include "vit/error.hpp"
#include "vit/train.hpp"

namespace vit {

BatchStats batch_gradients(Model& model, const float* images, const int32_t* labels, int B,
                           float smoothing, const int32_t* keep, int num_keep, float* probs,
                           float* dlogits, int micro_batch) {
  const Config& c = model.config();
  VIT_CHECK(B >= 1, "batch_gradients: batch must be at least 1 (got " + std::to_string(B) + ")");
  const int K = c.num_classes;
  // (A bad num_keep is Model::forward's to report.)
  const int N = std::max(1, keep ? c.num_prefix_tokens() + num_keep : c.num_tokens());
  const int per = micro_batch_images(c, B, N, micro_batch);
  const int parts = (B + per - 1) / per;
  const int64_t pixels = int64_t(c.channels) * c.image_size * c.image_size;
  BatchStats stats;
  model.zero_grad();
  for (int i = 0; i < parts; ++i) {
    const int b0 = micro_batch_start(B, parts, i), bc = micro_batch_start(B, parts, i + 1) - b0;
    const float* logits = model.forward(images + b0 * pixels, bc,
                                        keep ? keep + int64_t(b0) * num_keep : nullptr, num_keep);
    float* p = probs + int64_t(b0) * K;
    float* d = dlogits + int64_t(b0) * K;
    const int32_t* y = labels + b0;
    const double loss = cross_entropy(logits, y, bc, K, smoothing, p, nullptr);
    // The gradient of (bc / B) x the micro-batch's mean loss: its share of the batch's mean.
    ops::cross_entropy_backward(d, p, y, bc, K, smoothing, float(bc) / float(B));
    model.backward(d);
    stats.loss += loss * bc / B;
    for (int j = 0; j < bc; ++j) {
      const float* z = logits + int64_t(j) * K;
      stats.correct += int(std::max_element(z, z + K) - z) == y[j];
    }
  }
  return stats;
}

}  // namespace vit
