// Storage confinement: the allow-list of storage roots a service process may
// read and write (`--allow-root`, repeatable, on caldera-coordinator and
// caldera-worker), and the checks that a URI resolves inside one of them.
//
// A root is a local directory ("/data/models", "file:///data") or an S3
// prefix ("s3://bucket/prefix"). A URI is inside a root when
//   local: its resolved path equals the root's resolved path or lies below it.
//          Resolving = realpath(3) of the deepest existing ancestor (so a
//          symbolic link anywhere on the existing part is followed, and one
//          leading out of the root is caught) plus the remaining, not yet
//          existing components (the path is lexically normalised first, so
//          they hold no "..": the path that is checked is the one that is
//          opened). A dangling symbolic link on the path is refused.
//   s3:    the bucket is the same and the key equals the root's key prefix or
//          continues it after a '/' (s3://b/pre holds s3://b/pre/x, never
//          s3://b/prefix2). Keys with "." or ".." segments are refused (HTTP
//          clients normalise them away, which would leave the prefix).
// An empty allow-list means no confinement (the behaviour before allow-lists
// existed; `calderactl compress` runs that way).
#ifndef CALDERA_STORAGE_ALLOWED_ROOTS_H_
#define CALDERA_STORAGE_ALLOWED_ROOTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::storage {

// The canonical form of each root as given on a command line: local roots
// absolute and lexically normalised (relative ones against the working
// directory), S3 roots "s3://bucket" or "s3://bucket/prefix" without a
// trailing '/'. INVALID_ARGUMENT naming the root for an unparsable one, an S3
// root with "." or ".." segments, or an empty string.
absl::StatusOr<std::vector<std::string>> NormalizeAllowedRoots(
    const std::vector<std::string>& roots);

// The resolved form of a local path (see above): absolute, symbolic links of
// the existing part resolved. INVALID_ARGUMENT when the path cannot be
// resolved (a dangling link, a loop, a component that is not a directory).
absl::StatusOr<std::string> ResolveLocalPath(absl::string_view path);

// True when `path` equals `dir` or lies below it on a '/' boundary (both
// already resolved or normalised; "/" holds every absolute path).
bool PathIsWithin(absl::string_view path, absl::string_view dir);

// OK when `roots` is empty or `uri` resolves inside one of them. Otherwise
// PERMISSION_DENIED naming `what` (e.g. "--out"), the URI, what it resolves
// to, the roots and the fix. INVALID_ARGUMENT when `uri` does not parse or
// cannot be resolved.
absl::Status CheckUriAllowed(absl::string_view uri, const std::vector<std::string>& roots,
                             absl::string_view what);

// True when the resolved location of `uri` equals that of `dir` or lies
// inside it. INVALID_ARGUMENT when either does not parse or resolve.
absl::StatusOr<bool> UriIsWithin(absl::string_view uri, absl::string_view dir);

// True when the resolved locations of `a` and `b` are equal or one lies
// inside the other (a local and an S3 URI never overlap). INVALID_ARGUMENT
// when either does not parse or resolve.
absl::StatusOr<bool> UrisOverlap(absl::string_view a, absl::string_view b);

}  // namespace caldera::storage

#endif  // CALDERA_STORAGE_ALLOWED_ROOTS_H_
