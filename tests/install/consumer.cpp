// A program built against the installed library: makes the small default model, classifies one
// image and prints the class it chose (tests/install/check.sh checks that it ran).
#include <cstdio>
#include <vector>

#include "vit/model.hpp"

int main() {
  vit::Config config;
  vit::Model model(config);
  model.init(0);
  std::vector<float> image(size_t(config.channels) * config.image_size * config.image_size, 0.5f);
  std::vector<float> logits(size_t(config.num_classes));
  model.predict(image.data(), 1, logits.data());
  int best = 0;
  for (int k = 1; k < config.num_classes; ++k) {
    if (logits[size_t(k)] > logits[size_t(best)]) best = k;
  }
  std::printf("consumer: class %d of %d\n", best, config.num_classes);
  return 0;
}
