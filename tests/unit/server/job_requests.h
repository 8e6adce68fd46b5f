// The small job the coordinator's unit tests submit: stories260K (the bundled
// fixture model), its calibration tokens, CALDERA rank 8.
#ifndef CALDERA_TESTS_UNIT_SERVER_JOB_REQUESTS_H_
#define CALDERA_TESTS_UNIT_SERVER_JOB_REQUESTS_H_

#include <string>

#include "caldera/v1/jobs.pb.h"
#include "tests/support/fixtures.h"

namespace caldera::server {

// A CreateJobRequest writing to `out` with `request_id`; only q_proj unless
// `all_modules` (then the spec names no module, i.e. all seven per layer).
inline v1::CreateJobRequest SmallJobRequest(const std::string& out,
                                            const std::string& request_id = "",
                                            bool all_modules = false) {
  const std::string model = testing::StoriesModelDir();
  v1::CreateJobRequest r;
  r.mutable_spec()->set_model(model);
  r.mutable_spec()->set_calibration(model + "/calibration.safetensors");
  r.mutable_spec()->set_out(out);
  if (!all_modules) r.mutable_spec()->add_modules("q_proj");
  r.mutable_spec()->mutable_decomposition()->set_rank(8);
  r.set_request_id(request_id);
  return r;
}

}  // namespace caldera::server

#endif  // CALDERA_TESTS_UNIT_SERVER_JOB_REQUESTS_H_
