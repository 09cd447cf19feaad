// Available memory (include/vit/memory.hpp), read from /proc/meminfo.
#include "vit/memory.hpp"

#include <fstream>

#include "vit/error.hpp"

namespace vit {

int64_t available_memory() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  int64_t kb = 0;
  while (f >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return -1;
}

void require_memory(int64_t bytes, const std::string& what, const std::string& remedy) {
  const int64_t have = available_memory();
  VIT_CHECK(have < 0 || bytes <= have, what + " needs about " + std::to_string(bytes >> 20) +
                                           " MiB but only " + std::to_string(have >> 20) +
                                           " MiB of memory is available; " + remedy);
}

}  // namespace vit
