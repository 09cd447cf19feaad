// Crash-safe file writing, the one way every file vitcpp writes is written: a temporary file next
// to the target, flushed and fsync'ed, renamed over it, then the directory fsync'ed, so a crash
// or a full disk leaves either the old file or the new one, never a partial one.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace vit {

// The temporary file is path + kAtomicTempInfix + the writer's pid (remove_interrupted_writes in
// vit/safetensors.hpp removes those a killed process left).
inline constexpr const char* kAtomicTempInfix = ".tmp-";

// Writes to the temporary file; commit() makes it durable and renames it over `path`. Destroyed
// without commit() (an error, an exception), it removes the temporary file. Every failure is a
// vit::Error "cannot write 'path': <step>: <reason>".
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t bytes);
  void commit();

 private:
  [[noreturn]] void fail_os(int error, const std::string& step) const;
  void sync_directory() const;

  std::string path_;
  std::string tmp_path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// The whole of `bytes` to `path`, atomically (as above).
void write_atomically(const std::string& path, const void* bytes, size_t size);

}  // namespace vit
