// The image decoders on files written here with the same libraries: JPEG (libjpeg-turbo) in gray
// and colour, with EXIF orientations, DCT-domain scaling and truncation; PNG (libpng) of every
// colour type and bit depth, palettes with transparency, 16-bit samples (no gamma applied) and
// interlacing; 24-bit BMP, bottom-up and top-down, and a short one; and the formats refused.
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "data/decoders.hpp"
#include "idx_writer.hpp"
#include "test_util.hpp"
#include "vit/error.hpp"
#include "vit/image.hpp"

namespace vit::test {
namespace {

// An image whose pixel (x, y) in channel c is 40 x + 20 y + 60 c (clamped): every pixel differs.
Image pattern(int w, int h, int channels) {
  Image im{w, h, channels, {}};
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < channels; ++c)
        im.pixels.push_back(uint8_t(std::min(255, 40 * x + 20 * y + 60 * c)));
    }
  }
  return im;
}

// A JPEG of im (1 or 3 channels) at quality 100, with an EXIF orientation when o > 0.
std::vector<uint8_t> encode_jpeg(const Image& im, int o = 0) {
  jpeg_compress_struct info;
  jpeg_error_mgr err;
  info.err = jpeg_std_error(&err);
  jpeg_create_compress(&info);
  unsigned char* out = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&info, &out, &size);
  info.image_width = unsigned(im.width);
  info.image_height = unsigned(im.height);
  info.input_components = im.channels;
  info.in_color_space = im.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, 100, TRUE);
  for (int c = 0; c < info.num_components; ++c) {  // no chroma subsampling: exact positions
    info.comp_info[c].h_samp_factor = info.comp_info[c].v_samp_factor = 1;
  }
  jpeg_start_compress(&info, TRUE);
  if (o > 0) {
    // "Exif\\0\\0", a little-endian TIFF header, IFD0 with one entry: 0x0112 SHORT 1 = o.
    const unsigned char exif[] = {'E', 'x', 'i',        'f', 0, 0,    'I',  'I', 42, 0, 8,
                                  0,   0,   0,          1,   0, 0x12, 0x01, 3,   0,  1, 0,
                                  0,   0,   uint8_t(o), 0,   0, 0,    0,    0,   0,  0};
    jpeg_write_marker(&info, JPEG_APP0 + 1, exif, sizeof exif);
  }
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(im.pixels.data()) +
                   size_t(info.next_scanline) * size_t(im.width) * size_t(im.channels);
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::vector<uint8_t> bytes(out, out + size);
  std::free(out);
  return bytes;
}

// The largest difference between two images' samples (they must have one shape).
int max_diff(const Image& a, const Image& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.channels, b.channels);
  int worst = 0;
  for (size_t i = 0; i < a.pixels.size() && i < b.pixels.size(); ++i) {
    worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  }
  return worst;
}

TEST(Decode, JpegGrayAndColour) {
  TempDir dir("jpeg");
  for (int channels : {1, 3}) {
    const Image im = pattern(6, 4, channels);
    write_bytes(dir / "a.jpg", encode_jpeg(im), false);
    const Image back = decode_image(dir / "a.jpg");
    // Quality 100 without subsampling: each sample within a few levels of what was written.
    EXPECT_LE(max_diff(back, im), 4) << channels << " channels";
  }
}

// The EXIF standard's meanings, on a stored row [A B]: 6 (the top row is the picture's right side)
// shows it turned a quarter clockwise, A above B; 8 a quarter anticlockwise, B above A; 3 turned
// half, B A; 2 mirrored, B A; 4 mirrored top to bottom, A B.
TEST(Decode, ExifOrientationMeanings) {
  auto shown = [](int o) {
    Image im{2, 1, 1, {'A', 'B'}};
    data::apply_exif_orientation(im, o);
    return std::to_string(im.width) + "x" + std::to_string(im.height) + " " +
           std::string(im.pixels.begin(), im.pixels.end());
  };
  EXPECT_EQ(shown(1), "2x1 AB");
  EXPECT_EQ(shown(2), "2x1 BA");
  EXPECT_EQ(shown(3), "2x1 BA");
  EXPECT_EQ(shown(4), "2x1 AB");
  EXPECT_EQ(shown(5), "1x2 AB");
  EXPECT_EQ(shown(6), "1x2 AB");
  EXPECT_EQ(shown(7), "1x2 BA");
  EXPECT_EQ(shown(8), "1x2 BA");
}

