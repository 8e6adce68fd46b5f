// calderactl sweep: compression laws as a planning tool (issue 22 part 2).
// For each bit budget it picks the largest candidate setting that fits,
// compresses with it on an in-process cluster (the same embedded path as
// `calderactl compress`, one cluster for every job), evaluates the result on
// --eval (the path of `calderactl eval`), evaluates the original, fits the
// compression law of sweep_fit.h and writes sweep.json and sweep.svg into
// --out (checkpoints under --out/runs/<setting>/). --target-loss X prints the
// smallest budget the law predicts for loss <= X and the candidate for it.
// With --submit the compress jobs go to a coordinator (--server ...) instead.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "caldera/v1/jobs.grpc.pb.h"
#include "client/calderactl/commands.h"
#include "client/calderactl/exit_codes.h"
#include "client/calderactl/job_client.h"
#include "client/calderactl/job_flags.h"
#include "client/calderactl/model_inputs.h"
#include "client/calderactl/sweep_fit.h"
#include "client/calderactl/sweep_plot.h"
#include "core/format/checkpoint_report.h"
#include "in_process_cluster/in_process_cluster.h"
#include "operations/embedded_cluster.h"
#include "service_runtime/grpc_status.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::cli {
namespace {

// A candidate setting and its bits per parameter measured on the bundled
// stories260K model (only the order matters: the sweep measures the real bits
// and steps down when a setting lands above its budget).
struct Candidate {
  const char* flags;  // as on the command line of `calderactl compress`
  const char* slug;   // directory name under --out/runs/
  double expected_bits;
  decompose::Method method;
  quant::Quantizer quantizer;
  int q_bits;
  int64_t rank;
  int64_t q_group_size;
};

constexpr Candidate kCandidates[] = {
    {"--method ldlq --q-bits 2", "ldlq-e8p-q2", 2.28, decompose::Method::kLdlq,
     quant::Quantizer::kE8p, 2, 0, 128},
    {"--rank 4", "caldera-r4", 2.6, decompose::Method::kCaldera, quant::Quantizer::kE8p, 2, 4, 128},
    {"--rank 8", "caldera-r8", 3.1, decompose::Method::kCaldera, quant::Quantizer::kE8p, 2, 8, 128},
    {"--method ldlq --quantizer uniform --q-bits 3", "ldlq-u3", 3.24, decompose::Method::kLdlq,
     quant::Quantizer::kUniform, 3, 0, 128},
    {"--method ldlq --quantizer uniform --q-bits 3 --q-group-size 32", "ldlq-u3-g32", 3.52,
     decompose::Method::kLdlq, quant::Quantizer::kUniform, 3, 0, 32},
    {"--method ldlq --quantizer uniform --q-bits 4", "ldlq-u4", 4.24, decompose::Method::kLdlq,
     quant::Quantizer::kUniform, 4, 0, 128},
    {"--method ldlq --quantizer uniform --q-bits 4 --q-group-size 32", "ldlq-u4-g32", 4.52,
     decompose::Method::kLdlq, quant::Quantizer::kUniform, 4, 0, 32},
};
// --serve vllm: the settings vLLM's int kernels run (job::ValidateServe):
// int4 or int8 Q, one scale per row (every width of the bundled model takes
// it), with or without a 16-bit L·R served as a LoRA adapter.
constexpr Candidate kServeCandidates[] = {
    {"--serve vllm --method ldlq --q-group-size 65536", "serve-ldlq-int4", 4.22,
     decompose::Method::kLdlq, quant::Quantizer::kInt, 4, 0, 65536},
    {"--serve vllm --rank 1 --q-group-size 65536", "serve-r1-int4", 4.67,
     decompose::Method::kCaldera, quant::Quantizer::kInt, 4, 1, 65536},
    {"--serve vllm --rank 2 --q-group-size 65536", "serve-r2-int4", 5.1,
     decompose::Method::kCaldera, quant::Quantizer::kInt, 4, 2, 65536},
    {"--serve vllm --rank 4 --q-group-size 65536", "serve-r4-int4", 6.0,
     decompose::Method::kCaldera, quant::Quantizer::kInt, 4, 4, 65536},
    {"--serve vllm --method ldlq --q-bits 8 --q-group-size 65536", "serve-ldlq-int8", 8.22,
     decompose::Method::kLdlq, quant::Quantizer::kInt, 8, 0, 65536},
};

// --serve llamacpp: LDLQ on the int grid at group 32, GGUF's Q4_0 and Q8_0
// (the linears' columns must be multiples of 32: leave others out with
// --modules).
constexpr Candidate kLlamacppCandidates[] = {
    {"--serve llamacpp", "llamacpp-q4_0", 4.52, decompose::Method::kLdlq, quant::Quantizer::kInt, 4,
     0, 32},
    {"--serve llamacpp --q-bits 8", "llamacpp-q8_0", 8.52, decompose::Method::kLdlq,
     quant::Quantizer::kInt, 8, 0, 32},
};

// The candidate list of a sweep for --serve `serve`.
std::span<const Candidate> CandidatesFor(job::Serve serve) {
  if (serve == job::Serve::kVllm) return kServeCandidates;
  if (serve == job::Serve::kLlamacpp) return kLlamacppCandidates;
  return kCandidates;
}

struct SweepFlags {
  std::string model, calibration, eval, out = "sweep";
  std::vector<double> budgets;
  std::optional<double> target_loss;
  // Passed through to every compress job.
  int iters = 15, lplr_iters = 10, lr_bits = 4, calibration_shards = 1;
  double share_heads = 0;  // --share-heads of every job (DirectShare before CALDERA)
  uint64_t seed = 42;
  std::string calibration_mode = "sequential", incoherence = "auto";
  std::vector<std::string> modules;
  int workers = 2;
  int threads = 0;
  int64_t eval_batch = 1;
  std::string serve = "none";  // --serve none | vllm | llamacpp: the candidates (CandidatesFor)
  job::Serve serve_kind() const { return job::ParseServe(serve).value_or(job::Serve::kNone); }
  // --submit: the compress jobs go to the coordinator of `conn` instead of an
  // in-process cluster; the checkpoints are read back by URI for the eval.
  bool submit = false;
  ConnectionFlags conn;
};

struct RunResult {
  int candidate = -1;
  double bits = 0, loss = 0, perplexity = 0;
  double compress_seconds = 0, eval_seconds = 0;
  std::string out;
  std::vector<double> budgets;  // the budgets it was chosen for
};

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

absl::StatusOr<model::EvalResult> Evaluate(const std::string& model_uri, const SweepFlags& f,
                                           const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt = OpenCheckpointAt(model_uri, options);
  if (!ckpt.ok()) return ckpt.status();
  absl::StatusOr<model::TokenSet> tokens = LoadTokensAt(f.eval, (*ckpt)->config(), options);
  if (!tokens.ok()) return tokens.status();
  model::RunOptions run;
  run.batch_sequences = f.eval_batch;
  return model::EvaluatePerplexity(**ckpt, *tokens, run);
}

class Sweeper {
 public:
  Sweeper(const SweepFlags& f, const storage::StorageOptions& options, v1::JobService::Stub* stub)
      : f_(f), options_(options), stub_(stub) {}

