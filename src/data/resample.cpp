// Pillow's 8-bit resampling (Image.resize with BILINEAR or BICUBIC), reimplemented from its
// definition: the same filter positions, weight normalisation, fixed-point rounding and pass order,
// so that results match Pillow 9.4 (Debian 12) byte for byte (tests/test_transforms.cpp holds
// Pillow's outputs as fixtures).
#include "data/resample.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <optional>

#include "ops/ops.hpp"
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
  std::vector<double> weights;  // the same normalised weights before their rounding

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
    weights.assign(k.size(), 0.0);
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
        weights[size_t(i) * size_t(ksize) + size_t(x)] = v;
        const double fixed = v * double(1 << kFractionBits);
        ki[x] = int32_t(v < 0 ? -0.5 + fixed : 0.5 + fixed);
      }
      lo[size_t(i)] = xmin;
      n[size_t(i)] = xmax;
    }
  }
};

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
  if (filter == Interpolation::kNearest) {
    // Pillow's scaling affine transform: source index trunc(s * (o + 1/2)), s = in / out, the
    // positions accumulated from the first one in double as Pillow adds them.
    auto table = [](int n_in, int n_out, int o0, int count) {
      std::vector<int> t(static_cast<size_t>(count));
      const double s = double(n_in) / n_out;
      double pos = s * 0.5;
      for (int o = 0; o < o0 + count; ++o, pos += s) {
        if (o >= o0) t[size_t(o - o0)] = std::clamp(int(pos), 0, n_in - 1);
      }
      return t;
    };
    const std::vector<int> xs = table(in.w, full_w, x0, ow), ys = table(in.h, full_h, y0, oh);
    for (int c = 0; c < in.channels; ++c) {
      for (int y = 0; y < oh; ++y) {
        const uint8_t* row = in.p + c * in.c_step + int64_t(ys[size_t(y)]) * in.y_step;
        uint8_t* dst = out + (int64_t(c) * oh + y) * ow;
        for (int x = 0; x < ow; ++x) dst[x] = row[int64_t(xs[size_t(x)]) * in.x_step];
      }
    }
    return;
  }
  const ops::Context ctx;  // the calling thread alone: batches run a sample per thread
  const bool across = full_w != in.w, down = full_h != in.h;
  // The taps, their inputs counted from the first input they read: rows [r0, r1) and columns
  // [c0, c1) of `in` are all the window needs.
  std::optional<Taps> cols, rows;
  int c0 = x0, c1 = x0 + ow, r0 = y0, r1 = y0 + oh;
  if (across) {
    cols.emplace(in.w, full_w, x0, ow, filter);
    c0 = cols->lo.front(), c1 = cols->lo.back() + cols->n.back();
    for (int& l : cols->lo) l -= c0;
  }
  if (down) {
    rows.emplace(in.h, full_h, y0, oh, filter);
    r0 = rows->lo.front(), r1 = rows->lo.back() + rows->n.back();
    for (int& l : rows->lo) l -= r0;
  }
  const int cw = c1 - c0, nr = r1 - r0;
  thread_local std::vector<uint8_t> region, t_in, t_mid, mid;
  // Kept for the thread's next image up to 8 MB each (a 1600 x 1600 RGB region); a larger one's
  // are let go when it is done, so that one huge photo does not hold its buffers for good.
  struct Release {
    ~Release() {
      for (std::vector<uint8_t>* v : {&region, &t_in, &t_mid, &mid}) {
        if (v->capacity() > (size_t(8) << 20)) std::vector<uint8_t>().swap(*v);
      }
    }
  } release;
  const int C = in.channels;
  const uint8_t* corner = in.p + int64_t(r0) * in.y_step + int64_t(c0) * in.x_step;
  // Interleaved RGB, the common case, resized across: split into planes and transposed in one pass
  // (the pass across rows reads the transposed planes).
  const bool rgb = C == 3 && in.x_step == 3 && in.c_step == 1;
  if (across && rgb) {
    t_in.resize(size_t(3) * size_t(cw) * size_t(nr));
    ops::transpose_rgb_u8(ctx, t_in.data(), int64_t(cw) * nr, nr, corner, in.y_step, nr, cw);
  }
  // Any other interleaved image's region as planes first, every channel in one pass over its
  // pixels.
  const bool gather = in.x_step != 1 && !(across && rgb);
  if (gather) {
    region.resize(size_t(C) * size_t(nr) * size_t(cw));
    const int64_t plane = int64_t(nr) * cw;
    for (int y = 0; y < nr; ++y) {
      const uint8_t* row = corner + int64_t(y) * in.y_step;
      uint8_t* dst = region.data() + int64_t(y) * cw;
      for (int x = 0; x < cw; ++x) {
        for (int c = 0; c < C; ++c) dst[c * plane + x] = row[x * in.x_step + c * in.c_step];
      }
    }
  }
  for (int c = 0; c < C; ++c) {
    // The region [r0, r1) x [c0, c1) of this plane as rows of cw bytes (row stride ld).
    const uint8_t* src = gather ? region.data() + int64_t(c) * nr * cw : corner + c * in.c_step;
    int64_t ld = gather ? cw : in.y_step;
    // Across the rows (Pillow's first pass): down the transposed region, then back.
    if (across) {
      if (!rgb) {
        t_in.resize(size_t(cw) * size_t(nr));
        ops::transpose_u8(ctx, t_in.data(), nr, src, ld, nr, cw);
      }
      const uint8_t* transposed = t_in.data() + (rgb ? int64_t(c) * cw * nr : 0);
      t_mid.resize(size_t(ow) * size_t(nr));
      mid.resize(size_t(nr) * size_t(ow));
      ops::resample_down_u8(ctx, t_mid.data(), nr, transposed, nr, nr, ow, cols->lo.data(),
                            cols->n.data(), cols->k.data(), cols->ksize);
      ops::transpose_u8(ctx, mid.data(), ow, t_mid.data(), nr, ow, nr);
      src = mid.data(), ld = ow;
    }
    uint8_t* dst = out + int64_t(c) * oh * ow;
    if (down) {
      ops::resample_down_u8(ctx, dst, ow, src, ld, ow, oh, rows->lo.data(), rows->n.data(),
                            rows->k.data(), rows->ksize);
    } else {
      for (int y = 0; y < oh; ++y) std::memcpy(dst + int64_t(y) * ow, src + y * ld, size_t(ow));
    }
  }
}

