// AMX's tile configuration as every AMX kernel here loads it (the bf16 GEMM, bench/fma_peak.cpp's
// peak): palette 1, tiles 0-7 each 16 rows of 64 bytes (16 fp32 sums, or 16 bf16 pairs).
#pragma once

#include <cstdint>

namespace vit::ops {

struct alignas(64) AmxConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

}  // namespace vit::ops
