// Helpers the CPU kernels share with each other, not part of the op contract (ops.hpp): declared,
// like the ops, in the instruction-set namespace this file is compiled for.
#pragma once

#include <cstdint>

#include "ops/ops.hpp"

#ifndef VIT_ISA_NS
#error "src/ops/cpu is compiled once per instruction set, with VIT_ISA_NS set (CMakeLists.txt)"
#endif

namespace vit::ops::VIT_ISA_NS {

// The GEMM epilogue on the block C[i0:i0+m, j0:j0+n] (C points at its first element); for
// kResidualNorm the block must hold whole rows (j0 = 0, n = N). (gelu.cpp)
void apply_epilogue(const Epilogue& e, float* C, int64_t ldc, int64_t i0, int j0, int m, int n);

// kResidualNorm's work on the whole rows C[i0:i0+m, 0:n]. (layernorm.cpp)
void residual_norm_rows(const Epilogue& e, float* C, int64_t ldc, int64_t i0, int m, int n);

// dst[j] += sum_r src[r, j] for src [R, D]. Each column is summed by one thread in row order, so
// the result does not depend on the thread count. (reduce.cpp)
void colsum_accumulate(const Context& ctx, float* dst, const float* src, int64_t R, int D);

}  // namespace vit::ops::VIT_ISA_NS
