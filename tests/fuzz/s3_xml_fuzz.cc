// Fuzz target: an S3 ListObjectsV2 reply, walked as S3Store::List walks it.
#include <string>

#include "core/util/xml_escape.h"
#include "storage/s3_xml.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace s = caldera::storage;
  const absl::string_view body = caldera::fuzz::Text(data, size);
  for (absl::string_view contents : s::XmlElements(body, "Contents")) {
    (void)s::XmlFirst(contents, "Key");
    (void)s::XmlFirst(contents, "Size");
    (void)s::XmlFirst(contents, "ETag");
  }
  (void)s::XmlFirst(body, "IsTruncated");
  (void)s::XmlFirst(body, "NextContinuationToken");
  const std::string text = s::XmlUnescape(body);
  (void)caldera::XmlEscape(text);
  return 0;
}
