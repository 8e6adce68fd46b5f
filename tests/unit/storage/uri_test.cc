#include "storage/uri.h"

#include <filesystem>

#include "gtest/gtest.h"

namespace caldera::storage {
namespace {

TEST(UriTest, ParsesS3FileAndRelativePaths) {
  absl::StatusOr<StorageUri> s3 = ParseStorageUri("s3://bucket/models/llama/config.json");
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(s3->scheme, StorageUri::Scheme::kS3);
  EXPECT_EQ(s3->bucket, "bucket");
  EXPECT_EQ(s3->path, "models/llama/config.json");
  EXPECT_EQ(ParseStorageUri("s3://bucket")->path, "");
  absl::StatusOr<StorageUri> file = ParseStorageUri("file:///data/./x/../y");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->scheme, StorageUri::Scheme::kFile);
  EXPECT_EQ(file->path, "/data/y");
  absl::StatusOr<StorageUri> rel = ParseStorageUri("out/model");
  ASSERT_TRUE(rel.ok());
  EXPECT_EQ(rel->path, (std::filesystem::current_path() / "out/model").string());
}

TEST(UriTest, RejectsBadUrisWithClearMessages) {
  EXPECT_NE(ParseStorageUri("s3:///key").status().message().find("has no bucket"),
            std::string::npos);
  EXPECT_NE(ParseStorageUri("gs://b/k").status().message().find("unsupported storage URI scheme"),
            std::string::npos);
  EXPECT_NE(ParseStorageUri("file://relative").status().message().find("not absolute"),
            std::string::npos);
  EXPECT_FALSE(ParseStorageUri("").ok());
}

TEST(UriTest, JoinKey) {
  EXPECT_EQ(JoinKey("a/b", "c"), "a/b/c");
  EXPECT_EQ(JoinKey("a/b/", "/c"), "a/b/c");
  EXPECT_EQ(JoinKey("", "c"), "c");
  EXPECT_EQ(JoinKey("s3://b/p", "x.json"), "s3://b/p/x.json");
}

}  // namespace
}  // namespace caldera::storage
