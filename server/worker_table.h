// WorkerTable: the workers a coordinator has heard from (last seen, offered
// memory, CUDA or not), by worker id. Worker ids are chosen by workers (a
// restarted coordinator must know the ids its predecessor gave out), so the
// table bounds what it keeps: ids are at most kMaxWorkerIdBytes of printable
// ASCII (others are ignored), an id not heard from for `forget_seconds` is
// forgotten, and at most `max_workers` ids are kept (the least recently heard
// from goes first). A worker heard from again is simply known again: it
// sends its memory and device with every lease request.
//
// Cost: Touch is O(log n) plus the ids it forgets (each once); the queries
// about connected workers walk only the ids heard from within
// `connected_seconds`, newest first, so they never depend on how many ids
// ever existed (issue 37: 7,500 stale ids slowed every lease 34x).
//
// Not thread-safe: the coordinator holds its lock.
#ifndef CALDERA_SERVER_WORKER_TABLE_H_
#define CALDERA_SERVER_WORKER_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace caldera::server {

// The longest worker id accepted anywhere (ours are <hostname>-<12 hex>).
inline constexpr size_t kMaxWorkerIdBytes = 128;
// The hostname part of an id the coordinator makes (Linux HOST_NAME_MAX).
inline constexpr size_t kMaxHostnameBytes = 64;
// The most ids a table keeps.
inline constexpr size_t kMaxKnownWorkers = 10000;

// 1 to kMaxWorkerIdBytes printable ASCII characters, no blanks.
bool IsValidWorkerId(absl::string_view id);

// The hostname part of a new worker id: the first kMaxHostnameBytes bytes of
// `hostname` with every character outside [A-Za-z0-9._-] replaced by '_'
// ("worker" when empty).
std::string WorkerIdPrefix(absl::string_view hostname);

class WorkerTable {
 public:
  WorkerTable(double connected_seconds, double forget_seconds,
              size_t max_workers = kMaxKnownWorkers)
      : connected_seconds_(connected_seconds),
        forget_seconds_(forget_seconds),
        max_workers_(max_workers) {}

  // Records that `id` was heard from at `now` (memory > 0 replaces the
  // offered memory; gpu true marks it a CUDA worker), then forgets stale
  // ids. An invalid id is ignored.
  void Touch(const std::string& id, double now, int64_t memory = 0, bool gpu = false);

  // Offered memory (0 = not reported) and device of `id`.
  int64_t MemoryOf(const std::string& id) const;
  bool IsGpu(const std::string& id) const;

  // Whether some worker heard from within connected_seconds of `now` has an
  // offered memory for which `holds` is true.
  bool AnyConnected(double now, const std::function<bool(int64_t memory)>& holds) const;
  // Workers heard from within connected_seconds of `now`.
  int Connected(double now) const;
  double forget_seconds() const { return forget_seconds_; }
  // Ids kept (connected or not yet forgotten).
  size_t size() const { return by_id_.size(); }

 private:
  struct Info {
    double seen = 0;
    int64_t memory = 0;
    bool gpu = false;
  };
  void Forget(double now);

  const double connected_seconds_;
  const double forget_seconds_;
  const size_t max_workers_;
  std::map<std::string, Info> by_id_;
  std::set<std::pair<double, std::string>> by_seen_;  // (last seen, id), oldest first
};

}  // namespace caldera::server

#endif  // CALDERA_SERVER_WORKER_TABLE_H_