void resize_float(const float* in, int C, int h, int w, int oh, int ow, Interpolation filter,
                  float* out) {
  VIT_CHECK(C >= 1 && h >= 1 && w >= 1 && oh >= 1 && ow >= 1, "resize: bad sizes");
  VIT_CHECK(filter != Interpolation::kNearest, "resize_float: bilinear or bicubic only");
  const Taps across(w, ow, 0, ow, filter), down(h, oh, 0, oh, filter);
  std::vector<double> mid(size_t(h) * size_t(ow));
  for (int c = 0; c < C; ++c) {
    const float* plane = in + int64_t(c) * h * w;
    for (int y = 0; y < h; ++y) {  // across the rows, then down: as torch's separable passes
      for (int o = 0; o < ow; ++o) {
        const double* k = across.weights.data() + size_t(o) * size_t(across.ksize);
        double acc = 0;
        for (int t = 0; t < across.n[size_t(o)]; ++t) {
          acc += k[t] * plane[int64_t(y) * w + across.lo[size_t(o)] + t];
        }
        mid[size_t(y) * size_t(ow) + size_t(o)] = acc;
      }
    }
    for (int o = 0; o < oh; ++o) {
      const double* k = down.weights.data() + size_t(o) * size_t(down.ksize);
      for (int x = 0; x < ow; ++x) {
        double acc = 0;
        for (int t = 0; t < down.n[size_t(o)]; ++t) {
          acc += k[t] * mid[size_t(down.lo[size_t(o)] + t) * size_t(ow) + size_t(x)];
        }
        out[(int64_t(c) * oh + o) * ow + x] = float(acc);
      }
    }
  }
}

}  // namespace vit::data
