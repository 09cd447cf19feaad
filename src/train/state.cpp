// What a run writes besides its tensors, from the field lists: the resume state as metadata text
// (state.hpp) and an epoch's metrics.jsonl line.
#include "train/state.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <type_traits>

#include "core/fields_json.hpp"
#include "core/numbers.hpp"
#include "vit/error.hpp"

namespace vit {

std::map<std::string, std::string> TrainState::to_metadata() const {
  std::map<std::string, std::string> md = {{"kind", "train-state"}};
  visit_fields(*this, [&](const Field& f, const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, std::string>) {
      md[f.name] = v;
    } else if constexpr (std::is_same_v<T, Recipe>) {
      md[f.name] = v.to_json();
    } else if constexpr (std::is_same_v<T, double>) {
      md[f.name] = general_text(v, 17);
    } else {
      md[f.name] = std::to_string(v);
    }
  });
  return md;
}

TrainState TrainState::from_metadata(const std::map<std::string, std::string>& md,
                                     const std::string& path) {
  VIT_CHECK(md.count("kind") && md.at("kind") == "train-state",
            "'" + path + "' is not a vitcpp training state");
  TrainState s;
  visit_fields(s, [&](const Field& f, auto& v) {
    using T = std::decay_t<decltype(v)>;
    auto it = md.find(f.name);
    if (it == md.end() && f.optional) return;  // a state written before the field existed
    VIT_CHECK(it != md.end(), "'" + path + "' has no '" + f.name + "' in its metadata");
    const std::string& text = it->second;
    if constexpr (std::is_same_v<T, std::string>) {
      v = text;
    } else if constexpr (std::is_same_v<T, Recipe>) {
      v = Recipe::from_json(text);
    } else {
      bool ok = false;
      try {
        size_t used = 0;
        if constexpr (std::is_same_v<T, double>) {
          const std::optional<double> read = parse_number<double>(text);
          ok = read && std::isfinite(*read);
          if (ok) v = *read;
        } else {
          const long long x = std::stoll(text, &used);
          v = T(x);
          ok = used == text.size() && x >= -1 && x <= std::numeric_limits<T>::max();
        }
      } catch (const std::exception&) {
      }
      VIT_CHECK(ok, "'" + path + "': metadata '" + f.name + "' is not a valid " +
                        (std::is_same_v<T, double> ? "number" : "integer") + " ('" + text + "')");
    }
  });
  return s;
}

std::string EpochMetrics::to_json() const {
  return fields_to_json(*this).dump();
}

}  // namespace vit
