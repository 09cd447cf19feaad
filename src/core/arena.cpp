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
// madvise(advice) on the whole pages of `page` bytes within [p, p + bytes).
void advise_whole_pages(void* p, size_t bytes, uintptr_t page, int advice) {
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, advice);
}
}  // namespace

void advise_huge_pages(void* p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  advise_whole_pages(p, bytes, kHuge, MADV_HUGEPAGE);
#else
  (void)p, (void)bytes;
#endif
}

void advise_small_pages(void* p, size_t bytes) {
#ifdef MADV_NOHUGEPAGE
  advise_whole_pages(p, bytes, kHuge, MADV_NOHUGEPAGE);
#else
  (void)p, (void)bytes;
#endif
}

void release_pages(void* p, size_t bytes) {
  advise_whole_pages(p, bytes, 4096, MADV_DONTNEED);
}

void* allocate_huge(size_t bytes) {
  const size_t used = bytes;  // the huge pages advised: those it covers whole
  bytes = (bytes + kHuge - 1) / kHuge * kHuge;
  const size_t mapped = bytes + kHuge;  // room to start on a 2 MiB boundary
  void* base = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return nullptr;
  // The whole pages before the boundary and past the end go back at once.
  const uintptr_t b = reinterpret_cast<uintptr_t>(base);
  const uintptr_t start = (b + kHuge - 1) & ~(kHuge - 1);
  if (start > b) ::munmap(base, start - b);
  if (b + mapped > start + bytes)
    ::munmap(reinterpret_cast<void*>(start + bytes), b + mapped - start - bytes);
  void* p = reinterpret_cast<void*>(start);
  advise_huge_pages(p, used);
  return p;
}

void free_huge(void* p, size_t bytes) {
  ::munmap(p, (bytes + kHuge - 1) / kHuge * kHuge);
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
  const auto out_of_memory = [&] {
    return Error("out of memory: could not allocate " + std::to_string(bytes >> 20) +
                 " MiB; use a smaller batch or model");
  };
  if (bytes < 2 * kHuge) {
    void* p = std::aligned_alloc(kAlign * sizeof(float), bytes);
    if (!p) throw out_of_memory();
    std::memset(p, 0, bytes);  // the heap's memory may hold anything
    data_ = std::unique_ptr<float, Free>(static_cast<float*>(p), Free{0});
    return;
  }
  // A large arena (weights, gradients, activations) straight from the kernel (allocate_huge):
  // its pages read as zeros and take memory only once written (a model loaded for bf16 inference
  // never holds all of its fp32 weights at once: Model::load).
  bytes = (bytes + kHuge - 1) / kHuge * kHuge;  // every page huge, the last one included
  void* p = allocate_huge(bytes);
  if (!p) throw out_of_memory();
  data_ = std::unique_ptr<float, Free>(static_cast<float*>(p), Free{bytes});
}

void Arena::Free::operator()(float* p) const {
  if (huge_bytes) {
    free_huge(p, huge_bytes);
  } else {
    std::free(p);
  }
}

}  // namespace vit
