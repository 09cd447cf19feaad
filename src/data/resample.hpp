// Resampling 8-bit images as Pillow's Image.resize does (the filter torchvision's and timm's
// transforms run), bit for bit: bilinear and bicubic, antialiased when shrinking.
#pragma once

#include <cstdint>
#include <vector>

#include "vit/image.hpp"
#include "vit/normalization.hpp"

namespace vit::data {

// An 8-bit image's region as planes: `channels` planes of h rows of w samples, sample (c, y, x)
// at p[c * c_step + y * y_step + x * x_step]. Interleaved images and planar arrays both are.
struct Planes {
  const uint8_t* p = nullptr;
  int w = 0, h = 0, channels = 0;
  int64_t x_step = 0, y_step = 0, c_step = 0;

  static Planes interleaved(const Image& image);                                // [h, w, C]
  static Planes planar(const uint8_t* p, int channels, int height, int width);  // [C, h, w]
  Planes region(int x0, int y0, int rw, int rh) const;  // the rw x rh pixels from (x0, y0)
};

// The window [x0, x0 + ow) x [y0, y0 + oh) of `in` resized to full_w x full_h, as Pillow's
// Image.resize(filter) computes each of its pixels on 8-bit images (nearest: the source pixel at
// each output pixel's centre, Pillow's accumulated positions); per output sample, the filter
// (support 1 bilinear, 2 bicubic, times the scale when shrinking) centred at (o + 0.5) * scale,
// its weights normalised to sum 1 in double and rounded to fixed point with 22 fraction bits; the
// horizontal pass first, rounded and clamped to 8 bits, then the vertical; a side whose size does
// not change is not resampled. Writes uint8 [channels, oh, ow] to out.
void resize_window(const Planes& in, int full_w, int full_h, int x0, int y0, int ow, int oh,
                   Interpolation filter, uint8_t* out);

// Float planes [C, h, w] resized to [C, oh, ow] with the same filters and weights (in double, not
// rounded; across the rows first): torch's F.interpolate(antialias=True, align_corners=False),
// which timm's resample_abs_pos_embed uses on position embeddings.
void resize_float(const float* in, int C, int h, int w, int oh, int ow, Interpolation filter,
                  float* out);

inline void resize_planes(const Planes& in, int ow, int oh, Interpolation filter, uint8_t* out) {
  resize_window(in, ow, oh, 0, 0, ow, oh, filter, out);
}

}  // namespace vit::data
