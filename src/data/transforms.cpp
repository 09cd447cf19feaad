// Preprocessing: channel conversion and resizing of decoded images, normalisation statistics and
// normalisation, epoch order, seeded per-sample augmentation (random crop with padding,
// horizontal flip, random erasing), batch assembly and patch dropout's draws.
#include "vit/transforms.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <numeric>
#include <string>

#include "core/rng.hpp"
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

// The taps of resampling n_in samples to n_out: a triangle filter of half-width
// max(1, n_in / n_out) source samples (bilinear interpolation when enlarging, an area-weighted
// average when shrinking). Output o reads the inputs lo[o] .. lo[o] + count[o] - 1 with the
// weights w[first[o] ...], whose sum is wsum[o]. Computed once per resize and used for every row
// (or column): the weights were recomputed for each before, 5x the time of a 500 x 375 photo's
// resize to 224 (perf, 2026-12-03), with the same arithmetic and so the same bits.
struct Taps {
  std::vector<int> lo, count, first;
  std::vector<double> w, wsum;
  Taps(int n_in, int n_out) {
    const double scale = double(n_in) / n_out;
    const double support = std::max(1.0, scale);
    for (int o = 0; o < n_out; ++o) {
      const double center = (o + 0.5) * scale - 0.5;
      const int a = std::max(0, int(std::floor(center - support)) + 1);
      const int b = std::min(n_in - 1, int(std::ceil(center + support)) - 1);
      lo.push_back(a);
      first.push_back(int(w.size()));
      double sum = 0;
      for (int i = a; i <= b; ++i) {
        const double wi = std::max(0.0, 1.0 - std::fabs(i - center) / support);
        w.push_back(wi);  // a zero weight adds nothing: the sums stay as they were without it
        sum += wi;
      }
      count.push_back(b - a + 1);
      wsum.push_back(sum);
    }
  }
};

// Resamples n_in samples (stride in_stride) to taps.lo.size() samples (stride out_stride).
template <typename T>
void resample(const Taps& taps, const T* in, int64_t in_stride, float* out, int64_t out_stride) {
  const int n_out = int(taps.lo.size());
  for (int o = 0; o < n_out; ++o) {
    const double* w = taps.w.data() + taps.first[size_t(o)];
    const T* p = in + int64_t(taps.lo[size_t(o)]) * in_stride;
    double acc = 0;
    for (int k = 0; k < taps.count[size_t(o)]; ++k) acc += w[k] * p[k * in_stride];
    const double wsum = taps.wsum[size_t(o)];
    // wsum is 0 only when n_in == 1: the one sample.
    out[o * out_stride] = wsum == 0 ? float(in[0]) : float(acc / wsum);
  }
}

// One row of w pixels from n interleaved channels (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) to
// `channels` of them. Colour to gray is luminance with stb_image's weights (77, 150, 29) / 256;
// alpha is dropped, or 255 where the image has none.
void convert_row(const uint8_t* in, int n, uint8_t* out, int channels, int w) {
  for (int x = 0; x < w; ++x, in += n, out += channels) {
    const int r = in[0], g = n >= 3 ? in[1] : r, b = n >= 3 ? in[2] : r;
    const int a = n == 2 ? in[1] : (n == 4 ? in[3] : 255);
    const uint8_t gray = n >= 3 ? uint8_t((r * 77 + g * 150 + b * 29) >> 8) : uint8_t(r);
    switch (channels) {
      case 1:
        out[0] = gray;
        break;
      case 2:
        out[0] = gray;
        out[1] = uint8_t(a);
        break;
      default:
        out[0] = uint8_t(r);
        out[1] = uint8_t(g);
        out[2] = uint8_t(b);
        if (channels == 4) out[3] = uint8_t(a);
    }
  }
}

void check_channels(int channels) {
  VIT_CHECK(channels >= 1 && channels <= 4,
            "the model expects " + std::to_string(channels) +
                " channels; image files can give 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA)");
}

