// Conversion between the wire JobSpec (proto caldera.v1.JobSpec) and
// job::JobSpec. Unset (zero) proto fields take the defaults of job_spec.h, so
// a client that sends only the URIs gets the same job as `calderactl
// compress` with only the required flags. The wire keeps the settings'
// spellings ("caldera", "e8p", "bf16", ...); JobSpecFromProto parses them.
#ifndef CALDERA_JOB_JOB_SPEC_PROTO_H_
#define CALDERA_JOB_JOB_SPEC_PROTO_H_

#include <string>

#include "absl/status/statusor.h"
#include "caldera/v1/jobs.pb.h"
#include "job/job_spec.h"

namespace caldera::job {

// `request_id` is the create request's idempotency key (not part of the proto spec).
// INVALID_ARGUMENT naming the flag (as ValidateJobSpec's messages do) when a
// setting's name is unknown (method, quantizer, incoherence, ttlora init,
// calibration mode, hidden dtype); the limits are ValidateJobSpec's.
absl::StatusOr<JobSpec> JobSpecFromProto(const v1::JobSpec& proto, const std::string& request_id);
// Every setting written out explicitly (defaults included).
v1::JobSpec JobSpecToProto(const JobSpec& spec);

}  // namespace caldera::job

#endif  // CALDERA_JOB_JOB_SPEC_PROTO_H_
