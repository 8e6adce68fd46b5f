// calderactl decompose: CALDERA (or LDLQ / RTN) of one weight matrix.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/device_flag.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/model_inputs.h"
#include "core/backend/device.h"
#include "core/decompose/caldera.h"
#include "core/format/matrix_artifact.h"
#include "core/ttlora/adapter.h"
#include "job/job_spec.h"
#include "nlohmann/json.hpp"
#include "pipeline/decompose_step.h"
#include "storage/storage.h"

namespace caldera::cli {
namespace {

struct DecomposeFlags {
  std::string weight, hessian, out, order = "lr,q", device = "cpu";
  // method, rank, q_bits, lr_bits, quantizer, iters, lplr_iters, seed,
  // ttlora_rank, ttlora_init: the job settings, with the job defaults.
  job::JobSpec job;
  // --method, --quantizer, --incoherence, --ttlora-init as given (the job
  // defaults' names unless given), parsed into `job` by RunDecompose.
  std::string method, quantizer, incoherence, ttlora_init;
  bool no_hadamard = false, json = false, hessian_downdate = false;
  std::string ttlora_shape;
};

// "FILE[:TENSOR]" -> (file, tensor); a ':' inside the URI scheme or before a '/' is not a split.
std::pair<std::string, std::string> SplitTensor(const std::string& spec) {
  const size_t colon = spec.rfind(':');
  if (colon == std::string::npos || spec.find('/', colon) != std::string::npos ||
      spec.compare(colon, 3, "://") == 0) {
    return {spec, ""};
  }
  return {spec.substr(0, colon), spec.substr(colon + 1)};
}

absl::StatusOr<Tensor> ReadMatrix(const std::string& spec, const char* what,
                                  const storage::StorageOptions& options) {
  auto [file, tensor] = SplitTensor(spec);
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src =
      storage::OpenObjectSource(file, options);
  if (!src.ok()) return src.status();
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      SafetensorsReader::Open(*std::move(src));
  if (!reader.ok()) return reader.status();
  if (tensor.empty()) {
    if ((*reader)->tensors().size() != 1) {
      std::vector<std::string> names;
      for (const TensorInfo& t : (*reader)->tensors()) names.push_back(t.name);
      if (names.size() > 12) names.resize(12), names.push_back("...");
      return absl::InvalidArgumentError(
          absl::StrCat(file, " holds ", (*reader)->tensors().size(), " tensors; name the ", what,
                       " as FILE:TENSOR (", absl::StrJoin(names, ", "), ")"));
    }
    tensor = (*reader)->tensors()[0].name;
  }
  const TensorInfo* info = (*reader)->Find(tensor);
  if (info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": no tensor '", tensor, "'"));
  }
  if (info->shape.size() != 2 || !IsFloatingPoint(info->dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", tensor, " is ", DTypeName(info->dtype), ShapeString(info->shape),
                     "; the ", what, " must be a 2-D floating-point tensor"));
  }
  return (*reader)->ReadAs(tensor, DType::kF64);
}