  // Compresses with candidate `i` (once; later calls return the first
  // result) and evaluates the checkpoint.
  absl::StatusOr<RunResult*> Run(int i) {
    if (auto it = runs_.find(i); it != runs_.end()) return &it->second;
    const Candidate& c = CandidatesFor(f_.serve_kind())[i];
    // The flags' names, parsed here as the coordinator parses them at CreateJob.
    absl::StatusOr<job::Incoherence> incoherence = job::ParseIncoherence(f_.incoherence);
    if (!incoherence.ok()) return incoherence.status();
    absl::StatusOr<job::CalibrationMode> calibration_mode =
        job::ParseCalibrationMode(f_.calibration_mode);
    if (!calibration_mode.ok()) return calibration_mode.status();
    JobFlags jf;
    job::JobSpec& s = jf.spec;
    s.model = f_.model;
    s.calibration = f_.calibration;
    s.out = storage::JoinKey(storage::JoinKey(f_.out, "runs"), c.slug);
    s.method = c.method;
    s.quantizer = c.quantizer;
    s.q_bits = c.q_bits;
    if (c.rank > 0) s.rank = c.rank;
    s.q_group_size = c.q_group_size;
    s.lr_bits = f_.lr_bits;
    s.serve = f_.serve_kind();
    if (s.serve == job::Serve::kVllm) s.lr_bits = 16;  // the LoRA adapter's (job::ValidateServe)
    s.incoherence = *incoherence;
    s.iters = f_.iters;
    s.lplr_iters = f_.lplr_iters;
    s.seed = f_.seed;
    s.calibration_mode = *calibration_mode;
    s.calibration_shards = f_.calibration_shards;
    s.modules = f_.modules;
    s.share_heads = f_.share_heads;
    s.overwrite = true;  // a sweep re-run replaces its own earlier runs
    std::fprintf(stderr, "sweep: compressing with %s\n", c.flags);
    const auto start = std::chrono::steady_clock::now();
    grpc::ClientContext ctx;
    v1::Job created;
    if (grpc::Status st = stub_->CreateJob(&ctx, CreateRequestFrom(jf), &created); !st.ok()) {
      return service_runtime::FromGrpcStatus(st);
    }
    absl::StatusOr<v1::Job> job = WaitForJob(stub_, created.name(), nullptr);
    if (!job.ok()) return job.status();
    if (job->state() != v1::SUCCEEDED) {
      return absl::InternalError(absl::StrCat("compress job with ", c.flags, " ended ",
                                              v1::JobState_Name(job->state()), ": ", job->error()));
    }
    RunResult r;
    r.candidate = i;
    r.out = s.out;
    r.compress_seconds = SecondsSince(start);
    const std::string report_key = storage::JoinKey(s.out, "report.json");
    absl::StatusOr<std::string> text = storage::ReadObject(report_key, options_);
    if (!text.ok()) return text.status();
    absl::StatusOr<format::CheckpointReport> report =
        format::ParseCheckpointReport(*text, report_key);
    if (!report.ok()) return report.status();
    r.bits = report->totals.bits_per_param;
    const auto eval_start = std::chrono::steady_clock::now();
    absl::StatusOr<model::EvalResult> e = Evaluate(s.out, f_, options_);
    if (!e.ok()) return e.status();
    r.eval_seconds = SecondsSince(eval_start);
    r.loss = e->mean_nll;
    r.perplexity = e->perplexity;
    std::fprintf(stderr, "sweep: %s: %.4f bits, loss %.5f, perplexity %.4f (%.1f s + %.1f s)\n",
                 c.flags, r.bits, r.loss, r.perplexity, r.compress_seconds, r.eval_seconds);
    return &runs_.emplace(i, std::move(r)).first->second;
  }

