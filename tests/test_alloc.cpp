// A training step and an inference call allocate nothing: every buffer lives in the arenas sized
// up front. Counted by replacing the global operator new for this test binary.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "test_util.hpp"
#include "vit/data.hpp"
#include "vit/model.hpp"
#include "vit/optim.hpp"
#include "vit/train.hpp"

namespace {
std::atomic<long> g_allocations{0};
}

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace vit::test {
namespace {

TEST(Allocation, TrainingStepAndPredictAllocateNothing) {
  Config c;
  c.depth = 2;
  const int B = 16, K = c.num_classes;
  Model model(c);
  model.init(1);
  Recipe recipe;
  recipe.label_smoothing = 0.1f;
  recipe.clip_grad = 1.0f;
  TrainStep train_step(model, recipe, B, 5);  // micro-batches of at most 5 images (16: four of 4)
  auto images = random_vector(int64_t(B) * 28 * 28, 2);
  std::vector<int32_t> labels(B, 3);
  std::vector<float> logits(B * K);
  // With patch dropout: half the patches, drawn as the trainer does.
  const int Np = c.num_patches(), Nk = Np / 2;
  std::vector<int64_t> idx(B);
  std::vector<int32_t> keep(size_t(B) * Nk);
  for (int b = 0; b < B; ++b) idx[size_t(b)] = b;
  // The trainer's step.
  auto step = [&](bool drop) {
    if (drop) sample_kept_patches(idx.data(), B, Np, Nk, 0, 1, keep.data());
    train_step.run(images.data(), labels.data(), B, recipe.lr, drop ? keep.data() : nullptr,
                   drop ? Nk : 0);
  };
  step(false);                                     // warm-up: thread pools start
  step(true);                                      // the kept-index buffers grow once
  model.predict(images.data(), B, logits.data());  // sizes the inference workspace once

  const long before = g_allocations.load();
  step(false);
  step(true);
  step(false);
  model.predict(images.data(), B, logits.data());
  model.predict(images.data(), B / 2, logits.data());  // smaller batches reuse the workspace
  EXPECT_EQ(g_allocations.load() - before, 0) << "operator new calls inside training steps";
}

}  // namespace
}  // namespace vit::test