// Each EXIF orientation shows the stored picture turned so that it stands upright: the decoded
// image equals the upright one, however it was stored.
TEST(Decode, JpegExifOrientation) {
  TempDir dir("exif");
  const Image upright = pattern(6, 4, 3);
  for (int o = 1; o <= 8; ++o) {
    // The stored image: upright turned by the inverse of o (applying o again gives upright).
    Image stored = upright;
    const int inverse[] = {0, 1, 2, 3, 4, 5, 8, 7, 6};
    data::apply_exif_orientation(stored, inverse[o]);
    write_bytes(dir / "o.jpg", encode_jpeg(stored, o), false);
    const Image back = decode_image(dir / "o.jpg");
    EXPECT_LE(max_diff(back, upright), 4) << "orientation " << o;
    // exif false (timm's models: PIL leaves the orientation alone): the image as stored.
    const Image as_stored = decode_image(dir / "o.jpg", {.exif = false});
    EXPECT_LE(max_diff(as_stored, stored), 4) << "orientation " << o << ", exif off";
  }
}

// A 64 x 48 JPEG asked for a shorter side of at least 12 decodes at 2/8 (16 x 12), of at least 13
// or 24 at 4/8 (32 x 24), of at least 25 or 42 whole (the scales 3, 5, 6 and 7 / 8 are skipped for
// the next power of two, whose inverse DCTs have SIMD), of at least 6 at 1/8; with no request
// whole.
TEST(Decode, JpegScalesInTheDctDomain) {
  TempDir dir("dct");
  write_bytes(dir / "big.jpg", encode_jpeg(pattern(64, 48, 3)), false);
  EXPECT_EQ(decode_image(dir / "big.jpg", {.min_side = 12}).width, 16);
  EXPECT_EQ(decode_image(dir / "big.jpg", {.min_side = 13}).width, 32);  // 4/8, not 3/8
  EXPECT_EQ(decode_image(dir / "big.jpg", {.min_side = 24}).height, 24);
  EXPECT_EQ(decode_image(dir / "big.jpg", {.min_side = 25}).height, 48);  // 8/8, not 5/8
  EXPECT_EQ(decode_image(dir / "big.jpg", {.min_side = 42}).height, 48);  // 8/8, not 7/8
  EXPECT_EQ(decode_image(dir / "big.jpg", {.min_side = 43}).width, 64);
  EXPECT_EQ(decode_image(dir / "big.jpg", {.min_side = 6}).width, 8);
  EXPECT_EQ(decode_image(dir / "big.jpg").width, 64);
}

TEST(Decode, TruncatedJpegIsAnError) {
  TempDir dir("cut");
  std::vector<uint8_t> bytes = encode_jpeg(pattern(64, 48, 3));
  bytes.resize(bytes.size() * 2 / 3);
  write_bytes(dir / "cut.jpg", bytes, false);
  expect_error([&] { decode_image(dir / "cut.jpg"); },
               "cut.jpg': JPEG: Premature end of JPEG file");
}

// A PNG written by libpng's simplified API: format (PNG_FORMAT_*), pixels, an optional colormap.
std::vector<uint8_t> encode_png(int w, int h, png_uint_32 format, const void* pixels,
                                const void* colormap = nullptr, int colormap_entries = 0) {
  png_image im{};
  im.version = PNG_IMAGE_VERSION;
  im.width = png_uint_32(w);
  im.height = png_uint_32(h);
  im.format = format;
  im.colormap_entries = png_uint_32(colormap_entries);
  png_alloc_size_t size = 0;
  EXPECT_TRUE(png_image_write_get_memory_size(im, size, 0, pixels, 0, colormap));
  std::vector<uint8_t> bytes(size);
  EXPECT_TRUE(png_image_write_to_memory(&im, bytes.data(), &size, 0, pixels, 0, colormap));
  bytes.resize(size);
  return bytes;
}

