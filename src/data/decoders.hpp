// The file decoders behind vit::decode_image (src/data/decode.cpp): JPEG with libjpeg-turbo, PNG
// with libpng, WebP with libwebp, each from the file's bytes, refusing a corrupt or truncated file
// (warnings included) with a vit::Error "cannot read image '<path>': <reason>".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "vit/image.hpp"

namespace vit::data {

// Whether bytes start as a JPEG (FF D8 FF) or a PNG (its 8-byte signature) does.
bool is_jpeg(const uint8_t* bytes, size_t n);
bool is_png(const uint8_t* bytes, size_t n);
// ... or a WebP ("RIFF", a size, "WEBP").
bool is_webp(const uint8_t* bytes, size_t n);

// A still WebP (lossy or lossless) as RGB, or RGBA when it has alpha; up to max_side pixels a
// side. Animations are refused.
Image decode_webp(const uint8_t* bytes, size_t n, const std::string& path, int max_side);

// A JPEG decoded to gray (1 channel) or RGB (3; CMYK converted), turned upright as its EXIF
// orientation says when exif is true. min_side > 0 lets libjpeg-turbo decode at M/8 of the size
// (M = 1, 2, 4 or 8) in the DCT domain (faster, and less to resize) while the shorter side stays at
// least min_side.
Image decode_jpeg(const uint8_t* bytes, size_t n, const std::string& path, int min_side,
                  bool exif = true);

// A PNG at 8 bits a sample in its own channels (gray, gray + alpha, RGB, RGBA): palettes expanded,
// transparency (tRNS) as alpha, 16-bit samples scaled to 8, low bit depths widened; no gamma
// correction (as Pillow and torchvision read it).
Image decode_png(const uint8_t* bytes, size_t n, const std::string& path);

// The Image turned by an EXIF orientation (1-8; 1 and anything else leave it).
void apply_exif_orientation(Image& image, int orientation);

}  // namespace vit::data
