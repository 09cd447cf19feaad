// JSON from the field lists (include/vit/fields.hpp): a struct written as one object, each field
// under its name in list order, and read back with every key and type checked.
#pragma once

#include <climits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>

#include "core/json_float.hpp"
#include "vit/error.hpp"
#include "vit/fields.hpp"

namespace vit {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
nlohmann::ordered_json field_json(const Field& f, const T& v) {
  if constexpr (is_optional<T>::value) {
    return v ? field_json(f, *v) : nlohmann::ordered_json(nullptr);  // absent: null
  } else if constexpr (std::is_enum_v<T>) {
    return f.words[size_t(v)];
  } else if constexpr (std::is_same_v<T, bool>) {
    if (f.words[0] && !f.json_bool) return f.words[v ? 1 : 0];
    return v;
  } else if constexpr (std::is_same_v<T, float>) {
    return json_float(v);  // the shortest decimal: 0.005, not 0.004999999888241291
  } else {
    return v;
  }
}

template <class T>
void read_field_json(const Field& f, const nlohmann::json& j, T& out, const std::string& what) {
  const std::string bad = what + ": '" + f.name + "' must be ";
  if constexpr (is_optional<T>::value) {  // null: absent
    if (j.is_null()) {
      out.reset();
    } else {
      typename T::value_type v{};
      read_field_json(f, j, v, what);
      out = v;
    }
  } else if constexpr (std::is_enum_v<T> || std::is_same_v<T, std::string> ||
                       std::is_same_v<T, bool>) {
    if constexpr (std::is_same_v<T, bool>) {
      if (!f.words[0] || f.json_bool) {
        VIT_CHECK(j.is_boolean(), bad + "true or false");
        out = j.get<bool>();
        return;
      }
    }
    VIT_CHECK(j.is_string(), bad + "a string");
    std::string problem;
    if constexpr (std::is_same_v<T, std::string>) {
      out = j.get<std::string>();
      problem = field_problem(f, out);
    } else {
      int i = 0;
      problem = parse_word(f, j.get<std::string>(), i);
      out = T(i);
    }
    VIT_CHECK(problem.empty(), what + ": '" + f.name + "' " + problem);
  } else if constexpr (std::is_floating_point_v<T>) {
    VIT_CHECK(j.is_number(), bad + "a number");
    out = j.get<T>();
  } else if constexpr (std::is_unsigned_v<T>) {
    VIT_CHECK(j.is_number_unsigned(), bad + "an integer >= 0");
    out = j.get<T>();
  } else {
    VIT_CHECK(j.is_number_integer(), bad + "an integer");
    const int64_t x = j.get<int64_t>();
    VIT_CHECK(x >= std::numeric_limits<T>::min() && x <= std::numeric_limits<T>::max(),
              what + ": '" + f.name + "' is out of range");
    out = T(x);
  }
}

// s as one JSON object, its fields in list order.
template <class S>
nlohmann::ordered_json fields_to_json(const S& s) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  S::visit_fields(s,
                  [&](const Field& f, const auto& member) { j[f.name] = field_json(f, member); });
  return j;
}

// Reads s from the JSON text of fields_to_json; `what` names it in messages ("model config").
// Every field must be present (but optional ones, which keep their value) and of its type; with
// strict_keys a key that is no field is refused too. Range checks are the caller's (validate()).
template <class S>
void fields_from_json(S& s, const std::string& text, const std::string& what, bool strict_keys) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + " is not valid JSON: " + e.what());
  }
  VIT_CHECK(j.is_object(), what + " must be a JSON object");
  if (strict_keys) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      bool known = false;
      S::visit_fields(s, [&](const Field& f, const auto&) { known |= it.key() == f.name; });
      VIT_CHECK(known, what + " has an unknown key '" + it.key() + "'");
    }
  }
  S::visit_fields(s, [&](const Field& f, auto& member) {
    if (!j.contains(f.name)) {
      VIT_CHECK(f.optional, what + " is missing the key '" + std::string(f.name) + "'");
      return;
    }
    read_field_json(f, j[f.name], member, what);
  });
}

}  // namespace vit
