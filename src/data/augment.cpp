// Normalisation statistics, epoch order, seeded per-sample augmentation (random crop with
// padding, horizontal flip, random erasing), batch assembly and patch dropout's draws.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "core/rng.hpp"
#include "vit/data.hpp"
#include "vit/error.hpp"

namespace vit {
namespace {

// Stream ids that keep the epoch order and the per-sample augmentation draws independent.
uint64_t order_stream(int64_t epoch) {
  return 0x4F52444552000000ull ^ uint64_t(epoch);
}
uint64_t sample_stream(int64_t epoch, int64_t index) {
  return (uint64_t(epoch) << 40) ^ uint64_t(index) ^ 0x4155470000000000ull;
}
uint64_t patch_stream(int64_t epoch, int64_t index) {
  return (uint64_t(epoch) << 40) ^ uint64_t(index) ^ 0x5041540000000000ull;
}

}  // namespace

Normalization compute_normalization(const Dataset& d) {
  VIT_CHECK(d.size() > 0, "cannot compute normalisation statistics of an empty dataset");
  Normalization n;
  const int64_t plane = int64_t(d.image_size) * d.image_size;
  for (int c = 0; c < d.channels; ++c) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < d.size(); ++i) {
      const uint8_t* p = d.image(i) + c * plane;
      uint64_t s1 = 0, s2 = 0;  // exact integer sums per image
      for (int64_t j = 0; j < plane; ++j) {
        s1 += p[j];
        s2 += uint32_t(p[j]) * p[j];
      }
      sum += double(s1);
      sq += double(s2);
    }
    const double count = double(d.size()) * plane;
    const double mean = sum / count / 255.0;
    const double var = sq / count / (255.0 * 255.0) - mean * mean;
    const double std = std::sqrt(std::max(var, 0.0));
    VIT_CHECK(std > 1e-6, "every training pixel of channel " + std::to_string(c) +
                              " has the same value; there is nothing to learn from");
    n.mean.push_back(float(mean));
    n.std.push_back(float(std));
  }
  return n;
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  Rng rng(seed, order_stream(epoch));
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(order[size_t(i)], order[rng.below(uint64_t(i) + 1)]);
  return order;
}

void normalize_image(const uint8_t* pixels, int channels, int size, const Normalization& norm,
                     float* out) {
  const int64_t plane = int64_t(size) * size;
  for (int c = 0; c < channels; ++c) {
    const float scale = 1.0f / (255.0f * norm.std[c]);
    const float shift = norm.mean[c] / norm.std[c];
    for (int64_t j = 0; j < plane; ++j) out[c * plane + j] = pixels[c * plane + j] * scale - shift;
  }
}

void make_batch(const Dataset& d, const int64_t* idx, int B, const Normalization& norm,
                const AugmentOptions& aug, uint64_t seed, int64_t epoch, float* images,
                int32_t* labels) {
  const int C = d.channels, S = d.image_size;
  const int64_t plane = int64_t(S) * S, per_image = C * plane;
  VIT_CHECK(int(norm.mean.size()) == C && int(norm.std.size()) == C,
            "normalisation has " + std::to_string(norm.mean.size()) + " channels, the data " +
                std::to_string(C));
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; ++b) {
    const int64_t i = idx[b];
    const uint8_t* src = d.image(i);
    float* out = images + b * per_image;
    labels[b] = d.labels[size_t(i)];
    if (!aug.enabled()) {
      normalize_image(src, C, S, norm, out);
      continue;
    }
    Rng rng(seed, sample_stream(epoch, i));
    int dx = 0, dy = 0;
    if (aug.crop_padding > 0) {
      const int span = 2 * aug.crop_padding + 1;
      dx = int(rng.below(uint64_t(span))) - aug.crop_padding;
      dy = int(rng.below(uint64_t(span))) - aug.crop_padding;
    }
    const bool flip = aug.hflip && rng.uniform() < 0.5;
    // out(y, x) = src(y + dy, x' + dx) with x' the (possibly mirrored) column; zero padding.
    for (int c = 0; c < C; ++c) {
      const float scale = 1.0f / (255.0f * norm.std[c]);
      const float shift = norm.mean[c] / norm.std[c];
      for (int y = 0; y < S; ++y) {
        const int sy = y + dy;
        for (int x = 0; x < S; ++x) {
          const int sx = (flip ? S - 1 - x : x) + dx;
          const bool inside = sy >= 0 && sy < S && sx >= 0 && sx < S;
          const float p = inside ? src[c * plane + int64_t(sy) * S + sx] : 0.0f;
          out[c * plane + int64_t(y) * S + x] = p * scale - shift;
        }
      }
    }
    if (aug.erase_prob > 0.0f && rng.uniform() < aug.erase_prob) {
      // timm's RandomErasing: area 2%-33% of the image, aspect ratio log-uniform in [0.3, 3.3],
      // up to 10 tries to fit; erased pixels take the value 0, the dataset mean.
      for (int attempt = 0; attempt < 10; ++attempt) {
        const double area = (0.02 + rng.uniform() * (1.0 / 3.0 - 0.02)) * S * S;
        const double ratio =
            std::exp(std::log(0.3) + rng.uniform() * (std::log(3.3) - std::log(0.3)));
        const int h = int(std::lround(std::sqrt(area * ratio)));
        const int w = int(std::lround(std::sqrt(area / ratio)));
        if (h < 1 || w < 1 || h >= S || w >= S) continue;
        const int top = int(rng.below(uint64_t(S - h + 1)));
        const int left = int(rng.below(uint64_t(S - w + 1)));
        for (int c = 0; c < C; ++c) {
          for (int y = top; y < top + h; ++y) {
            std::memset(out + c * plane + int64_t(y) * S + left, 0, sizeof(float) * size_t(w));
          }
        }
        break;
      }
    }
  }
}

void sample_kept_patches(const int64_t* idx, int B, int num_patches, int num_keep, uint64_t seed,
                         int64_t epoch, int32_t* keep) {
  VIT_CHECK(num_keep >= 1 && num_keep <= num_patches,
            "patch dropout must keep 1 to " + std::to_string(num_patches) + " patches (got " +
                std::to_string(num_keep) + ")");
  // Kept between calls so that a training step allocates nothing once the first one has run.
  thread_local std::vector<int32_t> perm;
  perm.resize(size_t(num_patches));
  for (int b = 0; b < B; ++b) {
    // The first num_keep steps of a Fisher-Yates shuffle: a uniform num_keep-subset.
    std::iota(perm.begin(), perm.end(), 0);
    Rng rng(seed, patch_stream(epoch, idx[b]));
    for (int j = 0; j < num_keep; ++j) {
      const int k = j + int(rng.below(uint64_t(num_patches - j)));
      std::swap(perm[size_t(j)], perm[size_t(k)]);
    }
    int32_t* out = keep + int64_t(b) * num_keep;
    std::copy(perm.begin(), perm.begin() + num_keep, out);
    std::sort(out, out + num_keep);
  }
}

}  // namespace vit