// A decoded image that holds what it says, to be made `channels` x size x size.
void check_image(const Image& img, int channels, int size) {
  check_channels(channels);
  VIT_CHECK(size >= 1, "image size must be positive");
  const int w = img.width, h = img.height, n = img.channels;
  VIT_CHECK(w >= 1 && h >= 1 && n >= 1 && n <= 4 && img.pixels.size() == size_t(w) * h * n,
            "an image of " + std::to_string(w) + " x " + std::to_string(h) + " pixels of " +
                std::to_string(n) + " channels cannot hold " + std::to_string(img.pixels.size()) +
                " samples");
}

// Sample i of d as uint8 [C, S, S]: in place for an ImageArray, else read into `image` and
// de-interleaved into `planar`. shape: d's (fixed) shape, which the sample must have.
const uint8_t* planar_sample(const Dataset& d, const ImageArray* array, const SampleShape& shape,
                             int64_t i, Image& image, std::vector<uint8_t>& planar) {
  if (array) return array->image(i);
  d.read(i, image);
  VIT_CHECK(image.channels == shape.channels && image.height == shape.height &&
                image.width == shape.width,
            "sample " + std::to_string(i) + " is " + std::to_string(image.width) + "x" +
                std::to_string(image.height) + " pixels of " + std::to_string(image.channels) +
                " channels; the dataset declares " + std::to_string(shape.width) + "x" +
                std::to_string(shape.height) + " of " + std::to_string(shape.channels));
  const int64_t plane = int64_t(shape.height) * shape.width;
  planar.resize(size_t(shape.pixels()));
  for (int64_t j = 0; j < plane; ++j) {
    for (int c = 0; c < shape.channels; ++c) {
      planar[size_t(c * plane + j)] = image.pixels[size_t(j * shape.channels + c)];
    }
  }
  return planar.data();
}

}  // namespace

namespace {

// The region [x0, x0 + rw) x [y0, y0 + rh) of img converted to `channels` and resized to
// size x size (uint8 [channels, size, size] into `pixels`). Rows are converted and resized one at a
// time, then columns; the float buffers are the calling thread's, kept between calls (a fresh
// megabyte per image cost more in page faults than the resize itself).
void resize_region(const Image& img, int x0, int y0, int rw, int rh, int channels, int size,
                   bool invert, std::vector<uint8_t>& pixels) {
  const int w = img.width, n = img.channels;
  thread_local std::vector<uint8_t> row;
  thread_local std::vector<float> rows, out;
  row.resize(size_t(rw) * size_t(channels));
  rows.resize(size_t(channels) * size_t(rh) * size_t(size));
  out.resize(size_t(channels) * size_t(size) * size_t(size));
  const Taps across(rw, size), down(rh, size);
  // Rows: every channel of an output pixel from the same taps, each a sum in tap order.
  for (int y = 0; y < rh; ++y) {
    convert_row(img.pixels.data() + (int64_t(y0 + y) * w + x0) * n, n, row.data(), channels, rw);
    for (int o = 0; o < size; ++o) {
      const double* wt = across.w.data() + across.first[size_t(o)];
      const uint8_t* p = row.data() + int64_t(across.lo[size_t(o)]) * channels;
      double acc[4] = {0, 0, 0, 0};
      for (int k = 0; k < across.count[size_t(o)]; ++k) {
        for (int c = 0; c < channels; ++c) acc[c] += wt[k] * p[k * channels + c];
      }
      const double wsum = across.wsum[size_t(o)];
      for (int c = 0; c < channels; ++c) {
        // wsum is 0 only for a region 1 pixel wide: that pixel.
        rows[size_t((int64_t(c) * rh + y) * size + o)] =
            wsum == 0 ? float(row[size_t(c)]) : float(acc[c] / wsum);
      }
    }
  }
  // Columns: a whole output row at a time, tap by tap over contiguous floats (vectorised), each
  // sum in the same tap order as a column at a time would take.
  thread_local std::vector<double> acc;
  acc.resize(size_t(size));
  for (int c = 0; c < channels; ++c) {
    const float* plane = rows.data() + int64_t(c) * rh * size;
    for (int o = 0; o < size; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const double* wt = down.w.data() + down.first[size_t(o)];
      for (int k = 0; k < down.count[size_t(o)]; ++k) {
        const float* src = plane + int64_t(down.lo[size_t(o)] + k) * size;
        const double wk = wt[k];
        for (int x = 0; x < size; ++x) acc[size_t(x)] += wk * src[x];
      }
      const double wsum = down.wsum[size_t(o)];
      float* dst = out.data() + (int64_t(c) * size + o) * size;
      for (int x = 0; x < size; ++x) dst[x] = wsum == 0 ? plane[x] : float(acc[size_t(x)] / wsum);
    }
  }
  pixels.resize(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    // clamp(round(v), 0, 255) (halves away from zero) without a libm call: in [0, 255] the
    // integer part by conversion, plus one from a fraction of a half or more.
    const float v = std::clamp(out[i], 0.0f, 255.0f);
    const int t = int(v);
    const int q = t + (v - float(t) >= 0.5f ? 1 : 0);
    pixels[i] = uint8_t(invert ? 255 - q : q);
  }
}

}  // namespace

