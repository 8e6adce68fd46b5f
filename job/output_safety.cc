#include "job/output_safety.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/format/checkpoint_report.h"
#include "core/util/bounded_quote.h"
#include "storage/allowed_roots.h"
#include "storage/output_probe.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::job {
namespace {

constexpr char kScratchEntry[] = ".caldera-scratch/";  // ScratchPrefix (task_plan.h)
constexpr size_t kMaxListedEntries = 1000;
// A caldera report.json is a few hundred bytes per matrix; anything larger is
// not one of ours.
constexpr uint64_t kMaxReportBytes = 64ull << 20;

// Hidden entries caldera leaves behind: scratch, a write probe, a temporary
// file of an interrupted atomic write (storage/local_store.cc).
bool IsOwnHiddenEntry(const std::string& name) {
  return name == kScratchEntry || absl::StartsWith(name, storage::kWriteProbePrefix) ||
         absl::StrContains(name, ".caldera-tmp-");
}

// True when `out`/report.json is a caldera checkpoint report.
bool HoldsCalderaReport(const std::string& out, const storage::StorageOptions& options) {
  const std::string uri = storage::JoinKey(out, "report.json");
  absl::StatusOr<storage::StoreAndKey> sk = storage::OpenUri(uri, options);
  if (!sk.ok()) return false;
  absl::StatusOr<storage::ObjectInfo> info = sk->store->Head(sk->key);
  if (!info.ok() || info->size > kMaxReportBytes) return false;
  absl::StatusOr<std::string> text = sk->store->Get(sk->key);
  return text.ok() && format::ParseCheckpointReport(*text, uri).ok();
}

}  // namespace

absl::Status CheckOutputApartFromInputs(const JobSpec& spec) {
  const std::pair<const char*, const std::string*> inputs[] = {
      {"--model", &spec.model}, {"--calibration", &spec.calibration}};
  for (const auto& [flag, uri] : inputs) {
    if (uri->empty() || spec.out.empty()) continue;
    absl::StatusOr<bool> overlap = storage::UrisOverlap(spec.out, *uri);
    if (!overlap.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--out ", BoundedQuote(spec.out), " or ", flag,
                                                     " ", BoundedQuote(*uri), ": ",
                                                     overlap.status().message()));
    }
    if (*overlap) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--out ", BoundedQuote(spec.out), " overlaps ", flag, " ", BoundedQuote(*uri),
          " (the same location, or one inside the other): writing it could destroy the input; "
          "choose an output directory apart from the inputs (--overwrite does not change this)"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckOutputLocation(const JobSpec& spec, const storage::StorageOptions& options) {
  if (absl::Status s = CheckOutputApartFromInputs(spec); !s.ok()) return s;
  if (!spec.overwrite) {
    absl::StatusOr<std::vector<std::string>> entries =
        storage::ListEntries(spec.out, options, kMaxListedEntries);
    if (!entries.ok()) return entries.status();
    std::string foreign;
    bool scratch = false;
    for (const std::string& e : *entries) {
      if (e == kScratchEntry) scratch = true;
      if (!IsOwnHiddenEntry(e) && foreign.empty()) foreign = e;
    }
    if (!foreign.empty() && !scratch && !HoldsCalderaReport(spec.out, options)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--out ", BoundedQuote(spec.out), " already holds files not written by caldera (",
          BoundedQuote(foreign, 100), entries->size() > 1 ? " and others" : "",
          "); choose a new or empty directory, or pass --overwrite to write into it anyway "
          "(files with the names of the output are replaced, others are kept)"));
    }
  }
  return storage::ProbeWritable(spec.out, options);
}

}  // namespace caldera::job
