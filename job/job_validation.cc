#include "job/job_validation.h"

#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/checkpoint.h"
#include "core/model/model_config.h"
#include "core/util/bounded_quote.h"
#include "job/output_safety.h"
#include "model_io/model_inputs.h"
#include "storage/allowed_roots.h"
#include "storage/output_probe.h"
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

// A size from config.json beyond which no supported model goes; bounding every
// dimension keeps the products below (shapes, element counts) far from overflow.
constexpr int64_t kMaxDimension = int64_t{1} << 24;

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The config's sizes, each positive and at most kMaxDimension, and the layer
// count within kMaxLayers.
absl::Status CheckConfigBounds(const model::ModelConfig& c, const std::string& model) {
  if (c.num_layers > kMaxLayers) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model ", BoundedQuote(model), ": config.json num_hidden_layers ",
                     c.num_layers, " is above the limit of ", kMaxLayers, " layers per job"));
  }
  const std::pair<const char*, int64_t> sizes[] = {
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab_size},
      {"moe_intermediate_size", c.is_moe() ? c.moe_intermediate_size : 1}};
  for (const auto& [key, value] : sizes) {
    if (value <= 0 || value > kMaxDimension) {
      return absl::InvalidArgumentError(absl::StrCat("--model ", BoundedQuote(model),
                                                     ": config.json ", key, " ", value,
                                                     " is outside [1, ", kMaxDimension, "]"));
    }
  }
  return absl::OkStatus();
}

// Every tensor the plan reads, with the shape config.json implies: the token
// embedding (calibrate, layer 0), and per layer the two norms, the seven
// linears (calibrate runs whole blocks; decompose reads the selected ones)
// and the q/k/v biases when the architecture has them. A linear that is not
// selected may be absent (stored compressed); a present one must match.
absl::Status CheckTensorShapes(const model::Checkpoint& ckpt, const JobSpec& spec) {
  const model::ModelConfig& c = ckpt.config();
  auto check = [&](const std::string& name, const std::vector<int64_t>& want,
                   bool required) -> absl::Status {
    const TensorInfo* t = ckpt.Find(name);
    if (t == nullptr) {
      if (!required) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrCat("--model ", BoundedQuote(spec.model),
                                                     ": tensor ", name,
                                                     " is missing from the checkpoint"));
    }
    if (t->shape != want) {
      return absl::InvalidArgumentError(
          absl::StrCat("--model ", BoundedQuote(spec.model), ": tensor ", name, " has shape ",
                       ShapeText(t->shape), " but config.json implies ", ShapeText(want),
                       "; the checkpoint does not match its config.json"));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = check("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, true);
      !s.ok()) {
    return s;
  }
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = c.LayerPrefix(l);
    for (const char* norm : {"input_layernorm.weight", "post_attention_layernorm.weight"}) {
      if (absl::Status s = check(p + norm, {c.hidden_size}, true); !s.ok()) return s;
    }
    for (const model::BlockLinear& m : model::BlockLinears(c)) {
      const bool selected = CompressesModule(spec, m.name);
      if (absl::Status s = check(p + m.suffix + ".weight", model::LinearShape(c, m.name), selected);
          !s.ok()) {
        return s;
      }
    }
    if (c.is_moe()) {  // the router stays dense
      if (absl::Status s =
              check(p + model::RouterSuffix(c) + ".weight", {c.num_experts, c.hidden_size}, true);
          !s.ok()) {
        return s;
      }
    }
    if (c.attention_bias) {
      const int64_t q_out = c.num_heads * c.head_dim, kv_out = c.num_kv_heads * c.head_dim;
      for (const auto& [name, size] :
           {std::pair{"self_attn.q_proj.bias", q_out}, std::pair{"self_attn.k_proj.bias", kv_out},
            std::pair{"self_attn.v_proj.bias", kv_out}}) {
        if (absl::Status s = check(p + name, {size}, true); !s.ok()) return s;
      }
    }
    for (const char* norm : {"self_attn.q_norm.weight", "self_attn.k_norm.weight"}) {
      if (!c.qk_norm) break;
      if (absl::Status s = check(p + norm, {c.head_dim}, true); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// The INVALID_ARGUMENT for a model location without a readable config.json
// (`missing`, NOT_FOUND), telling apart what the user must fix: nothing at
// the location, a folder that exists but is empty, or one whose files lack
// config.json (naming a few of them).
absl::Status MissingModelError(const std::string& model, const absl::Status& missing,
                               const storage::StorageOptions& options) {
  const std::string flag = absl::StrCat("--model ", BoundedQuote(model), ": ");
  constexpr char kWant[] =
      "; --model must name a Hugging Face model folder (config.json and *.safetensors)";
  absl::StatusOr<std::vector<std::string>> entries = storage::ListEntries(model, options, 4);
  if (entries.ok() && !entries->empty()) {
    for (const std::string& entry : *entries) {
      const std::string inner = storage::JoinKey(model, entry);
      if (entry.back() == '/' &&
          storage::ReadObject(storage::JoinKey(inner, "config.json"), options).ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            flag, "the folder has no config.json, but its sub-folder ", BoundedQuote(entry),
            " has one; use --model ", BoundedQuote(inner.substr(0, inner.size() - 1))));
      }
    }
    std::vector<std::string> shown(entries->begin(),
                                   entries->begin() + std::min<size_t>(3, entries->size()));
    return absl::InvalidArgumentError(absl::StrCat(
        flag, "the folder exists but has no config.json (it holds ",
        BoundedQuote(absl::StrJoin(shown, ", ")), entries->size() > 3 ? ", ..." : "", ")", kWant));
  }
  absl::StatusOr<storage::StorageUri> uri = storage::ParseStorageUri(model);
  std::error_code ec;
  if (entries.ok() && uri.ok() && uri->scheme == storage::StorageUri::Scheme::kFile &&
      std::filesystem::is_directory(uri->path, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, "the folder exists but is empty (no config.json)", kWant));
  }
  if (entries.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, "no such folder", kWant));
  }
  return absl::InvalidArgumentError(absl::StrCat(flag, missing.message(), kWant));
}

}  // namespace

