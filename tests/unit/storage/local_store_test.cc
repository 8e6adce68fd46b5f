#include "storage/local_store.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "storage/sha256.h"
#include "storage/storage.h"
#include "tests/support/fixtures.h"

namespace caldera::storage {
namespace {

TEST(LocalStoreTest, PutGetRangeHeadDeleteCopy) {
  testing::TempDir dir;
  LocalStore store(dir.path());
  absl::StatusOr<ObjectInfo> put = store.PutBytes("a/b/c.bin", "hello world");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->size, 11u);
  EXPECT_EQ(put->sha256, Sha256Hex("hello world"));
  EXPECT_EQ(*store.Get("a/b/c.bin"), "hello world");
  EXPECT_EQ(*store.GetRange("a/b/c.bin", 6, 5), "world");
  EXPECT_EQ(store.GetRange("a/b/c.bin", 6, 6).status().code(), absl::StatusCode::kOutOfRange);
  absl::StatusOr<ObjectInfo> head = store.Head("a/b/c.bin");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, 11u);
  ASSERT_TRUE(store.Copy("a/b/c.bin", "copy.bin").ok());
  EXPECT_EQ(*store.Get("copy.bin"), "hello world");
  ASSERT_TRUE(store.Delete("copy.bin").ok());
  EXPECT_EQ(store.Get("copy.bin").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store.Delete("copy.bin").ok());  // deleting an absent key succeeds
}

TEST(LocalStoreTest, PutReplacesAtomicallyAndLeavesNoTempFiles) {
  testing::TempDir dir;
  LocalStore store(dir.path());
  ASSERT_TRUE(store.PutBytes("x", std::string(1000, 'a')).ok());
  ASSERT_TRUE(store.PutBytes("x", "short").ok());
  EXPECT_EQ(*store.Get("x"), "short");
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

// A worker killed mid-write leaves a temporary file that List does not show:
// removing a scratch tree's objects and then its abandoned writes leaves no
// scratch directory behind, and touches nothing outside the prefix.
TEST(LocalStoreTest, AbandonedWritesUnderAScratchTreeAreRemoved) {
  testing::TempDir dir;
  LocalStore store(dir.path());
  const std::string scratch = ".caldera-scratch/job1/";
  ASSERT_TRUE(store.PutBytes(scratch + "calibrate-l0/a1/hidden.safetensors", "h").ok());
  const std::filesystem::path killed =
      std::filesystem::path(dir.path()) / ".caldera-scratch/job1/calibrate-l0/a2";
  std::filesystem::create_directories(killed);
  std::ofstream(killed / ".hidden.safetensors.caldera-tmp-Ab12Cd") << "partial";
  std::ofstream(std::filesystem::path(dir.path()) / ".other.caldera-tmp-Zz99Zz") << "not ours";
  absl::StatusOr<ListPage> page = store.List(scratch, "", 1000);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->objects.size(), 1u);  // the temporary file is not an object
  ASSERT_TRUE(store.Delete(page->objects[0].key).ok());
  EXPECT_TRUE(std::filesystem::exists(killed));
  ASSERT_TRUE(store.RemoveAbandonedWrites(scratch).ok());
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(dir.path()) / ".caldera-scratch"));
  EXPECT_TRUE(
      std::filesystem::exists(std::filesystem::path(dir.path()) / ".other.caldera-tmp-Zz99Zz"));
  EXPECT_TRUE(store.RemoveAbandonedWrites("absent/").ok());
}

