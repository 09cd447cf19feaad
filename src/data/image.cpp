// Image files for `vit predict`: decoding with stb_image, channel conversion, and resizing with a
// triangle filter widened when shrinking (so downscaling averages instead of aliasing).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

// Only the formats a user would hand to a classifier: less decoder code exposed to hostile files.
// 8192 pixels a side bounds a decode at 192 MiB (RGBA).
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_PNM
#define STBI_MAX_DIMENSIONS 8192
#include <stb/stb_image.h>

#include "vit/data.hpp"
#include "vit/error.hpp"

namespace vit {
namespace {

// Resamples n_in samples (stride in_stride) to n_out samples (stride out_stride). The filter is a
// triangle of half-width max(1, n_in / n_out) source pixels: bilinear interpolation when
// enlarging, an area-weighted average when shrinking.
template <typename T>
void resample(const T* in, int n_in, int64_t in_stride, float* out, int n_out, int64_t out_stride) {
  const double scale = double(n_in) / n_out;
  const double support = std::max(1.0, scale);
  for (int o = 0; o < n_out; ++o) {
    const double center = (o + 0.5) * scale - 0.5;
    const int lo = std::max(0, int(std::floor(center - support)) + 1);
    const int hi = std::min(n_in - 1, int(std::ceil(center + support)) - 1);
    double acc = 0, wsum = 0;
    for (int i = lo; i <= hi; ++i) {
      const double w = 1.0 - std::fabs(i - center) / support;
      if (w <= 0) continue;
      acc += w * in[i * in_stride];
      wsum += w;
    }
    if (wsum == 0) {  // only when n_in == 1
      acc = in[0];
      wsum = 1;
    }
    out[o * out_stride] = float(acc / wsum);
  }
}

}  // namespace

std::vector<uint8_t> load_image(const std::string& path, int channels, int size, bool invert) {
  VIT_CHECK(channels >= 1 && channels <= 4,
            "the model expects " + std::to_string(channels) +
                " channels; image files can give 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA)");
  VIT_CHECK(size >= 1, "image size must be positive");
  int w = 0, h = 0, n = 0;
  stbi_uc* raw = stbi_load(path.c_str(), &w, &h, &n, channels);
  if (!raw) {
    throw Error("cannot read image '" + path + "': " + stbi_failure_reason() +
                " (supported: PNG, JPEG, BMP, PGM/PPM, up to 8192 pixels a side)");
  }
  // Rows resized straight from the interleaved bytes, then columns: no full-size float copy.
  std::vector<float> rows(size_t(channels) * h * size), out(size_t(channels) * size * size);
  for (int c = 0; c < channels; ++c) {
    for (int y = 0; y < h; ++y) {
      resample(raw + (int64_t(y) * w) * channels + c, w, channels,
               rows.data() + (int64_t(c) * h + y) * size, size, 1);
    }
    for (int x = 0; x < size; ++x) {
      resample(rows.data() + int64_t(c) * h * size + x, h, size,
               out.data() + int64_t(c) * size * size + x, size, size);
    }
  }
  stbi_image_free(raw);
  std::vector<uint8_t> pixels(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const float v = std::clamp(std::round(out[i]), 0.0f, 255.0f);  // filter overshoot is nil
    pixels[i] = uint8_t(invert ? 255.0f - v : v);
  }
  return pixels;
}

}  // namespace vit
