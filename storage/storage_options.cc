#include "storage/storage_options.h"

#include <cstdlib>

namespace caldera::storage {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

}  // namespace

StorageOptions StorageOptions::FromEnvironment() {
  StorageOptions o;
  o.access_key_id = Env("AWS_ACCESS_KEY_ID");
  o.secret_access_key = Env("AWS_SECRET_ACCESS_KEY");
  o.session_token = Env("AWS_SESSION_TOKEN");
  if (std::string r = Env("AWS_REGION"); !r.empty()) {
    o.region = r;
  } else if (std::string dr = Env("AWS_DEFAULT_REGION"); !dr.empty()) {
    o.region = dr;
  }
  o.endpoint = Env("AWS_ENDPOINT_URL_S3");
  if (o.endpoint.empty()) o.endpoint = Env("AWS_ENDPOINT_URL");
  const std::string addressing = Env("CALDERA_S3_ADDRESSING");
  if (addressing == "path") o.addressing = S3Addressing::kPath;
  if (addressing == "virtual") o.addressing = S3Addressing::kVirtualHost;
  return o;
}

}  // namespace caldera::storage
