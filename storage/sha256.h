// SHA-256 (OpenSSL EVP), incremental, with lowercase hex output.
#ifndef CALDERA_STORAGE_SHA256_H_
#define CALDERA_STORAGE_SHA256_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/io/random_access_source.h"

namespace caldera::storage {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view bytes);
  // Lowercase hex digest; the object must not be used afterwards.
  std::string FinishHex();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string Sha256Hex(absl::string_view bytes);

// Hashes bytes [offset, offset+length) of a source, reading it in chunks.
absl::StatusOr<std::string> Sha256Hex(const RandomAccessSource& source, uint64_t offset,
                                      uint64_t length);

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_SHA256_H_
