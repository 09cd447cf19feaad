// vit::TensorView: a non-owning view of a row-major fp32 tensor (last dimension contiguous).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vit {

struct TensorView {
  float* data = nullptr;
  std::vector<int64_t> shape;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// "[2, 3, 4]", for error messages.
std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace vit
