// Arena implementation: planning offsets and the single aligned allocation.
#include "core/arena.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/mman.h>

#include "vit/error.hpp"

namespace vit {

namespace {
constexpr size_t kHuge = size_t(2) << 20;  // a transparent huge page on x86-64
}  // namespace

void advise_huge_pages(void* p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p, (void)bytes;
#endif
}

size_t Arena::add(size_t n) {
  VIT_CHECK(!allocated(), "internal: Arena::add after allocate");
  size_t offset = size_;
  size_ += (n + kAlign - 1) / kAlign * kAlign;
  return offset;
}

void Arena::allocate() {
  VIT_CHECK(!allocated(), "internal: Arena::allocate called twice");
  size_t bytes = std::max<size_t>(size_, kAlign) * sizeof(float);
  // A large arena (weights, gradients, activations) in whole 2 MiB pages, backed by transparent
  // huge pages (advise_huge_pages). Measured: docs/PERFORMANCE.md, "Huge pages".
  const bool huge = bytes >= 2 * kHuge;
  size_t align = kAlign * sizeof(float);
  if (huge) {
    bytes = (bytes + kHuge - 1) / kHuge * kHuge;
    align = kHuge;
  }
  void* p = std::aligned_alloc(align, bytes);
  if (!p) {
    throw Error("out of memory: could not allocate " + std::to_string(bytes >> 20) +
                " MiB; use a smaller batch or model");
  }
  if (huge) advise_huge_pages(p, bytes);
  std::memset(p, 0, bytes);
  data_.reset(static_cast<float*>(p));
}

void Arena::Free::operator()(float* p) const {
  std::free(p);
}

}  // namespace vit
