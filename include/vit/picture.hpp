// Raster pictures: an image with a heat map over it, panels with captions in a grid, written as
// PNG. cairo draws the text with a real font (DejaVu Sans, Debian fonts-dejavu-core) and writes the
// PNG through libpng; a build without cairo has every other function and says so from png_panels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vit {

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3], row-major
};

// Prepared model input (uint8 [channels, size, size]) as RGB, each pixel repeated into a
// scale x scale square (scale >= 1): one channel as grey, three as RGB; of more, the first three
// (RGBA's colour); of two, the first (grey and alpha's grey).
RgbImage to_rgb(const uint8_t* pixels, int channels, int size, int scale = 1);

// map (grid x grid, row-major; one value per patch) as size x size pixels by bilinear
// interpolation between the patch centres: patch (r, c) covers pixels [r * size / grid, (r + 1) *
// size / grid) in y (and likewise in x) and its value sits at that square's centre; past the outer
// centres the border values hold.
std::vector<double> upsample_map(const std::vector<double>& map, int grid, int size);

// The heat map over the image: map (grid x grid) upsampled to the image (square), scaled to [0, 1]
// by its largest value, coloured with inferno (matplotlib's published table) and blended over the
// image with weight alpha. extent: the share of the image's side the patches cover, from its
// top-left corner (AttentionMaps::extent); the pixels past it get no heat.
RgbImage heat_overlay(const RgbImage& image, const std::vector<double>& map, int grid,
                      double alpha = 0.6, double extent = 1.0);

struct Panel {
  RgbImage image;
  std::string caption;  // one line under the image
};

// Whether this build can write PNG (it was built with cairo).
bool png_supported();

// Whether this build can draw an SVG document as PNG (it was built with cairo and librsvg).
bool svg_png_supported();

// An SVG document (one of vit/plot.hpp's charts) drawn as PNG at its own size in pixels, on white.
// vit::Error without librsvg, or when librsvg cannot read the document.
std::string svg_to_png(const std::string& svg);

// The panels in a grid of `columns` columns (row by row), each with its caption under it, the title
// above them all (broken into two lines where one is narrower than it), on white; as the bytes of
// a PNG file. vit::Error without cairo.
std::string png_panels(const std::vector<Panel>& panels, int columns, const std::string& title);

}  // namespace vit
