// Image files for `vit predict`: decoding (PNG, JPEG, BMP with stb_image; PGM/PPM here), channel
// conversion, and resizing with a triangle filter widened when shrinking (so downscaling averages
// instead of aliasing).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

// stb_image.cpp holds the implementation and its configuration.
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

// One row of w pixels from n interleaved channels (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) to
// `channels` of them. Colour to gray is luminance with stb_image's weights (77, 150, 29) / 256;
// alpha is dropped, or 255 where the file has none.
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

// Files larger than this are refused before reading: a 8192 x 8192 RGB bitmap is 192 MiB.
constexpr int64_t kMaxImageFileBytes = int64_t(256) << 20;

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::error_code ec;
  const bool regular = std::filesystem::is_regular_file(path, ec);
  if (!regular && std::filesystem::exists(path, ec)) {
    throw Error("cannot read image '" + path + "': not a regular file");
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read image '" + path + "': " + std::strerror(errno));
  const uintmax_t size = std::filesystem::file_size(path, ec);
  VIT_CHECK(!ec, "cannot read image '" + path + "': " + ec.message());
  VIT_CHECK(size <= uintmax_t(kMaxImageFileBytes),
            "cannot read image '" + path + "': it is " + std::to_string(size >> 20) +
                " MiB, more than the 256 MiB any supported image up to 8192 pixels a side needs");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  VIT_CHECK(
      f.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(size)).good() || size == 0,
      "cannot read image '" + path + "': read error");
  return bytes;
}

// Debian 12's stb_image (2.27) trusts the code counts of a JPEG Huffman table (DHT): counts
// summing past 256 make it write past its 256-entry tables (found by fuzz/fuzz_image.cpp; stb
// 2.28 added the check). This refuses such files before stb sees them. Before the first scan
// (SOS) the segments are walked one by one, as stb reads them; from the first scan, or from the
// first byte that is not a marker (stb then searches for the next 0xFF), every 0xFF 0xC4 pair is
// checked as stb would read it.
void check_jpeg_huffman_tables(const std::vector<uint8_t>& b, const std::string& path) {
  // stb takes any run of 0xFF bytes before a marker code as fill, also before the first (SOI).
  size_t i = 0;
  while (i < b.size() && b[i] == 0xFF) ++i;
  if (i == 0 || i >= b.size() || b[i] != 0xD8) return;  // not a JPEG to stb
  ++i;
  auto at = [&](size_t i) -> int { return i < b.size() ? b[i] : 0; };  // stb reads 0 past the end
  // A DHT segment whose length field starts at i, read table by table as stb does.
  auto check_dht = [&](size_t i) {
    int64_t left = (at(i) << 8 | at(i + 1)) - 2;
    size_t p = i + 2;
    while (left > 0 && p < b.size()) {
      int n = 0;
      for (int k = 1; k <= 16; ++k) n += at(p + k);
      VIT_CHECK(n <= 256, "cannot read image '" + path +
                              "': corrupt JPEG (a Huffman table declares " + std::to_string(n) +
                              " codes; at most 256 exist)");
      left -= 17 + n;
      p += 17 + size_t(n);
    }
  };
  while (i + 4 <= b.size()) {
    if (b[i] != 0xFF) break;
    const int m = b[i + 1];
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (m == 0xDA || m == 0xD9) break;  // start of scan (entropy-coded data follows) or end
    if (m == 0xC4) check_dht(i + 2);
    i += 2 + size_t(b[i + 2] << 8 | b[i + 3]);
  }
  for (size_t j = i; j + 1 < b.size(); ++j) {
    if (b[j] == 0xFF && b[j + 1] == 0xC4) check_dht(j + 2);
  }
}

// w x h pixels of n interleaved 8-bit channels, decoded by stb_image or by decode_pnm.
struct Pixels {
  int w = 0, h = 0, n = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> stb{nullptr, stbi_image_free};
  std::vector<uint8_t> own;
  const uint8_t* data() const { return stb ? stb.get() : own.data(); }
};

