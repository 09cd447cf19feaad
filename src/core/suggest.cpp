// Nearest known names for mistyped ones (vit/suggest.hpp): optimal string alignment distance.
#include "vit/suggest.hpp"

#include <algorithm>
#include <cctype>

namespace vit {
namespace {

int distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = int(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = int(j);
  auto same = [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  };
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (same(a[i - 1], b[j - 1]) ? 0 : 1)});
      if (i > 1 && j > 1 && same(a[i - 1], b[j - 2]) && same(a[i - 2], b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

}  // namespace

std::string closest_name(const std::string& word, const std::vector<std::string>& choices) {
  const int limit = word.size() <= 4 ? 1 : (word.size() <= 8 ? 2 : 3);
  std::string best;
  int best_d = limit + 1;
  for (const std::string& c : choices) {
    const int d = distance(word, c);
    if (d == 0) return "";
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& choices) {
  const std::string c = closest_name(word, choices);
  return c.empty() ? "" : "; did you mean '" + c + "'?";
}

}  // namespace vit
