// Conversion between the wire JobSpec (proto caldera.v1.JobSpec) and the
// worker's JobSpec. Unset proto fields take the documented defaults, so a
// client that sends only the URIs gets the same job as `calderactl compress`
// with only the required flags.
#ifndef CALDERA_WORKER_JOB_SPEC_PROTO_H_
#define CALDERA_WORKER_JOB_SPEC_PROTO_H_

#include <string>

#include "caldera/v1/jobs.pb.h"
#include "worker/job_spec.h"

namespace caldera::worker {

JobSpec JobSpecFromProto(const v1::JobSpec& proto, const std::string& request_id);
v1::JobSpec JobSpecToProto(const JobSpec& spec);

}  // namespace caldera::worker

#endif  // CALDERA_WORKER_JOB_SPEC_PROTO_H_
