// argmax, softmax, top-k and the true class's cross-entropy of logits (include/vit/classify.hpp).
#include "vit/classify.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace vit {
namespace {

// sum_k exp(logits[k] - mx), in double, k in order.
double sum_exp(const float* logits, int K, float mx) {
  double sum = 0;
  for (int k = 0; k < K; ++k) sum += std::exp(double(logits[k]) - mx);
  return sum;
}

}  // namespace

int argmax(const float* logits, int K) {
  return int(std::max_element(logits, logits + K) - logits);
}

void softmax(const float* logits, int K, double* probs) {
  const float mx = logits[argmax(logits, K)];
  double sum = 0;
  for (int k = 0; k < K; ++k) sum += probs[k] = std::exp(double(logits[k]) - mx);
  for (int k = 0; k < K; ++k) probs[k] /= sum;
}

double class_loss(const float* logits, int K, int label) {
  const float mx = logits[argmax(logits, K)];
  return std::log(sum_exp(logits, K, mx)) - (double(logits[label]) - mx);
}

std::vector<ClassScore> top_k(const float* logits, int K, int k) {
  std::vector<double> probs(size_t(std::max(K, 0)));
  softmax(logits, K, probs.data());
  std::vector<ClassScore> all(probs.size());
  for (int i = 0; i < K; ++i) all[size_t(i)] = {i, probs[size_t(i)]};
  const size_t n = size_t(std::clamp(k, 0, K));
  std::partial_sort(all.begin(), all.begin() + std::ptrdiff_t(n), all.end(),
                    [](const ClassScore& a, const ClassScore& b) { return a.prob > b.prob; });
  all.resize(n);
  return all;
}

}  // namespace vit
