// Settings for opening object stores: S3 credentials and endpoint, retry policy,
// multipart thresholds, the local-file root. No global state: the environment is
// read only by StorageOptions::FromEnvironment().
#ifndef CALDERA_STORAGE_STORAGE_OPTIONS_H_
#define CALDERA_STORAGE_STORAGE_OPTIONS_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace caldera::storage {

struct RetryPolicy {
  int max_attempts = 5;                         // total tries, >= 1
  std::chrono::milliseconds base_delay{200};    // first backoff
  std::chrono::milliseconds max_delay{10'000};  // cap of one backoff
};

enum class S3Addressing { kAuto, kPath, kVirtualHost };

struct StorageOptions {
  // S3 (standard AWS variables; see FromEnvironment).
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  std::string region = "us-east-1";
  // Empty: AWS (https://s3.<region>.amazonaws.com). Else e.g. http://127.0.0.1:9000.
  std::string endpoint;
  // kAuto: path-style when an endpoint is set (MinIO, moto), virtual-host for AWS.
  S3Addressing addressing = S3Addressing::kAuto;

  RetryPolicy retry;
  std::chrono::seconds connect_timeout{10};
  // A request that transfers less than 1 KiB/s for this long is aborted and retried.
  std::chrono::seconds low_speed_timeout{60};

  // Objects larger than this are uploaded in parts of part_size bytes (S3 needs
  // parts >= 5 MiB except the last).
  uint64_t multipart_threshold = 64ull << 20;
  uint64_t part_size = 16ull << 20;

  // file:// URIs and relative paths must resolve inside this directory.
  std::string local_root = "/";

  // Storage confinement (storage/allowed_roots.h): when not empty, every URI
  // opened through storage.h must resolve inside one of these roots (local
  // directories or s3://bucket/prefix, in NormalizeAllowedRoots' form), else
  // PERMISSION_DENIED. Empty: no confinement. Set from --allow-root by
  // caldera-coordinator and caldera-worker; never read from the environment.
  std::vector<std::string> allowed_roots;

  // Reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION
  // (or AWS_DEFAULT_REGION), AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL), and
  // CALDERA_S3_ADDRESSING=path|virtual.
  static StorageOptions FromEnvironment();
};

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_STORAGE_OPTIONS_H_
