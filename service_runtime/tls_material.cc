#include "service_runtime/tls_material.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service_runtime/operator_file.h"

namespace caldera::service_runtime {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

// Never asks for a passphrase (OpenSSL's default callback would prompt on
// the terminal): an encrypted key fails to load.
int NoPassphrase(char*, int, int, void*) { return 0; }

Bio BioOf(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The PEM certificates of `text`, in order; empty when none parses. Fails
// when a certificate block after the first does not parse.
absl::StatusOr<std::vector<Cert>> Certificates(const std::string& text, absl::string_view flag,
                                               const std::string& path) {
  std::vector<Cert> certs;
  Bio bio = BioOf(text);
  if (bio == nullptr) return absl::ResourceExhaustedError("out of memory reading PEM");
  for (;;) {
    Cert cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
    if (cert == nullptr) break;
    certs.push_back(std::move(cert));
  }
  ERR_clear_error();  // the end of the bundle reads as an error
  if (certs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path,
                     " holds no PEM certificate (a block starting -----BEGIN CERTIFICATE-----); "
                     "give the PEM certificate file"));
  }
  return certs;
}

}  // namespace

absl::StatusOr<KeyPair> LoadKeyPair(const std::string& cert_path, absl::string_view cert_flag,
                                    const std::string& key_path, absl::string_view key_flag) {
  KeyPair out;
  absl::StatusOr<std::string> cert_text = ReadOperatorFile(cert_path, cert_flag);
  if (!cert_text.ok()) return cert_text.status();
  absl::StatusOr<std::string> key_text = ReadOperatorFile(key_path, key_flag);
  if (!key_text.ok()) return key_text.status();
  absl::StatusOr<std::vector<Cert>> certs = Certificates(*cert_text, cert_flag, cert_path);
  if (!certs.ok()) return certs.status();
  Bio bio = BioOf(*key_text);
  if (bio == nullptr) return absl::ResourceExhaustedError("out of memory reading PEM");
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_flag, " ", key_path,
                     " holds no unencrypted PEM private key (a block starting -----BEGIN "
                     "PRIVATE KEY-----); give the key of ",
                     cert_flag, " ", cert_path));
  }
  if (X509_check_private_key(certs->front().get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        key_flag, " ", key_path, " does not match the certificate in ", cert_flag, " ", cert_path,
        " (its public key differs); give the private key the certificate was "
        "issued for"));
  }
  out.cert_chain = *std::move(cert_text);
  out.private_key = *std::move(key_text);
  return out;
}

absl::StatusOr<std::string> LoadCaBundle(const std::string& path, absl::string_view flag) {
  absl::StatusOr<std::string> text = ReadOperatorFile(path, flag);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<Cert>> certs = Certificates(*text, flag, path);
  if (!certs.ok()) return certs.status();
  return text;
}

}  // namespace caldera::service_runtime
