// Pillow's 8-bit resampling (Image.resize with BILINEAR or BICUBIC), reimplemented from its
// definition: the same filter positions, weight normalisation, fixed-point rounding and pass order,
// so that results match Pillow 9.4 (Debian 12) byte for byte (tests/test_transforms.cpp holds
// Pillow's outputs as fixtures).
#include "data/resample.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "vit/error.hpp"

namespace vit::data {
namespace {

// 32-bit accumulators leave 8 bits for the result, and 2 for the overshoot of negative lobes.
constexpr int kFractionBits = 22;

double bilinear(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Cubic convolution with a = -0.5 (Keys), as Pillow writes it.
double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// The fixed-point taps of output samples [o0, o0 + count) of a side resampled from in_size to
// out_size: output o reads inputs lo[o - o0] .. + n[o - o0] - 1 with weights k[(o - o0) * ksize
// ..].
struct Taps {
  int ksize = 0;
  std::vector<int> lo, n;
  std::vector<int32_t> k;

  Taps(int in_size, int out_size, int o0, int count, Interpolation filter) {
    double (*f)(double) = filter == Interpolation::kBicubic ? bicubic : bilinear;
    const double base_support = filter == Interpolation::kBicubic ? 2.0 : 1.0;
    const double scale = double(in_size) / out_size;
    const double filterscale = std::max(scale, 1.0);
    const double support = base_support * filterscale;
    ksize = int(std::ceil(support)) * 2 + 1;
    const double inv = 1.0 / filterscale;
    lo.resize(size_t(count));
    n.resize(size_t(count));
    k.assign(size_t(count) * size_t(ksize), 0);
    std::vector<double> w(static_cast<size_t>(ksize));
    for (int i = 0; i < count; ++i) {
      const double center = (o0 + i + 0.5) * scale;
      const int xmin = std::max(0, int(center - support + 0.5));  // int(): toward zero, as C
      const int xmax = std::min(int(center + support + 0.5), in_size) - xmin;
      double sum = 0.0;
      for (int x = 0; x < xmax; ++x) {
        w[size_t(x)] = f((x + xmin - center + 0.5) * inv);
        sum += w[size_t(x)];
      }
      int32_t* ki = k.data() + size_t(i) * size_t(ksize);
      for (int x = 0; x < xmax; ++x) {
        const double v = sum != 0.0 ? w[size_t(x)] / sum : w[size_t(x)];
        const double fixed = v * double(1 << kFractionBits);
        ki[x] = int32_t(v < 0 ? -0.5 + fixed : 0.5 + fixed);
      }
      lo[size_t(i)] = xmin;
      n[size_t(i)] = xmax;
    }
  }
};

// A fixed-point sum (with its rounding half) to 8 bits: floor(acc / 2^22) clamped to [0, 255].
inline uint8_t clip8(int32_t acc) {
  return uint8_t(std::clamp(acc >> kFractionBits, 0, 255));
}

}  // namespace

Planes Planes::interleaved(const Image& image) {
  const int c = image.channels;
  return {image.pixels.data(), image.width, image.height, c, c, int64_t(image.width) * c, 1};
}

Planes Planes::planar(const uint8_t* p, int channels, int height, int width) {
  return {p, width, height, channels, 1, width, int64_t(width) * height};
}

Planes Planes::region(int x0, int y0, int rw, int rh) const {
  Planes r = *this;
  r.p = p + int64_t(y0) * y_step + int64_t(x0) * x_step;
  r.w = rw;
  r.h = rh;
  return r;
}

void resize_window(const Planes& in, int full_w, int full_h, int x0, int y0, int ow, int oh,
                   Interpolation filter, uint8_t* out) {
  VIT_CHECK(in.w >= 1 && in.h >= 1 && full_w >= 1 && full_h >= 1 && x0 >= 0 && y0 >= 0 && ow >= 1 &&
                oh >= 1 && x0 + ow <= full_w && y0 + oh <= full_h,
            "resize: bad sizes (" + std::to_string(in.w) + "x" + std::to_string(in.h) + " to " +
                std::to_string(full_w) + "x" + std::to_string(full_h) + ")");
  const int C = in.channels;
  const bool across = full_w != in.w, down = full_h != in.h;
  // The input rows the window's output rows read.
  const Taps rows = down ? Taps(in.h, full_h, y0, oh, filter) : Taps(1, 1, 0, 1, filter);
  const int r0 = down ? rows.lo[0] : y0;
  const int r1 = down ? rows.lo[size_t(oh - 1)] + rows.n[size_t(oh - 1)] : y0 + oh;
  const int nr = r1 - r0;
  // Horizontal pass: those rows at the window's columns, 8-bit, planar [C, nr, ow].
  thread_local std::vector<uint8_t> mid;
  mid.resize(size_t(C) * size_t(nr) * size_t(ow));
  if (across) {
    const Taps cols(in.w, full_w, x0, ow, filter);
    for (int c = 0; c < C; ++c) {
      for (int y = 0; y < nr; ++y) {
        const uint8_t* src = in.p + c * in.c_step + int64_t(r0 + y) * in.y_step;
        uint8_t* dst = mid.data() + (int64_t(c) * nr + y) * ow;
        for (int o = 0; o < ow; ++o) {
          const int32_t* k = cols.k.data() + size_t(o) * size_t(cols.ksize);
          const uint8_t* s = src + int64_t(cols.lo[size_t(o)]) * in.x_step;
          int32_t acc = 1 << (kFractionBits - 1);
          for (int t = 0; t < cols.n[size_t(o)]; ++t) acc += int32_t(s[t * in.x_step]) * k[t];
          dst[o] = clip8(acc);
        }
      }
    }
  } else {
    for (int c = 0; c < C; ++c) {
      for (int y = 0; y < nr; ++y) {
        const uint8_t* src = in.p + c * in.c_step + int64_t(r0 + y) * in.y_step;
        uint8_t* dst = mid.data() + (int64_t(c) * nr + y) * ow;
        for (int o = 0; o < ow; ++o) dst[o] = src[int64_t(x0 + o) * in.x_step];
      }
    }
  }
  // Vertical pass: a whole output row at a time, tap by tap (vectorised).
  if (!down) {
    std::memcpy(out, mid.data(), mid.size());
    return;
  }
  thread_local std::vector<int32_t> acc;
  acc.resize(size_t(ow));
  for (int c = 0; c < C; ++c) {
    for (int o = 0; o < oh; ++o) {
      std::fill(acc.begin(), acc.end(), int32_t(1) << (kFractionBits - 1));
      const int32_t* k = rows.k.data() + size_t(o) * size_t(rows.ksize);
      for (int t = 0; t < rows.n[size_t(o)]; ++t) {
        const uint8_t* src = mid.data() + (int64_t(c) * nr + rows.lo[size_t(o)] - r0 + t) * ow;
        const int32_t kt = k[t];
        for (int x = 0; x < ow; ++x) acc[size_t(x)] += int32_t(src[x]) * kt;
      }
      uint8_t* dst = out + (int64_t(c) * oh + o) * ow;
      for (int x = 0; x < ow; ++x) dst[x] = clip8(acc[size_t(x)]);
    }
  }
}

}  // namespace vit::data
