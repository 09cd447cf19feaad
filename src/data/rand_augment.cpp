// timm's RandAugment on 8-bit planar images, each operation computed as Pillow 9.4 computes it
// (ImageOps, ImageEnhance, Image.transform / rotate; libImaging's Blend, Filter and Geometry), so
// that an op and its argument give Pillow's bytes. Compiled with -ffp-contract=off: Pillow's float
// and double expressions are rounded step by step, and a fused multiply-add would change bits.
#include "data/rand_augment.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/numbers.hpp"
#include "vit/error.hpp"

namespace vit::data {
namespace {

constexpr double kLevelDenom = 10.0;  // timm's _LEVEL_DENOM: magnitudes are on a 0-10 scale

uint8_t* plane(const PlanarImage& im, int c) {
  return im.p + int64_t(c) * im.height * im.width;
}
int64_t pixels(const PlanarImage& im) {
  return int64_t(im.height) * im.width;
}

// ---- Lookup tables (ImageOps: invert, posterize, solarize, autocontrast, equalize).

void apply_lut(const std::array<uint8_t, 256>& lut, uint8_t* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] = lut[p[i]];
}

std::array<int64_t, 256> histogram(const uint8_t* p, int64_t n) {
  std::array<int64_t, 256> h{};
  for (int64_t i = 0; i < n; ++i) ++h[p[i]];
  return h;
}

// Pillow's lists of lut values are clipped to [0, 255] (getlist's CLIP8).
uint8_t clip_lut(int64_t v) {
  return uint8_t(std::clamp<int64_t>(v, 0, 255));
}

// ImageOps.autocontrast(cutoff=0): each band's [lo, hi] stretched to [0, 255],
// int(i * scale + offset) with scale = 255 / (hi - lo), offset = -lo * scale.
void auto_contrast(const PlanarImage& im) {
  for (int c = 0; c < im.channels; ++c) {
    const std::array<int64_t, 256> h = histogram(plane(im, c), pixels(im));
    int lo = 0, hi = 255;
    while (lo < 255 && !h[size_t(lo)]) ++lo;
    while (hi > 0 && !h[size_t(hi)]) --hi;
    if (hi <= lo) continue;
    const double scale = 255.0 / (hi - lo);
    const double offset = -lo * scale;
    std::array<uint8_t, 256> lut{};
    for (int i = 0; i < 256; ++i) lut[size_t(i)] = clip_lut(int64_t(i * scale + offset));
    apply_lut(lut, plane(im, c), pixels(im));
  }
}

// ImageOps.equalize: step = (pixels - the last non-empty bin's count) // 255, and
// lut[i] = (step // 2 + count below i) // step; identity for one level or a zero step.
void equalize(const PlanarImage& im) {
  for (int c = 0; c < im.channels; ++c) {
    const std::array<int64_t, 256> h = histogram(plane(im, c), pixels(im));
    int levels = 0, last = 0;
    int64_t total = 0;
    for (int i = 0; i < 256; ++i) {
      if (h[size_t(i)]) ++levels, last = i, total += h[size_t(i)];
    }
    if (levels <= 1) continue;
    const int64_t step = (total - h[size_t(last)]) / 255;
    if (step == 0) continue;
    std::array<uint8_t, 256> lut{};
    int64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      lut[size_t(i)] = clip_lut(n / step);
      n += h[size_t(i)];
    }
    apply_lut(lut, plane(im, c), pixels(im));
  }
}

void point(const PlanarImage& im, const std::array<uint8_t, 256>& lut) {
  apply_lut(lut, im.p, pixels(im) * im.channels);
}

// ---- Enhancements (ImageEnhance: blend of a degenerate image and the image).