TEST(Decode, PngEveryKind) {
  TempDir dir("png");
  // 8-bit gray, gray + alpha, RGB and RGBA come back exactly, in their own channels.
  const png_uint_32 formats[] = {PNG_FORMAT_GRAY, PNG_FORMAT_GA, PNG_FORMAT_RGB, PNG_FORMAT_RGBA};
  for (int c = 1; c <= 4; ++c) {
    const Image im = pattern(5, 3, c);
    write_bytes(dir / "a.png", encode_png(5, 3, formats[c - 1], im.pixels.data()), false);
    const Image back = decode_image(dir / "a.png");
    EXPECT_EQ(back.channels, c);
    EXPECT_EQ(back.pixels, im.pixels) << c << " channels";
  }
  // 16-bit gray (written as linear: a gAMA of 1.0): scaled to 8 bits, no gamma applied.
  const std::vector<uint16_t> wide = {0, 257 * 10, 65535, 257 * 128};
  write_bytes(dir / "w.png", encode_png(4, 1, PNG_FORMAT_LINEAR_Y, wide.data()), false);
  const Image w = decode_image(dir / "w.png");
  EXPECT_EQ(w.channels, 1);
  EXPECT_EQ(w.pixels, (std::vector<uint8_t>{0, 10, 255, 128}));
  // A palette with a transparent entry: expanded to RGBA.
  const uint8_t map[] = {255, 0, 0, 255, 0, 0, 255, 0};  // opaque red, transparent blue
  const uint8_t index[] = {0, 1, 1, 0};
  write_bytes(dir / "p.png", encode_png(2, 2, PNG_FORMAT_RGBA_COLORMAP, index, map, 2), false);
  const Image p = decode_image(dir / "p.png");
  EXPECT_EQ(p.channels, 4);
  EXPECT_EQ(p.pixels,
            (std::vector<uint8_t>{255, 0, 0, 255, 0, 0, 255, 0, 0, 0, 255, 0, 255, 0, 0, 255}));
  // Without its IEND chunk (12 bytes), or cut inside it, every row is there: read, as Pillow does.
  std::vector<uint8_t> bytes = encode_png(5, 3, PNG_FORMAT_RGB, pattern(5, 3, 3).pixels.data());
  for (const size_t drop : {12, 5}) {
    write_bytes(dir / "end.png", std::vector<uint8_t>(bytes.begin(), bytes.end() - long(drop)),
                false);
    EXPECT_EQ(decode_image(dir / "end.png").pixels, pattern(5, 3, 3).pixels) << drop;
  }
  // Cut in its image data, and a corrupted chunk: errors naming the file.
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(bytes.size()) / 2);
  write_bytes(dir / "cut.png", cut, false);
  expect_error([&] { decode_image(dir / "cut.png"); }, "cut.png': PNG:");
  bytes[40] ^= 0xFF;  // inside IDAT
  write_bytes(dir / "bad.png", bytes, false);
  expect_error([&] { decode_image(dir / "bad.png"); }, "bad.png': PNG:");
}

// WebP (libwebp): lossless RGBA back exactly, lossy RGB near, its files found by extension;
// truncated and corrupt files refused with the name and the reason.
TEST(Decode, WebpLosslessAndLossy) {
  TempDir dir("webp");
  const int w = 13, h = 9;
  std::vector<uint8_t> rgba(size_t(w * h * 4));
  for (int i = 0; i < w * h; ++i) {
    rgba[size_t(4 * i)] = uint8_t(i * 7), rgba[size_t(4 * i + 1)] = uint8_t(255 - i);
    rgba[size_t(4 * i + 2)] = uint8_t(i * 3), rgba[size_t(4 * i + 3)] = uint8_t(i % 2 ? 255 : 40);
  }
  uint8_t* out = nullptr;
  size_t n = WebPEncodeLosslessRGBA(rgba.data(), w, h, w * 4, &out);
  ASSERT_GT(n, 0u);
  std::vector<uint8_t> bytes(out, out + n);
  WebPFree(out);
  write_bytes(dir / "a.WEBP", bytes, false);
  const Image a = decode_image(dir / "a.WEBP");
  ASSERT_EQ(a.channels, 4);
  EXPECT_EQ(a.width, w);
  EXPECT_EQ(a.height, h);
  EXPECT_EQ(a.pixels, rgba);
  EXPECT_TRUE(image_file_name(dir / "a.WEBP"));
  // Lossy, no alpha: RGB, each sample near (a smooth image; quality 95).
  std::vector<uint8_t> rgb(size_t(w * h * 3));
  for (int i = 0; i < w * h; ++i) {
    for (int c = 0; c < 3; ++c) rgb[size_t(3 * i + c)] = uint8_t(60 + (i % w) * 8 + c * 20);
  }
  n = WebPEncodeRGB(rgb.data(), w, h, w * 3, 95, &out);
  ASSERT_GT(n, 0u);
  std::vector<uint8_t> lossy(out, out + n);
  WebPFree(out);
  write_bytes(dir / "b.webp", lossy, false);
  const Image b = decode_image(dir / "b.webp");
  ASSERT_EQ(b.channels, 3);
  Image want{w, h, 3, rgb};
  EXPECT_LE(max_diff(b, want), 12);
  write_bytes(dir / "cut.webp", std::vector<uint8_t>(bytes.begin(), bytes.begin() + 20), false);
  expect_error([&] { decode_image(dir / "cut.webp"); }, "cut.webp': WebP:");
  write_bytes(dir / "half.webp",
              std::vector<uint8_t>(lossy.begin(), lossy.begin() + lossy.size() / 2), false);
  expect_error([&] { decode_image(dir / "half.webp"); }, "half.webp': WebP:");
  std::vector<uint8_t> bad = lossy;
  bad[12] = 'X';  // the image chunk's name: neither VP8, VP8L nor VP8X
  write_bytes(dir / "bad.webp", bad, false);
  expect_error([&] { decode_image(dir / "bad.webp"); }, "bad.webp': WebP:");
}

