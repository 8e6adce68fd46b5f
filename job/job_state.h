// Facts about job states shared by the coordinator, its services and clients.
#ifndef CALDERA_JOB_JOB_STATE_H_
#define CALDERA_JOB_JOB_STATE_H_

#include "caldera/v1/jobs.pb.h"

namespace caldera::job {

// True for the states a job never leaves: SUCCEEDED, FAILED, CANCELLED.
inline bool IsTerminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

}  // namespace caldera::job

#endif  // CALDERA_JOB_JOB_STATE_H_
