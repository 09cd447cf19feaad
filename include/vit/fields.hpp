// One declaration per field: a settings struct (vit::Config, vit::Recipe, the training state) lists
// each of its fields once, in a static visit_fields(self, visitor) that calls
// visitor(const Field&, member) for every field in order. JSON, validation, messages, parsing from
// text and the CLI's options are derived from those lists, so a new field is one line in its list
// plus its use.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <type_traits>

#include "vit/error.hpp"

namespace vit {

// What one field is. Messages name a field as `name` (in backticks), which the CLI turns into the
// option that sets it.
struct Field {
  const char* name = "";  // snake_case: the JSON key, and the name messages use
  const char* help = "";  // one line, for the CLI's --help
  // Numbers: the accepted values, lo <= v <= hi (lo < v with lo_open, v < hi with hi_open),
  // compared in the member's type; any finite value when lo > hi.
  double lo = 1, hi = 0;
  bool lo_open = false, hi_open = false;
  // The words an enum (its values 0, 1, ... in order), a string (its only values) or a bool
  // (false, true) is written as; none for numbers and plain bools (JSON true / false, on the
  // command line a switch and its --no- form).
  std::array<const char*, 4> words{};
  const char* flag = nullptr;  // the CLI's option when it is not the name with '-' for '_'
  bool cli = true;             // offered as a CLI option
  bool json_bool = false;      // a bool with words that JSON still holds as true / false
  bool optional = false;       // may be missing from JSON written before the field existed
};

// A number field's accepted values as messages and --help show them: "[1, 64]", "(0, 10]"; empty
// when any finite value is.
std::string field_range(const Field& f);

// What is wrong with `value` for field f ("must be in [1, 64] (got 0)"); empty when nothing.
std::string field_problem(const Field& f, int value);
std::string field_problem(const Field& f, int64_t value);
std::string field_problem(const Field& f, uint64_t value);
std::string field_problem(const Field& f, float value);
std::string field_problem(const Field& f, double value);
std::string field_problem(const Field& f, bool value);
std::string field_problem(const Field& f, const std::string& value);
template <class E>
requires std::is_enum_v<E> std::string field_problem(const Field& f, E value) {
  const int i = int(value);
  return i >= 0 && i < int(f.words.size()) && f.words[size_t(i)] ? std::string()
                                                                 : "is not a known value";
}

// Reads `text` (as typed on a command line: "96", "3e-3", "sincos", "true") as field f's value
// into out, checking it as field_problem does; returns what is wrong (out is then unspecified),
// empty when nothing.
std::string parse_field(const Field& f, const std::string& text, int& out);
std::string parse_field(const Field& f, const std::string& text, int64_t& out);
std::string parse_field(const Field& f, const std::string& text, uint64_t& out);
std::string parse_field(const Field& f, const std::string& text, float& out);
std::string parse_field(const Field& f, const std::string& text, double& out);
std::string parse_field(const Field& f, const std::string& text, bool& out);
std::string parse_field(const Field& f, const std::string& text, std::string& out);
// The index of `text` among f.words, or a message listing them.
std::string parse_word(const Field& f, const std::string& text, int& index);
template <class E>
requires std::is_enum_v<E> std::string parse_field(const Field& f, const std::string& text,
                                                   E& out) {
  int i = 0;
  std::string problem = parse_word(f, text, i);
  if (problem.empty()) out = E(i);
  return problem;
}

// Every field of s checked on its own (ranges, words); vit::Error "<what>: `name` <problem>"
// ("`name` <problem>" when what is empty) for the first bad one. Rules between fields are the
// struct's validate()'s.
template <class S>
void validate_fields(const S& s, const std::string& what) {
  S::visit_fields(s, [&](const Field& f, const auto& member) {
    if constexpr (requires { field_problem(f, member); }) {
      const std::string problem = field_problem(f, member);
      VIT_CHECK(problem.empty(), (what.empty() ? "" : what + ": ") + "`" + f.name + "` " + problem);
    }
  });
}

// Sets the field called `name` from its text form; vit::Error naming the field when s has none of
// that name or the text is not one of its values.
template <class S>
void set_field(S& s, const std::string& name, const std::string& text) {
  bool found = false;
  S::visit_fields(s, [&](const Field& f, auto& member) {
    if constexpr (requires { parse_field(f, text, member); }) {
      if (found || name != f.name) return;
      found = true;
      const std::string problem = parse_field(f, text, member);
      VIT_CHECK(problem.empty(), "`" + name + "` " + problem);
    }
  });
  VIT_CHECK(found, "there is no field `" + name + "`");
}

}  // namespace vit
