// Evaluation on a dataset with the inference path: accuracy, loss, per-class accuracy, confusion,
// the most confident mistakes.
#include <algorithm>
#include <cmath>
#include <limits>

#include "vit/classify.hpp"
#include "vit/error.hpp"
#include "vit/train.hpp"

namespace vit {
namespace {

// The order of EvalResult::mistakes: higher probability first, then lower index.
bool more_confident(const Mistake& a, const Mistake& b) {
  return a.prob != b.prob ? a.prob > b.prob : a.index < b.index;
}

}  // namespace

EvalResult evaluate(Model& model, const Dataset& data, const Normalization& norm, int batch,
                    int mistakes) {
  const Config& c = model.config();
  const SampleShape s = data.shape();
  VIT_CHECK(s.channels == c.channels && s.height == c.image_size && s.width == c.image_size,
            "the model expects " + std::to_string(c.channels) + "x" + std::to_string(c.image_size) +
                "x" + std::to_string(c.image_size) + " images but the dataset has " +
                std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" +
                std::to_string(s.width));
  VIT_CHECK(batch >= 1, "evaluation batch must be at least 1");
  VIT_CHECK(mistakes >= 0, "evaluate: mistakes must be 0 or more");
  const int K = c.num_classes;
  EvalResult r;
  r.count = data.size();
  r.confusion.assign(K, std::vector<int64_t>(K, 0));
  const int64_t n = data.size();
  const int B = int(std::min<int64_t>(batch, std::max<int64_t>(n, 1)));
  std::vector<float> images(size_t(B) * s.pixels()), logits(size_t(B) * K);
  std::vector<int32_t> labels(B);
  std::vector<int64_t> idx(B);
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t start = 0; start < n; start += B) {
    const int b = int(std::min<int64_t>(B, n - start));
    for (int i = 0; i < b; ++i) idx[i] = start + i;
    make_batch(data, idx.data(), b, norm, AugmentOptions{}, 0, 0, images.data(), labels.data());
    model.predict(images.data(), b, logits.data());
    for (int i = 0; i < b; ++i) {
      const float* z = logits.data() + int64_t(i) * K;
      const int pred = argmax(z, K);
      loss_sum += class_loss(z, K, labels[i]);
      correct += pred == labels[i];
      ++r.confusion[labels[i]][pred];
      if (pred != labels[i] && mistakes > 0) {
        std::vector<double> probs(static_cast<size_t>(K));
        softmax(z, K, probs.data());
        r.mistakes.push_back({start + i, labels[i], int32_t(pred), probs[size_t(pred)]});
      }
    }
    // Only the most confident `mistakes` are kept, so the list stays short on a poor model.
    if (r.mistakes.size() > 2 * size_t(mistakes)) {
      std::partial_sort(r.mistakes.begin(), r.mistakes.begin() + mistakes, r.mistakes.end(),
                        more_confident);
      r.mistakes.resize(size_t(mistakes));
    }
  }
  std::sort(r.mistakes.begin(), r.mistakes.end(), more_confident);
  if (r.mistakes.size() > size_t(mistakes)) r.mistakes.resize(size_t(mistakes));
  r.accuracy = n ? double(correct) / n : 0.0;
  r.loss = n ? loss_sum / n : 0.0;
  for (int k = 0; k < K; ++k) {
    int64_t total = 0;
    for (int64_t v : r.confusion[k]) total += v;
    r.per_class_accuracy.push_back(total ? double(r.confusion[k][k]) / total
                                         : std::numeric_limits<double>::quiet_NaN());
  }
  return r;
}

}  // namespace vit
