#include "worker/task_confinement.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/util/bounded_quote.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "job/output_safety.h"
#include "storage/allowed_roots.h"

namespace caldera::worker {
namespace {

namespace pb = google::protobuf;

bool IsLocationField(const pb::FieldDescriptor& f) {
  const std::string& n = f.name();
  return absl::EndsWith(n, "_uri") || absl::EndsWith(n, "_uris") || absl::EndsWith(n, "_prefix");
}

// Appends (field name, value) of every location string in `m`, nested
// messages included.
void Collect(const pb::Message& m, std::vector<std::pair<std::string, std::string>>* out) {
  const pb::Reflection* r = m.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const pb::FieldDescriptor* f : fields) {
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(m, f); ++i) Collect(r->GetRepeatedMessage(m, f, i), out);
      } else {
        Collect(r->GetMessage(m, f), out);
      }
      continue;
    }
    if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING || !IsLocationField(*f)) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(m, f); ++i) {
        out->emplace_back(f->name(), r->GetRepeatedString(m, f, i));
      }
    } else {
      out->emplace_back(f->name(), r->GetString(m, f));
    }
  }
}

std::vector<std::pair<std::string, std::string>> WorkLocations(const v1::Task& task) {
  std::vector<std::pair<std::string, std::string>> out;
  const pb::Reflection* r = task.GetReflection();
  const pb::OneofDescriptor* work = task.GetDescriptor()->FindOneofByName("work");
  if (work == nullptr) return out;
  const pb::FieldDescriptor* set = r->GetOneofFieldDescriptor(task, work);
  if (set == nullptr || set->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) return out;
  Collect(r->GetMessage(task, set), &out);
  std::erase_if(out, [](const auto& p) { return p.second.empty(); });
  return out;
}

}  // namespace

std::vector<std::string> TaskLocations(const v1::Task& task) {
  std::vector<std::string> out;
  for (auto& [field, uri] : WorkLocations(task)) out.push_back(std::move(uri));
  return out;
}

absl::Status CheckTaskConfined(const v1::Task& task, const job::JobSpec& spec,
                               const storage::StorageOptions& options) {
  const std::string who = absl::StrCat("task ", BoundedQuote(task.task_id(), 100));
  auto denied = [&](const absl::Status& s) {
    return absl::PermissionDeniedError(
        absl::StrCat(who, ": refused by this worker: ", s.message()));
  };
  if (absl::Status s = job::CheckOutputApartFromInputs(spec); !s.ok()) return denied(s);
  const std::pair<const char*, const std::string*> spec_uris[] = {
      {"--model", &spec.model}, {"--calibration", &spec.calibration}, {"--out", &spec.out}};
  for (const auto& [flag, uri] : spec_uris) {
    if (absl::Status s = storage::CheckUriAllowed(*uri, options.allowed_roots, flag); !s.ok()) {
      return denied(s);
    }
  }
  for (const auto& [field, uri] : WorkLocations(task)) {
    if (absl::Status s = storage::CheckUriAllowed(uri, options.allowed_roots, field); !s.ok()) {
      return denied(s);
    }
    if (uri == spec.calibration || uri == spec.model) continue;  // an input, read only
    absl::StatusOr<bool> inside = storage::UriIsWithin(uri, spec.out);
    if (!inside.ok()) return denied(inside.status());
    if (!*inside) {
      return absl::PermissionDeniedError(absl::StrCat(
          who, ": refused by this worker: ", field, " '", BoundedQuote(uri),
          "' lies outside the job's --out ", BoundedQuote(spec.out),
          "; a task reads and writes only its job's inputs and locations under --out"));
    }
  }
  return absl::OkStatus();
}

}  // namespace caldera::worker
