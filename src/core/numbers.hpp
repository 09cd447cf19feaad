// Numbers as text and back in the C locale's form whatever the program's locale: a program that
// calls setlocale (a Qt or GTK one) would otherwise have printf write, and strtod read, decimal
// commas, into checkpoints and out of flags. std::to_chars / std::from_chars never look at it.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace vit {

// printf's "%.*f" of v.
inline std::string fixed_text(double v, int decimals) {
  char buf[400];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
  return std::string(buf, r.ptr);
}

// printf's "%.*g" of v.
inline std::string general_text(double v, int digits) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, digits);
  return std::string(buf, r.ptr);
}

// The whole of text (a leading '+' allowed) as a number of type T, correctly rounded; nullopt for
// other text or a value outside T's range.
template <class T>
std::optional<T> parse_number(std::string_view text) {
  if (text.starts_with('+')) {
    text.remove_prefix(1);
    if (text.starts_with('-')) return std::nullopt;
  }
  T v{};
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size() || text.empty()) {
    return std::nullopt;
  }
  return v;
}

}  // namespace vit
