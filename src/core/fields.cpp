// The field lists' shared pieces (include/vit/fields.hpp): range and word checks, and reading a
// field's value from its text form.
#include "vit/fields.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "core/numbers.hpp"

namespace vit {
namespace {

// The shortest text that reads back as v (1e-06, 0.99), whole numbers in full (100000, not 1e+05).
template <class T>
std::string shortest(T v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[32];
  return std::string(buf, std::to_chars(buf, buf + sizeof(buf), v).ptr);
}

template <class T>
std::string range_problem(const Field& f, T v, const std::string& shown) {
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(v)) return "must be a finite number (got " + shown + ")";
  }
  if (f.lo > f.hi) return "";
  const T lo = T(f.lo), hi = T(f.hi);
  const bool ok = (f.lo_open ? v > lo : v >= lo) && (f.hi_open ? v < hi : v <= hi);
  if (ok) return "";
  return "must be in " + field_range(f) + " (got " + shown + ")";
}

std::string word_list(const Field& f) {
  std::string s;
  for (const char* w : f.words) {
    if (w) s += std::string(s.empty() ? "'" : " or '") + w + "'";
  }
  return s;
}

template <class T>
std::string parse_integer(const Field& f, const std::string& text, T& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  if (ec == std::errc::result_out_of_range) return "is out of range (got " + text + ")";
  if (ec != std::errc() || ptr != end || text.empty()) {
    return std::string(std::is_signed_v<T> ? "must be an integer" : "must be an integer >= 0") +
           " (got '" + text + "')";
  }
  return field_problem(f, out);
}

// Floats are read as the command line always read them (CLI11: strtold, then rounded to the
// member's type), so that a flag gives the same bits it gave before; in any locale.
template <class T>
std::string parse_real(const Field& f, const std::string& text, T& out) {
  const std::optional<long double> read = parse_number<long double>(text);
  if (!read) return "must be a number (got '" + text + "')";
  const long double v = *read;
  out = static_cast<T>(v);
  // A value too small for T would read as 0 (no validation split for --val-split 1e-300).
  if (v != 0 && out == 0) {
    return "is too close to 0 to be held (got '" + text + "'): give 0 or a larger value";
  }
  return field_problem(f, out);
}

}  // namespace

std::string field_range(const Field& f) {
  std::string s;
  if (f.lo > f.hi) return s;
  s += f.lo_open ? '(' : '[';
  s += shortest(f.lo);
  s += ", ";
  s += shortest(f.hi);
  s += f.hi_open ? ')' : ']';
  return s;
}

std::string field_problem(const Field& f, int value) {
  return range_problem(f, value, std::to_string(value));
}
std::string field_problem(const Field& f, int64_t value) {
  return range_problem(f, value, std::to_string(value));
}
std::string field_problem(const Field& f, uint64_t value) {
  return range_problem(f, value, std::to_string(value));
}
std::string field_problem(const Field& f, float value) {
  return range_problem(f, value, shortest(value));
}
std::string field_problem(const Field& f, double value) {
  return range_problem(f, value, shortest(value));
}
std::string field_problem(const Field&, bool) {
  return "";
}
std::string field_problem(const Field& f, const std::string& value) {
  if (!f.words[0]) return "";
  int i = 0;
  return parse_word(f, value, i);
}

std::string parse_word(const Field& f, const std::string& text, int& index) {
  for (size_t i = 0; i < f.words.size(); ++i) {
    if (f.words[i] && text == f.words[i]) {
      index = int(i);
      return "";
    }
  }
  return "must be " + word_list(f) + " (got '" + text + "')";
}

std::string parse_field(const Field& f, const std::string& text, int& out) {
  return parse_integer(f, text, out);
}
std::string parse_field(const Field& f, const std::string& text, int64_t& out) {
  return parse_integer(f, text, out);
}
std::string parse_field(const Field& f, const std::string& text, uint64_t& out) {
  return parse_integer(f, text, out);
}
std::string parse_field(const Field& f, const std::string& text, float& out) {
  return parse_real(f, text, out);
}
std::string parse_field(const Field& f, const std::string& text, double& out) {
  return parse_real(f, text, out);
}
std::string parse_field(const Field& f, const std::string& text, bool& out) {
  if (f.words[0]) {
    int i = 0;
    std::string problem = parse_word(f, text, i);
    out = i == 1;
    return problem;
  }
  if (text != "true" && text != "false") return "must be true or false (got '" + text + "')";
  out = text == "true";
  return "";
}
std::string parse_field(const Field& f, const std::string& text, std::string& out) {
  out = text;
  return field_problem(f, out);
}

}  // namespace vit
