#include "storage/s3_store.h"

#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/util/xml_escape.h"
#include "storage/s3_xml.h"
#include "storage/sha256.h"

namespace caldera::storage {
namespace {

constexpr char kUnsignedPayload[] = "UNSIGNED-PAYLOAD";
const std::string kEmptySha = Sha256Hex("");

bool Retryable(long status) { return status >= 500 || status == 429; }
bool Success(long status) { return status >= 200 && status < 300; }

}  // namespace

S3Store::S3Store(StorageOptions options, std::string bucket)
    : options_(std::move(options)), bucket_(std::move(bucket)), backoff_(options_.retry) {
  sign_.access_key_id = options_.access_key_id;
  sign_.secret_access_key = options_.secret_access_key;
  sign_.region = options_.region;
  timeouts_.connect = options_.connect_timeout;
  timeouts_.low_speed = options_.low_speed_timeout;
}

std::string S3Store::UriOf(const std::string& key) const {
  return absl::StrCat("s3://", bucket_, "/", key);
}

std::string S3Store::Url(const std::string& key, const std::string& query) const {
  std::string endpoint = options_.endpoint.empty()
                             ? absl::StrCat("https://s3.", options_.region, ".amazonaws.com")
                             : options_.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  const bool path_style =
      options_.addressing == S3Addressing::kPath ||
      (options_.addressing == S3Addressing::kAuto && !options_.endpoint.empty());
  std::string url;
  if (path_style) {
    url = absl::StrCat(endpoint, "/", bucket_, "/", UriEncode(key, true));
  } else {
    const size_t scheme_end = endpoint.find("://");
    const size_t host_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
    url = absl::StrCat(endpoint.substr(0, host_start), bucket_, ".", endpoint.substr(host_start),
                       "/", UriEncode(key, true));
  }
  if (!query.empty()) absl::StrAppend(&url, "?", query);
  return url;
}

absl::StatusOr<HttpResponse> S3Store::Execute(HttpRequest request,
                                              const std::string& payload_sha256) {
  request.headers.push_back(absl::StrCat("x-amz-content-sha256: ", payload_sha256));
  if (!options_.session_token.empty()) {
    request.headers.push_back(absl::StrCat("x-amz-security-token: ", options_.session_token));
  }
  const int attempts = std::max(1, options_.retry.max_attempts);
  absl::Status last;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(backoff_.DelayFor(attempt - 1));
    ++requests_;
    absl::StatusOr<HttpResponse> response = PerformHttp(request, sign_, timeouts_);
    if (!response.ok()) {
      last = response.status();
      if (last.code() != absl::StatusCode::kUnavailable) return last;
      continue;
    }
    if (!Retryable(response->status)) return response;
    last = absl::UnavailableError(
        absl::StrCat(request.method, " ", request.url, ": HTTP ", response->status, " ",
                     XmlFirst(response->body, "Code"), " ", XmlFirst(response->body, "Message")));
  }
  return absl::UnavailableError(absl::StrCat("S3 endpoint ", Url("", ""), " unavailable after ",
                                             attempts, " attempts; last error: ", last.message()));
}

absl::Status S3Store::ErrorFor(const HttpResponse& r, const std::string& what) const {
  const std::string code = XmlFirst(r.body, "Code");
  const std::string message = XmlFirst(r.body, "Message");
  const std::string detail =
      absl::StrCat(what, ": HTTP ", r.status, code.empty() ? "" : absl::StrCat(" ", code),
                   message.empty() ? "" : absl::StrCat(": ", message));
  if (code == "NoSuchBucket") {
    return absl::NotFoundError(
        absl::StrCat(detail, "; create bucket '", bucket_, "' or fix the URI"));
  }
  if (r.status == 404 || code == "NoSuchKey") return absl::NotFoundError(detail);
  if (r.status == 403 || r.status == 401 || code == "InvalidAccessKeyId" ||
      code == "SignatureDoesNotMatch" || code == "AccessDenied") {
    return absl::PermissionDeniedError(
        absl::StrCat(detail,
                     "; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN, "
                     "AWS_REGION) and the bucket policy"));
  }
  if (r.status == 416 || code == "InvalidRange") return absl::OutOfRangeError(detail);
  if (Retryable(r.status)) return absl::UnavailableError(detail);
  return absl::InvalidArgumentError(detail);
}

absl::StatusOr<std::string> S3Store::Get(const std::string& key) {
  HttpRequest req;
  req.url = Url(key, "");
  absl::StatusOr<HttpResponse> r = Execute(std::move(req), kEmptySha);
  if (!r.ok()) return r.status();
  if (!Success(r->status)) return ErrorFor(*r, UriOf(key));
  uint64_t expected = 0;
  if (auto it = r->headers.find("content-length"); it != r->headers.end() &&
                                                   absl::SimpleAtoi(it->second, &expected) &&
                                                   expected != r->body.size()) {
    return absl::DataLossError(
        absl::StrCat(UriOf(key), ": received ", r->body.size(), " bytes, expected ", expected));
  }
  if (auto it = r->headers.find("x-amz-meta-sha256"); it != r->headers.end()) {
    const std::string got = Sha256Hex(r->body);
    if (got != it->second) {
      return absl::DataLossError(absl::StrCat(UriOf(key), ": SHA-256 mismatch (recorded ",
                                              it->second, ", received ", got, ")"));
    }
  }
  return std::move(r->body);
}

