// The harnesses' input files: the loaders under test read paths, so each input goes to a file of
// its own (per process and tag) that is removed when the input is done.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

struct TempFile {
  std::string path;
  // Only the name: the code under test writes the file.
  explicit TempFile(const char* tag)
      : path("/tmp/vit-fuzz-" + std::to_string(::getpid()) + "-" + tag) {}
  // The file holding `size` bytes of `data`.
  TempFile(const char* tag, const uint8_t* data, size_t size) : TempFile(tag) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  ~TempFile() { std::remove(path.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
};
