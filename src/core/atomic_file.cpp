// Crash-safe file writing: AtomicFileWriter (temporary file, fsync, rename, directory fsync).
#include "core/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "vit/error.hpp"

namespace vit {
namespace {

// The errno of a call that just failed (0 if it did not), read at once: building an error message
// allocates, and any library call may overwrite errno.
int error_if(bool failed) {
  if (!failed) return 0;
  return errno != 0 ? errno : EIO;
}

// Fault injection for the crash-safety tests (docs/RELIABILITY.md): VIT_FAULT_WRITE_DELAY_MS
// holds every write open that long before it is committed, so that a kill lands inside it.
void fault_delay() {
  static const long ms = [] {
    const char* v = std::getenv("VIT_FAULT_WRITE_DELAY_MS");
    return v ? std::strtol(v, nullptr, 10) : 0L;
  }();
  if (ms > 0) ::usleep(useconds_t(ms) * 1000);
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(const std::string& path)
    : path_(path), tmp_path_(path + kAtomicTempInfix + std::to_string(::getpid())) {
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (const int error = error_if(file_ == nullptr)) {
    fail_os(error, "cannot create '" + tmp_path_ + "'");
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (committed_) return;
  if (file_ != nullptr) std::fclose(file_);
  std::remove(tmp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t bytes) {
  if (const int error = error_if(bytes != 0 && std::fwrite(data, 1, bytes, file_) != bytes)) {
    fail_os(error, "writing '" + tmp_path_ + "' failed");
  }
}

// Makes the data durable before the rename, so the new name never points at missing data.
void AtomicFileWriter::commit() {
  fault_delay();
  if (const int error = error_if(std::fflush(file_) != 0)) {
    fail_os(error, "flushing '" + tmp_path_ + "' failed");
  }
  if (const int error = error_if(::fsync(::fileno(file_)) != 0)) {
    fail_os(error, "fsync of '" + tmp_path_ + "' failed");
  }
  const int close_error = error_if(std::fclose(file_) != 0);
  file_ = nullptr;  // closed even when fclose reports an error
  if (close_error) fail_os(close_error, "closing '" + tmp_path_ + "' failed");
  if (const int error = error_if(std::rename(tmp_path_.c_str(), path_.c_str()) != 0)) {
    fail_os(error, "renaming '" + tmp_path_ + "' over it failed");
  }
  committed_ = true;
  sync_directory();
}

void AtomicFileWriter::fail_os(int error, const std::string& step) const {
  throw Error("cannot write '" + path_ + "': " + step + ": " + std::strerror(error));
}

// The rename itself is only durable once the directory entry is synced.
void AtomicFileWriter::sync_directory() const {
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (const int error = error_if(fd < 0)) {
    fail_os(error, "cannot open directory '" + dir + "' to fsync it");
  }
  const int error = error_if(::fsync(fd) != 0);
  ::close(fd);
  // Some filesystems cannot fsync a directory; the file itself is already complete there.
  if (error != 0 && error != EINVAL && error != ENOTSUP) {
    fail_os(error, "fsync of directory '" + dir + "' failed");
  }
}

void write_atomically(const std::string& path, const void* bytes, size_t size) {
  AtomicFileWriter out(path);
  out.write(bytes, size);
  out.commit();
}

}  // namespace vit
