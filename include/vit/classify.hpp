// Reading a model's logits: the predicted class, probabilities (softmax), the k most probable
// classes and the cross-entropy of the true class. Written once here for evaluation, `vit predict`
// and the tests.
#pragma once

#include <vector>

namespace vit {

// The index of the largest of logits [K] (the first of equal ones).
int argmax(const float* logits, int K);

// probs [K] = softmax(logits), in double: exp(logit - max) / sum.
void softmax(const float* logits, int K, double* probs);

// -log softmax(logits)[label], in double (the cross-entropy without smoothing).
double class_loss(const float* logits, int K, int label);

struct ClassScore {
  int index = 0;
  double prob = 0;
};
// The min(k, K) most probable classes of logits [K], most probable first.
std::vector<ClassScore> top_k(const float* logits, int K, int k);

}  // namespace vit
