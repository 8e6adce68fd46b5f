#include "storage/sha256.h"

#include <openssl/evp.h>

#include <vector>

namespace caldera::storage {

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_->md); }

void Sha256::Update(absl::string_view bytes) {
  EVP_DigestUpdate(ctx_->md, bytes.data(), bytes.size());
}

std::string Sha256::FinishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, digest, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

std::string Sha256Hex(absl::string_view bytes) {
  Sha256 h;
  h.Update(bytes);
  return h.FinishHex();
}

absl::StatusOr<std::string> Sha256Hex(const RandomAccessSource& source, uint64_t offset,
                                      uint64_t length) {
  Sha256 h;
  // Always through ReadAt (no MappedBytes): a local file truncated meanwhile
  // gives a status instead of SIGBUS.
  if (absl::Status s = CheckRange(source.Name(), source.Size(), offset, length); !s.ok()) {
    return s;
  }
  std::vector<uint8_t> buf(std::min<uint64_t>(length, 8u << 20));
  uint64_t done = 0;
  while (done < length) {
    const uint64_t n = std::min<uint64_t>(buf.size(), length - done);
    if (absl::Status s = source.ReadAt(offset + done, std::span<uint8_t>(buf.data(), n)); !s.ok()) {
      return s;
    }
    h.Update(absl::string_view(reinterpret_cast<const char*>(buf.data()), n));
    done += n;
  }
  return h.FinishHex();
}

}  // namespace caldera::storage
