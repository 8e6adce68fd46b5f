// S3Store: an ObjectStore over one bucket of an S3-compatible service (AWS S3,
// MinIO, moto), spoken directly over HTTP with libcurl and SigV4 signing.
//
// Retries with exponential backoff and jitter on 5xx/429 answers, timeouts and
// connection errors; never on other 4xx. Uploads above the multipart threshold
// go in parts (>= 5 MiB). Each upload carries x-amz-content-sha256 and records
// the object's SHA-256 as x-amz-meta-sha256; Get() verifies it when present.
#ifndef CALDERA_STORAGE_S3_STORE_H_
#define CALDERA_STORAGE_S3_STORE_H_

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "storage/http_client.h"
#include "storage/object_store.h"
#include "storage/retry.h"
#include "storage/storage_options.h"

namespace caldera::storage {

class S3Store final : public ObjectStore {
 public:
  S3Store(StorageOptions options, std::string bucket);

  absl::StatusOr<std::string> Get(const std::string& key) override;
  absl::StatusOr<std::string> GetRange(const std::string& key, uint64_t offset,
                                       uint64_t length) override;
  absl::StatusOr<ObjectInfo> Put(const std::string& key, const RandomAccessSource& body) override;
  absl::StatusOr<ObjectInfo> Head(const std::string& key) override;
  absl::StatusOr<ListPage> List(const std::string& prefix, const std::string& page_token,
                                int page_size) override;
  absl::Status Delete(const std::string& key) override;
  absl::Status Copy(const std::string& from_key, const std::string& to_key) override;
  std::string UriOf(const std::string& key) const override;

  // Number of HTTP exchanges made, retries included (for tests and metrics).
  uint64_t requests_made() const { return requests_.load(); }

 private:
  // URL of `key` (may be empty for the bucket) with an already-encoded,
  // sorted query string (may be empty).
  std::string Url(const std::string& key, const std::string& query) const;
  // Performs with retries. Answers other than 5xx/429 are returned as they are.
  absl::StatusOr<HttpResponse> Execute(HttpRequest request, const std::string& payload_sha256);
  // Maps a non-2xx answer to a status naming the object.
  absl::Status ErrorFor(const HttpResponse& response, const std::string& what) const;
  absl::StatusOr<ObjectInfo> PutMultipart(const std::string& key, const RandomAccessSource& body,
                                          const std::string& sha256);

  StorageOptions options_;
  std::string bucket_;
  SigV4 sign_;
  HttpTimeouts timeouts_;
  Backoff backoff_;
  std::atomic<uint64_t> requests_{0};
};

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_S3_STORE_H_
