#include "client/calderactl/model_inputs.h"

#include <cstdio>

#include "client/calderactl/exit_codes.h"

namespace caldera::cli {

int ReportError(const char* command, const absl::Status& status) {
  std::fprintf(stderr, "calderactl %s: error: %s\n", command,
               std::string(status.message()).c_str());
  return ExitCodeFor(status);
}

}  // namespace caldera::cli
