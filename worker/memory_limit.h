// The memory a worker offers for its tasks (caldera-worker --max-memory's
// default): the cgroup limit when one is set (cgroup v2 memory.max, else v1
// memory.limit_in_bytes), else the physical RAM.
#ifndef CALDERA_WORKER_MEMORY_LIMIT_H_
#define CALDERA_WORKER_MEMORY_LIMIT_H_

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace caldera::worker {

// The limit in a cgroup file's text ("8589934592\n"); nullopt for "max",
// an unset v1 limit (≥ 2^62) or anything that is not a positive number.
std::optional<int64_t> ParseCgroupMemoryLimit(absl::string_view text);

// The cgroup limit of this process when set, else physical RAM; 0 when
// neither can be read.
int64_t DefaultMaxMemoryBytes();

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_MEMORY_LIMIT_H_
