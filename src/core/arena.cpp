// Arena implementation: planning offsets and the single aligned allocation.
#include "core/arena.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "vit/error.hpp"

namespace vit {

size_t Arena::add(size_t n) {
  VIT_CHECK(!allocated(), "internal: Arena::add after allocate");
  size_t offset = size_;
  size_ += (n + kAlign - 1) / kAlign * kAlign;
  return offset;
}

void Arena::allocate() {
  VIT_CHECK(!allocated(), "internal: Arena::allocate called twice");
  size_t bytes = std::max<size_t>(size_, kAlign) * sizeof(float);
  void* p = std::aligned_alloc(kAlign * sizeof(float), bytes);
  if (!p) {
    throw Error("out of memory: could not allocate " + std::to_string(bytes >> 20) +
                " MiB; use a smaller batch or model");
  }
  std::memset(p, 0, bytes);
  data_.reset(static_cast<float*>(p));
}

void Arena::Free::operator()(float* p) const {
  std::free(p);
}

}  // namespace vit
