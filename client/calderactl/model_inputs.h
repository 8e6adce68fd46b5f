// Helpers of the model subcommands: opening inputs by URI (from
// model_io/model_inputs.h) and reporting errors.
#ifndef CALDERA_CLIENT_CALDERACTL_MODEL_INPUTS_H_
#define CALDERA_CLIENT_CALDERACTL_MODEL_INPUTS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/checkpoint.h"
#include "core/model/model_runner.h"
#include "model_io/model_inputs.h"

namespace caldera::cli {

// Opening models and token sets: model_io/model_inputs.h.
using model_io::LoadTokensAt;
using model_io::OpenCheckpointAt;

// Prints "calderactl <command>: error: <message>" to stderr and returns the
// exit code for the status.
int ReportError(const char* command, const absl::Status& status);

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_MODEL_INPUTS_H_
