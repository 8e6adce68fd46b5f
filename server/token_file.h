// TokenFile: the coordinator's bearer tokens (--auth-tokens), stored hashed.
// One token per line, fields separated by blanks:
//
//   <sha256 hex of the token>  <role>  <name>  [queued=N] [running=N]
//
// role is viewer | submitter | admin | worker; name (letters, digits, . _ @ -)
// is who the token stands for: the owner recorded on the jobs it creates.
// queued= and running= set that name's job quotas (owner_quota.h; 1 to
// 1,000,000, the defaults otherwise); every line of one name must give the
// same quotas. Blank lines and lines starting with '#' are ignored. The hash
// of a token is `printf %s TOKEN | sha256sum` (docs/security.md); the file
// never holds a token itself, so reading it does not let anyone call the
// service.
//
// The file is read as an operator file (service_runtime/operator_file.h:
// non-blocking, a regular file, at most 1 MiB) and re-read when it changes
// (inode, size or modification time, checked on each lookup): adding or
// revoking a token needs no restart. The read happens outside the lock that
// lookups take, by one caller at a time; the others go on with the tokens
// in force. A changed file that cannot be read or parsed is reported on
// stderr (once per version) and counted (`on_reload_failure`), and the
// previous tokens stay in force until it is fixed.
//
// Thread-safe.
#ifndef CALDERA_SERVER_TOKEN_FILE_H_
#define CALDERA_SERVER_TOKEN_FILE_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/owner_quota.h"
#include "service_runtime/operator_file.h"

namespace caldera::server {

enum class Role { kViewer, kSubmitter, kAdmin, kWorker };

// "viewer", "submitter", "admin", "worker".
const char* RoleName(Role role);

// Who a call comes from.
struct Principal {
  std::string name;  // "" in the local single-user mode
  Role role = Role::kViewer;
  OwnerQuota quota;  // of `name`
};

// Parses the text of a token file: sha256 hex (lowercase) -> principal.
// INVALID_ARGUMENT naming the line (never its content beyond the field that
// is wrong) when a line is malformed, a hash appears twice or a name is given
// two different quotas.
absl::StatusOr<std::map<std::string, Principal>> ParseTokenFile(absl::string_view text);

class TokenFile {
 public:
  // Reads `path`; INVALID_ARGUMENT naming it when it cannot be read or parsed.
  // `on_reload_failure` (may be empty) is called once per changed version of
  // the file that is refused.
  static absl::StatusOr<std::unique_ptr<TokenFile>> Open(
      const std::string& path, std::function<void()> on_reload_failure = {});
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  // The principal holding `token` (compared by SHA-256), re-reading the file
  // first if it changed; nullopt for an unknown token.
  std::optional<Principal> Lookup(absl::string_view token);

  // The quota of `name` in the tokens in force (defaults for a name the file
  // does not give one). Never reads the file: safe under other locks.
  OwnerQuota QuotaFor(const std::string& name) const;

 private:
  struct Tokens {
    std::map<std::string, Principal> by_hash;
    std::map<std::string, OwnerQuota> by_name;
  };
  TokenFile(std::string path, std::function<void()> on_reload_failure)
      : path_(std::move(path)), on_reload_failure_(std::move(on_reload_failure)) {}
  // Reads and parses the file (no lock held).
  absl::StatusOr<std::shared_ptr<const Tokens>> Read() const;
  // Re-reads the file when its stamp changed; one caller at a time.
  void ReloadIfChanged();

  const std::string path_;
  const std::function<void()> on_reload_failure_;
  std::mutex reload_mu_;   // held while one caller re-reads; others skip (try_lock)
  mutable std::mutex mu_;  // guards the two below; held only to copy or swap
  service_runtime::FileStamp stamp_{};
  std::shared_ptr<const Tokens> tokens_;
};

}  // namespace caldera::server

#endif  // CALDERA_SERVER_TOKEN_FILE_H_