// A 24-bit BI_RGB BMP of im (3 channels): BGR rows padded to 4 bytes, bottom-up (the format's
// usual order) or top-down (a negative height).
std::vector<uint8_t> encode_bmp(const Image& im, bool top_down) {
  const int row = (im.width * 3 + 3) / 4 * 4;
  const uint32_t offset = 54, size = offset + uint32_t(row * im.height);
  std::vector<uint8_t> b(size, 0);
  const auto put = [&](size_t at, uint32_t v, int bytes) {
    for (int k = 0; k < bytes; ++k) b[at + size_t(k)] = uint8_t(v >> (8 * k));
  };
  b[0] = 'B', b[1] = 'M';
  put(2, size, 4), put(10, offset, 4), put(14, 40, 4), put(18, uint32_t(im.width), 4);
  put(22, uint32_t(top_down ? -im.height : im.height), 4), put(26, 1, 2), put(28, 24, 2);
  for (int y = 0; y < im.height; ++y) {
    const int file_row = top_down ? y : im.height - 1 - y;
    for (int x = 0; x < im.width; ++x) {
      for (int c = 0; c < 3; ++c) {
        b[offset + size_t(file_row * row + x * 3 + (2 - c))] =
            im.pixels[size_t((y * im.width + x) * 3 + c)];
      }
    }
  }
  return b;
}

// BMP's pixels exactly, in either row order; a file shorter than the rows its header declares
// (cut, or a header that claims far more pixels than it holds) is refused, not padded with black.
TEST(Decode, BmpRowsAndTruncation) {
  TempDir dir("bmp");
  const Image im = pattern(5, 3, 3);  // rows of 15 bytes, padded to 16
  for (const bool top_down : {false, true}) {
    write_bytes(dir / "a.bmp", encode_bmp(im, top_down), false);
    EXPECT_EQ(max_diff(decode_image(dir / "a.bmp"), im), 0) << "top-down " << top_down;
  }
  std::vector<uint8_t> cut = encode_bmp(im, false);
  cut.resize(cut.size() - 1);
  write_bytes(dir / "cut.bmp", cut, false);
  expect_error([&] { decode_image(dir / "cut.bmp"); }, "cut.bmp': the BMP file is truncated");
  // The header's width and height (negative: top-down), as 32-bit little-endian numbers.
  std::vector<uint8_t> lying = encode_bmp(im, true);
  auto declare = [&](int32_t width, int32_t height) {
    for (const auto& [at, v] : {std::pair{18, uint32_t(width)}, {22, uint32_t(height)}}) {
      for (int k = 0; k < 4; ++k) lying[size_t(at + k)] = uint8_t(v >> (8 * k));
    }
  };
  declare(8000, -8000);
  write_bytes(dir / "lying.bmp", lying, false);
  expect_error([&] { decode_image(dir / "lying.bmp"); }, "declares 8000 x 8000 pixels of 24 bits");
  // A header whose rows' bytes overflow 64 bits (fuzz_image found the message computing them):
  // 2^31 - 1 pixels a side of 32 bits.
  declare(0x7fffffff, -0x7fffffff);
  lying[28] = 32;
  write_bytes(dir / "huge.bmp", lying, false);
  expect_error([&] { decode_image(dir / "huge.bmp"); },
               "declares 2147483647 x 2147483647 pixels of 32 bits: 2147483647 rows of 8589934588 "
               "bytes from byte ");
}

TEST(Decode, UnknownFormatsAreRefused) {
  TempDir dir("fmt");
  write_bytes(dir / "a.gif", {'G', 'I', 'F', '8', '9', 'a', 0, 0}, false);
  expect_error([&] { decode_image(dir / "a.gif"); }, "not an image format vitcpp reads");
}

}  // namespace
}  // namespace vit::test
