// A training step and an inference call allocate nothing: every buffer lives in the arenas sized
// up front; and resizing one huge photo leaves no large buffer behind. Counted by replacing the
// global operator new for this test binary.
#include <gtest/gtest.h>

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "test_util.hpp"
#include "vit/data.hpp"
#include "vit/model.hpp"
#include "vit/optim.hpp"
#include "vit/train.hpp"
#include "vit/transforms.hpp"

namespace {
std::atomic<long> g_allocations{0};
std::atomic<long> g_live_bytes{0};  // held through operator new now
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) {
    g_live_bytes.fetch_add(long(malloc_usable_size(p)), std::memory_order_relaxed);
    return p;
  }
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  if (p) g_live_bytes.fetch_sub(long(malloc_usable_size(p)), std::memory_order_relaxed);
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  operator delete(p);
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

// A 4000 x 4000 photo resized for a 224-pixel model needs a 3500 x 3500 region's buffers (37 MB):
// they are let go afterwards, where a 600 x 400 photo's (about 1 MB) stay for the next image.
TEST(Allocation, ResizingAHugePhotoKeepsNoLargeBuffer) {
  auto photo = [](int w, int h) {
    Image im;
    im.width = w;
    im.height = h;
    im.channels = 3;
    im.pixels.assign(size_t(w) * h * 3, 0);
    for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = uint8_t(i * 7 % 251);
    return im;
  };
  const Preprocess p{.crop_pct = 0.875, .interpolation = Interpolation::kBicubic};
  {
    const Image small = photo(600, 400);
    eval_transform(small, 224, p, {});  // the thread's buffers as a photo of this size needs them
  }
  const long before = g_live_bytes.load();
  {
    const Image huge = photo(4000, 4000);
    EXPECT_EQ(eval_transform(huge, 224, p, {}).size(), size_t(3) * 224 * 224);
  }
  const long kept = g_live_bytes.load() - before;
  EXPECT_LT(kept, 8L << 20) << "bytes still held after the huge photo";
  // The next photos' buffers are made again, then kept: a second photo of the same size
  // allocates less than the first did.
  const Image small = photo(600, 400);
  auto allocations = [&] {
    const long at = g_allocations.load();
    eval_transform(small, 224, p, {});
    return g_allocations.load() - at;
  };
  const long first = allocations(), second = allocations();
  EXPECT_LT(second, first);
  EXPECT_EQ(allocations(), second);
}

}  // namespace
}  // namespace vit::test