// Pillow's ImagingBlend(im1 = degenerate, im2 = image, alpha) in float: in1 + alpha * (in2 - in1)
// truncated; clipped to [0, 255] only when alpha is outside [0, 1]. alpha is the factor as a C
// float (Python's double converted).
void blend(const uint8_t* degenerate, uint8_t* image, int64_t n, float alpha) {
  if (alpha == 0.0f) {
    std::memcpy(image, degenerate, size_t(n));
    return;
  }
  if (alpha == 1.0f) return;
  const bool inside = alpha >= 0.0f && alpha <= 1.0f;
  for (int64_t i = 0; i < n; ++i) {
    const int a = degenerate[i], b = image[i];
    const float t = float(a) + alpha * float(b - a);
    if (inside) {
      image[i] = uint8_t(t);
    } else {
      image[i] = t <= 0.0f ? 0 : (t >= 255.0f ? 255 : uint8_t(t));
    }
  }
}

// Pillow's RGB -> L: (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
std::vector<uint8_t> luminance(const PlanarImage& im) {
  std::vector<uint8_t> l(size_t(pixels(im)));
  if (im.channels == 1) {
    std::memcpy(l.data(), im.p, l.size());
    return l;
  }
  const uint8_t *r = plane(im, 0), *g = plane(im, 1), *b = plane(im, 2);
  for (size_t i = 0; i < l.size(); ++i) {
    l[i] = uint8_t((r[i] * 19595 + g[i] * 38470 + b[i] * 7471 + 0x8000) >> 16);
  }
  return l;
}

// The degenerate image of each enhancement, [C, h, w].
std::vector<uint8_t> degenerate(AugOp op, const PlanarImage& im) {
  const int64_t n = pixels(im);
  std::vector<uint8_t> d(size_t(n * im.channels));
  switch (op) {
    case AugOp::kColor: {  // the image made gray (L) and back
      const std::vector<uint8_t> l = luminance(im);
      for (int c = 0; c < im.channels; ++c) std::memcpy(d.data() + c * n, l.data(), l.size());
      break;
    }
    case AugOp::kContrast: {  // a flat image of the gray image's mean, int(mean + 0.5)
      const std::vector<uint8_t> l = luminance(im);
      const std::array<int64_t, 256> h = histogram(l.data(), n);
      double sum = 0.0;  // ImageStat's mean: sum over the histogram, in double
      for (int j = 0; j < 256; ++j) sum += double(j) * double(h[size_t(j)]);
      const int mean = int(sum / double(n) + 0.5);
      std::fill(d.begin(), d.end(), uint8_t(mean));
      break;
    }
    case AugOp::kBrightness:  // black
      break;
    case AugOp::kSharpness: {
      // ImageFilter.SMOOTH: the 3x3 kernel (1 1 1 / 1 5 1 / 1 1 1) / 13 in float, 0.5 added,
      // truncated and clipped; the border rows and columns are copied (ImagingFilter3x3); an
      // image under 3 pixels a side is copied whole.
      std::memcpy(d.data(), im.p, d.size());
      if (im.width < 3 || im.height < 3) break;
      const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
      const int w = im.width;
      for (int c = 0; c < im.channels; ++c) {
        const uint8_t* in = plane(im, c);
        uint8_t* out = d.data() + c * n;
        for (int y = 1; y < im.height - 1; ++y) {
          const uint8_t *up = in + (y - 1) * w, *mid = in + y * w, *down = in + (y + 1) * w;
          for (int x = 1; x < w - 1; ++x) {
            float ss = 0.5f;  // kernel rows in Pillow's order: y + 1, y, y - 1
            ss += float(down[x - 1]) * k1 + float(down[x]) * k1 + float(down[x + 1]) * k1;
            ss += float(mid[x - 1]) * k1 + float(mid[x]) * k5 + float(mid[x + 1]) * k1;
            ss += float(up[x - 1]) * k1 + float(up[x]) * k1 + float(up[x + 1]) * k1;
            out[y * w + x] = ss <= 0.0f ? 0 : (ss >= 255.0f ? 255 : uint8_t(ss));
          }
        }
      }
      break;
    }
    default:
      break;
  }
  return d;
}

// ---- Geometry (Image.transform(size, AFFINE, a, filter, fillcolor)): output pixel (x, y) reads
// the input at (a0 x' + a1 y' + a2, a3 x' + a4 y' + a5), x' = x + 0.5, y' = y + 0.5; where that is
// outside the image the fill colour stays.

