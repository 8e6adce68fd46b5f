#include "core/io/random_access_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace caldera {
namespace {

TEST(MappedFileTest, ReadsRangesAndRejectsOutOfBounds) {
  testing::TempDir dir;
  const std::string path = dir.Join("f.bin");
  std::ofstream(path, std::ios::binary) << "hello world";
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = OpenMappedFile(path);
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ((*src)->Size(), 11u);
  std::vector<uint8_t> buf(5);
  ASSERT_TRUE((*src)->ReadAt(6, buf).ok());
  EXPECT_EQ(std::string(buf.begin(), buf.end()), "world");
  absl::Status s = (*src)->ReadAt(7, buf);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("f.bin"), std::string::npos);
  EXPECT_EQ((*src)->ReadAt(UINT64_MAX - 1, buf).code(), absl::StatusCode::kOutOfRange);
}

TEST(MappedFileTest, MissingFileIsNotFound) {
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = OpenMappedFile("/nonexistent/x");
  EXPECT_EQ(src.status().code(), absl::StatusCode::kNotFound);
}

TEST(MappedFileTest, EmptyFileAndDirectory) {
  testing::TempDir dir;
  const std::string path = dir.Join("empty");
  std::ofstream(path, std::ios::binary).close();
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = OpenMappedFile(path);
  ASSERT_TRUE(src.ok());
  EXPECT_EQ((*src)->Size(), 0u);
  EXPECT_EQ(OpenMappedFile(dir.path()).status().code(), absl::StatusCode::kInvalidArgument);
}

// #17: a FIFO used to block open() until a writer came, forever.
TEST(MappedFileTest, FifoIsRefusedAtOnceNotWaitedOn) {
  testing::TempDir dir;
  const std::string path = dir.Join("fifo");
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto opened = std::async(std::launch::async, [&] { return OpenMappedFile(path).status(); });
  if (opened.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
    // Release the blocked open (a writer appears) so the test can end.
    const int w = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
    if (w >= 0) ::close(w);
    FAIL() << "opening a FIFO blocked";
  }
  const absl::Status s = opened.get();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("is not a regular file"), std::string::npos) << s;
}

// #17: reads of a file truncated after it was opened give a status, not SIGBUS.
TEST(MappedFileTest, TruncatedAfterOpenGivesOutOfRangeNotSigbus) {
  testing::TempDir dir;
  const std::string path = dir.Join("big.bin");
  std::ofstream(path, std::ios::binary) << std::string(1 << 20, 'x');
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = OpenMappedFile(path);
  ASSERT_TRUE(src.ok()) << src.status();
  std::filesystem::resize_file(path, 100);
  std::vector<uint8_t> buf(4096);
  ASSERT_TRUE((*src)->ReadAt(0, std::span<uint8_t>(buf.data(), 100)).ok());
  const absl::Status s = (*src)->ReadAt(512 * 1024, buf);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s;
}

}  // namespace
}  // namespace caldera
