#include "storage/s3_xml.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace caldera::storage {

std::vector<absl::string_view> XmlElements(absl::string_view xml, absl::string_view tag) {
  std::vector<absl::string_view> out;
  const std::string open = absl::StrCat("<", tag);
  const std::string close = absl::StrCat("</", tag, ">");
  size_t pos = 0;
  while (true) {
    size_t start = xml.find(open, pos);
    if (start == absl::string_view::npos) break;
    const size_t after = start + open.size();
    if (after >= xml.size()) break;
    const char c = xml[after];
    if (c != '>' && c != ' ' && c != '/' && c != '\t' && c != '\n') {  // a longer tag name
      pos = after;
      continue;
    }
    const size_t gt = xml.find('>', after);
    if (gt == absl::string_view::npos) break;
    if (xml[gt - 1] == '/') {  // <Tag/>
      out.push_back(absl::string_view());
      pos = gt + 1;
      continue;
    }
    const size_t end = xml.find(close, gt + 1);
    if (end == absl::string_view::npos) break;
    out.push_back(xml.substr(gt + 1, end - gt - 1));
    pos = end + close.size();
  }
  return out;
}

std::string XmlFirst(absl::string_view xml, absl::string_view tag) {
  std::vector<absl::string_view> e = XmlElements(xml, tag);
  return e.empty() ? std::string() : XmlUnescape(e.front());
}

std::string XmlUnescape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out.push_back(text[i]);
      continue;
    }
    const size_t semi = text.find(';', i);
    if (semi == absl::string_view::npos) {
      out.push_back('&');
      continue;
    }
    absl::string_view ent = text.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out.push_back('&');
    } else if (ent == "lt") {
      out.push_back('<');
    } else if (ent == "gt") {
      out.push_back('>');
    } else if (ent == "quot") {
      out.push_back('"');
    } else if (ent == "apos") {
      out.push_back('\'');
    } else if (!ent.empty() && ent[0] == '#') {
      const std::string num(ent.substr(1));
      const long cp = num.size() > 1 && (num[0] == 'x' || num[0] == 'X')
                          ? std::strtol(num.c_str() + 1, nullptr, 16)
                          : std::strtol(num.c_str(), nullptr, 10);
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    } else {
      out.append(text.data() + i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

}  // namespace caldera::storage
