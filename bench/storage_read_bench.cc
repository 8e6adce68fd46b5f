// Read throughput of object storage against plain `cat` and `dd` of the same
// bytes, measured in one run.
//
//   storage_read_bench [--mib N] [--s3-mib N] [--repeat R]
//
// The S3 figures use a real S3 server process on loopback (moto, started here
// unless CALDERA_BENCH_S3_ENDPOINT / _ACCESS_KEY / _SECRET_KEY / _BUCKET name one,
// e.g. a MinIO). All local reads are from the page cache (a warm-up read first),
// so the ratios compare software overheads, not disks.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "storage/local_store.h"
#include "storage/s3_store.h"
#include "storage/storage.h"
#include "tests/support/fixtures.h"
#include "tests/support/s3_server.h"
#include "tests/support/subprocess.h"

namespace {

using Clock = std::chrono::steady_clock;

double TimeBest(int repeat, const std::function<bool()>& fn) {
  double best = 1e30;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = Clock::now();
    if (!fn()) return -1;
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

void Row(const char* name, uint64_t bytes, double seconds, double baseline) {
  const double mbs = bytes / 1e6 / seconds;
  std::printf("%-34s %10.1f MB/s %9.3f s   %6.3f x cat\n", name, mbs, seconds, baseline / seconds);
}

std::string Env(const char* n) {
  const char* v = std::getenv(n);
  return v ? v : "";
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t mib = 256, s3_mib = 64;
  int repeat = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mib")) mib = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--s3-mib")) s3_mib = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--repeat")) repeat = std::atoi(argv[i + 1]);
  }
  caldera::testing::TempDir dir;
  const std::string path = dir.Join("blob.bin");
  std::string data(mib << 20, '\0');
  std::mt19937_64 rng(1);
  for (size_t i = 0; i + 8 <= data.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(&data[i], &v, 8);
  }
  std::ofstream(path, std::ios::binary).write(data.data(), data.size());
  const uint64_t bytes = data.size();
  std::printf("storage read benchmark: %llu MiB local file, %llu MiB S3 object, best of %d\n",
              static_cast<unsigned long long>(mib), static_cast<unsigned long long>(s3_mib),
              repeat);

  const std::string cat_cmd = absl::StrCat("cat '", path, "' > /dev/null");
  const std::string dd_cmd = absl::StrCat("dd if='", path, "' of=/dev/null bs=4M 2>/dev/null");
  caldera::testing::RunCommand(cat_cmd);  // warm the page cache
  const double cat_s = TimeBest(repeat, [&] { return caldera::testing::RunCommand(cat_cmd) == 0; });
  const double dd_s = TimeBest(repeat, [&] { return caldera::testing::RunCommand(dd_cmd) == 0; });
  Row("cat (baseline)", bytes, cat_s, cat_s);
  Row("dd bs=4M", bytes, dd_s, cat_s);

  caldera::storage::LocalStore local(dir.path());
  const double get_s = TimeBest(repeat, [&] { return local.Get("blob.bin").ok(); });
  Row("file:// Get (whole object)", bytes, get_s, cat_s);
  caldera::storage::StorageOptions options;
  const double src_s = TimeBest(repeat, [&] {
    auto src = caldera::storage::OpenObjectSource(path, options);
    if (!src.ok()) return false;
    std::vector<uint8_t> buf(4u << 20);
    for (uint64_t off = 0; off < bytes; off += buf.size()) {
      const uint64_t n = std::min<uint64_t>(buf.size(), bytes - off);
      if (!(*src)->ReadAt(off, std::span<uint8_t>(buf.data(), n)).ok()) return false;
    }
    return true;
  });
  Row("file:// source ReadAt 4 MiB chunks", bytes, src_s, cat_s);

  // S3 on loopback.
  std::optional<caldera::testing::S3TestServer> server;
  caldera::storage::StorageOptions s3;
  std::string bucket;
  if (!Env("CALDERA_BENCH_S3_ENDPOINT").empty()) {
    s3.endpoint = Env("CALDERA_BENCH_S3_ENDPOINT");
    s3.access_key_id = Env("CALDERA_BENCH_S3_ACCESS_KEY");
    s3.secret_access_key = Env("CALDERA_BENCH_S3_SECRET_KEY");
    bucket = Env("CALDERA_BENCH_S3_BUCKET");
  } else {
    auto started = caldera::testing::S3TestServer::Start();
    if (!started.ok()) {
      std::fprintf(stderr, "cannot start the S3 test server: %s\n",
                   std::string(started.status().message()).c_str());
      return 1;
    }
    server.emplace(*std::move(started));
    s3.endpoint = server->endpoint();
    s3.access_key_id = server->access_key();
    s3.secret_access_key = server->secret_key();
    bucket = server->bucket();
  }
  caldera::storage::S3Store store(s3, bucket);
  const uint64_t s3_bytes = std::min<uint64_t>(s3_mib << 20, bytes);
  if (auto put = store.PutBytes("bench/blob.bin", absl::string_view(data.data(), s3_bytes));
      !put.ok()) {
    std::fprintf(stderr, "upload failed: %s\n", std::string(put.status().message()).c_str());
    return 1;
  }
  const double s3_get = TimeBest(repeat, [&] { return store.Get("bench/blob.bin").ok(); });
  // cat of the same number of bytes, scaled from the measured cat throughput.
  const double cat_same = cat_s * static_cast<double>(s3_bytes) / bytes;
  Row("s3:// Get (loopback server)", s3_bytes, s3_get, cat_same);
  const double s3_range = TimeBest(repeat, [&] {
    for (uint64_t off = 0; off < s3_bytes; off += 16u << 20) {
      if (!store.GetRange("bench/blob.bin", off, std::min<uint64_t>(16u << 20, s3_bytes - off))
               .ok()) {
        return false;
      }
    }
    return true;
  });
  Row("s3:// ranged GETs of 16 MiB", s3_bytes, s3_range, cat_same);
  std::printf("(x cat = cat's time for the same bytes / this row's time; higher is faster)\n");
  return 0;
}
