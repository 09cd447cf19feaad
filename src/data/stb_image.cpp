// stb_image's implementation (Debian's libstb-dev), compiled once, for the formats a user hands to
// a classifier: less decoder code exposed to hostile files. PGM/PPM are decoded in image.cpp.
// 8192 pixels a side bounds a decode at 256 MiB (RGBA). CMakeLists.txt builds this file without
// UBSan's nonnull-attribute check: stb calls memcpy(NULL, src, 0) for an empty PNG data chunk,
// undefined by the letter of the standard and harmless (found by fuzz/fuzz_image.cpp); every other
// check, and ASan, stay on.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_MAX_DIMENSIONS 8192
#include <stb/stb_image.h>