int RunDecompose(const DecomposeFlags& f) {
  const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();
  job::JobSpec spec = f.job;
  if (absl::StatusOr<quant::Quantizer> quantizer = quant::ParseQuantizer(f.quantizer);
      quantizer.ok()) {
    spec.quantizer = *quantizer;
  } else {
    return ReportError(
        "decompose", absl::InvalidArgumentError(absl::StrCat("--quantizer ", f.quantizer,
                                                             " is not e8p, uniform, int or q4k")));
  }
  absl::StatusOr<Tensor> wt = ReadMatrix(f.weight, "weight", options);
  if (!wt.ok()) return ReportError("decompose", wt.status());
  const int64_t m = wt->dim(0), n = wt->dim(1);
  quant::MatrixF w(m, n);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t c = 0; c < n; ++c) w(r, c) = static_cast<float>(wt->data<double>()[r * n + c]);
  }
  Eigen::MatrixXd h = Eigen::MatrixXd::Identity(n, n);
  if (!f.hessian.empty()) {
    absl::StatusOr<Tensor> ht = ReadMatrix(f.hessian, "Hessian", options);
    if (!ht.ok()) return ReportError("decompose", ht.status());
    if (ht->dim(0) != n || ht->dim(1) != n) {
      return ReportError(
          "decompose", absl::InvalidArgumentError(absl::StrCat(
                           "the Hessian is ", ht->dim(0), "x", ht->dim(1), " but the weight is ", m,
                           "x", n, "; it must be ", n, "x", n)));
    }
    h = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        ht->data<double>().data(), n, n);
  }
  if (absl::StatusOr<decompose::Method> method = decompose::ParseMethod(f.method); method.ok()) {
    spec.method = *method;
  } else {
    return ReportError("decompose", method.status());
  }
  if (absl::StatusOr<job::Incoherence> inc = job::ParseIncoherence(f.incoherence); inc.ok()) {
    spec.incoherence = *inc;
  } else {
    return ReportError("decompose", inc.status());
  }
  if (absl::StatusOr<ttlora::InitMode> init = ttlora::ParseInitMode(f.ttlora_init); init.ok()) {
    spec.ttlora_init = *init;
  } else {
    return ReportError("decompose",
                       absl::InvalidArgumentError(absl::StrCat("--ttlora-init '", f.ttlora_init,
                                                               "' is not zero or residual")));
  }
  if (f.no_hadamard) spec.incoherence = job::Incoherence::kNone;
  if (absl::Status s = job::ValidateDecompositionSettings(spec); !s.ok()) {
    return ReportError("decompose", s);
  }
  decompose::DecomposeOptions o = job::DecomposeOptionsFor(spec);
  o.rank = job::RankFor(spec, w.rows(), w.cols());
  // The BLAS library uses every core here; so do the codeword searches.
  o.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (f.order != "lr,q" && f.order != "q,lr") {
    return ReportError("decompose", absl::InvalidArgumentError(absl::StrCat(
                                        "--order '", f.order, "' is unknown; use lr,q or q,lr")));
  }
  o.lr_first = f.order == "lr,q";
  o.hessian_downdate = f.hessian_downdate;
  if (!f.json) {
    o.progress = [](const std::string& step, double frac) {
      std::fprintf(stderr, "decompose: %3.0f%% %s\n", 100 * frac, step.c_str());
    };
  }
  std::unique_ptr<backend::ComputeBackend> compute;
  if (int rc = OpenDevice("decompose", f.device, &compute); rc != kExitOk) return rc;
  o.backend = compute.get();
  const auto start = std::chrono::steady_clock::now();
  // The decomposition, then the TT-LoRA adapter on top of Ŵ (original
  // basis): the pipeline's DecomposeMatrix, as a decompose task runs it.
  pipeline::AdapterSettings adapter_settings = pipeline::AdapterSettingsFor(spec);
  adapter_settings.shape = f.ttlora_shape;
  absl::StatusOr<pipeline::MatrixDecomposition> d =
      pipeline::DecomposeMatrix(w, h, o, adapter_settings);
  if (!d.ok()) return ReportError("decompose", d.status());
  decompose::DecomposeResult* r = &d->result;
  const std::optional<ttlora::InitResult>& adapter = d->adapter;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!f.out.empty()) {
    auto [file, tensor] = SplitTensor(f.weight);
    std::string prefix = tensor.empty() ? "weight" : tensor;
    if (prefix.size() > 7 && prefix.compare(prefix.size() - 7, 7, ".weight") == 0) {
      prefix.resize(prefix.size() - 7);
    }
    format::MatrixArtifact artifact;
    artifact.prefix = prefix;
    artifact.record = std::move(r->record);
    if (adapter.has_value()) artifact.adapter = ttlora::AdapterFile({prefix}, adapter->adapter);
    absl::StatusOr<std::string> bytes = format::SerializeMatrixArtifact(std::move(artifact));
    if (!bytes.ok()) return ReportError("decompose", bytes.status());
    if (auto put = storage::WriteObject(f.out, *bytes, options); !put.ok()) {
      return ReportError("decompose", put.status());
    }
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  nlohmann::ordered_json j;
  j["rows"] = m;
  j["cols"] = n;
  j["rank"] = o.rank;
  j["method"] = std::string(decompose::MethodName(spec.method));
  j["q_quantizer"] = o.q_spec.Name();
  j["lr_quantizer"] = o.rank > 0 ? o.lr_spec.Name() : "none";
  j["bits_per_param"] = r->bits_per_param;
  j["storage_bits"] = r->storage_bits;
  j["relative_error"] = r->relative_error;
  j["weighted_relative_error"] = r->weighted_relative_error;
  j["seconds"] = seconds;
  j["peak_rss_bytes"] = static_cast<int64_t>(ru.ru_maxrss) * 1024;
  j["update_order"] = o.rank > 0 ? f.order : "q";
  j["hessian_downdate"] = o.rank > 0 && o.hessian_downdate;
  j["transform"] = r->transform;
  j["padded_rows"] = r->padded_rows;
  j["padded_cols"] = r->padded_cols;
  j["extra_damping"] = r->extra_damping;
  j["best_step"] = r->best_step;
  nlohmann::ordered_json history = nlohmann::ordered_json::array();
  for (const auto& [step, err] : r->history) {
    history.push_back({{"step", step}, {"weighted_relative_error", err}});
  }
  j["history"] = std::move(history);
  if (adapter.has_value()) {
    const ttlora::Adapter& a = adapter->adapter;
    const double base = (w.cast<double>() * h).cwiseProduct(w.cast<double>()).sum();
    j["ttlora_params"] = a.Params();
    j["ttlora_shape"] = ttlora::ShapeSpec(a.shape);
    j["ttlora_ranks"] = a.tt.ranks;
    j["ttlora_init"] = a.init;
    j["ttlora_alpha"] = a.alpha;
    j["ttlora_fell_back_to_zero"] = adapter->fell_back_to_zero;
    j["ttlora_captured_energy"] = adapter->captured_energy;
    j["ttlora_weighted_relative_error"] =
        base > 0 ? std::sqrt(std::max(0.0, adapter->weighted_error_after) / base) : 0.0;
  }
  if (f.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "%s %lldx%lld rank %lld: weighted relative error %.6f, relative error %.6f, "
        "%.4f bits/param, %.2f s (%s)\n",
        std::string(decompose::MethodName(spec.method)).c_str(), static_cast<long long>(m),
        static_cast<long long>(n), static_cast<long long>(o.rank), r->weighted_relative_error,
        r->relative_error, r->bits_per_param, seconds, r->transform.c_str());
  }
  return kExitOk;
}

}  // namespace

void AddDecomposeCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<DecomposeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "decompose", "Decompose one weight matrix: W = Q + L*R (caldera), Q only (ldlq), or RTN");
  cmd->add_option("--weight", f->weight,
                  "FILE[:TENSOR] (safetensors; TENSOR defaults to the only one)")
      ->required();
  cmd->add_option("--hessian", f->hessian, "FILE[:TENSOR], n x n float32/float64 (default H = I)");
  const job::JobSpec d;  // the defaults
  f->method = std::string(decompose::MethodName(d.method));
  f->quantizer = std::string(quant::QuantizerName(d.quantizer));
  f->incoherence = std::string(job::IncoherenceName(d.incoherence));
  f->ttlora_init = std::string(ttlora::InitModeName(d.ttlora_init));
  cmd->add_option("--method", f->method,
                  absl::StrCat("caldera | ldlq | rtn (default ", f->method, ")"));
  cmd->add_option("--rank", f->job.rank,
                  absl::StrCat("rank k of L*R (default ", d.rank, ": min(m, n) / 16, 1 to 64)"));
  cmd->add_option(
      "--q-bits", f->job.q_bits,
      absl::StrCat("bits of Q: e8p 2-4, uniform 2-8, int 4 or 8 (default ", d.q_bits, ")"));
  cmd->add_option("--lr-bits", f->job.lr_bits,
                  absl::StrCat("bits of L and R; 16 or 32 keeps floats (default ", d.lr_bits, ")"));
  cmd->add_option("--quantizer", f->quantizer,
                  absl::StrCat("e8p | uniform | int (default ", f->quantizer, ")"));
  cmd->add_option("--q-group-size,--group-size", f->job.q_group_size,
                  absl::StrCat("uniform quantizer group size (default ", d.q_group_size, ")"));
  cmd->add_option("--incoherence", f->incoherence,
                  absl::StrCat("auto | rht | none (default ", f->incoherence,
                               ": rht for e8p, none for uniform)"));
  cmd->add_option("--iters", f->job.iters,
                  absl::StrCat("outer iterations (default ", d.iters, ")"));
  cmd->add_option("--lplr-iters", f->job.lplr_iters,
                  absl::StrCat("inner L/R iterations (default ", d.lplr_iters, ")"));
  cmd->add_flag("--no-hadamard", f->no_hadamard, "same as --incoherence none");
  cmd->add_option("--order", f->order,
                  "update order in each outer iteration: lr,q (released code, default) or q,lr "
                  "(the paper's; iteration 1 is then plain LDLQ)");
  cmd->add_flag("--hessian-downdate", f->hessian_downdate,
                "LDLQ on H minus the directions L*R covers (QuIP#-style downdate)");
  cmd->add_option("--seed", f->job.seed,
                  absl::StrCat("seed of the Hadamard signs (default ", d.seed, ")"));
  cmd->add_option("--out", f->out, "write the compressed record (safetensors) here");
  cmd->add_flag("--json", f->json, "print one JSON object");
  cmd->add_option("--device", f->device, backend::DeviceFlagHelp());
  cmd->add_option(
      "--ttlora-rank", f->job.ttlora_rank,
      absl::StrCat("TT-LoRA bond rank r (default ", d.ttlora_rank, "; 0 = no adapter)"));
  cmd->add_option("--ttlora-init", f->ttlora_init,
                  "zero (dW = 0) or residual (TT-SVD of W - W_hat, kept only if it helps)");
  cmd->add_option("--ttlora-shape", f->ttlora_shape,
                  "m1,m2,...:n1,n2,... input (columns) and output (rows) factors");
  cmd->add_option("--ttlora-alpha", f->job.ttlora_alpha,
                  absl::StrCat("adapter scale alpha (default ", d.ttlora_alpha, ")"));
  cmd->callback([f, exit_code] { *exit_code = RunDecompose(*f); });
}

}  // namespace caldera::cli
