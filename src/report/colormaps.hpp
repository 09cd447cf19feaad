// Perceptual colour maps (viridis, inferno) from their published tables, and a lookup.
#pragma once

#include <cstdint>
#include <string>

namespace vit::report {

extern const uint8_t kViridis[256][3];
extern const uint8_t kInferno[256][3];

// The colour of t in [0, 1] (clamped; NaN as 0) in the 256-entry map, as "#rrggbb".
inline std::string colour_hex(const uint8_t (&map)[256][3], double t) {
  if (!(t > 0)) t = 0;
  if (t > 1) t = 1;
  const uint8_t* c = map[int(t * 255 + 0.5)];
  static const char* hex = "0123456789abcdef";
  std::string s = "#";
  for (int i = 0; i < 3; ++i) s += hex[c[i] >> 4], s += hex[c[i] & 15];
  return s;
}

}  // namespace vit::report
