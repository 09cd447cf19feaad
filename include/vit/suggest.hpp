// "Did you mean": the known name closest to a mistyped one, for error messages (presets, datasets,
// commands, options).
#pragma once

#include <string>
#include <vector>

namespace vit {

// The choice nearest to `word` by edit distance (insertions, deletions, substitutions and swaps of
// two neighbouring characters, case ignored) when it is close: at most 1 edit for words of up to 4
// characters, 2 up to 8, 3 beyond. Empty when none is that close (or word is one of the choices).
std::string closest_name(const std::string& word, const std::vector<std::string>& choices);

// "; did you mean 'X'?" for closest_name's X, or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& choices);

}  // namespace vit
