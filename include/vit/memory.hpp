// The machine's available memory, and the check that refuses work needing more than that before
// anything is allocated (training, `vit bench`).
#pragma once

#include <cstdint>
#include <string>

namespace vit {

// MemAvailable from /proc/meminfo, in bytes; -1 where it is unknown (not Linux).
int64_t available_memory();

// vit::Error "<what> needs about N MiB but only M MiB of memory is available; <remedy>" when
// bytes exceed available_memory() (nothing when that is unknown).
void require_memory(int64_t bytes, const std::string& what, const std::string& remedy);

}  // namespace vit
