// A run directory's lock (core/dir_lock.hpp): flock(2) on DIR/.vit.lock, the holder's pid and
// host inside.
#include "core/dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/host.hpp"
#include "vit/error.hpp"

namespace vit {

DirLock::DirLock(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kRunLockFile).string();
  // Who holds it, for another process's message (the lock itself is the flock, not this text);
  // the host too, since a directory on a shared file system may be locked from another machine.
  // Made before the file is opened, so that nothing after the open can throw but the refusals.
  const std::string who = "pid " + std::to_string(::getpid()) + " on " + host_name();
  // 0666 less the umask, as the checkpoints are made: a group sharing a run directory can resume
  // it. O_NOFOLLOW: a link planted in a shared directory is not followed (and emptied below).
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd_ < 0) {
    const int error = errno;
    throw Error("cannot lock the run directory '" + dir + "': cannot open '" + path +
                "': " + std::strerror(error));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error == ENOLCK || error == EOPNOTSUPP || error == ENOSYS) {
      ::close(fd_);
      fd_ = -1;
      unsupported_ = std::strerror(error);
      return;
    }
    char holder[320] = {};
    const ssize_t n = error == EWOULDBLOCK ? ::pread(fd_, holder, sizeof holder - 1, 0) : 0;
    ::close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK) {
      throw Error("'" + dir + "' is in use: another process (" +
                  (n > 0 ? std::string(holder, size_t(n)) : std::string("starting")) +
                  ") is training in it; wait for it to end, or use another directory");
    }
    throw Error("cannot lock the run directory '" + dir + "': flock on '" + path +
                "': " + std::strerror(error));
  }
  // The text is only for the messages: a full disk that refuses it does not stop the run. Synced,
  // so that another machine of a network file system reads it.
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, who.data(), who.size(), 0) > 0) ::fsync(fd_);
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace vit
