// Thread-count independence: training with 1 and with 2 threads gives bitwise identical logits,
// gradients and weights. This holds by design: every reduction is split by fixed chunks or column
// blocks (never by thread), and OpenBLAS is called on pieces chosen from the shape alone, one
// thread per call (its own threading rounds differently per thread count with some kernels).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "test_util.hpp"
#include "vit/error.hpp"
#include "vit/model.hpp"
#include "vit/optim.hpp"
#include "vit/threads.hpp"
#include "vit/train.hpp"

namespace vit::test {
namespace {

struct TrainResult {
  std::vector<float> logits, grads, weights, predicted;
  double loss = 0;
};

// variants: timm's (register and distillation tokens, no_embed_class, LayerScale, norm_pre,
// qk-norm, QuickGELU), whose ops have their own reductions.
TrainResult train(int threads, bool variants = false) {
  set_num_threads(threads);
  Config c;  // tiny28's shape, two blocks: big enough that every kernel runs in parallel
  c.depth = 2;
  if (variants) {
    c.reg_tokens = 2;
    c.dist_token = true;
    c.no_embed_class = true;
    c.layer_scale = true;
    c.norm_pre = true;
    c.qk_norm = true;
    c.act = Act::kQuickGelu;
  }
  const int B = 32, K = c.num_classes;
  Model model(c);
  model.init(11);
  Recipe recipe;  // AdamW, lr 1e-3, weight decay 0.05
  recipe.label_smoothing = 0.1f;
  recipe.clip_grad = 1.0f;
  // The trainer's step on the whole batch at once (one micro-batch): every op split over the
  // threads.
  TrainStep train_step(model, recipe, B, B);
  auto images = random_vector(int64_t(B) * 28 * 28, 12);
  std::vector<int32_t> labels(B);
  for (int b = 0; b < B; ++b) labels[b] = (b * 7) % K;
  TrainResult r;
  for (int step = 0; step < 3; ++step) {
    if (step == 0) {  // the logits the first step's forward computes
      const float* logits = model.forward(images.data(), B);
      r.logits.assign(logits, logits + B * K);
    }
    r.loss = train_step.run(images.data(), labels.data(), B, recipe.lr).loss;
    // The clipped gradients (the update leaves them as they are).
    if (step == 0) r.grads.assign(model.grad_data(), model.grad_data() + model.arena_floats());
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

TEST(Threads, TimmVariantsAgreeBitwise) {
  const int before = num_threads();
  TrainResult one = train(1, true), three = train(3, true);
  set_num_threads(before);
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
  };
  EXPECT_TRUE(same(one.grads, three.grads))
      << "grads max diff "
      << compare(one.grads.data(), three.grads.data(), int64_t(one.grads.size()), 0, 0).max_abs;
  EXPECT_TRUE(same(one.weights, three.weights));
  EXPECT_TRUE(same(one.predicted, three.predicted));
  EXPECT_EQ(one.loss, three.loss);
}

// The trainer's step in micro-batches (batch_gradients), which runs whole micro-batches one per
// thread (and what is left over with every thread on each), and predict, which does the same:
// 1, 2 and 3 threads (3: nine micro-batches in rounds of three, the tenth split over the threads)
// give the same bits.
struct StepResult {
  std::vector<float> grads, predicted, probs, dlogits;
  double loss = 0;
  int64_t correct = 0;
};

StepResult micro_batch_step(int threads) {
  set_num_threads(threads);
  Config c;
  c.depth = 2;
  const int B = 40, K = c.num_classes, Np = c.num_patches(), Nk = Np / 2;
  Model model(c);
  model.init(3);
  model.enable_training(B);
  auto images = random_vector(int64_t(B) * 28 * 28, 4);
  std::vector<int32_t> labels(B), keep(size_t(B) * Nk);
  for (int b = 0; b < B; ++b) labels[b] = (b * 3) % K;
  for (size_t i = 0; i < keep.size(); ++i) keep[i] = int32_t((i * 5) % Np);
  StepResult r;
  r.probs.resize(B * K);
  r.dlogits.resize(B * K);
  for (bool drop : {false, true}) {
    const BatchStats st =
        batch_gradients(model, images.data(), labels.data(), B, 0.1f, drop ? keep.data() : nullptr,
                        drop ? Nk : 0, r.probs.data(), r.dlogits.data(), 4);  // ten of 4
    r.loss += st.loss;
    r.correct += st.correct;
    r.grads.insert(r.grads.end(), model.grad_data(), model.grad_data() + model.arena_floats());
  }
  r.predicted.resize(B * K);
  model.predict(images.data(), B, r.predicted.data());
  return r;
}

TEST(Threads, MicroBatchesAgreeBitwise) {
  const int before = num_threads();
  const StepResult one = micro_batch_step(1), two = micro_batch_step(2),
                   three = micro_batch_step(3);
  set_num_threads(before);
  for (const StepResult* r : {&two, &three}) {
    const int t = r == &two ? 2 : 3;
    ASSERT_EQ(one.grads.size(), r->grads.size());
    EXPECT_EQ(std::memcmp(one.grads.data(), r->grads.data(), one.grads.size() * 4), 0)
        << t << " threads: grads max diff "
        << compare(one.grads.data(), r->grads.data(), int64_t(one.grads.size()), 0, 0).max_abs;
    EXPECT_EQ(std::memcmp(one.predicted.data(), r->predicted.data(), one.predicted.size() * 4), 0)
        << t << " threads: predict";
    EXPECT_EQ(std::memcmp(one.dlogits.data(), r->dlogits.data(), one.dlogits.size() * 4), 0)
        << t << " threads: dlogits";
    EXPECT_EQ(one.loss, r->loss) << t << " threads";
    EXPECT_EQ(one.correct, r->correct) << t << " threads";
  }
}

TEST(Threads, RejectsImpossibleCounts) {
  EXPECT_THROW(set_num_threads(0), Error);
  EXPECT_THROW(set_num_threads(-3), Error);
  EXPECT_THROW(set_num_threads(100000), Error);
  EXPECT_GE(available_cores(), 1);
}

}  // namespace
}  // namespace vit::test