  const std::map<int, RunResult>& runs() const { return runs_; }

 private:
  const SweepFlags& f_;
  const storage::StorageOptions& options_;
  v1::JobService::Stub* stub_;
  std::map<int, RunResult> runs_;  // by candidate index
};

// Candidate indices by expected bits, largest first.
std::vector<int> CandidatesDescending(std::span<const Candidate> candidates) {
  std::vector<int> order(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) order[i] = static_cast<int>(i);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return candidates[a].expected_bits > candidates[b].expected_bits;
  });
  return order;
}

nlohmann::json LawToJson(const CompressionLaw& law) {
  return {{"form", "loss = l0 + b*(r-1) + c*(r-1)^2"},
          {"ratio", "r = 16 / bits_per_param (fp16 size over compressed size; original r = 1)"},
          {"method",
           "least squares over the compressed points with l0 the measured loss of "
           "the original model"},
          {"l0", law.l0},
          {"b", law.b},
          {"c", law.c},
          {"rmse", law.rmse},
          {"max_abs_residual", law.max_abs_residual},
          {"r_squared", law.r_squared},
          {"residuals", law.residuals}};
}

absl::Status WriteText(const std::string& key, const std::string& text,
                       const storage::StorageOptions& options) {
  absl::StatusOr<storage::ObjectInfo> info = storage::WriteObject(key, text, options);
  return info.ok() ? absl::OkStatus() : info.status();
}

