// Transport security and bearer tokens shared by every gRPC endpoint:
// the server's credentials (TLS, optionally verifying client certificates),
// the clients' channels (TLS or plaintext, plus an `authorization: Bearer`
// header on every call) and whether a listen address stays on this machine.
// docs/security.md describes the setup; file arguments are PEM paths.
#ifndef CALDERA_SERVICE_RUNTIME_GRPC_SECURITY_H_
#define CALDERA_SERVICE_RUNTIME_GRPC_SECURITY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::service_runtime {

// What a client presents to a coordinator. All empty = plaintext, no token.
struct ClientSecurity {
  std::string tls_ca;    // CA bundle that signed the coordinator's certificate; enables TLS
  std::string tls_cert;  // client certificate (mutual TLS; workers) ...
  std::string tls_key;   // ... and its private key
  std::string token;     // bearer token sent on every call (not a path)
};

// A channel to `target` (host:port) with `security`: TLS when tls_ca or
// tls_cert is set, the token on every call. INVALID_ARGUMENT naming the flag
// when a file cannot be read (operator_file.h), the CA bundle holds no
// certificate, the key does not match the certificate (tls_material.h) or
// only one of tls_cert / tls_key is given.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& target,
                                                           const ClientSecurity& security);

// The token in `path` (surrounding whitespace removed); INVALID_ARGUMENT
// naming `flag` when it cannot be read or is empty. Never quotes the content.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path, absl::string_view flag);

// What the server presents. tls_cert/tls_key empty = plaintext.
struct ServerTls {
  std::string tls_cert;
  std::string tls_key;
  // CA of client certificates. When set, a client certificate is verified if
  // presented (a bad one fails the handshake); the services decide who must
  // present one (caldera-coordinator: workers).
  std::string client_ca;
};

// Server credentials for `tls`; INVALID_ARGUMENT naming the flag when a file
// cannot be read, the key does not match the certificate, the CA bundle holds
// no certificate, or client_ca is given without a certificate.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(const ServerTls& tls);

// Whether `listen` (host:port, [v6]:port, unix:path) only accepts connections
// from this machine: localhost, 127.0.0.0/8, ::1 or a unix socket. "0.0.0.0",
// "[::]", ":port" and every other host are not.
bool IsLoopbackAddress(absl::string_view listen);

}  // namespace caldera::service_runtime

#endif  // CALDERA_SERVICE_RUNTIME_GRPC_SECURITY_H_
