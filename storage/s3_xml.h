// Just enough XML for S3 responses (ListObjectsV2, multipart upload, errors):
// flat element lookup by tag name and entity unescaping. Not a general parser.
#ifndef CALDERA_STORAGE_S3_XML_H_
#define CALDERA_STORAGE_S3_XML_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace caldera::storage {

// The raw inner text of every <tag>...</tag> element (attributes allowed on the
// open tag), in document order. Nested elements of the same tag are not supported
// (S3 responses never nest them).
std::vector<absl::string_view> XmlElements(absl::string_view xml, absl::string_view tag);

// The unescaped text of the first <tag> element, or "" if absent.
std::string XmlFirst(absl::string_view xml, absl::string_view tag);

// Replaces &amp; &lt; &gt; &quot; &apos; and numeric character references.
std::string XmlUnescape(absl::string_view text);

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_S3_XML_H_
