// stb_image's implementation (Debian's libstb-dev), compiled once, for BMP only: JPEG and PNG go to
// libjpeg-turbo and libpng (src/data/jpeg.cpp, png.cpp), PGM/PPM are decoded in decode.cpp. stb
// 2.27 produced every fault fuzz/fuzz_image.cpp found, in its JPEG, PNM and PNG code, none in BMP;
// its allocations stay zeroed (calloc) so that any read of memory it never wrote is deterministic.
// 8192 pixels a side bounds a decode at 256 MiB (RGBA).
#include <cstdlib>
#define STBI_MALLOC(size) std::calloc(1, size)
#define STBI_REALLOC(p, size) std::realloc(p, size)
#define STBI_FREE(p) std::free(p)
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#define STBI_ONLY_BMP
#define STBI_MAX_DIMENSIONS 8192
#include <stb/stb_image.h>