std::vector<uint8_t> resize_image(const Image& img, int channels, int size, bool invert) {
  check_image(img, channels, size);
  std::vector<uint8_t> pixels;
  resize_region(img, 0, 0, img.width, img.height, channels, size, invert, pixels);
  return pixels;
}

namespace {

// The image composited over `background` (alpha never dropped) as gray or RGB planes of floats
// [planes, h, w] in 0..255: gray when one plane is asked for.
std::vector<float> composite(const Image& img, int planes, uint8_t background) {
  const int64_t hw = int64_t(img.width) * img.height;
  const int n = img.channels;
  std::vector<float> out(size_t(planes * hw));
  for (int64_t j = 0; j < hw; ++j) {
    const uint8_t* p = img.pixels.data() + j * n;
    const float a = n == 2 ? p[1] / 255.0f : (n == 4 ? p[3] / 255.0f : 1.0f);
    const float r = p[0], g = n >= 3 ? p[1] : r, b = n >= 3 ? p[2] : r;
    const float bg = background * (1.0f - a);
    if (planes == 1) {
      const float gray = n >= 3 ? (r * 77 + g * 150 + b * 29) / 256.0f : r;
      out[size_t(j)] = gray * a + bg;
    } else {
      out[size_t(j)] = r * a + bg;
      out[size_t(hw + j)] = g * a + bg;
      out[size_t(2 * hw + j)] = b * a + bg;
    }
  }
  return out;
}

// The pixels of a w x h plane's outermost ring (its background, in a drawing or a scan).
std::vector<float> border(const float* plane, int w, int h) {
  std::vector<float> ring;
  for (int x = 0; x < w; ++x) {
    ring.push_back(plane[x]);
    if (h > 1) ring.push_back(plane[int64_t(h - 1) * w + x]);
  }
  for (int y = 1; y + 1 < h; ++y) {
    ring.push_back(plane[int64_t(y) * w]);
    if (w > 1) ring.push_back(plane[int64_t(y) * w + w - 1]);
  }
  return ring;
}

float median(std::vector<float> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// MNIST's fit of a light-on-dark gray plane g [h, w] into size x size: false when the plane holds
// no ink (then out is untouched).
bool fit_mnist(std::vector<float> g, int w, int h, int size, std::vector<uint8_t>& out) {
  const float bg = median(border(g.data(), w, h));
  const float ink = *std::max_element(g.begin(), g.end());
  if (ink - bg < 32.0f) return false;  // blank, or too faint to tell ink from noise
  for (float& v : g) v = std::clamp((v - bg) * 255.0f / (ink - bg), 0.0f, 255.0f);
  // Bounding box of the ink (a tenth of full strength: paper grain and JPEG noise stay out).
  int x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      if (g[size_t(int64_t(y) * w + x)] > 25.5f) {
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
    }
  }
  const int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  // The longer side to 20 of 28 (for other sizes in proportion), the other in proportion.
  const int box = std::max(1, int(std::lround(size * 20.0 / 28.0)));
  const int tw = std::max(1, int(std::lround(double(bw) * box / std::max(bw, bh))));
  const int th = std::max(1, int(std::lround(double(bh) * box / std::max(bw, bh))));
  std::vector<float> rows(size_t(bh) * tw), small(size_t(th) * tw);
  const Taps across(bw, tw), down(bh, th);
  for (int y = 0; y < bh; ++y) {
    resample(across, g.data() + int64_t(y0 + y) * w + x0, 1, rows.data() + int64_t(y) * tw, 1);
  }
  for (int x = 0; x < tw; ++x) resample(down, rows.data() + x, tw, small.data() + x, tw);
  // Centre of mass of the scaled digit, moved to the centre of the field.
  double mass = 0, mx = 0, my = 0;
  for (int y = 0; y < th; ++y) {
    for (int x = 0; x < tw; ++x) {
      const double v = small[size_t(int64_t(y) * tw + x)];
      mass += v, mx += v * (x + 0.5), my += v * (y + 0.5);
    }
  }
  const int ox = int(std::lround(size / 2.0 - mx / mass));
  const int oy = int(std::lround(size / 2.0 - my / mass));
  out.assign(size_t(size) * size, 0);
  for (int y = 0; y < th; ++y) {
    for (int x = 0; x < tw; ++x) {
      const int X = x + ox, Y = y + oy;
      if (X < 0 || Y < 0 || X >= size || Y >= size) continue;
      const float v = std::clamp(std::round(small[size_t(int64_t(y) * tw + x)]), 0.0f, 255.0f);
      out[size_t(int64_t(Y) * size + X)] = uint8_t(v);
    }
  }
  return true;
}

}  // namespace

