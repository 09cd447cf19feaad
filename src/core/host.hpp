// This machine's name, for messages that say where a process runs (a run directory's lock
// holder, a rank's host).
#pragma once

#include <unistd.h>

#include <string>

namespace vit {

// gethostname(2), or "localhost" where it fails.
inline std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

}  // namespace vit
