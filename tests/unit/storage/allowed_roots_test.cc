#include "storage/allowed_roots.h"

#include <filesystem>
#include <fstream>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "storage/storage.h"
#include "tests/support/fixtures.h"

namespace caldera::storage {
namespace {

namespace fs = std::filesystem;

// <tmp>/root (allowed, with a file a.txt) and <tmp>/outside (not allowed,
// with secret.txt).
class LocalRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root());
    fs::create_directories(outside());
    std::ofstream(root() + "/a.txt") << "a";
    std::ofstream(outside() + "/secret.txt") << "root:x:0:0";
  }
  std::string root() const { return tmp_.Join("root"); }
  std::string outside() const { return tmp_.Join("outside"); }
  std::vector<std::string> roots() const { return {root()}; }

  testing::TempDir tmp_;
};

TEST_F(LocalRootsTest, InsideIsAllowedExistingOrNot) {
  EXPECT_TRUE(CheckUriAllowed(root(), roots(), "--out").ok());
  EXPECT_TRUE(CheckUriAllowed(root() + "/a.txt", roots(), "--model").ok());
  EXPECT_TRUE(CheckUriAllowed("file://" + root() + "/new/deeper/dir", roots(), "--out").ok());
}

TEST_F(LocalRootsTest, NoRootsMeansNoConfinement) {
  EXPECT_TRUE(CheckUriAllowed("/etc/passwd", {}, "--model").ok());
}

TEST_F(LocalRootsTest, OutsideIsDeniedNamingUriRootsAndFix) {
  const absl::Status s = CheckUriAllowed(outside() + "/secret.txt", roots(), "--calibration");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(s.message().find("--calibration"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find(outside() + "/secret.txt"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find(root()), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("--allow-root"), absl::string_view::npos) << s;
  EXPECT_EQ(CheckUriAllowed("/etc/passwd", roots(), "input_uri").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(LocalRootsTest, SiblingWithRootAsNamePrefixIsOutside) {
  fs::create_directories(root() + "2");
  EXPECT_EQ(CheckUriAllowed(root() + "2/x", roots(), "--out").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(LocalRootsTest, DotDotEscapeIsDenied) {
  EXPECT_EQ(CheckUriAllowed(root() + "/../outside/secret.txt", roots(), "--model").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckUriAllowed(root() + "/new/../../outside/out", roots(), "--out").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(LocalRootsTest, SymlinkOutOfTheRootIsDenied) {
  fs::create_directory_symlink(outside(), root() + "/link");
  // The existing target, a new file through the link, and a new directory
  // below it: all resolve outside.
  EXPECT_EQ(CheckUriAllowed(root() + "/link/secret.txt", roots(), "--model").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckUriAllowed(root() + "/link", roots(), "--out").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckUriAllowed(root() + "/link/new/out", roots(), "--out").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(LocalRootsTest, DanglingSymlinkIsRefused) {
  fs::create_directory_symlink(outside() + "/not-yet", root() + "/dangling");
  const absl::Status s = CheckUriAllowed(root() + "/dangling/out", roots(), "--out");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST_F(LocalRootsTest, SymlinkInsideTheRootAndRootThroughALinkAreAllowed) {
  fs::create_directories(root() + "/blobs");
  std::ofstream(root() + "/blobs/x") << "x";
  fs::create_symlink(root() + "/blobs/x", root() + "/snapshot-x");  // Hugging Face cache style
  EXPECT_TRUE(CheckUriAllowed(root() + "/snapshot-x", roots(), "--model").ok());
  fs::create_directory_symlink(root(), tmp_.Join("alias"));
  EXPECT_TRUE(CheckUriAllowed(root() + "/a.txt", {tmp_.Join("alias")}, "--model").ok());
}

TEST_F(LocalRootsTest, OpenUriEnforcesTheRoots) {
  StorageOptions options;
  options.allowed_roots = roots();
  EXPECT_TRUE(ReadObject(root() + "/a.txt", options).ok());
  absl::StatusOr<std::string> secret = ReadObject(outside() + "/secret.txt", options);
  EXPECT_EQ(secret.status().code(), absl::StatusCode::kPermissionDenied) << secret.status();
  EXPECT_EQ(secret.status().message().find("root:x"), absl::string_view::npos);
  fs::create_directory_symlink(outside(), root() + "/link");
  EXPECT_EQ(WriteObject(root() + "/link/planted", "x", options).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(fs::exists(outside() + "/planted"));
}

TEST(S3RootsTest, PrefixMatchesOnPathSegmentBoundary) {
  const std::vector<std::string> roots = {"s3://b/pre"};
  EXPECT_TRUE(CheckUriAllowed("s3://b/pre", roots, "--out").ok());
  EXPECT_TRUE(CheckUriAllowed("s3://b/pre/", roots, "--out").ok());
  EXPECT_TRUE(CheckUriAllowed("s3://b/pre/model/config.json", roots, "--model").ok());
  EXPECT_EQ(CheckUriAllowed("s3://b/prefix2", roots, "--out").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckUriAllowed("s3://b/prefix2/x", roots, "--out").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckUriAllowed("s3://other/pre/x", roots, "--out").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckUriAllowed("/pre/x", roots, "--out").code(), absl::StatusCode::kPermissionDenied);
  // HTTP clients drop dot segments: refused outright.
  EXPECT_EQ(CheckUriAllowed("s3://b/pre/../secret", roots, "--out").code(),
            absl::StatusCode::kInvalidArgument);
  // A whole bucket.
  EXPECT_TRUE(CheckUriAllowed("s3://b/anything/x", {"s3://b"}, "--out").ok());
}

TEST(NormalizeAllowedRootsTest, CanonicalForms) {
  absl::StatusOr<std::vector<std::string>> r =
      NormalizeAllowedRoots({"s3://b/pre/", "s3://b", "/data/models/", "file:///data/x/../y"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, (std::vector<std::string>{"s3://b/pre", "s3://b", "/data/models", "/data/y"}));
  EXPECT_FALSE(NormalizeAllowedRoots({""}).ok());
  EXPECT_FALSE(NormalizeAllowedRoots({"s3://"}).ok());
  EXPECT_FALSE(NormalizeAllowedRoots({"s3://b/../c"}).ok());
  EXPECT_FALSE(NormalizeAllowedRoots({"gs://b/x"}).ok());
}

TEST_F(LocalRootsTest, OverlapOnResolvedPaths) {
  EXPECT_TRUE(*UrisOverlap(root(), root()));
  EXPECT_TRUE(*UrisOverlap(root() + "/sub", root()));
  EXPECT_TRUE(*UrisOverlap(root(), root() + "/sub/x"));
  EXPECT_FALSE(*UrisOverlap(root(), outside()));
  fs::create_directory_symlink(root(), tmp_.Join("alias"));
  EXPECT_TRUE(*UrisOverlap(tmp_.Join("alias"), root()));
  EXPECT_TRUE(*UrisOverlap(tmp_.Join("alias") + "/../root/", root()));
  EXPECT_TRUE(*UrisOverlap("s3://b/m", "s3://b/m/out"));
  EXPECT_FALSE(*UrisOverlap("s3://b/m", "s3://b/m2"));
  EXPECT_FALSE(*UrisOverlap("s3://b/m", "/m"));
  EXPECT_TRUE(*UriIsWithin(root() + "/x", root()));
  EXPECT_FALSE(*UriIsWithin(root(), root() + "/x"));
}

}  // namespace
}  // namespace caldera::storage
