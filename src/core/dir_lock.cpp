// A run directory's lock (core/dir_lock.hpp): flock(2) on DIR/.lock, the holder's pid and host
// inside.
#include "core/dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "vit/error.hpp"

namespace vit {

DirLock::DirLock(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kRunLockFile).string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int error = errno;
    throw Error("cannot lock the run directory '" + dir + "': cannot open '" + path +
                "': " + std::strerror(error));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char holder[320] = {};
    const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (error == ENOLCK || error == EOPNOTSUPP || error == ENOSYS) {
      unsupported_ = std::strerror(error);
      return;
    }
    if (error == EWOULDBLOCK) {
      throw Error("'" + dir + "' is in use: another process (" +
                  (n > 0 ? std::string(holder, size_t(n)) : std::string("starting")) +
                  ") is training in it; wait for it to end, or choose another `out_dir`");
    }
    throw Error("cannot lock the run directory '" + dir + "': flock on '" + path +
                "': " + std::strerror(error));
  }
  // Who holds it, for the message above (the lock itself is the flock, not this text); the host
  // too, since a run directory on a shared file system may be locked from another machine.
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = 0;
  const std::string who =
      "pid " + std::to_string(::getpid()) + (host[0] ? std::string(" on ") + host : "");
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, who.data(), who.size(), 0) < 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    throw Error("cannot write the run directory's lock '" + path + "': " + std::strerror(error));
  }
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace vit