absl::StatusOr<JobShape> ValidateJob(const JobSpec& spec, const storage::StorageOptions& options) {
  // What a user must fix first comes first: the locations, then the inputs
  // they name (the model, the calibration tokens), then the numbers.
  if (absl::Status s = ValidateLocations(spec); !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  // Confinement first (nothing outside the allowed roots is read), then an
  // output apart from the inputs.
  const std::pair<const char*, const std::string*> uris[] = {
      {"--model", &spec.model}, {"--calibration", &spec.calibration}, {"--out", &spec.out}};
  for (const auto& [flag, uri] : uris) {
    if (absl::Status s = storage::CheckUriAllowed(*uri, options.allowed_roots, flag); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = CheckOutputApartFromInputs(spec); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt =
      model_io::OpenCheckpointAt(spec.model, options);
  if (!ckpt.ok()) {
    if (ckpt.status().code() == absl::StatusCode::kNotFound) {
      return MissingModelError(spec.model, ckpt.status(), options);
    }
    return AsInvalid(ckpt.status(), absl::StrCat("--model ", BoundedQuote(spec.model)));
  }
  const model::ModelConfig& config = (*ckpt)->config();
  if (absl::Status s = CheckConfigBounds(config, spec.model); !s.ok()) return s;
  absl::StatusOr<model::TokenSet> tokens =
      model_io::LoadTokensAt(spec.calibration, config, options);
  if (!tokens.ok()) {
    return AsInvalid(tokens.status(),
                     absl::StrCat("--calibration ", BoundedQuote(spec.calibration)));
  }
  if (absl::Status s = ValidateJobSpec(spec); !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  if (spec.finetune_steps > 0 && config.qk_norm) {
    // core/model/llama_block_grad.h has no backward pass of the q/k head norms.
    return absl::InvalidArgumentError(
        absl::StrCat("--finetune-steps: fine-tuning does not support ", config.architecture,
                     " yet (its q/k head norms have no backward pass); drop --finetune-steps"));
  }
  if (spec.finetune_steps > 0 && config.is_moe()) {
    // core/model/llama_block_grad.h has no backward pass of a routed mixture.
    return absl::InvalidArgumentError(
        absl::StrCat("--finetune-steps: fine-tuning does not support ", config.architecture,
                     " yet (a mixture of experts has no backward pass); drop --finetune-steps"));
  }
  JobShape shape;
  shape.num_layers = static_cast<int>(config.num_layers);
  if (config.is_moe() && spec.calibration_shards > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--calibration-shards ", spec.calibration_shards, ": ", config.architecture,
        " is a mixture of experts, whose per-expert Hessians are not combined across shards yet; "
        "use --calibration-shards 1"));
  }
  for (const model::BlockLinear& m : model::BlockLinears(config)) {
    if (!CompressesModule(spec, m.name)) continue;
    shape.modules.push_back(m.name);
    const std::vector<int64_t> dims = model::LinearShape(config, m.name);
    if (spec.target_bits == 0 && spec.method == decompose::Method::kCaldera &&
        spec.rank > std::min(dims[0], dims[1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("--rank ", spec.rank, " is larger than ", m.name, " (", dims[0], "x",
                       dims[1], "); use --rank <= ", std::min(dims[0], dims[1]),
                       ", or leave --rank out (0: ", "min(m, n) / 16 per matrix)"));
    }
    if (absl::Status s = ValidateServeShape(spec, m.name, dims[0], dims[1]); !s.ok()) return s;
    if (spec.ttlora_rank > std::min(dims[0], dims[1])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ttlora-rank ", spec.ttlora_rank, " is larger than ", m.name, " (", dims[0], "x",
          dims[1], "); use --ttlora-rank <= ", std::min(dims[0], dims[1])));
    }
  }
  // One calibrate task per layer and shard, one decompose task per layer and
  // module, one finalize (server/planner.cc).
  const int64_t tasks =
      config.num_layers * (spec.calibration_shards + static_cast<int64_t>(shape.modules.size())) +
      1;
  if (tasks > kMaxPlanTasks) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model ", BoundedQuote(spec.model), ": the plan would have ", tasks,
                     " tasks, above the limit of ", kMaxPlanTasks,
                     " tasks per job; compress fewer modules or split the job"));
  }
  if (absl::Status s = CheckTensorShapes(**ckpt, spec); !s.ok()) return s;
  if (shape.modules.empty()) {
    return absl::InvalidArgumentError(
        "--modules selects no linear; name at least one of "
        "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
  }
  if (spec.calibration_shards > tokens->samples) {
    return absl::InvalidArgumentError(
        absl::StrCat("--calibration-shards ", spec.calibration_shards, " is more than the ",
                     tokens->samples, " samples of --calibration ", BoundedQuote(spec.calibration),
                     "; use --calibration-shards <= ", tokens->samples));
  }
  shape.samples = tokens->samples;
  shape.seq_len = tokens->seq_len;
  shape.config = config;
  // The output holds nothing foreign (unless --overwrite) and is writable
  // (a probe that removes only what it created).
  if (absl::Status s = CheckOutputLocation(spec, options); !s.ok()) {
    if (s.code() == absl::StatusCode::kFailedPrecondition) return s;  // foreign files
    return AsInvalid(s, absl::StrCat("--out ", BoundedQuote(spec.out),
                                     " is not writable (choose an output location the service "
                                     "can write)"));
  }
  return shape;
}

}  // namespace caldera::job