int floor_int(double v) {  // Pillow's FLOOR
  return v < 0.0 ? int(std::floor(v)) : int(v);
}
int coord(double v) {  // Pillow's COORD
  return v < 0.0 ? -1 : int(v);
}

// Where the bilinear or bicubic filter reads for one output pixel, the same for every channel
// (Geometry.c's bilinear_filter8 / bicubic_filter8): the columns xs (clamped to the image), the
// rows (the first clamped; a later one past the edge repeats the value of the one before: -1) and
// the fractions dx, dy. False when (xin, yin) is outside the image (the fill colour stays).
struct Taps {
  int64_t xs[4], rows[4];
  double dx, dy;
};
bool taps(int w, int h, double xin, double yin, int n, Taps& t) {
  if (xin < 0.0 || xin >= w || yin < 0.0 || yin >= h) return false;
  xin -= 0.5;
  yin -= 0.5;
  int x = floor_int(xin), y = floor_int(yin);
  t.dx = xin - x;
  t.dy = yin - y;
  if (n == 4) --x, --y;  // bicubic: from the sample before
  for (int k = 0; k < n; ++k) {
    t.xs[k] = std::clamp(x + k, 0, w - 1);
    const bool inside = y + k >= 0 && y + k < h;
    t.rows[k] = k == 0 ? int64_t(std::clamp(y, 0, h - 1)) * w : (inside ? int64_t(y + k) * w : -1);
  }
  return true;
}

uint8_t bilinear(const uint8_t* in, const Taps& t) {
  const uint8_t* row = in + t.rows[0];
  double v1 = row[t.xs[0]] + (row[t.xs[1]] - row[t.xs[0]]) * t.dx;
  double v2 = v1;
  if (t.rows[1] >= 0) {
    row = in + t.rows[1];
    v2 = row[t.xs[0]] + (row[t.xs[1]] - row[t.xs[0]]) * t.dx;
  }
  v1 = v1 + (v2 - v1) * t.dy;
  return uint8_t(v1);
}