absl::StatusOr<std::string> S3Store::GetRange(const std::string& key, uint64_t offset,
                                              uint64_t length) {
  if (length == 0) {
    absl::StatusOr<ObjectInfo> info = Head(key);
    if (!info.ok()) return info.status();
    if (absl::Status s = CheckRange(UriOf(key), info->size, offset, 0); !s.ok()) return s;
    return std::string();
  }
  HttpRequest req;
  req.url = Url(key, "");
  req.headers.push_back(absl::StrCat("Range: bytes=", offset, "-", offset + length - 1));
  absl::StatusOr<HttpResponse> r = Execute(std::move(req), kEmptySha);
  if (!r.ok()) return r.status();
  if (!Success(r->status)) return ErrorFor(*r, UriOf(key));
  if (r->status == 200 && r->body.size() > length) {  // server ignored the range
    if (offset + length > r->body.size()) {
      return absl::OutOfRangeError(absl::StrCat(UriOf(key), ": range beyond the object"));
    }
    return r->body.substr(offset, length);
  }
  if (r->body.size() != length) {
    return absl::OutOfRangeError(absl::StrCat(UriOf(key), ": byte range [", offset, ", ",
                                              offset + length, ") is beyond the end (got ",
                                              r->body.size(), " bytes); the object is truncated"));
  }
  return std::move(r->body);
}

absl::StatusOr<ObjectInfo> S3Store::Put(const std::string& key, const RandomAccessSource& body) {
  absl::StatusOr<std::string> sha = Sha256Hex(body, 0, body.Size());
  if (!sha.ok()) return sha.status();
  if (body.Size() > options_.multipart_threshold) return PutMultipart(key, body, *sha);
  HttpRequest req;
  req.method = "PUT";
  req.url = Url(key, "");
  req.body = &body;
  req.body_length = body.Size();
  req.headers.push_back(absl::StrCat("x-amz-meta-sha256: ", *sha));
  req.headers.push_back("Content-Type: application/octet-stream");
  absl::StatusOr<HttpResponse> r = Execute(std::move(req), *sha);
  if (!r.ok()) return r.status();
  if (!Success(r->status)) return ErrorFor(*r, UriOf(key));
  ObjectInfo info;
  info.key = key;
  info.size = body.Size();
  info.sha256 = *sha;
  info.etag = r->headers["etag"];
  return info;
}

absl::StatusOr<ObjectInfo> S3Store::PutMultipart(const std::string& key,
                                                 const RandomAccessSource& body,
                                                 const std::string& sha256) {
  const uint64_t part_size = std::max<uint64_t>(options_.part_size, 5ull << 20);
  const std::string uri = UriOf(key);
  HttpRequest init;
  init.method = "POST";
  init.url = Url(key, "uploads=");
  init.headers.push_back(absl::StrCat("x-amz-meta-sha256: ", sha256));
  init.headers.push_back("Content-Type: application/octet-stream");
  absl::StatusOr<HttpResponse> r = Execute(std::move(init), kEmptySha);
  if (!r.ok()) return r.status();
  if (!Success(r->status)) return ErrorFor(*r, absl::StrCat(uri, " (start multipart upload)"));
  const std::string upload_id = XmlFirst(r->body, "UploadId");
  if (upload_id.empty()) {
    return absl::InternalError(absl::StrCat(uri, ": multipart upload answer has no UploadId"));
  }
  const std::string id_query = absl::StrCat("uploadId=", UriEncode(upload_id, false));
  auto abort_upload = [&](absl::Status s) -> absl::Status {
    HttpRequest abort;
    abort.method = "DELETE";
    abort.url = Url(key, id_query);
    (void)Execute(std::move(abort), kEmptySha);
    return s;
  };
  std::string complete = "<CompleteMultipartUpload>";
  int part = 0;
  for (uint64_t offset = 0; offset < body.Size(); offset += part_size) {
    ++part;
    const uint64_t len = std::min(part_size, body.Size() - offset);
    absl::StatusOr<std::string> part_sha = Sha256Hex(body, offset, len);
    if (!part_sha.ok()) return abort_upload(part_sha.status());
    HttpRequest put;
    put.method = "PUT";
    put.url = Url(key, absl::StrCat("partNumber=", part, "&", id_query));
    put.body = &body;
    put.body_offset = offset;
    put.body_length = len;
    absl::StatusOr<HttpResponse> pr = Execute(std::move(put), *part_sha);
    if (!pr.ok()) return abort_upload(pr.status());
    if (!Success(pr->status)) {
      return abort_upload(ErrorFor(*pr, absl::StrCat(uri, " (part ", part, ")")));
    }
    absl::StrAppend(&complete, "<Part><PartNumber>", part, "</PartNumber><ETag>",
                    caldera::XmlEscape(pr->headers["etag"]), "</ETag></Part>");
  }
  complete += "</CompleteMultipartUpload>";
  ByteViewSource complete_body("complete", complete);
  HttpRequest done;
  done.method = "POST";
  done.url = Url(key, id_query);
  done.body = &complete_body;
  done.body_length = complete.size();
  done.headers.push_back("Content-Type: application/xml");
  absl::StatusOr<HttpResponse> dr = Execute(std::move(done), Sha256Hex(complete));
  if (!dr.ok()) return abort_upload(dr.status());
  // CompleteMultipartUpload may report an error inside a 200 answer.
  if (!Success(dr->status) || !XmlFirst(dr->body, "Code").empty()) {
    return abort_upload(ErrorFor(*dr, absl::StrCat(uri, " (complete multipart upload)")));
  }
  absl::StatusOr<ObjectInfo> info = Head(key);
  if (!info.ok()) return info.status();
  if (info->size != body.Size()) {
    return absl::DataLossError(
        absl::StrCat(uri, ": stored ", info->size, " bytes, uploaded ", body.Size()));
  }
  info->sha256 = sha256;
  return info;
}

