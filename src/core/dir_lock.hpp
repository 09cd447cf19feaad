// A run directory's lock: one process at a time trains in (or resumes) a run directory. Another
// process given the same directory is refused instead of overwriting the first one's checkpoints.
// An advisory flock(2) on the directory's `.vit.lock` file: the kernel releases it when the
// process ends in any way (a crash, SIGKILL), so on a local disk a lock is never left stale. On
// NFS, flock is a lock of the server's (NLM on NFSv3: a crashed client's lock stays until that
// machine is back); a mount with `nolock` or `local_lock=flock` locks only within one machine.
#pragma once

#include <string>

namespace vit {

// The lock file inside a run directory.
inline constexpr const char* kRunLockFile = ".vit.lock";

class DirLock {
 public:
  // Takes the lock of `dir` (which must exist) and writes this process's pid and host into the
  // lock file. Held by another process: vit::Error naming that process's pid and host. On a file
  // system without flock (some network and FUSE mounts: ENOLCK, EOPNOTSUPP) the directory is used
  // unlocked, and unsupported() says why.
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  // Empty when the lock is held; otherwise the system's reason it could not be taken.
  const std::string& unsupported() const { return unsupported_; }

 private:
  int fd_ = -1;
  std::string unsupported_;
};

}  // namespace vit