int RunSweep(SweepFlags f) {
  if (f.budgets.empty()) {
    std::fprintf(stderr, "calderactl sweep: error: --budgets needs at least one value\n");
    return kExitInvalidInput;
  }
  for (double b : f.budgets) {
    if (!(b > 0 && b <= 16)) {
      std::fprintf(stderr, "calderactl sweep: error: budget %g is not in (0, 16]\n", b);
      return kExitInvalidInput;
    }
  }
  if (f.workers < 1) {
    std::fprintf(stderr, "calderactl sweep: error: --workers must be >= 1\n");
    return kExitInvalidInput;
  }
  std::sort(f.budgets.begin(), f.budgets.end());
  f.budgets.erase(std::unique(f.budgets.begin(), f.budgets.end()), f.budgets.end());
  const storage::StorageOptions options = storage::StorageOptions::FromEnvironment();

  // The original (ratio 1).
  std::fprintf(stderr, "sweep: evaluating the original model\n");
  const auto orig_start = std::chrono::steady_clock::now();
  absl::StatusOr<model::EvalResult> original = Evaluate(f.model, f, options);
  if (!original.ok()) return ReportError("sweep", original.status());
  const double original_seconds = SecondsSince(orig_start);

  std::unique_ptr<in_process_cluster::InProcessCluster> cluster;
  std::shared_ptr<grpc::Channel> channel;
  if (f.submit) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> c = ConnectTo(f.conn);
    if (!c.ok()) return ReportError("sweep", c.status());
    channel = *std::move(c);
  } else {
    absl::StatusOr<std::unique_ptr<in_process_cluster::InProcessCluster>> started =
        operations::StartEmbeddedCluster(options, f.workers, f.threads);
    if (!started.ok()) return ReportError("sweep", started.status());
    cluster = *std::move(started);
    channel = cluster->channel();
  }
  auto shutdown = [&cluster] {
    if (cluster != nullptr) cluster->Shutdown();
  };
  auto stub = v1::JobService::NewStub(channel);
  Sweeper sweeper(f, options, stub.get());

  // Per budget: the largest candidate expected to fit that does not measure
  // above the budget.
  const std::span<const Candidate> candidates = CandidatesFor(f.serve_kind());
  const std::vector<int> order = CandidatesDescending(candidates);
  std::vector<double> unmet;
  for (double budget : f.budgets) {
    bool met = false;
    for (int i : order) {
      if (candidates[i].expected_bits > budget + 1e-9) continue;
      absl::StatusOr<RunResult*> r = sweeper.Run(i);
      if (!r.ok()) {
        shutdown();
        return ReportError("sweep", r.status());
      }
      if ((*r)->bits <= budget + 1e-9) {
        (*r)->budgets.push_back(budget);
        met = true;
        break;
      }
    }
    if (!met) {
      std::fprintf(stderr, "sweep: no candidate setting fits %g bits per parameter\n", budget);
      unmet.push_back(budget);
    }
  }
  shutdown();

  // Points by bits, the fit, the report.
  std::vector<const RunResult*> points;
  for (const auto& [i, r] : sweeper.runs()) points.push_back(&r);
  std::sort(points.begin(), points.end(),
            [](const RunResult* a, const RunResult* b) { return a->bits > b->bits; });
  std::vector<LawPoint> law_points;
  for (const RunResult* r : points) law_points.push_back({CompressionRatio(r->bits), r->loss});
  absl::StatusOr<CompressionLaw> law = FitCompressionLaw(original->mean_nll, law_points);
  if (!law.ok()) {
    std::fprintf(stderr, "sweep: no fit: %s\n", std::string(law.status().message()).c_str());
  }

  nlohmann::json j;
  j["model"] = f.model;
  j["eval"] = f.eval;
  j["budgets"] = f.budgets;
  j["share_heads"] = f.share_heads;  // --share-heads of every point's job (0 = off)
  j["unmet_budgets"] = unmet;
  j["original"] = {{"bits_per_param", 16.0},
                   {"compression_ratio", 1.0},
                   {"loss", original->mean_nll},
                   {"perplexity", original->perplexity},
                   {"eval_tokens", original->predictions},
                   {"eval_seconds", original_seconds}};
  nlohmann::json jpoints = nlohmann::json::array();
  std::vector<SweepPlotPoint> plot_points;
  for (const RunResult* r : points) {
    const Candidate& c = candidates[r->candidate];
    nlohmann::json p = {{"settings", c.flags},
                        {"checkpoint", r->out},
                        {"bits_per_param", r->bits},
                        {"compression_ratio", CompressionRatio(r->bits)},
                        {"loss", r->loss},
                        {"perplexity", r->perplexity},
                        {"compress_seconds", r->compress_seconds},
                        {"eval_seconds", r->eval_seconds},
                        {"seconds", r->compress_seconds + r->eval_seconds},
                        {"budgets", r->budgets}};
    if (law.ok()) p["predicted_loss"] = law->LossAtBits(r->bits);
    jpoints.push_back(std::move(p));
    plot_points.push_back({r->bits, r->loss, r->perplexity, c.flags});
  }
  j["points"] = std::move(jpoints);
  j["fit"] = law.ok() ? LawToJson(*law) : nlohmann::json(nullptr);
  if (!law.ok()) j["fit_error"] = std::string(law.status().message());

  std::optional<double> predicted_bits;
  int target_candidate = -1;
  if (f.target_loss.has_value() && law.ok()) {
    predicted_bits = SmallestBitsForLoss(*law, *f.target_loss, 1.0);
    if (predicted_bits.has_value()) {
      // The smallest candidate at or above the predicted budget (measured bits
      // when it ran, else its expected bits).
      double best = 1e300;
      for (int i = 0; i < static_cast<int>(candidates.size()); ++i) {
        auto it = sweeper.runs().find(i);
        const double bits =
            it != sweeper.runs().end() ? it->second.bits : candidates[i].expected_bits;
        if (bits >= *predicted_bits - 1e-9 && bits < best) {
          best = bits;
          target_candidate = i;
        }
      }
    }
    nlohmann::json t = {{"loss", *f.target_loss}};
    t["predicted_bits"] =
        predicted_bits.has_value() ? nlohmann::json(*predicted_bits) : nlohmann::json(nullptr);
    t["extrapolated"] =
        predicted_bits.has_value() && !points.empty() && *predicted_bits < points.back()->bits;
    t["settings"] = target_candidate >= 0 ? nlohmann::json(candidates[target_candidate].flags)
                                          : nlohmann::json(nullptr);
    j["target"] = std::move(t);
  }

  const std::string svg =
      RenderSweepSvg(plot_points, law.ok() ? &*law : nullptr, original->mean_nll,
                     absl::StrCat("calderactl sweep: ", f.model));
  if (absl::Status s = WriteText(storage::JoinKey(f.out, "sweep.json"), j.dump(2) + "\n", options);
      !s.ok()) {
    return ReportError("sweep", s);
  }
  if (absl::Status s = WriteText(storage::JoinKey(f.out, "sweep.svg"), svg, options); !s.ok()) {
    return ReportError("sweep", s);
  }

  // The summary on stdout.
  std::printf("%-66s %8s %9s %11s %8s\n", "settings", "bits", "loss", "perplexity", "seconds");
  std::printf("%-66s %8.4f %9.5f %11.4f %8.1f\n", "original", 16.0, original->mean_nll,
              original->perplexity, original_seconds);
  for (const RunResult* r : points) {
    std::printf("%-66s %8.4f %9.5f %11.4f %8.1f\n", candidates[r->candidate].flags, r->bits,
                r->loss, r->perplexity, r->compress_seconds + r->eval_seconds);
  }
  if (law.ok()) {
    std::printf(
        "fit: loss = %.6f %c %.6g*(r-1) %c %.6g*(r-1)^2 with r = 16/bits; RMSE %.4g, max "
        "|residual| %.4g, R^2 %.4f\n",
        law->l0, law->b < 0 ? '-' : '+', std::abs(law->b), law->c < 0 ? '-' : '+', std::abs(law->c),
        law->rmse, law->max_abs_residual, law->r_squared);
  }
  if (f.target_loss.has_value()) {
    if (!law.ok()) {
      std::printf("target loss %g: no fit, no prediction\n", *f.target_loss);
    } else if (!predicted_bits.has_value()) {
      std::printf("target loss %g: below the original's loss %.6f; no budget reaches it\n",
                  *f.target_loss, law->l0);
    } else {
      std::printf("target loss %g: predicted budget %.3f bits per parameter%s; settings: %s\n",
                  *f.target_loss, *predicted_bits,
                  !points.empty() && *predicted_bits < points.back()->bits
                      ? " (extrapolated below the smallest point)"
                      : "",
                  target_candidate >= 0 ? candidates[target_candidate].flags
                                        : "none of the candidates (keep the original)");
    }
  }
  std::printf("sweep: wrote %s and %s\n", storage::JoinKey(f.out, "sweep.json").c_str(),
              storage::JoinKey(f.out, "sweep.svg").c_str());
  return kExitOk;
}

}  // namespace

void AddSweepCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<SweepFlags>();
  std::string candidates;
  for (const job::Serve serve : {job::Serve::kNone, job::Serve::kVllm, job::Serve::kLlamacpp}) {
    if (serve != job::Serve::kNone) {
      absl::StrAppend(&candidates, "\nwith --serve ", job::ServeName(serve), ":");
    }
    for (const Candidate& c : CandidatesFor(serve)) {
      absl::StrAppend(&candidates, "\n  ",
                      absl::StrFormat("%-64s ~%.2f b", c.flags, c.expected_bits));
    }
  }
  CLI::App* cmd = app.add_subcommand(
      "sweep",
      absl::StrCat(
          "Compression law as a planning tool: compress at each bit budget (embedded, as "
          "`compress`), evaluate (as `eval`), fit loss = L0 + b*(r-1) + c*(r-1)^2 with r = "
          "16/bits, write sweep.json and sweep.svg into --out. Per budget the largest of these "
          "settings that measures at or under it (bits measured on stories260K):",
          candidates));
  const job::JobSpec d;
  cmd->add_option("--model", f->model, "Input model directory URI")->required();
  cmd->add_option("--calibration", f->calibration, "Calibration tokens URI")->required();
  cmd->add_option("--eval", f->eval, "Evaluation tokens URI (int32 input_ids)")->required();
  cmd->add_option("--budgets", f->budgets, "bits per parameter, comma separated (e.g. 2,2.5,3,4)")
      ->delimiter(',')
      ->required();
  cmd->add_option("--out", f->out,
                  "Output directory URI: sweep.json, sweep.svg, runs/<setting>/ (default sweep)");
  cmd->add_option("--target-loss", f->target_loss,
                  "print the smallest budget predicted to reach this loss and its settings");
  cmd->add_option("--iters", f->iters,
                  absl::StrCat("outer CALDERA iterations (default ", d.iters, ")"));
  cmd->add_option("--lplr-iters", f->lplr_iters,
                  absl::StrCat("inner L/R refinements (default ", d.lplr_iters, ")"));
  cmd->add_option("--lr-bits", f->lr_bits,
                  absl::StrCat("bits of L and R (default ", d.lr_bits, ")"));
  cmd->add_option("--incoherence", f->incoherence, "auto | rht | none (default auto)");
  cmd->add_option("--serve", f->serve,
                  "none | vllm | llamacpp: sweep only settings vLLM's int kernels run (int4/int8 "
                  "Q, 16-bit L·R; export --format compressed-tensors writes them) or GGUF's "
                  "Q4_0/Q8_0 hold (export --format gguf; default none)")
      ->check(CLI::IsMember({"none", "vllm", "llamacpp"}));
  cmd->add_option("--seed", f->seed, absl::StrCat("Hadamard seed (default ", d.seed, ")"));
  cmd->add_option("--calibration-mode", f->calibration_mode,
                  absl::StrCat("original | sequential (default ", d.calibration_mode, ")"));
  cmd->add_option("--calibration-shards", f->calibration_shards, "calibrate shards (default 1)")
      ->check(CLI::Range(1, job::kMaxCalibrationShards));
  cmd->add_option("--modules", f->modules, "linears to compress, comma separated (default all)")
      ->delimiter(',');
  cmd->add_option("--share-heads", f->share_heads,
                  "DirectShare fraction in [0, 1] for every job (default 0 = off); settings are "
                  "still chosen by their unshared bits, the points carry the measured ones");
  cmd->add_option("--workers", f->workers, "in-process workers (default 2)");
  cmd->add_option("--threads", f->threads, "BLAS threads per worker (default cores / workers)");
  cmd->add_option("--eval-batch", f->eval_batch, "sequences per eval forward batch (default 1)");
  cmd->add_flag("--submit", f->submit,
                "submit the compress jobs to the coordinator at --server (with --token-file, "
                "--tls-ca, ...) instead of an in-process cluster; --out must then be a URI both "
                "the workers and this machine reach (e.g. s3://)");
  AddConnectionFlags(cmd, &f->conn);
  cmd->callback([f, exit_code] { *exit_code = RunSweep(*f); });
}

}  // namespace caldera::cli
