// BoundedQuote: user input quoted in an error message, cut to a bounded length.
// Messages name the offending value, but a hostile or broken input (a 50 MB
// JSON string, a tensor name the size of the header) must not make every log
// line and RPC status that large: at most `max_bytes` bytes of it are kept
// (never splitting a UTF-8 sequence), then "…" marks the cut.
#ifndef CALDERA_CORE_UTIL_BOUNDED_QUOTE_H_
#define CALDERA_CORE_UTIL_BOUNDED_QUOTE_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace caldera {

// The default cap for quoted user strings in messages.
inline constexpr size_t kMaxQuotedBytes = 200;

// `s` itself when it has at most `max_bytes` bytes; else its first bytes (cut
// back to a UTF-8 character boundary) followed by "…" (U+2026).
inline std::string BoundedQuote(absl::string_view s, size_t max_bytes = kMaxQuotedBytes) {
  if (s.size() <= max_bytes) return std::string(s);
  size_t n = max_bytes;
  // Step back over continuation bytes (10xxxxxx) so the cut is on a boundary.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  std::string out(s.substr(0, n));
  out += "\xE2\x80\xA6";
  return out;
}

}  // namespace caldera

#endif  // CALDERA_CORE_UTIL_BOUNDED_QUOTE_H_
