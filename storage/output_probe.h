// Looking at an output location before a job writes it: what it already
// holds, and a probe write that leaves the location exactly as it found it
// (it removes only the file and the directories it created itself; a
// directory that existed before is never removed or re-created).
#ifndef CALDERA_STORAGE_OUTPUT_PROBE_H_
#define CALDERA_STORAGE_OUTPUT_PROBE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/storage_options.h"

namespace caldera::storage {

// The names directly under the directory `dir_uri`, sorted, at most
// `max_entries` of them; a sub-directory (local) or common prefix (S3) ends in
// '/'. Every kind of local entry counts (files, directories, symbolic links,
// FIFOs...). An absent location has none. INVALID_ARGUMENT when a local
// `dir_uri` exists but is not a directory. Confined like every storage access
// (options.allowed_roots).
absl::StatusOr<std::vector<std::string>> ListEntries(absl::string_view dir_uri,
                                                     const StorageOptions& options,
                                                     size_t max_entries);

// Checks that objects can be written under `dir_uri`: local: creates the
// missing directories (recording which), creates a uniquely named probe file
// with O_CREAT|O_EXCL|O_NOFOLLOW, then removes that file and only the
// directories it created; S3: puts and deletes a probe object. The error of
// the failed step otherwise (PERMISSION_DENIED for an unwritable location).
absl::Status ProbeWritable(absl::string_view dir_uri, const StorageOptions& options);

// The name prefix of the probe file (hidden; never part of an output).
inline constexpr char kWriteProbePrefix[] = ".caldera-write-probe";

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_OUTPUT_PROBE_H_
