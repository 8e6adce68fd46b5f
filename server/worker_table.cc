#include "server/worker_table.h"

#include "absl/strings/ascii.h"

namespace caldera::server {

bool IsValidWorkerId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxWorkerIdBytes) return false;
  for (char c : id) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string WorkerIdPrefix(absl::string_view hostname) {
  if (hostname.empty()) return "worker";
  std::string out(hostname.substr(0, kMaxHostnameBytes));
  for (char& c : out) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
      c = '_';
    }
  }
  return out;
}

void WorkerTable::Touch(const std::string& id, double now, int64_t memory, bool gpu) {
  if (!IsValidWorkerId(id)) return;
  auto [it, inserted] = by_id_.try_emplace(id);
  Info& info = it->second;
  if (!inserted) by_seen_.erase({info.seen, id});
  info.seen = now;
  if (memory > 0) info.memory = memory;
  if (gpu) info.gpu = true;
  by_seen_.emplace(now, id);
  Forget(now);
}

void WorkerTable::Forget(double now) {
  while (!by_seen_.empty() &&
         (by_seen_.size() > max_workers_ || by_seen_.begin()->first < now - forget_seconds_)) {
    by_id_.erase(by_seen_.begin()->second);
    by_seen_.erase(by_seen_.begin());
  }
}

int64_t WorkerTable::MemoryOf(const std::string& id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? 0 : it->second.memory;
}

bool WorkerTable::IsGpu(const std::string& id) const {
  auto it = by_id_.find(id);
  return it != by_id_.end() && it->second.gpu;
}

bool WorkerTable::AnyConnected(double now, const std::function<bool(int64_t memory)>& holds) const {
  for (auto it = by_seen_.rbegin(); it != by_seen_.rend(); ++it) {
    if (now - it->first >= connected_seconds_) break;  // older ones are not connected either
    if (holds(by_id_.at(it->second).memory)) return true;
  }
  return false;
}

int WorkerTable::Connected(double now) const {
  int n = 0;
  for (auto it = by_seen_.rbegin(); it != by_seen_.rend() && now - it->first < connected_seconds_;
       ++it) {
    ++n;
  }
  return n;
}

}  // namespace caldera::server
