// TLS material checked before gRPC is given it: gRPC itself only finds out
// when a server or channel is built, and then says "Unable to create secure
// server" (and the server pointer is null) or "empty address list". Each
// function reads its files as operator files (operator_file.h) and returns
// INVALID_ARGUMENT naming the flag, the path and the problem.
#ifndef CALDERA_SERVICE_RUNTIME_TLS_MATERIAL_H_
#define CALDERA_SERVICE_RUNTIME_TLS_MATERIAL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::service_runtime {

// A PEM certificate chain and the PEM private key of its first certificate.
struct KeyPair {
  std::string cert_chain;
  std::string private_key;
};

// Reads `cert_path` (one or more PEM certificates) and `key_path` (one PEM
// private key, not encrypted) and checks that the key belongs to the first
// certificate.
absl::StatusOr<KeyPair> LoadKeyPair(const std::string& cert_path, absl::string_view cert_flag,
                                    const std::string& key_path, absl::string_view key_flag);

// Reads a CA bundle: at least one PEM certificate, each of which parses.
absl::StatusOr<std::string> LoadCaBundle(const std::string& path, absl::string_view flag);

}  // namespace caldera::service_runtime

#endif  // CALDERA_SERVICE_RUNTIME_TLS_MATERIAL_H_
