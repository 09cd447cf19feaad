// WebP files with libwebp (Debian's libwebp-dev): lossy or lossless, with or without alpha,
// decoded whole to RGB or RGBA; animated files (the first frame only would be a guess) refused.
#include <webp/decode.h>

#include <cstring>

#include "data/decoders.hpp"
#include "vit/error.hpp"

namespace vit::data {

bool is_webp(const uint8_t* bytes, size_t n) {
  return n >= 12 && std::memcmp(bytes, "RIFF", 4) == 0 && std::memcmp(bytes + 8, "WEBP", 4) == 0;
}

Image decode_webp(const uint8_t* bytes, size_t n, const std::string& path, int max_side) {
  const std::string where = "cannot read image '" + path + "': WebP: ";
  WebPBitstreamFeatures f;
  const VP8StatusCode status = WebPGetFeatures(bytes, n, &f);
  VIT_CHECK(status == VP8_STATUS_OK,
            where + (status == VP8_STATUS_NOT_ENOUGH_DATA
                         ? "the file is truncated"
                         : "not a valid WebP stream (status " + std::to_string(int(status)) + ")"));
  VIT_CHECK(!f.has_animation, where + "animated WebP files are not read; extract a frame");
  VIT_CHECK(f.width >= 1 && f.height >= 1 && f.width <= max_side && f.height <= max_side,
            where + std::to_string(f.width) + " x " + std::to_string(f.height) +
                " pixels; at most " + std::to_string(max_side) + " a side are read");
  Image img;
  img.width = f.width;
  img.height = f.height;
  img.channels = f.has_alpha ? 4 : 3;
  img.pixels.resize(size_t(f.width) * size_t(f.height) * size_t(img.channels));
  const int stride = f.width * img.channels;
  const uint8_t* ok =
      f.has_alpha ? WebPDecodeRGBAInto(bytes, n, img.pixels.data(), img.pixels.size(), stride)
                  : WebPDecodeRGBInto(bytes, n, img.pixels.data(), img.pixels.size(), stride);
  VIT_CHECK(ok != nullptr, where + "the image data is corrupt or truncated");
  return img;
}

}  // namespace vit::data
