// PNG decoding with libpng (Debian's libpng16), through its classic API so that no gamma or colour
// correction is applied: the samples as the file holds them, at 8 bits. libpng reports errors by
// longjmp: the function that can jump holds no C++ objects with destructors. A file that ends once
// every row is read (no IEND: a download cut at its very end) is read, as Pillow reads it; one
// that ends sooner is refused.
#include <png.h>

#include <csetjmp>
#include <cstring>
#include <string>
#include <vector>

#include "data/decoders.hpp"
#include "vit/error.hpp"

namespace vit::data {
namespace {

constexpr int kMaxSide = 8192;

struct Reader {
  const uint8_t* data;
  size_t size, at;
  bool rows_read;  // every row decoded: what follows (chunks after the image, IEND) may be cut
  bool cut;        // the file ended before libpng was done with it
  char message[256];
};

extern "C" void vit_png_on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<Reader*>(png_get_io_ptr(png));
  if (n > r->size - r->at) {
    r->cut = true;
    png_error(png, "the file is truncated");
  }
  std::memcpy(out, r->data + r->at, n);
  r->at += n;
}

extern "C" void vit_png_on_error(png_structp png, png_const_charp message) {
  auto* r = static_cast<Reader*>(png_get_error_ptr(png));
  std::strncpy(r->message, message, sizeof r->message - 1);
  png_longjmp(png, 1);
}

extern "C" void vit_png_on_warning(png_structp, png_const_charp) {}  // ancillary-chunk problems

bool decode(Reader* r, Image* out, std::vector<png_bytep>* rows) {
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, r, vit_png_on_error, vit_png_on_warning);
  if (!png) {
    std::strcpy(r->message, "out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    if (!info) std::strcpy(r->message, "out of memory");
    png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    return r->rows_read && r->cut;
  }
  png_set_user_limits(png, kMaxSide, kMaxSide);
  png_set_chunk_malloc_max(png, 64u << 20);
  png_set_read_fn(png, r, vit_png_on_read);
  png_read_info(png, info);
  const int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
  if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_scale_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  const int c = png_get_channels(png, info);
  const size_t row = png_get_rowbytes(png, info);
  if (c < 1 || c > 4 || row != size_t(w) * size_t(c)) png_error(png, "unexpected sample layout");
  out->width = int(w);
  out->height = int(h);
  out->channels = c;
  out->pixels.resize(size_t(w) * size_t(h) * size_t(c));
  rows->resize(h);
  for (png_uint_32 y = 0; y < h; ++y) (*rows)[y] = out->pixels.data() + size_t(y) * row;
  png_read_image(png, rows->data());
  r->rows_read = true;
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

}  // namespace

bool is_png(const uint8_t* b, size_t n) {
  return n >= 8 && png_sig_cmp(b, 0, 8) == 0;
}

Image decode_png(const uint8_t* bytes, size_t n, const std::string& path) {
  Reader r{bytes, n, 0, false, false, ""};
  Image img;
  std::vector<png_bytep> rows;
  if (!decode(&r, &img, &rows)) throw Error("cannot read image '" + path + "': PNG: " + r.message);
  return img;
}

}  // namespace vit::data
