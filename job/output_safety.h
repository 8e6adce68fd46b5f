// Output safety of a job: where a job may write its checkpoint.
//
//  - The output never overlaps an input: --out equal to, inside or around
//    --model or --calibration (compared on resolved paths, storage/
//    allowed_roots.h) is always refused, --overwrite or not.
//  - The output location holds nothing that caldera did not write, unless
//    the job says --overwrite. "Written by caldera" means: the location is
//    absent or empty; or it holds only caldera's own hidden entries (the
//    scratch directory .caldera-scratch/, a write probe, temporary files of an
//    interrupted write); or it holds .caldera-scratch/ (an unfinished or failed
//    job of ours wrote there); or its report.json parses as a caldera
//    checkpoint report (a completed caldera output, which a new job may
//    replace).
//  - The location is writable: a probe write that removes only what it
//    created (storage/output_probe.h).
// Messages name files and locations, never the contents of a file.
#ifndef CALDERA_JOB_OUTPUT_SAFETY_H_
#define CALDERA_JOB_OUTPUT_SAFETY_H_

#include "absl/status/status.h"
#include "job/job_spec.h"
#include "storage/storage_options.h"

namespace caldera::job {

// INVALID_ARGUMENT when spec.out overlaps spec.model or spec.calibration (or
// one of them does not resolve); reads no file contents, so the worker runs it
// on every task too.
absl::Status CheckOutputApartFromInputs(const JobSpec& spec);

// CheckOutputApartFromInputs, then (unless spec.overwrite) FAILED_PRECONDITION
// naming an entry not written by caldera, the location and the fix, then the
// probe write (its error as is: PERMISSION_DENIED for an unwritable location,
// UNAVAILABLE when storage is down).
absl::Status CheckOutputLocation(const JobSpec& spec, const storage::StorageOptions& options);

}  // namespace caldera::job

#endif  // CALDERA_JOB_OUTPUT_SAFETY_H_
