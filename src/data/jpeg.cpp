// JPEG decoding with libjpeg-turbo (Debian's libjpeg62-turbo): DCT-domain downscaling for small
// targets, EXIF orientation, and every libjpeg error or warning (corrupt data, a premature end)
// turned into a vit::Error. libjpeg reports errors by longjmp: the functions that can jump hold
// no C++ objects with destructors.
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

// jpeglib.h needs FILE and size_t declared before it.
#include <jpeglib.h>
// jerror.h after jpeglib.h: the message codes (JWRN_*).
#include <jerror.h>

#include "data/decoders.hpp"
#include "vit/error.hpp"

namespace vit::data {
namespace {

constexpr int kMaxSide = 8192;

struct ErrorManager {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

extern "C" void vit_jpeg_on_error(j_common_ptr c) {
  auto* e = reinterpret_cast<ErrorManager*>(c->err);
  (*c->err->format_message)(c, e->message);
  longjmp(e->jump, 1);
}

// Warnings (msg_level -1) that mean lost pixels (corrupt data, a premature end filled with gray)
// are errors here: a damaged picture must not train a model unnoticed. Those about metadata or
// stray bytes between segments, which many cameras write and every viewer ignores, are ignored,
// as are trace messages (>= 0).
extern "C" void vit_jpeg_on_message(j_common_ptr c, int level) {
  if (level >= 0) return;
  const int code = c->err->msg_code;
  if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_ADOBE_XFORM || code == JWRN_JFIF_MAJOR ||
      code == JWRN_BOGUS_ICC) {
    return;
  }
  vit_jpeg_on_error(c);
}

// The EXIF orientation (tag 0x0112 of IFD0) in an APP1 "Exif" marker, or 1.
int exif_orientation(const jpeg_decompress_struct& info) {
  for (jpeg_saved_marker_ptr m = info.marker_list; m; m = m->next) {
    if (m->marker != JPEG_APP0 + 1 || m->data_length < 14) continue;
    const uint8_t* d = m->data;
    const size_t n = m->data_length;
    if (std::memcmp(d, "Exif\0\0", 6) != 0) continue;
    const uint8_t* t = d + 6;  // the TIFF header
    const size_t tn = n - 6;
    const bool le = t[0] == 'I' && t[1] == 'I';
    if (!le && !(t[0] == 'M' && t[1] == 'M')) continue;
    auto u16 = [&](size_t at) -> uint32_t {
      return at + 2 > tn ? 0
             : le        ? uint32_t(t[at] | t[at + 1] << 8)
                         : uint32_t(t[at] << 8 | t[at + 1]);
    };
    auto u32 = [&](size_t at) -> uint32_t {
      return at + 4 > tn ? 0 : le ? (u16(at) | u16(at + 2) << 16) : (u16(at) << 16 | u16(at + 2));
    };
    const size_t ifd = u32(4);
    const uint32_t entries = u16(ifd);
    for (uint32_t k = 0; k < entries && k < 512; ++k) {
      const size_t e = ifd + 2 + 12 * size_t(k);
      if (e + 12 > tn) break;
      if (u16(e) == 0x0112 && u16(e + 2) == 3) return int(u16(e + 8));  // SHORT, inline
    }
  }
  return 1;
}

// Decodes into out (already empty); returns false with `message` set on any libjpeg error.
bool decode(const uint8_t* bytes, size_t n, int min_side, Image* out, int* orientation,
            char* message) {
  jpeg_decompress_struct info;
  ErrorManager err;
  info.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = vit_jpeg_on_error;
  err.mgr.emit_message = vit_jpeg_on_message;
  if (setjmp(err.jump)) {
    std::memcpy(message, err.message, sizeof err.message);
    jpeg_destroy_decompress(&info);
    return false;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, bytes, static_cast<unsigned long>(n));
  jpeg_save_markers(&info, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&info, TRUE);
  if (info.image_width < 1 || info.image_height < 1 || info.image_width > kMaxSide ||
      info.image_height > kMaxSide) {
    std::snprintf(message, JMSG_LENGTH_MAX, "%u x %u pixels; 1 to %d a side are supported",
                  info.image_width, info.image_height, kMaxSide);
    jpeg_destroy_decompress(&info);
    return false;
  }
  *orientation = exif_orientation(info);
  const bool cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
  info.out_color_space = info.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE
                         : cmyk                                 ? JCS_CMYK
                                                                : JCS_RGB;
  if (min_side > 0) {
    // The smallest scale M/8 whose shorter side, ceil(side * M / 8) as libjpeg rounds it, is still
    // at least min_side, with M a power of two: libjpeg-turbo's SIMD inverse DCTs are the 8x8 one
    // and the reduced 4x4 and 2x2 (1x1 is trivial); the scales between (3, 5, 6, 7) run plain C.
    // Measured, a first decode of 1,040 500 x 375 photos to a shorter side of 256 on one core
    // (`vit bench --data folder:DIR`, scripts/make-photos.py): 540-594 img/s at 6/8, 647-762 at
    // 8/8, three alternated runs.
    const unsigned shorter =
        info.image_width < info.image_height ? info.image_width : info.image_height;
    unsigned m = 1;
    while (m < 8 && (shorter * m + 7) / 8 < unsigned(min_side)) m *= 2;
    info.scale_num = m;
    info.scale_denom = 8;
  }
  jpeg_start_decompress(&info);
  const int w = int(info.output_width), h = int(info.output_height);
  const int c = int(info.output_components);
  out->width = w;
  out->height = h;
  out->channels = cmyk ? 3 : c;
  out->pixels.resize(size_t(w) * size_t(h) * size_t(c));
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = out->pixels.data() + size_t(info.output_scanline) * size_t(w) * size_t(c);
    jpeg_read_scanlines(&info, &row, 1);
  }
  // Adobe's CMYK JPEGs store the inks inverted: R = C K / 255 on the stored values (as Pillow).
  if (cmyk) {
    uint8_t* p = out->pixels.data();
    for (size_t i = 0; i < size_t(w) * size_t(h); ++i) {
      const unsigned k = p[4 * i + 3];
      for (int ch = 0; ch < 3; ++ch) p[3 * i + ch] = uint8_t((p[4 * i + ch] * k + 127) / 255);
    }
    out->pixels.resize(size_t(w) * size_t(h) * 3);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return true;
}

}  // namespace

bool is_jpeg(const uint8_t* b, size_t n) {
  return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

Image decode_jpeg(const uint8_t* bytes, size_t n, const std::string& path, int min_side,
                  bool exif) {
  Image img;
  int orientation = 1;
  char message[JMSG_LENGTH_MAX] = "";
  if (!decode(bytes, n, min_side, &img, &orientation, message)) {
    throw Error("cannot read image '" + path + "': JPEG: " + message);
  }
  if (exif) apply_exif_orientation(img, orientation);
  return img;
}

void apply_exif_orientation(Image& img, int o) {
  if (o < 2 || o > 8) return;
  const int w = img.width, h = img.height, c = img.channels;
  const bool swap = o >= 5;  // 5-8 turn the image a quarter: width and height trade places
  const int W = swap ? h : w, H = swap ? w : h;
  std::vector<uint8_t> out(img.pixels.size());
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W; ++x) {
      // The stored pixel (sx, sy) shown at (x, y).
      int sx = x, sy = y;
      switch (o) {
        case 2:
          sx = w - 1 - x;
          break;  // mirrored left-right
        case 3:
          sx = w - 1 - x;
          sy = h - 1 - y;
          break;  // turned 180
        case 4:
          sy = h - 1 - y;
          break;  // mirrored top-bottom
        case 5:
          sx = y;
          sy = x;
          break;  // transposed
        case 6:
          sx = y;
          sy = h - 1 - x;
          break;  // turned 90 clockwise to show
        case 7:
          sx = w - 1 - y;
          sy = h - 1 - x;
          break;  // transversed
        case 8:
          sx = w - 1 - y;
          sy = x;
          break;  // turned 90 anticlockwise to show
      }
      std::memcpy(out.data() + (size_t(y) * W + x) * c,
                  img.pixels.data() + (size_t(sy) * w + sx) * c, size_t(c));
    }
  }
  img.width = W;
  img.height = H;
  img.pixels = std::move(out);
}

}  // namespace vit::data