// Pillow's cubic (a = -1) in Horner form; on a row's samples its p's are exact integers.
double cubic(double v1, double v2, double v3, double v4, double d) {
  const double p1 = v2;
  const double p2 = -v1 + v3;
  const double p3 = 2 * (v1 - v2) + v3 - v4;
  const double p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

uint8_t bicubic(const uint8_t* in, const Taps& t) {
  auto row = [&](int64_t offset) {
    const uint8_t* r = in + offset;
    const int a = r[t.xs[0]], b = r[t.xs[1]], c = r[t.xs[2]], e = r[t.xs[3]];
    return cubic(a, b, c, e, t.dx);  // the integer p's are exact in double too
  };
  double v[4];
  v[0] = row(t.rows[0]);  // the first row is always read (clamped)
  for (int k = 1; k < 4; ++k) v[k] = t.rows[k] < 0 ? v[k - 1] : row(t.rows[k]);
  const double r = cubic(v[0], v[1], v[2], v[3], t.dy);
  return r <= 0.0 ? 0 : (r >= 255.0 ? 255 : uint8_t(r));
}

void affine(const PlanarImage& im, const double a[6], Interpolation filter, const uint8_t* fill) {
  const int w = im.width, h = im.height;
  const int64_t n = pixels(im);
  std::vector<uint8_t> src(im.p, im.p + n * im.channels);
  for (int c = 0; c < im.channels; ++c) std::memset(plane(im, c), fill[c], size_t(n));
  if (filter != Interpolation::kNearest) {
    // ImagingGenericTransform with affine_transform and the filter.
    const int n_taps = filter == Interpolation::kBilinear ? 2 : 4;
    Taps t;
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        const double xi = x + 0.5, yi = y + 0.5;
        const double xx = a[0] * xi + a[1] * yi + a[2];
        const double yy = a[3] * xi + a[4] * yi + a[5];
        if (!taps(w, h, xx, yy, n_taps, t)) continue;
        for (int c = 0; c < im.channels; ++c) {
          const uint8_t* in = src.data() + c * n;
          plane(im, c)[int64_t(y) * w + x] = n_taps == 2 ? bilinear(in, t) : bicubic(in, t);
        }
      }
    }
    return;
  }
  auto put = [&](int x, int y, int xin, int yin) {
    for (int c = 0; c < im.channels; ++c) {
      plane(im, c)[int64_t(y) * w + x] = src[size_t(c * n + int64_t(yin) * w + xin)];
    }
  };
  if (a[1] == 0 && a[3] == 0) {
    // ImagingScaleAffine: positions accumulated from the pixel centres.
    std::vector<int> xin(size_t(w), -1);
    double xo = a[2] + a[0] * 0.5;
    for (int x = 0; x < w; ++x) {
      const int v = coord(xo);
      if (v >= 0 && v < w) xin[size_t(x)] = v;
      xo += a[0];
    }
    double yo = a[5] + a[4] * 0.5;
    for (int y = 0; y < h; ++y) {
      const int yi = coord(yo);
      if (yi >= 0 && yi < h) {
        for (int x = 0; x < w; ++x) {
          if (xin[size_t(x)] >= 0) put(x, y, xin[size_t(x)], yi);
        }
      }
      yo += a[4];
    }
    return;
  }
  auto fits = [&](int x, int y) {  // check_fixed
    return std::fabs(x * a[0] + y * a[1] + a[2]) < 32768.0 &&
           std::fabs(x * a[3] + y * a[4] + a[5]) < 32768.0;
  };
  if (fits(0, 0) && fits(w, h) && fits(0, h) && fits(w, 0)) {
    // affine_fixed: 16.16 fixed point.
    auto fix = [](double v) { return floor_int(v * 65536.0 + 0.5); };
    const int a0 = fix(a[0]), a1 = fix(a[1]), a3 = fix(a[3]), a4 = fix(a[4]);
    int a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5), a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
    for (int y = 0; y < h; ++y) {
      int xx = a2, yy = a5;
      for (int x = 0; x < w; ++x) {
        const int xi = xx >> 16;
        if (xi >= 0 && xi < w) {
          const int yi = yy >> 16;
          if (yi >= 0 && yi < h) put(x, y, xi, yi);
        }
        xx += a0;
        yy += a3;
      }
      a2 += a1;
      a5 += a4;
    }
    return;
  }
  double xo = a[2] + a[1] * 0.5 + a[0] * 0.5, yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
  for (int y = 0; y < h; ++y) {
    double xx = xo, yy = yo;
    for (int x = 0; x < w; ++x) {
      const int xi = coord(xx);
      if (xi >= 0 && xi < w) {
        const int yi = coord(yy);
        if (yi >= 0 && yi < h) put(x, y, xi, yi);
      }
      xx += a[0];
      yy += a[3];
    }
    xo += a[1];
    yo += a[4];
  }
}

// Python's round(v, 15): the correctly rounded 15-decimal value (halves to even, as glibc's
// printf on the exact binary value), read back.
double round15(double v) {
  return *parse_number<double>(fixed_text(v, 15));
}

// Image.rotate(degrees, filter, fillcolor=fill) without expand: the exact transposes for 0, 180
// and (square images) 90 and 270 degrees, else the affine map about the centre (w / 2, h / 2)
// with cos and sin rounded to 15 decimals.
void rotate(const PlanarImage& im, double degrees, Interpolation filter, const uint8_t* fill) {
  double angle = std::fmod(degrees, 360.0);  // Python's %: the sign of the divisor
  if (angle != 0.0 && angle < 0.0) angle += 360.0;
  if (angle == 0.0) return;
  const int w = im.width, h = im.height;
  const int64_t n = pixels(im);
  if (angle == 180.0 || ((angle == 90.0 || angle == 270.0) && w == h)) {
    std::vector<uint8_t> src(im.p, im.p + n * im.channels);
    for (int c = 0; c < im.channels; ++c) {
      const uint8_t* in = src.data() + c * n;
      uint8_t* out = plane(im, c);
      for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
          int sx = w - 1 - x, sy = h - 1 - y;          // 180
          if (angle == 90.0) sx = h - 1 - y, sy = x;   // counter-clockwise
          if (angle == 270.0) sx = y, sy = w - 1 - x;  // clockwise
          out[int64_t(y) * w + x] = in[int64_t(sy) * w + sx];
        }
      }
    }
    return;
  }
  const double rad = -(angle * (M_PI / 180.0));  // -math.radians(angle)
  double m[6] = {round15(std::cos(rad)),  round15(std::sin(rad)), 0.0,
                 round15(-std::sin(rad)), round15(std::cos(rad)), 0.0};
  const double cx = w / 2.0, cy = h / 2.0;
  const double tx = m[0] * -cx + m[1] * -cy + m[2];
  const double ty = m[3] * -cx + m[4] * -cy + m[5];
  m[2] = tx + cx;
  m[5] = ty + cy;
  affine(im, m, filter, fill);
}

}  // namespace

