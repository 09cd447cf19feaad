// vit::Error: the one exception type the library throws. Its message says what was wrong and what
// to do about it; the CLI prints it and exits non-zero.
#pragma once

#include <stdexcept>
#include <string>

namespace vit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Throws vit::Error(message) when cond is false. A macro so that the message (usually built from
// strings) is only evaluated on failure: checks cost nothing on hot paths and never allocate.
#define VIT_CHECK(cond, message)              \
  do {                                        \
    if (!(cond)) throw ::vit::Error(message); \
  } while (0)

}  // namespace vit
