// calderactl calibrate: per-layer calibration Hessians of a model.
#include <chrono>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/device_flag.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "core/backend/device.h"
#include "core/format/hessians.h"
#include "core/model/hessians_file.h"
#include "storage/storage.h"

namespace caldera::cli {
namespace {

struct CalibrateFlags {
  std::string model, tokens, out, layers, device = "cpu";
  int64_t batch = 1;
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
  if (f.batch < 1) {
    return ReportError("calibrate", absl::InvalidArgumentError("--batch must be >= 1"));
  }
  std::fprintf(stderr, "calibrate: %lld sequences x %lld tokens, layers %lld-%lld of %lld\n",
               static_cast<long long>(tokens->samples), static_cast<long long>(tokens->seq_len),
               static_cast<long long>(first), static_cast<long long>(last),
               static_cast<long long>(config.num_layers));
  const auto start = std::chrono::steady_clock::now();
  model::RunOptions run;
  run.batch_sequences = f.batch;
  if (compute != nullptr) {  // the block forward and its Hessians on the device
    run.prepare_block = [&compute](const model::ModelConfig& c, const model::BlockWeights& w,
                                   int64_t seq_len, model::BlockHessians* h) {
      return compute->PrepareBlock(c, w, seq_len, h);
    };
  }
  absl::Status s = model::CalibrateLayers(
      **ckpt, *tokens, first, last, run, [&](int64_t layer, model::BlockHessians& h) {
        absl::StatusOr<format::Hessians> normalised = model::NormalisedHessians(h, layer);
        if (!normalised.ok()) return normalised.status();
        absl::StatusOr<std::string> bytes = format::SerializeHessians(*std::move(normalised));
        if (!bytes.ok()) return bytes.status();
        const std::string uri =
            storage::JoinKey(f.out, absl::StrCat("layer-", layer, ".hessians.safetensors"));
        absl::StatusOr<storage::ObjectInfo> put = storage::WriteObject(uri, *bytes, options);
        if (!put.ok()) return put.status();
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "calibrate: layer %lld (%lld of %lld) written to %s (%.1f s)\n",
                     static_cast<long long>(layer), static_cast<long long>(layer - first + 1),
                     static_cast<long long>(last - first + 1), uri.c_str(), secs);
        return absl::OkStatus();
      });
  if (!s.ok()) return ReportError("calibrate", s);
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
  cmd->add_option("--batch", flags->batch, "Sequences per forward batch (default 1)");
  cmd->add_option("--device", flags->device, backend::DeviceFlagHelp());
  cmd->callback([flags, exit_code] { *exit_code = RunCalibrate(*flags); });
}

}  // namespace caldera::cli