absl::StatusOr<ObjectInfo> S3Store::Head(const std::string& key) {
  HttpRequest req;
  req.method = "HEAD";
  req.url = Url(key, "");
  absl::StatusOr<HttpResponse> r = Execute(std::move(req), kEmptySha);
  if (!r.ok()) return r.status();
  if (!Success(r->status)) return ErrorFor(*r, UriOf(key));
  ObjectInfo info;
  info.key = key;
  if (!absl::SimpleAtoi(r->headers["content-length"], &info.size)) {
    return absl::InternalError(absl::StrCat(UriOf(key), ": HEAD answer has no Content-Length"));
  }
  info.etag = r->headers["etag"];
  info.sha256 = r->headers["x-amz-meta-sha256"];
  return info;
}

absl::StatusOr<ListPage> S3Store::List(const std::string& prefix, const std::string& page_token,
                                       int page_size) {
  if (page_size < 1 || page_size > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("page size ", page_size, " out of range; use 1..1000"));
  }
  // Query parameters sorted by name, as SigV4's canonical request wants.
  std::string query;
  if (!page_token.empty()) {
    absl::StrAppend(&query, "continuation-token=", UriEncode(page_token, false), "&");
  }
  absl::StrAppend(&query, "list-type=2&max-keys=", page_size, "&prefix=", UriEncode(prefix, false));
  HttpRequest req;
  req.url = Url("", query);
  absl::StatusOr<HttpResponse> r = Execute(std::move(req), kEmptySha);
  if (!r.ok()) return r.status();
  if (!Success(r->status)) return ErrorFor(*r, UriOf(prefix) + "*");
  ListPage page;
  for (absl::string_view contents : XmlElements(r->body, "Contents")) {
    ObjectInfo info;
    info.key = XmlFirst(contents, "Key");
    if (!absl::SimpleAtoi(XmlFirst(contents, "Size"), &info.size)) info.size = 0;
    info.etag = XmlFirst(contents, "ETag");
    page.objects.push_back(std::move(info));
  }
  if (XmlFirst(r->body, "IsTruncated") == "true") {
    page.next_page_token = XmlFirst(r->body, "NextContinuationToken");
  }
  return page;
}

absl::Status S3Store::Delete(const std::string& key) {
  HttpRequest req;
  req.method = "DELETE";
  req.url = Url(key, "");
  absl::StatusOr<HttpResponse> r = Execute(std::move(req), kEmptySha);
  if (!r.ok()) return r.status();
  if (!Success(r->status) && r->status != 404) return ErrorFor(*r, UriOf(key));
  return absl::OkStatus();
}

absl::Status S3Store::Copy(const std::string& from_key, const std::string& to_key) {
  HttpRequest req;
  req.method = "PUT";
  req.url = Url(to_key, "");
  req.headers.push_back(
      absl::StrCat("x-amz-copy-source: /", bucket_, "/", UriEncode(from_key, true)));
  absl::StatusOr<HttpResponse> r = Execute(std::move(req), kEmptySha);
  if (!r.ok()) return r.status();
  if (!Success(r->status) || !XmlFirst(r->body, "Code").empty()) {
    return ErrorFor(*r, absl::StrCat("copy ", UriOf(from_key), " to ", UriOf(to_key)));
  }
  return absl::OkStatus();
}

}  // namespace caldera::storage
