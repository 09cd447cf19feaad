// This machine's name, for messages that say where a process runs (a run directory's lock
// holder, a rank's host), and the CPUs this process may run on.
#pragma once

#include <sched.h>
#include <unistd.h>

#include <string>

namespace vit {

// gethostname(2), or "localhost" where it fails.
inline std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

// This process's CPU affinity (sched_getaffinity), or an empty set where it cannot be read.
inline cpu_set_t cpu_affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) CPU_ZERO(&set);
  return set;
}

}  // namespace vit
