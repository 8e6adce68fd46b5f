// TokenFile: the coordinator's bearer tokens (--auth-tokens), stored hashed.
// One token per line, fields separated by blanks:
//
//   <sha256 hex of the token>  <role>  <name>
//
// role is viewer | submitter | admin | worker; name (letters, digits, . _ @ -)
// is who the token stands for: the owner recorded on the jobs it creates.
// Blank lines and lines starting with '#' are ignored. The hash of a token is
// `printf %s TOKEN | sha256sum` (docs/security.md); the file never holds a
// token itself, so reading it does not let anyone call the service.
//
// The file is re-read when it changes (inode, size or modification time,
// checked on each lookup): adding or revoking a token needs no restart. A
// changed file that does not parse is reported on stderr and the previous
// tokens stay in force until it is fixed.
//
// Thread-safe.
#ifndef CALDERA_SERVER_TOKEN_FILE_H_
#define CALDERA_SERVER_TOKEN_FILE_H_

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::server {

enum class Role { kViewer, kSubmitter, kAdmin, kWorker };

// "viewer", "submitter", "admin", "worker".
const char* RoleName(Role role);

// Who a call comes from.
struct Principal {
  std::string name;  // "" in the local single-user mode
  Role role = Role::kViewer;
};

// Parses the text of a token file: sha256 hex (lowercase) -> principal.
// INVALID_ARGUMENT naming the line (never its content beyond the field that
// is wrong) when a line is malformed or a hash appears twice.
absl::StatusOr<std::map<std::string, Principal>> ParseTokenFile(absl::string_view text);

class TokenFile {
 public:
  // Reads `path`; INVALID_ARGUMENT naming it when it cannot be read or parsed.
  static absl::StatusOr<std::unique_ptr<TokenFile>> Open(const std::string& path);
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  // The principal holding `token` (compared by SHA-256), re-reading the file
  // first if it changed; nullopt for an unknown token.
  std::optional<Principal> Lookup(absl::string_view token);

 private:
  using Stamp = std::tuple<uint64_t, uint64_t, int64_t, int64_t, int64_t>;  // dev ino size mtime
  explicit TokenFile(std::string path) : path_(std::move(path)) {}
  absl::Status Load(const Stamp& stamp);  // mu_ held

  const std::string path_;
  std::mutex mu_;
  Stamp stamp_{};
  std::map<std::string, Principal> by_hash_;
};

}  // namespace caldera::server

#endif  // CALDERA_SERVER_TOKEN_FILE_H_
