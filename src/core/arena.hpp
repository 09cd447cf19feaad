// Arena: one 64-byte-aligned allocation carved into many fp32 tensors (llm.c style). Tensors are
// planned first (add), the block is allocated once (allocate), and nothing is allocated after.
#pragma once

#include <cstddef>
#include <memory>

namespace vit {

constexpr size_t kHuge = size_t(2) << 20;  // a transparent huge page on x86-64

// Asks Linux to back the whole 2 MiB pages within [p, p + bytes) with transparent huge pages, which
// its default policy ("madvise") grants only when asked: 512 times fewer page faults when the
// memory is first written, and fewer TLB misses. A hint: elsewhere, or when refused, nothing
// changes.
void advise_huge_pages(void* p, size_t bytes);

// Hands the whole pages within [p, p + bytes) of an arena back to the system: they then read as
// zeros and take no memory until written again.
void release_pages(void* p, size_t bytes);
// Memory straight from the kernel in whole 2 MiB pages, starting on one, the pages that `bytes`
// covers whole backed by transparent huge pages (advise_huge_pages; a partial last page stays in
// 4 KiB pages, so what is never written past `bytes` takes no memory; measured:
// docs/PERFORMANCE.md, "Huge pages"); it reads as zeros and takes memory only once written. Null
// when the system refuses. free_huge takes the same bytes.
void* allocate_huge(size_t bytes);
void free_huge(void* p, size_t bytes);
// Undoes advise_huge_pages for memory that will be written only here and there (one 4 KiB page
// is then all that writing a bias costs, instead of a 2 MiB one).
void advise_small_pages(void* p, size_t bytes);

class Arena {
 public:
  static constexpr size_t kAlign = 16;  // floats: each tensor starts on a 64-byte boundary

  // Plans a tensor of n floats; returns its offset in floats. Only before allocate().
  size_t add(size_t n);
  // Allocates (zero-filled) everything planned. Throws vit::Error if the memory is not available.
  void allocate();

  bool allocated() const { return data_ != nullptr; }
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  size_t size() const { return size_; }  // floats, padding included
  float* at(size_t offset) { return data_.get() + offset; }
  const float* at(size_t offset) const { return data_.get() + offset; }

 private:
  struct Free {
    size_t huge_bytes;  // a large arena's size (allocate_huge), else 0: the heap's
    void operator()(float* p) const;
  };
  std::unique_ptr<float, Free> data_;
  size_t size_ = 0;
};

}  // namespace vit
