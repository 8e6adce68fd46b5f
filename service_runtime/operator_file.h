// Files an operator names on a command line or in a config (--auth-tokens,
// --tls-cert, --tls-key, --tls-ca, --client-ca, --token-file, --config) are
// read the way user inputs are: opened non-blocking (a FIFO never stalls the
// reader waiting for a writer), checked with fstat to be a regular file (a
// FIFO, a directory or a device such as /dev/zero is refused, not read), and
// capped in size. Errors are INVALID_ARGUMENT naming the flag, the path and
// the fix; no function here ever quotes a file's content.
//
// Callers must not hold a lock that serves requests while they read: even a
// regular file may sit on a slow disk.
#ifndef CALDERA_SERVICE_RUNTIME_OPERATOR_FILE_H_
#define CALDERA_SERVICE_RUNTIME_OPERATOR_FILE_H_

#include <cstdint>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::service_runtime {

// The largest operator file read (1 MiB): a token file of ~8,000 lines, a
// long certificate chain, a config.
inline constexpr uint64_t kMaxOperatorFileBytes = uint64_t{1} << 20;

// The whole content of the regular file `path`, at most `max_bytes` long.
absl::StatusOr<std::string> ReadOperatorFile(const std::string& path, absl::string_view flag,
                                             uint64_t max_bytes = kMaxOperatorFileBytes);

// What identifies one version of a file without reading it: device, inode,
// size, modification time (s, ns). All zero when `path` cannot be stat'ed.
using FileStamp = std::tuple<uint64_t, uint64_t, int64_t, int64_t, int64_t>;
FileStamp StampOf(const std::string& path);

}  // namespace caldera::service_runtime

#endif  // CALDERA_SERVICE_RUNTIME_OPERATOR_FILE_H_