// Binary PGM/PPM (P5/P6), decoded here rather than by stb_image 2.27, which (found by
// fuzz/fuzz_image.cpp) overflows an int on long digit runs, accepts a zero width, leaves truncated
// pixel data uninitialised, reads 16-bit samples in the wrong byte order and then past its buffer
// when converting channels, and ignores a maxval below 255. Samples scale by 255 / maxval.
bool decode_pnm(const std::vector<uint8_t>& b, const std::string& path, Pixels& img) {
  if (b.size() < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6')) return false;
  const std::string what = "cannot read image '" + path + "': corrupt PGM/PPM header (";
  size_t i = 2;
  auto number = [&](const char* name) {
    VIT_CHECK(i < b.size() && (std::isspace(b[i]) || b[i] == '#'),
              what + "no whitespace before the " + name + ")");
    for (;;) {  // whitespace and # comments
      while (i < b.size() && std::isspace(b[i])) ++i;
      if (i >= b.size() || b[i] != '#') break;
      while (i < b.size() && b[i] != '\n' && b[i] != '\r') ++i;
    }
    int64_t v = 0;
    int digits = 0;
    for (; i < b.size() && std::isdigit(b[i]); ++i, ++digits) {
      VIT_CHECK(digits < 6, what + "the " + name + " has too many digits)");
      v = v * 10 + (b[i] - '0');
    }
    VIT_CHECK(digits > 0, what + "no " + name + ")");
    return v;
  };
  const int64_t w = number("width"), h = number("height"), maxval = number("maximum value");
  VIT_CHECK(i < b.size() && std::isspace(b[i]), what + "no whitespace after the maximum value)");
  ++i;
  VIT_CHECK(w >= 1 && h >= 1 && w <= 8192 && h <= 8192,
            what + std::to_string(w) + " x " + std::to_string(h) +
                " pixels; 1 to 8192 a side are supported)");
  VIT_CHECK(maxval >= 1 && maxval <= 65535,
            what + "maximum value " + std::to_string(maxval) + ", not in [1, 65535])");
  const int n = b[1] == '6' ? 3 : 1, bytes = maxval > 255 ? 2 : 1;
  const int64_t samples = w * h * n, have = int64_t(b.size() - i);
  VIT_CHECK(have >= samples * bytes, "cannot read image '" + path +
                                         "': the PGM/PPM file is truncated (" +
                                         std::to_string(have) + " of " +
                                         std::to_string(samples * bytes) + " bytes of pixels)");
  img.w = int(w);
  img.h = int(h);
  img.n = n;
  img.own.resize(size_t(samples));
  const uint8_t* p = b.data() + i;
  for (int64_t k = 0; k < samples; ++k) {
    const int64_t v = bytes == 2 ? (p[2 * k] << 8 | p[2 * k + 1]) : p[k];  // big-endian
    img.own[size_t(k)] = uint8_t((std::min(v, maxval) * 255 + maxval / 2) / maxval);
  }
  return true;
}

}  // namespace

std::vector<uint8_t> load_image(const std::string& path, int channels, int size, bool invert) {
  VIT_CHECK(channels >= 1 && channels <= 4,
            "the model expects " + std::to_string(channels) +
                " channels; image files can give 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA)");
  VIT_CHECK(size >= 1, "image size must be positive");
  const std::vector<uint8_t> bytes = read_bytes(path);
  Pixels img;
  if (!decode_pnm(bytes, path, img)) {
    check_jpeg_huffman_tables(bytes, path);
    VIT_CHECK(bytes.size() <= size_t(INT32_MAX), "cannot read image '" + path + "': too large");
    // Decoded to the file's own channel count n; convert_row converts.
    img.stb.reset(
        stbi_load_from_memory(bytes.data(), int(bytes.size()), &img.w, &img.h, &img.n, 0));
    if (!img.stb) {
      throw Error("cannot read image '" + path + "': " + stbi_failure_reason() +
                  " (supported: PNG, JPEG, BMP, PGM/PPM, up to 8192 pixels a side)");
    }
    VIT_CHECK(img.w >= 1 && img.h >= 1 && img.n >= 1 && img.n <= 4,
              "cannot read image '" + path + "': decoded to " + std::to_string(img.w) + " x " +
                  std::to_string(img.h) + " pixels of " + std::to_string(img.n) + " channels");
  }
  const int w = img.w, h = img.h, n = img.n;
  // Rows converted and resized one at a time, then columns: no full-size copy.
  std::vector<uint8_t> row(size_t(w) * channels);
  std::vector<float> rows(size_t(channels) * h * size), out(size_t(channels) * size * size);
  for (int y = 0; y < h; ++y) {
    convert_row(img.data() + int64_t(y) * w * n, n, row.data(), channels, w);
    for (int c = 0; c < channels; ++c) {
      resample(row.data() + c, w, channels, rows.data() + (int64_t(c) * h + y) * size, size, 1);
    }
  }
  for (int c = 0; c < channels; ++c) {
    for (int x = 0; x < size; ++x) {
      resample(rows.data() + int64_t(c) * h * size + x, h, size,
               out.data() + int64_t(c) * size * size + x, size, size);
    }
  }
  std::vector<uint8_t> pixels(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const float v = std::clamp(std::round(out[i]), 0.0f, 255.0f);  // filter overshoot is nil
    pixels[i] = uint8_t(invert ? 255.0f - v : v);
  }
  return pixels;
}

}  // namespace vit
