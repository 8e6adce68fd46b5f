#include "core/util/xml_escape.h"
#include "gtest/gtest.h"
#include "storage/http_client.h"
#include "storage/s3_xml.h"
#include "storage/sha256.h"

namespace caldera::storage {
namespace {

TEST(S3XmlTest, ExtractsElementsAndUnescapes) {
  const char* xml =
      "<ListBucketResult><IsTruncated>true</IsTruncated>"
      "<Contents><Key>a&amp;b</Key><Size>3</Size></Contents>"
      "<Contents><Key>c&#x41;</Key><Size>4</Size></Contents>"
      "<KeyCount>2</KeyCount><NextContinuationToken>tok</NextContinuationToken>"
      "</ListBucketResult>";
  std::vector<absl::string_view> contents = XmlElements(xml, "Contents");
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_EQ(XmlFirst(contents[0], "Key"), "a&b");
  EXPECT_EQ(XmlFirst(contents[1], "Key"), "cA");
  EXPECT_EQ(XmlFirst(xml, "Key"), "a&b");  // <KeyCount> does not match <Key>
  EXPECT_EQ(XmlFirst(xml, "NextContinuationToken"), "tok");
  EXPECT_EQ(XmlFirst(xml, "Missing"), "");
  EXPECT_EQ(XmlEscape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
}

TEST(UriEncodeTest, AwsStyle) {
  EXPECT_EQ(UriEncode("a b/c~d", true), "a%20b/c~d");
  EXPECT_EQ(UriEncode("a b/c", false), "a%20b%2Fc");
}

TEST(Sha256Test, KnownDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace caldera::storage
