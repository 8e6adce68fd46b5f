// Per-owner job quotas (docs/security.md#quotas): how many of one owner's
// jobs may wait to start and how many may run at once. Set per name in the
// token file (server/token_file.h); the defaults hold for every owner the
// file gives none, and for the single user of the local mode.
#ifndef CALDERA_SERVER_OWNER_QUOTA_H_
#define CALDERA_SERVER_OWNER_QUOTA_H_

#include <cstdint>
#include <functional>
#include <string>

namespace caldera::server {

// Defaults no single user reaches by hand or from a pipeline (a sweep submits
// tens of jobs) and a flood does (5,000 jobs in a minute, issue 37).
inline constexpr int64_t kDefaultMaxQueuedJobs = 2000;
inline constexpr int64_t kDefaultMaxRunningJobs = 100;
// The largest value a token file may give either quota.
inline constexpr int64_t kMaxQuotaValue = 1000000;

struct OwnerQuota {
  // CreateJob is RESOURCE_EXHAUSTED while the owner has this many QUEUED jobs.
  int64_t max_queued = kDefaultMaxQueuedJobs;
  // A QUEUED job of an owner with this many RUNNING jobs waits to start.
  int64_t max_running = kDefaultMaxRunningJobs;

  bool operator==(const OwnerQuota&) const = default;
};

// The quota of an owner (its name; "" in the local mode). Called with the
// coordinator's lock held: must not block (no file reads).
using QuotaSource = std::function<OwnerQuota(const std::string& owner)>;

}  // namespace caldera::server

#endif  // CALDERA_SERVER_OWNER_QUOTA_H_