PreparedImage prepare_image(const Image& img, int channels, int size, const InputStyle& style,
                            const PrepareOptions& options) {
  check_image(img, channels, size);
  const int w = img.width, h = img.height;
  const bool fit = options.fit_mnist == 1 || (options.fit_mnist == -1 && style.fit_mnist);
  VIT_CHECK(!fit || channels == 1, "MNIST's fit is for one-channel (gray) models; this one has " +
                                       std::to_string(channels) + " channels");
  const int planes = channels >= 3 ? 3 : 1;
  // Without MNIST's fit: the centred square, or the whole image.
  const bool square = options.crop == Crop::kCenter;
  const int cw = square ? std::min(w, h) : w, ch = square ? std::min(w, h) : h;
  const int x0 = (w - cw) / 2, y0 = (h - ch) / 2;
  PreparedImage r;
  if (!fit && options.invert == Invert::kOff && img.channels == planes) {
    // No alpha, no inversion, the planes the model takes (gray for gray, RGB for colour):
    // compositing would change nothing, so the file's pixels are resized directly (the path of
    // every dataset of photos).
    resize_region(img, x0, y0, cw, ch, channels, size, false, r.pixels);
    return r;
  }
  std::vector<float> px = composite(img, planes, options.background);
  if (options.invert == Invert::kAuto) {
    // The background's lightness: the border's median, in gray.
    std::vector<float> gray = planes == 1 ? px : composite(img, 1, options.background);
    const bool light = median(border(gray.data(), w, h)) > 127.5f;
    r.inverted = light == style.dark_background;
  } else {
    r.inverted = options.invert == Invert::kOn;
  }
  if (r.inverted) {
    for (float& v : px) v = 255.0f - v;
  }
  if (fit) r.fitted = fit_mnist(px, w, h, size, r.pixels);
  if (!r.fitted) {
    // The composited (and inverted) image's region, resized.
    Image flat;
    flat.width = cw, flat.height = ch, flat.channels = planes;
    flat.pixels.resize(size_t(planes) * cw * ch);
    const int64_t hw = int64_t(w) * h;
    for (int y = 0; y < ch; ++y) {
      for (int x = 0; x < cw; ++x) {
        const int64_t j = int64_t(y0 + y) * w + x0 + x, o = int64_t(y) * cw + x;
        for (int c = 0; c < planes; ++c) {
          flat.pixels[size_t(o * planes + c)] =
              uint8_t(std::clamp(std::round(px[size_t(c * hw + j)]), 0.0f, 255.0f));
        }
      }
    }
    resize_region(flat, 0, 0, cw, ch, channels, size, false, r.pixels);
  }
  return r;
}

