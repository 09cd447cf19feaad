// Image files: decoding as stored, each format by the hardest-tested decoder Debian packages: JPEG
// with libjpeg-turbo (src/data/jpeg.cpp), PNG with libpng (src/data/png.cpp), WebP with libwebp
// (src/data/webp.cpp), PGM/PPM here, and
// only BMP with stb_image (which produced every fault fuzz/fuzz_image.cpp found in its JPEG, PNM
// and PNG code). Converting and resizing for the model are transforms (src/data/transforms.cpp).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

// stb_image.cpp holds the implementation and its configuration.
#include <stb/stb_image.h>

#include "data/decoders.hpp"
#include "vit/error.hpp"
#include "vit/image.hpp"

namespace vit {
namespace {

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
  VIT_CHECK(size > 0, "cannot read image '" + path + "': empty file (0 bytes)");
  VIT_CHECK(size <= uintmax_t(kMaxImageFileBytes),
            "cannot read image '" + path + "': it is " + std::to_string(size >> 20) +
                " MiB, more than the 256 MiB any supported image up to 8192 pixels a side needs");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  VIT_CHECK(
      f.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(size)).good() || size == 0,
      "cannot read image '" + path + "': read error");
  return bytes;
}

// Binary PGM/PPM (P5/P6), decoded here rather than by stb_image 2.27, which (found by
// fuzz/fuzz_image.cpp) overflows an int on long digit runs, accepts a zero width, leaves truncated
// pixel data uninitialised, reads 16-bit samples in the wrong byte order and then past its buffer
// when converting channels, and ignores a maxval below 255. Samples scale by 255 / maxval.
bool decode_pnm(const std::vector<uint8_t>& b, const std::string& path, Image& img) {
  if (b.size() < 2 || b[0] != 'P' || b[1] < '2' || b[1] > '6' || b[1] == '4') return false;
  const bool ascii = b[1] == '2' || b[1] == '3';  // "plain": samples as decimal numbers
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
  if (!ascii) ++i;
  VIT_CHECK(w >= 1 && h >= 1 && w <= 8192 && h <= 8192,
            what + std::to_string(w) + " x " + std::to_string(h) +
                " pixels; 1 to 8192 a side are supported)");
  VIT_CHECK(maxval >= 1 && maxval <= 65535,
            what + "maximum value " + std::to_string(maxval) + ", not in [1, 65535])");
  const int n = b[1] == '6' || b[1] == '3' ? 3 : 1, bytes = maxval > 255 ? 2 : 1;
  const int64_t samples = w * h * n, have = int64_t(b.size() - i);
  if (ascii) {
    // A sample takes at least a digit and a separator: the file must be that long before the
    // pixels are allocated (a few bytes cannot claim 8192 x 8192 of them).
    VIT_CHECK(have >= 2 * samples - 1,
              "cannot read image '" + path + "': the PGM/PPM file is truncated (" +
                  std::to_string(have) + " bytes for " + std::to_string(samples) + " samples)");
    img.width = int(w);
    img.height = int(h);
    img.channels = n;
    img.pixels.resize(size_t(samples));
    for (int64_t k = 0; k < samples; ++k) {
      while (i < b.size() && std::isspace(b[i])) ++i;
      VIT_CHECK(i < b.size(), "cannot read image '" + path + "': the PGM/PPM file is truncated (" +
                                  std::to_string(k) + " of " + std::to_string(samples) +
                                  " samples)");
      --i;  // number() reads from the whitespace before the sample
      const int64_t v = number("sample");
      img.pixels[size_t(k)] = uint8_t((std::min(v, maxval) * 255 + maxval / 2) / maxval);
    }
    return true;
  }
  VIT_CHECK(have >= samples * bytes, "cannot read image '" + path +
                                         "': the PGM/PPM file is truncated (" +
                                         std::to_string(have) + " of " +
                                         std::to_string(samples * bytes) + " bytes of pixels)");
  img.width = int(w);
  img.height = int(h);
  img.channels = n;
  img.pixels.resize(size_t(samples));
  const uint8_t* p = b.data() + i;
  for (int64_t k = 0; k < samples; ++k) {
    const int64_t v = bytes == 2 ? (p[2 * k] << 8 | p[2 * k + 1]) : p[k];  // big-endian
    img.pixels[size_t(k)] = uint8_t((std::min(v, maxval) * 255 + maxval / 2) / maxval);
  }
  return true;
}

