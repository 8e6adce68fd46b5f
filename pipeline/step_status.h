// Status helpers shared by the pipeline's steps (internal to pipeline/).
#ifndef CALDERA_PIPELINE_STEP_STATUS_H_
#define CALDERA_PIPELINE_STEP_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace caldera::pipeline {

// `s` with "<what>: " before its message, its code kept.
inline absl::Status Annotate(const absl::Status& s, absl::string_view what) {
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

}  // namespace caldera::pipeline

#endif  // CALDERA_PIPELINE_STEP_STATUS_H_