std::vector<uint8_t> load_image(const std::string& path, int channels, int size, bool invert) {
  check_channels(channels);
  VIT_CHECK(size >= 1, "image size must be positive");
  return resize_image(decode_image(path), channels, size, invert);
}

Normalization Normalization::preset(Source source, int channels) {
  VIT_CHECK(source != kData,
            "the data's normalisation is computed from it (compute_normalization)");
  const char* name = source == kImagenet ? "imagenet" : "inception";
  VIT_CHECK(channels == 3, std::string("`normalize` ") + name +
                               " is for 3-channel (RGB) models; this one has " +
                               std::to_string(channels) + " (use `normalize` data)");
  if (source == kImagenet) return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
  return {{0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}};
}

Normalization compute_normalization(const Dataset& d) {
  VIT_CHECK(d.size() > 0, "cannot compute normalisation statistics of an empty dataset");
  const SampleShape shape = d.shape();
  VIT_CHECK(shape.height > 0 && shape.width > 0,
            "normalisation statistics need samples of one size; this dataset's vary");
  const ImageArray* array = d.as_array();
  const int C = shape.channels;
  const int64_t plane = int64_t(shape.height) * shape.width;
  std::vector<double> sum(static_cast<size_t>(C)), sq(static_cast<size_t>(C));
  Image image;
  std::vector<uint8_t> planar;
  for (int64_t i = 0; i < d.size(); ++i) {
    const uint8_t* px = planar_sample(d, array, shape, i, image, planar);
    for (int c = 0; c < C; ++c) {
      const uint8_t* p = px + c * plane;
      uint64_t s1 = 0, s2 = 0;  // exact integer sums per image
      for (int64_t j = 0; j < plane; ++j) {
        s1 += p[j];
        s2 += uint32_t(p[j]) * p[j];
      }
      sum[size_t(c)] += double(s1);  // each channel's images summed in order
      sq[size_t(c)] += double(s2);
    }
  }
  Normalization n;
  for (int c = 0; c < C; ++c) {
    const double count = double(d.size()) * plane;
    const double mean = sum[size_t(c)] / count / 255.0;
    const double var = sq[size_t(c)] / count / (255.0 * 255.0) - mean * mean;
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
  const SampleShape shape = d.shape();
  VIT_CHECK(shape.height > 0 && shape.height == shape.width,
            "batches need square samples of one size; this dataset's are " +
                std::to_string(shape.width) + "x" + std::to_string(shape.height) +
                " (0: they vary)");
  const int C = shape.channels, S = shape.height;
  const int64_t plane = int64_t(S) * S, per_image = C * plane;
  VIT_CHECK(int(norm.mean.size()) == C && int(norm.std.size()) == C,
            "normalisation has " + std::to_string(norm.mean.size()) + " channels, the data " +
                std::to_string(C));
  const ImageArray* array = d.as_array();  // the fast path: pixels read in place
  std::exception_ptr error;                // the first sample that could not be read
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; ++b) {
    const int64_t i = idx[b];
    const uint8_t* src;
    if (array) {
      src = array->image(i);
      labels[b] = array->labels[size_t(i)];
    } else {
      // Kept between calls: a dataset read through read() allocates only while samples grow.
      thread_local Image image;
      thread_local std::vector<uint8_t> planar;
      try {
        src = planar_sample(d, nullptr, shape, i, image, planar);
        labels[b] = d.label(i);
      } catch (...) {
#pragma omp critical(vit_make_batch_error)
        if (!error) error = std::current_exception();
        continue;
      }
    }
    float* out = images + b * per_image;
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
  if (error) std::rethrow_exception(error);
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