const char* to_string(AugOp op) {
  static const char* const names[kNumAugOps] = {
      "AutoContrast", "Equalize",    "Invert", "Rotate",        "Posterize",
      "Solarize",     "SolarizeAdd", "Color",  "Contrast",      "Brightness",
      "Sharpness",    "ShearX",      "ShearY", "TranslateXRel", "TranslateYRel"};
  return names[int(op)];
}

RandAugment RandAugment::parse(const std::string& spec) {
  RandAugment ra;
  const std::string usage =
      " (timm's RandAugment config string: rand, then -m<magnitude>, -n<ops>, -p<probability>, "
      "-mstd<std>, -mmax<max>, -inc<0|1>; e.g. rand-m9-mstd0.5-inc1)";
  VIT_CHECK(spec == "rand" || spec.rfind("rand-", 0) == 0,
            "`rand_augment` '" + spec + "' does not start with 'rand'" + usage);
  size_t pos = 4;
  while (pos < spec.size()) {
    const size_t end = std::min(spec.find('-', pos + 1), spec.size());
    const std::string section = spec.substr(pos + 1, end - pos - 1);
    pos = end;
    const size_t digit = section.find_first_of("0123456789");
    const std::string key = section.substr(0, std::min(digit, section.size()));
    const std::string value = digit == std::string::npos ? "" : section.substr(digit);
    const std::string bad = "`rand_augment` '" + spec + "': cannot read section '" + section + "'";
    VIT_CHECK(!value.empty(), bad + usage);
    const std::optional<double> read = parse_number<double>(value);
    VIT_CHECK(read && std::isfinite(*read), bad + usage);
    const double number = *read;
    const bool integral = number == std::floor(number) && value.find('.') == std::string::npos;
    auto integer = [&](int lo, int hi) {
      VIT_CHECK(integral && number >= lo && number <= hi,
                bad + ": " + key + " takes an integer in [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]" + usage);
      return int(number);
    };
    if (key == "m") {
      ra.magnitude = integer(0, 100);
    } else if (key == "n") {
      ra.num_layers = integer(0, 16);
    } else if (key == "p") {
      VIT_CHECK(number >= 0 && number <= 1, bad + ": p takes a probability in [0, 1]" + usage);
      ra.prob = number;
    } else if (key == "mstd") {
      VIT_CHECK(number >= 0, bad + ": mstd takes a standard deviation >= 0" + usage);
      ra.magnitude_std = number > 100 ? HUGE_VAL : number;
    } else if (key == "mmax") {
      ra.magnitude_max = integer(1, 100);
    } else if (key == "inc") {
      ra.increasing = integer(0, 1) == 1;
    } else {
      throw Error(bad + (key == "t" ? ": timm's other transform sets are not supported" : "") +
                  usage);
    }
  }
  return ra;
}

