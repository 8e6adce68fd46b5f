// One HTTP exchange through libcurl, with optional AWS SigV4 signing done by
// libcurl itself (CURLOPT_AWS_SIGV4). No retries here: S3Store retries.
#ifndef CALDERA_STORAGE_HTTP_CLIENT_H_
#define CALDERA_STORAGE_HTTP_CLIENT_H_

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/random_access_source.h"

namespace caldera::storage {

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // Request body: bytes [body_offset, body_offset + body_length) of `body`.
  const RandomAccessSource* body = nullptr;
  uint64_t body_offset = 0;
  uint64_t body_length = 0;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

struct SigV4 {
  std::string access_key_id;  // empty: send unsigned (anonymous) requests
  std::string secret_access_key;
  std::string region;
  std::string service = "s3";
};

struct HttpTimeouts {
  std::chrono::seconds connect{10};
  std::chrono::seconds low_speed{60};
};

// Performs the request. A transport failure (cannot connect, timeout, reset)
// is UNAVAILABLE naming the URL; any HTTP status, including 4xx/5xx, is a
// successful exchange returned in HttpResponse.
absl::StatusOr<HttpResponse> PerformHttp(const HttpRequest& request, const SigV4& sign,
                                         const HttpTimeouts& timeouts);

// AWS-style percent-encoding (RFC 3986 unreserved characters kept); '/' is kept
// when `keep_slash`.
std::string UriEncode(absl::string_view text, bool keep_slash);

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_HTTP_CLIENT_H_
