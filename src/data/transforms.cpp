// Preprocessing: channel conversion, timm's eval transform (resize as Pillow, centre crop or pad)
// of decoded images, normalisation statistics and normalisation, epoch order, seeded per-sample
// augmentation (random resized crop, random crop with padding, horizontal flip, RandAugment,
// random erasing), batch assembly, Mixup / CutMix of whole batches and patch dropout's and
// drop-path's draws.
#include "vit/transforms.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <numeric>
#include <string>

#include "core/fields_json.hpp"
#include "core/rng.hpp"
#include "data/rand_augment.hpp"
#include "data/resample.hpp"
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
uint64_t mix_stream(int64_t epoch, int64_t step) {
  return (uint64_t(epoch) << 40) ^ uint64_t(step) ^ 0x4D49580000000000ull;
}
uint64_t patch_stream(int64_t epoch, int64_t index) {
  return (uint64_t(epoch) << 40) ^ uint64_t(index) ^ 0x5041540000000000ull;
}
uint64_t drop_stream(int64_t epoch, int64_t index) {
  return (uint64_t(epoch) << 40) ^ uint64_t(index) ^ 0x4450000000000000ull;
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

int Preprocess::scale_size(int size) const {
  return int(std::floor(size / crop_pct));
}

std::string Preprocess::to_json() const {
  return fields_to_json(*this).dump();
}

Preprocess Preprocess::from_json(const std::string& json) {
  Preprocess p;
  fields_from_json(p, json, "preprocessing", /*strict_keys=*/false);
  validate_fields(p, "preprocessing");
  return p;
}

Image convert_image(const Image& img, int channels, uint8_t background) {
  check_channels(channels);
  const int n = img.channels;
  if (n == channels) return img;
  Image out;
  out.width = img.width, out.height = img.height, out.channels = channels;
  out.pixels.resize(size_t(img.width) * size_t(img.height) * size_t(channels));
  const bool composite = (channels == 1 || channels == 3) && (n == 2 || n == 4);
  const int64_t hw = int64_t(img.width) * img.height;
  for (int64_t j = 0; j < hw; ++j) {
    const uint8_t* p = img.pixels.data() + j * n;
    uint8_t* o = out.pixels.data() + j * channels;
    if (!composite) {
      convert_row(p, n, o, channels, 1);
      continue;
    }
    // Over the background: v * a + bg * (1 - a), rounded, in integers.
    const int a = p[n - 1];
    auto over = [&](int v) { return uint8_t((v * a + background * (255 - a) + 127) / 255); };
    const int r = p[0], g = n == 4 ? p[1] : r, b = n == 4 ? p[2] : r;
    if (channels == 1) {
      o[0] = over(n == 4 ? (r * 77 + g * 150 + b * 29) >> 8 : r);
    } else {
      o[0] = over(r), o[1] = over(g), o[2] = over(b);
    }
  }
  return out;
}

Image convert_image(Image&& img, int channels, uint8_t background) {
  if (img.channels == channels) {
    check_channels(channels);
    return std::move(img);
  }
  return convert_image(static_cast<const Image&>(img), channels, background);
}

std::vector<uint8_t> resize_image(const Image& img, int channels, int size, bool invert) {
  check_image(img, channels, size);
  const Image conv = convert_image(img, channels, 255);
  std::vector<uint8_t> pixels(size_t(channels) * size_t(size) * size_t(size));
  data::resize_planes(data::Planes::interleaved(conv), size, size, Interpolation::kBilinear,
                      pixels.data());
  if (invert) {
    for (uint8_t& v : pixels) v = uint8_t(255 - v);
  }
  return pixels;
}

Extent resized_extent(int w, int h, int size, const Preprocess& p, int scale) {
  const int s = scale > 0 ? scale : p.scale_size(size);
  switch (p.crop_mode) {
    case CropMode::kSquash:
      return {s, s};
    case CropMode::kBorder: {
      const double ratio = std::max(double(h) / s, double(w) / s);
      return {std::max(1, int(std::nearbyint(w / ratio))),
              std::max(1, int(std::nearbyint(h / ratio)))};
    }
    case CropMode::kCenter:
    default:
      // torchvision: the longer side int(s * longer / shorter) in double.
      if (w <= h) return {s, int(double(int64_t(s) * h) / w)};
      return {int(double(int64_t(s) * w) / h), s};
  }
}

int centre_offset(int n, int size) {
  if (n >= size) return int(std::nearbyint((n - size) / 2.0));  // halves to even, as Python
  return -((size - n) / 2);
}

namespace {

// The resized (full_w x full_h) image's centred size x size into out [C, size, size], fill[c]
// where it does not reach; only the samples inside are resampled (each is the same whether or
// not its neighbours are: a window of Pillow's result).
void resize_and_centre(const data::Planes& in, int full_w, int full_h, int size,
                       Interpolation filter, const std::vector<uint8_t>& fill, uint8_t* out) {
  const int C = in.channels;
  const int ox = centre_offset(full_w, size), oy = centre_offset(full_h, size);
  const int x0 = std::max(0, ox), y0 = std::max(0, oy);
  const int x1 = std::min(full_w, ox + size), y1 = std::min(full_h, oy + size);
  if (x0 == ox && y0 == oy && x1 - x0 == size && y1 - y0 == size) {
    data::resize_window(in, full_w, full_h, x0, y0, size, size, filter, out);
    return;
  }
  const int ww = x1 - x0, wh = y1 - y0;
  thread_local std::vector<uint8_t> window;
  window.resize(size_t(C) * size_t(ww) * size_t(wh));
  data::resize_window(in, full_w, full_h, x0, y0, ww, wh, filter, window.data());
  const int64_t plane = int64_t(size) * size;
  for (int c = 0; c < C; ++c) {
    std::fill_n(out + c * plane, plane, fill.empty() ? uint8_t(0) : fill[size_t(c)]);
    for (int y = 0; y < wh; ++y) {
      std::copy_n(window.data() + (int64_t(c) * wh + y) * ww, ww,
                  out + c * plane + int64_t(y0 - oy + y) * size + (x0 - ox));
    }
  }
}

}  // namespace

std::vector<uint8_t> eval_transform(const Image& img, int size, const Preprocess& p,
                                    const std::vector<uint8_t>& fill) {
  check_image(img, img.channels, size);
  VIT_CHECK(fill.empty() || int(fill.size()) == img.channels,
            "the border colour needs one value per channel");
  const Extent e = resized_extent(img.width, img.height, size, p);
  std::vector<uint8_t> out(size_t(img.channels) * size_t(size) * size_t(size));
  resize_and_centre(data::Planes::interleaved(img), e.width, e.height, size, p.interpolation, fill,
                    out.data());
  return out;
}

std::vector<uint8_t> border_fill(const Normalization& norm) {
  std::vector<uint8_t> fill;
  for (float m : norm.mean)
    fill.push_back(uint8_t(std::clamp(std::nearbyint(255.0 * m), 0.0, 255.0)));
  return fill;
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
  // Images of a mixed background (photos) are never inverted automatically.
  const Invert invert = options.invert == Invert::kAuto && style.background == Background::kMixed
                            ? Invert::kOff
                            : options.invert;
  PreparedImage r;
  if (!fit && invert == Invert::kOff && img.channels == channels) {
    // No inversion, the channels the model takes: compositing would change nothing, so the
    // file's pixels go to the eval transform directly (the path of every photo).
    r.pixels = eval_transform(img, size, options.preprocess, options.border_fill);
    return r;
  }
  std::vector<float> px = composite(img, planes, options.background);
  if (invert == Invert::kAuto) {
    // The background's lightness: the border's median, in gray.
    std::vector<float> gray = planes == 1 ? px : composite(img, 1, options.background);
    const bool light = median(border(gray.data(), w, h)) > 127.5f;
    r.inverted = light == (style.background == Background::kDark);
  } else {
    r.inverted = invert == Invert::kOn;
  }
  if (r.inverted) {
    for (float& v : px) v = 255.0f - v;
  }
  if (fit) r.fitted = fit_mnist(px, w, h, size, r.pixels);
  if (!r.fitted) {
    // The composited (and inverted) image in the model's channels, through the eval transform.
    Image flat;
    flat.width = w, flat.height = h, flat.channels = planes;
    flat.pixels.resize(size_t(planes) * size_t(w) * size_t(h));
    const int64_t hw = int64_t(w) * h;
    for (int64_t j = 0; j < hw; ++j) {
      for (int c = 0; c < planes; ++c) {
        flat.pixels[size_t(j * planes + c)] =
            uint8_t(std::clamp(std::round(px[size_t(c * hw + j)]), 0.0f, 255.0f));
      }
    }
    r.pixels = eval_transform(convert_image(flat, channels), size, options.preprocess,
                              options.border_fill);
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
  const char* name = source == kImagenet ? "imagenet" : source == kClip ? "clip" : "inception";
  VIT_CHECK(channels == 3, std::string("`normalize` ") + name +
                               " is for 3-channel (RGB) models; this one has " +
                               std::to_string(channels) + " (use `normalize` data)");
  if (source == kImagenet) return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
  if (source == kClip) {
    return {{0.48145466f, 0.4578275f, 0.40821073f}, {0.26862954f, 0.26130258f, 0.27577711f}};
  }
  return {{0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}};
}

Normalization compute_normalization(const Dataset& d) {
  VIT_CHECK(d.size() > 0, "cannot compute normalisation statistics of an empty dataset");
  const SampleShape shape = d.shape();
  VIT_CHECK(shape.height > 0 && shape.width > 0,
            "normalisation statistics need samples of one size; this dataset's vary");
  const ImageArray* array = d.as_array();
  const ImageList* list = d.as_list();  // its whole images, not their crops
  const int C = shape.channels;
  std::vector<double> sum(static_cast<size_t>(C)), sq(static_cast<size_t>(C));
  double count = 0;
  Image image;
  std::vector<uint8_t> planar;
  for (int64_t i = 0; i < d.size(); ++i) {
    const uint8_t* px;
    int64_t plane = int64_t(shape.height) * shape.width;
    if (list) {
      px = list->image(i);
      plane = int64_t(list->widths[size_t(i)]) * list->heights[size_t(i)];
    } else {
      px = planar_sample(d, array, shape, i, image, planar);
    }
    count += double(plane);
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

namespace {
// vit::Error unless norm has a mean and a positive, finite std for each of the channels.
void check_normalization(const Normalization& norm, int channels, const char* who) {
  VIT_CHECK(
      channels >= 1 && norm.mean.size() >= size_t(channels) && norm.std.size() >= size_t(channels),
      std::string(who) + ": the normalisation has " + std::to_string(norm.mean.size()) +
          " means and " + std::to_string(norm.std.size()) + " standard deviations for " +
          std::to_string(channels) + " channels");
  for (int c = 0; c < channels; ++c) {
    VIT_CHECK(std::isfinite(norm.mean[c]) && std::isfinite(norm.std[c]) && norm.std[c] > 0,
              std::string(who) + ": channel " + std::to_string(c) +
                  "'s normalisation needs a finite mean and a positive std");
  }
}
}  // namespace

void normalize_image(const uint8_t* pixels, int channels, int size, const Normalization& norm,
                     float* out) {
  check_normalization(norm, channels, "normalize_image");
  const int64_t plane = int64_t(size) * size;
  for (int c = 0; c < channels; ++c) {
    const float scale = 1.0f / (255.0f * norm.std[c]);
    const float shift = norm.mean[c] / norm.std[c];
    for (int64_t j = 0; j < plane; ++j) out[c * plane + j] = pixels[c * plane + j] * scale - shift;
  }
}

std::vector<uint8_t> denormalize_image(const float* x, int channels, int size,
                                       const Normalization& norm) {
  check_normalization(norm, channels, "denormalize_image");
  const int64_t plane = int64_t(size) * size;
  std::vector<uint8_t> out(size_t(channels * plane));
  for (int c = 0; c < channels; ++c) {
    for (int64_t j = 0; j < plane; ++j) {
      const double p = (double(x[c * plane + j]) * norm.std[c] + norm.mean[c]) * 255.0;
      out[size_t(c * plane + j)] = uint8_t(std::clamp(std::lround(p), 0L, 255L));
    }
  }
  return out;
}

namespace {

// CropDraws from a sample's seeded stream.
struct RngDraws final : CropDraws {
  Rng& rng;
  explicit RngDraws(Rng& r) : rng(r) {}
  double uniform(double lo, double hi) override { return lo + (hi - lo) * rng.uniform(); }
  int64_t below(int64_t n) override { return int64_t(rng.below(uint64_t(n))); }
};

}  // namespace

CropBox random_resized_crop_box(int width, int height, double scale, double ratio,
                                CropDraws& draws) {
  VIT_CHECK(width >= 1 && height >= 1, "a random resized crop needs a non-empty image");
  VIT_CHECK(scale > 0 && scale <= 1 && ratio >= 1,
            "a random resized crop needs a scale in (0, 1] and a ratio of at least 1");
  const double area = double(width) * height;
  const double log_lo = std::log(1.0 / ratio), log_hi = std::log(ratio);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * draws.uniform(scale, 1.0);
    const double aspect = std::exp(draws.uniform(log_lo, log_hi));
    const int w = int(std::nearbyint(std::sqrt(target * aspect)));
    const int h = int(std::nearbyint(std::sqrt(target / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int top = int(draws.below(height - h + 1));
      const int left = int(draws.below(width - w + 1));
      return {left, top, w, h};
    }
  }
  // The whole image, clamped to the ratio range, centred.
  const double in_ratio = double(width) / height;
  int w = width, h = height;
  if (in_ratio < 1.0 / ratio) {
    h = int(std::nearbyint(w / (1.0 / ratio)));
  } else if (in_ratio > ratio) {
    w = int(std::nearbyint(h * ratio));
  }
  return {(width - w) / 2, (height - h) / 2, w, h};
}

void make_batch(const Dataset& d, const int64_t* idx, int B, const Normalization& norm,
                const AugmentOptions& aug, uint64_t seed, int64_t epoch, float* images,
                int32_t* labels, int threads) {
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
  if (aug.rrc) {
    VIT_CHECK(aug.rrc_scale > 0 && aug.rrc_scale <= 1 && aug.rrc_ratio >= 1,
              "`rrc_scale` must be in (0, 1] and `rrc_ratio` at least 1");
  }
  data::RandAugment rand_augment;
  if (!aug.rand_augment.empty()) {
    rand_augment = data::RandAugment::parse(aug.rand_augment);
    VIT_CHECK(C == 1 || C == 3, "RandAugment works on gray or RGB images; this dataset's have " +
                                    std::to_string(C) + " channels");
  }
  const ImageArray* array = d.as_array();  // the fast paths: pixels read in place
  const ImageList* list = d.as_list();
  const std::vector<uint8_t> fill = border_fill(norm);  // an ImageList's padding: the mean colour
  std::exception_ptr error;                             // the first sample that could not be read
  const int team = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
  for (int b = 0; b < B; ++b) {
    const int64_t i = idx[b];
    // Kept between calls: a batch allocates only while samples grow.
    thread_local Image image;
    thread_local std::vector<uint8_t> planar, cropped, moved;
    data::Planes whole;  // the sample's image (an ImageList's before its crop)
    try {
      if (array) {
        whole = data::Planes::planar(array->image(i), C, S, S);
        labels[b] = array->labels[size_t(i)];
      } else if (list) {
        whole = data::Planes::planar(list->image(i), C, list->heights[size_t(i)],
                                     list->widths[size_t(i)]);
        labels[b] = list->labels[size_t(i)];
      } else {
        whole = data::Planes::planar(planar_sample(d, nullptr, shape, i, image, planar), C, S, S);
        labels[b] = d.label(i);
      }
    } catch (...) {
#pragma omp critical(vit_make_batch_error)
      if (!error) error = std::current_exception();
      continue;
    }
    Rng rng(seed, sample_stream(epoch, i));
    // The S x S sample before the pixel-level augmentations.
    const uint8_t* src = whole.p;
    cropped.resize(size_t(per_image));
    if (aug.rrc) {
      RngDraws draws(rng);
      const CropBox box =
          random_resized_crop_box(whole.w, whole.h, aug.rrc_scale, aug.rrc_ratio, draws);
      data::resize_planes(whole.region(box.left, box.top, box.width, box.height), S, S,
                          aug.interpolation, cropped.data());
      src = cropped.data();
    } else if (whole.w != S || whole.h != S || (list && list->rescale)) {
      list->centre(i, fill.data(), cropped.data());
      src = cropped.data();
    }
    float* out = images + b * per_image;
    if (!aug.enabled()) {
      normalize_image(src, C, S, norm, out);
      continue;
    }
    int dx = 0, dy = 0;
    if (aug.crop_padding > 0) {
      const int span = 2 * aug.crop_padding + 1;
      dx = int(rng.below(uint64_t(span))) - aug.crop_padding;
      dy = int(rng.below(uint64_t(span))) - aug.crop_padding;
    }
    const bool flip = aug.hflip && rng.uniform() < 0.5;
    if (!aug.rand_augment.empty()) {
      // The shifted and flipped pixels (as below, in 8 bits), then RandAugment's ops on them.
      moved.resize(size_t(per_image));
      for (int c = 0; c < C; ++c) {
        for (int y = 0; y < S; ++y) {
          const int sy = y + dy;
          for (int x = 0; x < S; ++x) {
            const int sx = (flip ? S - 1 - x : x) + dx;
            const bool inside = sy >= 0 && sy < S && sx >= 0 && sx < S;
            moved[size_t(c * plane + int64_t(y) * S + x)] =
                inside ? src[c * plane + int64_t(sy) * S + sx] : 0;
          }
        }
      }
      data::rand_augment(rand_augment, aug.interpolation, fill.data(), rng,
                         {moved.data(), C, S, S});
      normalize_image(moved.data(), C, S, norm, out);
    } else {
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

namespace {

// Gamma(a, 1) by Marsaglia and Tsang's method (for a < 1: Gamma(a + 1) * U^(1/a)).
double gamma_sample(double a, Rng& rng) {
  if (a < 1.0) return gamma_sample(a + 1.0, rng) * std::pow(1.0 - rng.uniform(), 1.0 / a);
  const double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = rng.normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = 1.0 - rng.uniform();  // in (0, 1]
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

// Beta(a, a) as X / (X + Y) with X, Y ~ Gamma(a).
double beta_sample(double a, Rng& rng) {
  const double x = gamma_sample(a, rng), y = gamma_sample(a, rng);
  return x + y > 0 ? x / (x + y) : 0.5;
}

}  // namespace

Mixed cutmix_box(int S, double lam, int cy, int cx) {
  const double ratio = std::sqrt(1.0 - lam);
  const int cut = int(S * ratio);  // both sides: the image is square
  Mixed m;
  m.cutmix = true;
  const int y0 = std::clamp(cy - cut / 2, 0, S), y1 = std::clamp(cy + cut / 2, 0, S);
  const int x0 = std::clamp(cx - cut / 2, 0, S), x1 = std::clamp(cx + cut / 2, 0, S);
  m.top = y0, m.left = x0, m.height = y1 - y0, m.width = x1 - x0;
  m.lam = float(1.0 - double(m.height) * m.width / (double(S) * S));
  return m;
}

Mixed mix_batch(float* images, int B, int C, int S, const AugmentOptions& aug, uint64_t seed,
                int64_t epoch, int64_t step) {
  Mixed m;
  if (!aug.mixes() || B < 2) return m;
  Rng rng(seed, mix_stream(epoch, step));
  if (!(rng.uniform() < aug.mix_prob)) return m;
  const bool both = aug.mixup_alpha > 0 && aug.cutmix_alpha > 0;
  const bool cutmix = both ? rng.uniform() < 0.5 : aug.cutmix_alpha > 0;
  const double lam = beta_sample(cutmix ? aug.cutmix_alpha : aug.mixup_alpha, rng);
  const int64_t plane = int64_t(S) * S, per = C * plane;
  if (cutmix) {
    const int cy = int(rng.below(uint64_t(S))), cx = int(rng.below(uint64_t(S)));
    m = cutmix_box(S, lam, cy, cx);
    // Pairs (j, B - 1 - j) swap their boxes; the middle image of an odd batch keeps its own.
    for (int j = 0; j < B / 2; ++j) {
      float* a = images + j * per;
      float* b = images + int64_t(B - 1 - j) * per;
      for (int c = 0; c < C; ++c) {
        for (int y = m.top; y < m.top + m.height; ++y) {
          std::swap_ranges(a + c * plane + int64_t(y) * S + m.left,
                           a + c * plane + int64_t(y) * S + m.left + m.width,
                           b + c * plane + int64_t(y) * S + m.left);
        }
      }
    }
    return m;
  }
  m.lam = float(lam);
  const float l = m.lam, r = 1.0f - m.lam;
  for (int j = 0; j < B / 2; ++j) {
    float* a = images + j * per;
    float* b = images + int64_t(B - 1 - j) * per;
    for (int64_t k = 0; k < per; ++k) {
      const float x = a[k], y = b[k];
      a[k] = l * x + r * y;
      b[k] = l * y + r * x;
    }
  }
  return m;
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

void sample_drop_path(const int64_t* idx, int B, int depth, float rate, uint64_t seed,
                      int64_t epoch, float* factors) {
  VIT_CHECK(rate >= 0.0f && rate < 1.0f && depth >= 1,
            "drop-path needs a rate in [0, 1) (got " + std::to_string(rate) + ")");
  for (int b = 0; b < B; ++b) {
    Rng rng(seed, drop_stream(epoch, idx[b]));
    for (int l = 0; l < depth; ++l) {
      const float p = depth > 1 ? float(double(rate) * l / (depth - 1)) : 0.0f;
      const double keep = 1.0 - double(p);
      for (int k = 0; k < 2; ++k) {
        factors[(int64_t(b) * depth + l) * 2 + k] = rng.uniform() < keep ? float(1.0 / keep) : 0.0f;
      }
    }
  }
}

}  // namespace vit
