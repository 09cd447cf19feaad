// The shortest decimal that reads back as the same float, for JSON written by humans' tools:
// 0.005, not 0.004999999888241291 (nlohmann::json widens floats to double before printing).
#pragma once

#include <charconv>
#include <string>

#include "core/numbers.hpp"

namespace vit {

inline double json_float(float v) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return *parse_number<double>(std::string_view(buf, size_t(res.ptr - buf)));
}

}  // namespace vit
