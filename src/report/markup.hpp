// Text for markup (SVG, HTML): escaping, shared by the report's writers.
#pragma once

#include <string>

namespace vit::report {

// s with &, <, > and " as character references, safe in element text and quoted attributes.
inline std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace vit::report
