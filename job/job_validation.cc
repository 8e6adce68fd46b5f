#include "job/job_validation.h"

#include "absl/strings/str_cat.h"
#include "core/model/model_config.h"
#include "model_io/model_inputs.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::job {
namespace {

// Storage outages stay retryable; everything else is the input's fault.
absl::Status AsInvalid(const absl::Status& s, absl::string_view context) {
  if (s.code() == absl::StatusCode::kUnavailable ||
      s.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::UnavailableError(absl::StrCat(context, ": ", s.message()));
  }
  return absl::InvalidArgumentError(absl::StrCat(context, ": ", s.message()));
}

}  // namespace

absl::StatusOr<JobShape> ValidateJob(const JobSpec& spec, const storage::StorageOptions& options) {
  if (absl::Status s = ValidateJobSpec(spec); !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt =
      model_io::OpenCheckpointAt(spec.model, options);
  if (!ckpt.ok()) {
    if (ckpt.status().code() == absl::StatusCode::kNotFound) {
      return absl::InvalidArgumentError(
          absl::StrCat("--model ", spec.model, ": ", ckpt.status().message(),
                       "; --model must name a Hugging Face checkpoint directory (config.json and "
                       "*.safetensors)"));
    }
    return AsInvalid(ckpt.status(), absl::StrCat("--model ", spec.model));
  }
  const model::ModelConfig& config = (*ckpt)->config();
  JobShape shape;
  shape.num_layers = static_cast<int>(config.num_layers);
  for (const model::LinearModule& m : model::kLinearModules) {
    if (!CompressesModule(spec, m.name)) continue;
    shape.modules.push_back(m.name);
    const std::vector<int64_t> dims = model::LinearShape(config, m.name);
    if (spec.method == "caldera" && spec.rank > std::min(dims[0], dims[1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("--rank ", spec.rank, " is larger than ", m.name, " (", dims[0], "x",
                       dims[1], "); use --rank <= ", std::min(dims[0], dims[1])));
    }
    for (int64_t l = 0; l < config.num_layers; ++l) {
      const std::string name = config.LayerPrefix(l) + m.suffix + ".weight";
      if ((*ckpt)->Find(name) == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("--model ", spec.model, ": tensor ", name,
                                                       " is missing from the checkpoint"));
      }
    }
  }
  if (shape.modules.empty()) {
    return absl::InvalidArgumentError(
        "--modules selects no linear; name at least one of "
        "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
  }
  absl::StatusOr<model::TokenSet> tokens =
      model_io::LoadTokensAt(spec.calibration, config, options);
  if (!tokens.ok()) {
    return AsInvalid(tokens.status(), absl::StrCat("--calibration ", spec.calibration));
  }
  // The output must be writable: write and delete a probe object.
  const std::string probe = storage::JoinKey(spec.out, ".caldera-write-probe");
  if (auto put = storage::WriteObject(probe, "probe", options); !put.ok()) {
    return AsInvalid(put.status(),
                     absl::StrCat("--out ", spec.out,
                                  " is not writable (choose an output location the service can "
                                  "write)"));
  }
  if (absl::StatusOr<storage::StoreAndKey> sk = storage::OpenUri(probe, options); sk.ok()) {
    (void)sk->store->Delete(sk->key);
  }
  return shape;
}

}  // namespace caldera::job
