#include "storage/output_probe.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "storage/local_store.h"
#include "storage/storage.h"
#include "tests/support/fixtures.h"

namespace caldera::storage {
namespace {

namespace fs = std::filesystem;

struct stat Stat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

TEST(ProbeWritableTest, LeavesAPreExistingEmptyDirectoryAsItWas) {
  testing::TempDir tmp;
  const std::string out = tmp.Join("out");
  ASSERT_EQ(::mkdir(out.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(out.c_str(), 0710), 0);  // unusual mode: a re-created one would differ
  const struct stat before = Stat(out);
  ASSERT_TRUE(ProbeWritable(out, StorageOptions{}).ok());
  const struct stat after = Stat(out);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the directory was removed and re-created";
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_TRUE(fs::is_empty(out)) << "the probe file was left";
  // Nor is the (empty) parent touched.
  EXPECT_TRUE(fs::exists(tmp.path()));
}

TEST(ProbeWritableTest, RemovesOnlyTheDirectoriesItCreated) {
  testing::TempDir tmp;
  fs::create_directories(tmp.Join("keep"));
  const struct stat before = Stat(tmp.Join("keep"));
  ASSERT_TRUE(ProbeWritable(tmp.Join("keep/a/b/c"), StorageOptions{}).ok());
  EXPECT_FALSE(fs::exists(tmp.Join("keep/a")));
  EXPECT_TRUE(fs::is_empty(tmp.Join("keep")));
  EXPECT_EQ(Stat(tmp.Join("keep")).st_ino, before.st_ino);
}

TEST(ProbeWritableTest, RefusesAFileAndRespectsTheRoots) {
  testing::TempDir tmp;
  std::ofstream(tmp.Join("a-file")) << "x";
  EXPECT_EQ(ProbeWritable(tmp.Join("a-file"), StorageOptions{}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ProbeWritable(tmp.Join("a-file/out"), StorageOptions{}).code(),
            absl::StatusCode::kInvalidArgument);
  fs::create_directories(tmp.Join("root"));
  fs::create_directories(tmp.Join("elsewhere"));
  fs::create_directory_symlink(tmp.Join("elsewhere"), tmp.Join("root/link"));
  StorageOptions options;
  options.allowed_roots = {tmp.Join("root")};
  EXPECT_EQ(ProbeWritable(tmp.Join("root/link/out"), options).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(fs::is_empty(tmp.Join("elsewhere")));
  EXPECT_TRUE(ProbeWritable(tmp.Join("root/out"), options).ok());
}

TEST(ListEntriesTest, EveryKindOfEntryCounts) {
  testing::TempDir tmp;
  const std::string d = tmp.Join("d");
  EXPECT_TRUE(ListEntries(d, StorageOptions{}, 100)->empty());  // absent
  fs::create_directories(d + "/sub");
  std::ofstream(d + "/file") << "x";
  fs::create_symlink("/etc", d + "/link");
  ASSERT_EQ(::mkfifo((d + "/fifo").c_str(), 0600), 0);
  absl::StatusOr<std::vector<std::string>> e = ListEntries(d, StorageOptions{}, 100);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(*e, (std::vector<std::string>{"fifo", "file", "link", "sub/"}));
  EXPECT_EQ(ListEntries(d, StorageOptions{}, 2)->size(), 2u);
  EXPECT_EQ(ListEntries(d + "/file", StorageOptions{}, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LocalStoreDeleteTest, PrunesEmptyDirectoriesOnlyInsideScratch) {
  testing::TempDir tmp;
  LocalStore store(tmp.path());
  fs::create_directories(tmp.Join("out"));
  const struct stat before = Stat(tmp.Join("out"));
  ASSERT_TRUE(store.PutBytes("out/.caldera-scratch/j-1/t/a/x.bin", "x").ok());
  ASSERT_TRUE(store.Delete("out/.caldera-scratch/j-1/t/a/x.bin").ok());
  EXPECT_FALSE(fs::exists(tmp.Join("out/.caldera-scratch")));
  ASSERT_TRUE(fs::exists(tmp.Join("out"))) << "a directory outside scratch was removed";
  EXPECT_EQ(Stat(tmp.Join("out")).st_ino, before.st_ino);
  ASSERT_TRUE(store.PutBytes("out/probe", "x").ok());
  ASSERT_TRUE(store.Delete("out/probe").ok());
  EXPECT_TRUE(fs::exists(tmp.Join("out")));
}

}  // namespace
}  // namespace caldera::storage
