// The `vit` command-line tool. In this first version it only answers --help and --version; the
// train / eval / predict / info commands come next.
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc >= 2 && (!std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "version"))) {
    std::printf("vit %s\n", VIT_VERSION);
    return 0;
  }
  const bool help = argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
                                  !std::strcmp(argv[1], "help"));
  std::FILE* out = help ? stdout : stderr;
  std::fprintf(out,
               "vit %s - Vision Transformers in C++\n\n"
               "usage: vit --help | --version\n",
               VIT_VERSION);
  if (!help && argc >= 2) std::fprintf(stderr, "vit: unknown command '%s'\n", argv[1]);
  return help ? 0 : 2;
}
