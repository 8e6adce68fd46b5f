#include "worker/memory_limit.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace caldera::worker {

std::optional<int64_t> ParseCgroupMemoryLimit(absl::string_view text) {
  const absl::string_view t = absl::StripAsciiWhitespace(text);
  int64_t v = 0;
  if (t == "max" || !absl::SimpleAtoi(t, &v) || v <= 0 || v >= (int64_t{1} << 62)) {
    return std::nullopt;
  }
  return v;
}

int64_t DefaultMaxMemoryBytes() {
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    if (!in) continue;
    std::stringstream ss;
    ss << in.rdbuf();
    if (std::optional<int64_t> v = ParseCgroupMemoryLimit(ss.str())) return *v;
  }
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

}  // namespace caldera::worker