double aug_op_arg(AugOp op, bool increasing, double m, Rng& rng) {
  auto negate = [&](double v) { return rng.uniform() > 0.5 ? -v : v; };
  const double level = m / kLevelDenom;
  switch (op) {
    case AugOp::kRotate:
      return negate(level * 30.0);
    case AugOp::kPosterize: {
      const int bits = int(level * 4);
      return increasing ? 4 - bits : bits;
    }
    case AugOp::kSolarize: {
      const int thresh = std::min(256, int(level * 256));
      return increasing ? 256 - thresh : thresh;
    }
    case AugOp::kSolarizeAdd:
      return std::min(128, int(level * 110));
    case AugOp::kColor:
    case AugOp::kContrast:
    case AugOp::kBrightness:
    case AugOp::kSharpness:
      if (increasing) return std::max(0.1, 1.0 + negate(level * 0.9));
      return level * 1.8 + 0.1;
    case AugOp::kShearX:
    case AugOp::kShearY:
      return negate(level * 0.3);
    case AugOp::kTranslateXRel:
    case AugOp::kTranslateYRel:
      return negate(level * 0.45);
    default:
      return 0.0;  // AutoContrast, Equalize, Invert take no argument
  }
}

void apply_aug_op(AugOp op, double arg, Interpolation filter, const uint8_t* fill,
                  const PlanarImage& im) {
  VIT_CHECK(im.channels == 1 || im.channels == 3,
            "RandAugment works on gray or RGB images; this one has " + std::to_string(im.channels) +
                " channels");
  std::array<uint8_t, 256> lut{};
  switch (op) {
    case AugOp::kAutoContrast:
      return auto_contrast(im);
    case AugOp::kEqualize:
      return equalize(im);
    case AugOp::kInvert:
      for (int i = 0; i < 256; ++i) lut[size_t(i)] = uint8_t(255 - i);
      return point(im, lut);
    case AugOp::kPosterize: {
      const int bits = int(arg);
      if (bits >= 8) return;
      const int mask = ~((1 << (8 - std::max(bits, 0))) - 1);
      for (int i = 0; i < 256; ++i) lut[size_t(i)] = uint8_t(i & mask);
      return point(im, lut);
    }
    case AugOp::kSolarize:
      for (int i = 0; i < 256; ++i) lut[size_t(i)] = uint8_t(i < arg ? i : 255 - i);
      return point(im, lut);
    case AugOp::kSolarizeAdd:
      for (int i = 0; i < 256; ++i)
        lut[size_t(i)] = uint8_t(i < 128 ? std::min(255, i + int(arg)) : i);
      return point(im, lut);
    case AugOp::kColor:
    case AugOp::kContrast:
    case AugOp::kBrightness:
    case AugOp::kSharpness: {
      if (op == AugOp::kColor && im.channels == 1) return;  // gray is its own gray
      const std::vector<uint8_t> d = degenerate(op, im);
      blend(d.data(), im.p, pixels(im) * im.channels, float(arg));
      return;
    }
    case AugOp::kRotate:
      return rotate(im, arg, filter, fill);
    case AugOp::kShearX: {
      const double a[6] = {1, arg, 0, 0, 1, 0};
      return affine(im, a, filter, fill);
    }
    case AugOp::kShearY: {
      const double a[6] = {1, 0, 0, arg, 1, 0};
      return affine(im, a, filter, fill);
    }
    case AugOp::kTranslateXRel: {
      const double a[6] = {1, 0, arg * im.width, 0, 1, 0};
      return affine(im, a, filter, fill);
    }
    case AugOp::kTranslateYRel: {
      const double a[6] = {1, 0, 0, 0, 1, arg * im.height};
      return affine(im, a, filter, fill);
    }
  }
}

void rand_augment(const RandAugment& ra, Interpolation filter, const uint8_t* fill, Rng& rng,
                  const PlanarImage& image) {
  for (int layer = 0; layer < ra.num_layers; ++layer) {
    const AugOp op = AugOp(rng.below(kNumAugOps));
    if (ra.prob < 1.0 && rng.uniform() > ra.prob) continue;
    double m = ra.magnitude;
    if (std::isinf(ra.magnitude_std)) {
      m = rng.uniform() * ra.magnitude;
    } else if (ra.magnitude_std > 0) {
      m = ra.magnitude + ra.magnitude_std * rng.normal();
    }
    m = std::max(0.0, std::min(m, double(ra.magnitude_max)));
    apply_aug_op(op, aug_op_arg(op, ra.increasing, m, rng), filter, fill, image);
  }
}

}  // namespace vit::data
