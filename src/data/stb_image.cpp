// stb_image's implementation (Debian's libstb-dev), compiled once, for the formats a user hands to
// a classifier: less decoder code exposed to hostile files. PGM/PPM are decoded in image.cpp.
// 8192 pixels a side bounds a decode at 256 MiB (RGBA). CMakeLists.txt builds this file without
// UBSan's nonnull-attribute check: stb calls memcpy(NULL, src, 0) for an empty PNG data chunk,
// undefined by the letter of the standard and harmless (found by fuzz/fuzz_image.cpp); every other
// check, and ASan, stay on.
// stb_image 2.27 reads memory it never wrote when a JPEG scan uses a Huffman table the file never
// defined: with malloc's garbage as its decoding limits, it then indexes far outside the table
// (found by fuzz/fuzz_image.cpp). Zeroed allocations make such a table empty, which stb's decoder
// rejects as a corrupt code, and make every other such read deterministic.
#include <cstdlib>
#define STBI_MALLOC(size) std::calloc(1, size)
#define STBI_REALLOC(p, size) std::realloc(p, size)
#define STBI_FREE(p) std::free(p)
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_MAX_DIMENSIONS 8192
#include <stb/stb_image.h>