// A finalize killed between unlinking a scratch object and pruning its
// directory leaves an empty directory that no object names any more (found by
// tests/integration/chaos_test.py): the next removal prunes it too, and keeps
// directories outside scratch.
TEST(LocalStoreTest, EmptyScratchDirectoriesLeftByAKilledRemovalAreRemoved) {
  testing::TempDir dir;
  LocalStore store(dir.path());
  const std::filesystem::path root(dir.path());
  std::filesystem::create_directories(root / "out/.caldera-scratch/job1/calibrate-0000/a2-ff");
  std::filesystem::create_directories(root / "out/.caldera-scratch/job1/decompose-0001/a1-ee");
  std::filesystem::create_directories(root / "out/keep");
  ASSERT_TRUE(store.RemoveAbandonedWrites("out/.caldera-scratch/job1/").ok());
  EXPECT_FALSE(std::filesystem::exists(root / "out/.caldera-scratch"));
  EXPECT_TRUE(std::filesystem::exists(root / "out/keep"));
  // Outside a scratch tree, empty directories are not ours to remove.
  std::filesystem::create_directories(root / "plain/empty");
  ASSERT_TRUE(store.RemoveAbandonedWrites("plain/").ok());
  EXPECT_TRUE(std::filesystem::exists(root / "plain/empty"));
}

TEST(LocalStoreTest, KeysCannotEscapeTheRoot) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.Join("root"));
  LocalStore store(dir.Join("root"));
  for (const char* key : {"../outside", "a/../../outside", "/../../etc/passwd"}) {
    absl::Status s = store.PutBytes(key, "x").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << key;
    EXPECT_NE(s.message().find("outside the allowed root"), std::string::npos) << s;
  }
  // A symbolic link inside the root pointing out of it is refused too.
  std::filesystem::create_directory_symlink("/tmp", dir.Join("root/link"));
  EXPECT_EQ(store.PutBytes("link/evil", "x").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(std::filesystem::exists(dir.Join("outside")));
}

TEST(LocalStoreTest, ListIsSortedPagedAndByPrefix) {
  testing::TempDir dir;
  LocalStore store(dir.path());
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(store.PutBytes("p/k" + std::to_string(i), "v").ok());
  }
  ASSERT_TRUE(store.PutBytes("q/other", "v").ok());
  std::vector<std::string> keys;
  std::string token;
  int pages = 0;
  do {
    absl::StatusOr<ListPage> page = store.List("p/", token, 3);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const ObjectInfo& o : page->objects) keys.push_back(o.key);
    token = page->next_page_token;
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(keys.size(), 7u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(keys.front(), "p/k0");
  EXPECT_EQ(store.List("p/", "", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store.List("nothing/", "", 10)->objects.empty());
}

TEST(LocalStoreTest, WriteToReadOnlyLocationIsClear) {
  if (geteuid() == 0) {
    // root bypasses permission bits; use a path under a regular file instead.
    testing::TempDir dir;
    std::ofstream(dir.Join("file")) << "x";
    LocalStore store(dir.path());
    absl::Status s = store.PutBytes("file/sub", "x").status();
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("file"), std::string::npos);
    return;
  }
  testing::TempDir dir;
  ::chmod(dir.path().c_str(), 0555);
  LocalStore store(dir.path());
  EXPECT_EQ(store.PutBytes("x", "y").status().code(), absl::StatusCode::kPermissionDenied);
  ::chmod(dir.path().c_str(), 0755);
}

TEST(StorageTest, OpenUriHonoursTheAllowedRoot) {
  testing::TempDir dir;
  StorageOptions options;
  options.local_root = dir.path();
  absl::StatusOr<ObjectInfo> w =
      WriteObject("file://" + dir.Join("sub/obj.txt"), "payload", options);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(*ReadObject(dir.Join("sub/obj.txt"), options), "payload");
  absl::Status outside = ReadObject("file:///etc/hostname", options).status();
  EXPECT_EQ(outside.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(outside.message().find("outside the allowed storage root"), std::string::npos);
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src =
      OpenObjectSource(dir.Join("sub/obj.txt"), options);
  ASSERT_TRUE(src.ok());
  EXPECT_EQ((*src)->Size(), 7u);
  EXPECT_EQ(ReadObject("gs://bucket/x", options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caldera::storage