// An uncompressed BMP's (BI_RGB, BI_BITFIELDS) rows, from its header: the pixel data at the
// header's offset, each row padded to 4 bytes, must fit in the file; vit::Error saying it is
// truncated otherwise. Other BMPs are left to the decoder.
void check_bmp_rows(const std::vector<uint8_t>& b, const std::string& path) {
  const auto u16 = [&](size_t at) { return uint32_t(b[at]) | uint32_t(b[at + 1]) << 8; };
  const auto u32 = [&](size_t at) { return u16(at) | u16(at + 2) << 16; };
  if (b.size() < 18) throw Error("cannot read image '" + path + "': the BMP file is truncated");
  const uint32_t offset = u32(10), header = u32(14);
  int64_t w = 0, h = 0, bits = 0, compression = 0;
  if (header == 12 && b.size() >= 26) {  // OS/2's BITMAPCOREHEADER
    w = u16(18), h = u16(20), bits = u16(24);
  } else if (header >= 40 && b.size() >= 34) {
    w = int32_t(u32(18)), h = std::abs(int64_t(int32_t(u32(22)))), bits = u16(28);
    compression = u32(30);
  } else {
    return;
  }
  if (compression != 0 && compression != 3 && compression != 6) return;  // RLE, JPEG, PNG
  if (w <= 0 || bits <= 0 || bits > 32) return;
  const int64_t row = (w * bits + 31) / 32 * 4, size = int64_t(b.size());
  VIT_CHECK(size >= int64_t(offset) && h <= (size - int64_t(offset)) / row,
            "cannot read image '" + path + "': the BMP file is truncated (its header declares " +
                std::to_string(w) + " x " + std::to_string(h) + " pixels of " +
                std::to_string(bits) + " bits: " + std::to_string(h) + " rows of " +
                std::to_string(row) + " bytes from byte " + std::to_string(offset) +
                ", the file has " + std::to_string(b.size()) + ")");
}

}  // namespace

Image decode_image(const std::string& path, const DecodeOptions& options) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  Image img;
  if (decode_pnm(bytes, path, img)) return img;
  if (data::is_jpeg(bytes.data(), bytes.size())) {
    return data::decode_jpeg(bytes.data(), bytes.size(), path, options.min_side, options.exif);
  }
  if (data::is_png(bytes.data(), bytes.size()))
    return data::decode_png(bytes.data(), bytes.size(), path);
  if (data::is_webp(bytes.data(), bytes.size())) {
    return data::decode_webp(bytes.data(), bytes.size(), path, 8192);
  }
  VIT_CHECK(bytes.size() >= 2 && bytes[0] == 'B' && bytes[1] == 'M',
            "cannot read image '" + path +
                "': not an image format vitcpp reads (PNG, JPEG, WebP, BMP, PGM/PPM)");
  VIT_CHECK(bytes.size() <= size_t(INT32_MAX), "cannot read image '" + path + "': too large");
  // BMP: stb_image, decoded to the file's own channel count, once the file is seen to hold every
  // row its header declares (stb_image fills a short file's missing rows with zeros).
  check_bmp_rows(bytes, path);
  int w = 0, h = 0, n = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> stb(
      stbi_load_from_memory(bytes.data(), int(bytes.size()), &w, &h, &n, 0), stbi_image_free);
  if (!stb) {
    throw Error("cannot read image '" + path + "': BMP: " + stbi_failure_reason() +
                " (up to 8192 pixels a side)");
  }
  VIT_CHECK(w >= 1 && h >= 1 && n >= 1 && n <= 4,
            "cannot read image '" + path + "': decoded to " + std::to_string(w) + " x " +
                std::to_string(h) + " pixels of " + std::to_string(n) + " channels");
  img.width = w;
  img.height = h;
  img.channels = n;
  img.pixels.assign(stb.get(), stb.get() + size_t(w) * h * n);
  return img;
}

namespace {
constexpr const char* kExtensions[] = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".pgm", ".ppm"};
}  // namespace

std::string image_extensions() {
  std::string s;
  for (const char* e : kExtensions) s += std::string(s.empty() ? "" : ", ") + e;
  return s;
}

bool image_file_name(const std::string& path) {
  const std::string name = std::filesystem::path(path).filename().string();
  if (name.empty() || name[0] == '.') return false;
  std::string ext = std::filesystem::path(name).extension().string();
  for (char& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  for (const char* e : kExtensions) {
    if (ext == e) return true;
  }
  return false;
}

std::vector<std::string> image_files(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
      files.push_back(path);
      continue;
    }
    std::vector<std::string> found;
    for (const fs::directory_entry& e : fs::directory_iterator(path, ec)) {
      // Not a directory: a file, or a link decode_image then reports (a dangling one by name).
      std::error_code type_ec;
      if (image_file_name(e.path().string()) && !e.is_directory(type_ec)) {
        found.push_back(e.path().string());
      }
    }
    VIT_CHECK(!ec, "cannot list '" + path + "': " + ec.message());
    VIT_CHECK(!found.empty(), "'" + path + "' holds no image file (" + image_extensions() + ")");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

}  // namespace vit
