// Decoded images: pixels as a file or a dataset holds them, before any preprocessing, and the
// image file decoder. Converting, resizing and normalising are transforms (vit/transforms.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vit {

// width x height pixels of `channels` interleaved 8-bit samples: 1 gray, 2 gray + alpha, 3 RGB,
// 4 RGBA; pixels is [height, width, channels], rows top to bottom.
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

struct DecodeOptions {
  // > 0: a JPEG may be decoded at M/8 of its size, M = 1, 2, 4 or 8 (libjpeg-turbo's DCT-domain
  // scaling: faster, and less to resize) while its shorter side stays at least this many pixels.
  int min_side = 0;
  // A JPEG is turned upright by its EXIF orientation (Preprocess::exif).
  bool exif = true;
};

// Decodes an image file as it is stored (its own size and channels): JPEG (libjpeg-turbo; gray
// or RGB, CMYK converted, turned upright by its EXIF orientation), PNG (libpng; palettes,
// transparency and 16-bit samples at 8 bits, no gamma correction), WebP (libwebp; still images,
// RGB or RGBA), BMP (stb_image) and PGM/PPM (binary P5/P6 or plain-text P2/P3; 8- or 16-bit,
// scaled to 8). Up to 8192 pixels a side and 256 MiB of file. An unreadable, corrupt (also partly:
// a truncated JPEG) or unsupported file is a vit::Error naming it and the reason.
Image decode_image(const std::string& path, const DecodeOptions& options = {});

// Whether a file's name is an image's that directories are searched for: not hidden (no leading
// '.') and with an image's extension (image_extensions(), any case).
bool image_file_name(const std::string& path);
// The extensions of the image files decode_image reads: ".png, .jpg, .jpeg, .webp, ...".
std::string image_extensions();

// The image files that paths name: a path that is not a directory as it is (decode_image reports
// a missing or unreadable one); a directory, the entries in it (not below it) that are not
// directories and whose names are image_file_name's, sorted by name (a dangling link among them:
// decode_image reports it). vit::Error for a directory with no image file.
std::vector<std::string> image_files(const std::vector<std::string>& paths);

}  // namespace vit
