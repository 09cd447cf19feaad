// Thread-count independence: training with 1 and with 2 threads gives bitwise identical logits,
// gradients and weights. This holds by design: every reduction is split by fixed chunks or column
// blocks (never by thread), and OpenBLAS sgemm partitions only the output, not the K dimension.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "test_util.hpp"
#include "vit/error.hpp"
#include "vit/model.hpp"
#include "vit/optim.hpp"
#include "vit/threads.hpp"

namespace vit::test {
namespace {

struct TrainResult {
  std::vector<float> logits, grads, weights, predicted;
  double loss = 0;
};

TrainResult train(int threads) {
  set_num_threads(threads);
  Config c;  // tiny28's shape, two blocks: big enough that every kernel runs in parallel
  c.depth = 2;
  const int B = 32, K = c.num_classes;
  Model model(c);
  model.init(11);
  model.enable_training(B);
  AdamWOptions o;
  o.lr = 1e-3f;
  o.weight_decay = 0.05f;
  AdamW opt(model, o);
  auto images = random_vector(int64_t(B) * 28 * 28, 12);
  std::vector<int32_t> labels(B);
  for (int b = 0; b < B; ++b) labels[b] = (b * 7) % K;
  std::vector<float> probs(B * K), dlogits(B * K);
  TrainResult r;
  for (int step = 0; step < 3; ++step) {
    model.zero_grad();
    const float* logits = model.forward(images.data(), B);
    r.loss = cross_entropy(logits, labels.data(), B, K, 0.1f, probs.data(), dlogits.data());
    if (step == 0) r.logits.assign(logits, logits + B * K);
    model.backward(dlogits.data());
    clip_grad_norm(model, 1.0f);
    if (step == 0) r.grads.assign(model.grad_data(), model.grad_data() + model.arena_floats());
    opt.step();
  }
  r.weights.assign(model.param_data(), model.param_data() + model.arena_floats());
  r.predicted.resize(B * K);
  model.predict(images.data(), B, r.predicted.data());
  return r;
}

// Batch-1 inference with one head: attention then cuts each head's rows into as many chunks as
// it needs to keep the threads busy (2 for one thread, 4 for two).
std::vector<float> predict_one_image(int threads) {
  set_num_threads(threads);
  Config c;
  c.depth = 2;
  c.heads = 1;
  Model model(c);
  model.init(5);
  auto image = random_vector(28 * 28, 6);
  std::vector<float> logits(c.num_classes);
  model.predict(image.data(), 1, logits.data());
  return logits;
}

TEST(Threads, OneAndTwoThreadsAgreeBitwise) {
  const int before = num_threads();
  TrainResult one = train(1), two = train(2);
  set_num_threads(before);
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
  };
  EXPECT_TRUE(same(one.logits, two.logits))
      << "logits max diff "
      << compare(one.logits.data(), two.logits.data(), int64_t(one.logits.size()), 0, 0).max_abs;
  EXPECT_TRUE(same(one.grads, two.grads))
      << "grads max diff "
      << compare(one.grads.data(), two.grads.data(), int64_t(one.grads.size()), 0, 0).max_abs;
  EXPECT_TRUE(same(one.weights, two.weights))
      << "weights max diff "
      << compare(one.weights.data(), two.weights.data(), int64_t(one.weights.size()), 0, 0).max_abs;
  EXPECT_TRUE(same(one.predicted, two.predicted));
  EXPECT_EQ(one.loss, two.loss);
  const std::vector<float> single_one = predict_one_image(1), single_two = predict_one_image(2);
  set_num_threads(before);
  EXPECT_TRUE(same(single_one, single_two));
}

TEST(Threads, RejectsImpossibleCounts) {
  EXPECT_THROW(set_num_threads(0), Error);
  EXPECT_THROW(set_num_threads(-3), Error);
  EXPECT_THROW(set_num_threads(100000), Error);
  EXPECT_GE(available_cores(), 1);
}

}  // namespace
}  // namespace vit::test
