// XmlEscape: text made safe inside an XML/SVG element or a quoted attribute
// (S3 request bodies, the sweep plot's SVG labels).
#ifndef CALDERA_CORE_UTIL_XML_ESCAPE_H_
#define CALDERA_CORE_UTIL_XML_ESCAPE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace caldera {

// `text` with & < > " ' replaced by their predefined entities; every other
// byte (UTF-8 included) is kept.
inline std::string XmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
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
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace caldera

#endif  // CALDERA_CORE_UTIL_XML_ESCAPE_H_
