// calderactl calibrate: per-layer calibration Hessians of a model, through the
// pipeline's calibrate step (pipeline/calibrate_step.h), the code workers run.
#include <stdlib.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/device_flag.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "core/backend/device.h"
#include "pipeline/calibrate_step.h"
#include "storage/storage.h"

namespace caldera::cli {
namespace {

struct CalibrateFlags {
  std::string model, tokens, out, layers, device = "cpu";
  int64_t batch = 1;  // accepted for old scripts; the block runs one sequence at a time
};

absl::Status ParseLayers(const std::string& spec, int64_t num_layers, int64_t* first,
                         int64_t* last) {
  *first = 0;
  *last = num_layers - 1;
  if (spec.empty()) return absl::OkStatus();
  std::vector<std::string> parts = absl::StrSplit(spec, '-');
  if (parts.size() == 1) parts.push_back(parts[0]);
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], first) ||
      !absl::SimpleAtoi(parts[1], last) || *first < 0 || *last >= num_layers || *first > *last) {
    return absl::InvalidArgumentError(
        absl::StrCat("--layers ", spec, " is not a range A-B within 0-", num_layers - 1));
  }
  return absl::OkStatus();
}

int RunCalibrate(const CalibrateFlags& f) {
  std::unique_ptr<backend::ComputeBackend> compute;
  if (int rc = OpenDevice("calibrate", f.device, &compute); rc != kExitOk) return rc;
  const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt = OpenCheckpointAt(f.model, options);
  if (!ckpt.ok()) return ReportError("calibrate", ckpt.status());
  const model::ModelConfig& config = (*ckpt)->config();
  absl::StatusOr<model::TokenSet> tokens = LoadTokensAt(f.tokens, config, options);
  if (!tokens.ok()) return ReportError("calibrate", tokens.status());
  int64_t first = 0, last = 0;
  if (absl::Status s = ParseLayers(f.layers, config.num_layers, &first, &last); !s.ok()) {
    return ReportError("calibrate", s);
  }
  std::fprintf(stderr, "calibrate: %lld sequences x %lld tokens, layers %lld-%lld of %lld\n",
               static_cast<long long>(tokens->samples), static_cast<long long>(tokens->seq_len),
               static_cast<long long>(first), static_cast<long long>(last),
               static_cast<long long>(config.num_layers));
  // The pipeline's calibrate step per layer, as workers run it (original
  // mode: block l on the original block l-1's outputs). The states between
  // layers go to a local scratch folder, removed at the end; the Hessians of
  // layers before --layers go there too.
  const char* tmpdir = std::getenv("TMPDIR");
  std::string scratch_path = absl::StrCat(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp",
                                          "/calderactl-calibrate-XXXXXX");
  if (mkdtemp(scratch_path.data()) == nullptr) {
    return ReportError("calibrate", absl::UnavailableError(absl::StrCat(
                                        "cannot create a scratch folder like ", scratch_path, ": ",
                                        std::strerror(errno), "; set TMPDIR")));
  }
  struct RemoveScratch {
    std::string path;
    ~RemoveScratch() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove_scratch{scratch_path};
  pipeline::StepEnvironment env;
  env.storage = options;
  env.compute = compute.get();
  const auto start = std::chrono::steady_clock::now();
  std::string input = f.tokens;
  for (int64_t layer = 0; layer <= last; ++layer) {
    pipeline::CalibrateRequest request;
    request.layer = layer;
    request.input_uri = input;
    request.hessians_uri =
        layer >= first
            ? storage::JoinKey(f.out, absl::StrCat("layer-", layer, ".hessians.safetensors"))
            : absl::StrCat(scratch_path, "/layer-", layer, ".hessians.safetensors");
    if (layer < last) {
      request.hidden_out_uri = absl::StrCat(scratch_path, "/hidden-", layer + 1, ".safetensors");
    }
    absl::StatusOr<pipeline::CalibrateResult> done = pipeline::Calibrate(**ckpt, request, env);
    if (!done.ok()) return ReportError("calibrate", done.status());
    if (layer > 0) std::filesystem::remove(input);  // the states entering this layer
    input = request.hidden_out_uri;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (layer >= first) {
      std::fprintf(stderr, "calibrate: layer %lld (%lld of %lld) written to %s (%.1f s)\n",
                   static_cast<long long>(layer), static_cast<long long>(layer - first + 1),
                   static_cast<long long>(last - first + 1), request.hessians_uri.c_str(), secs);
    } else {
      std::fprintf(stderr, "calibrate: layer %lld run for the states entering %lld (%.1f s)\n",
                   static_cast<long long>(layer), static_cast<long long>(first), secs);
    }
  }
  return kExitOk;
}

}  // namespace

void AddCalibrateCommand(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<CalibrateFlags>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate",
      "Compute per-layer calibration Hessians (layer-{l}.hessians.safetensors, format "
      "caldera.hessians.v1: float64 q_proj, o_proj, gate_proj, down_proj = sum x^T x / tokens; "
      "metadata layer and tokens)");
  cmd->add_option("--model", flags->model, "Model directory URI (path, file://, s3://)")
      ->required();
  cmd->add_option("--tokens", flags->tokens, "Token file URI (int32 input_ids [samples, seq_len])")
      ->required();
  cmd->add_option("--out", flags->out, "Output directory URI")->required();
  cmd->add_option("--layers", flags->layers, "Layer range A-B (default: all)");
  cmd->add_option("--batch", flags->batch,
                  "Ignored (kept for old scripts): the block runs one sequence at a time, as "
                  "on workers");
  cmd->add_option("--device", flags->device, backend::DeviceFlagHelp());
  cmd->callback([flags, exit_code] { *exit_code = RunCalibrate(*flags); });
}

}  // namespace caldera::cli
