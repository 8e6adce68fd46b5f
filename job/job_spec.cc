#include "job/job_spec.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/model/head_sharing.h"
#include "core/model/model_config.h"
#include "core/quant/quantizer.h"
#include "core/util/bounded_quote.h"
#include "job/bit_budget.h"

namespace caldera::job {

absl::string_view IncoherenceName(Incoherence incoherence) {
  switch (incoherence) {
    case Incoherence::kAuto:
      return "auto";
    case Incoherence::kRht:
      return "rht";
    case Incoherence::kNone:
      return "none";
  }
  return "unknown";
}

absl::StatusOr<Incoherence> ParseIncoherence(absl::string_view name) {
  for (Incoherence i : {Incoherence::kAuto, Incoherence::kRht, Incoherence::kNone}) {
    if (name == IncoherenceName(i)) return i;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--incoherence ", BoundedQuote(name), " is unknown; use auto, rht or none"));
}

absl::string_view CalibrationModeName(CalibrationMode mode) {
  switch (mode) {
    case CalibrationMode::kSequential:
      return "sequential";
    case CalibrationMode::kOriginal:
      return "original";
  }
  return "unknown";
}

absl::StatusOr<CalibrationMode> ParseCalibrationMode(absl::string_view name) {
  for (CalibrationMode m : {CalibrationMode::kSequential, CalibrationMode::kOriginal}) {
    if (name == CalibrationModeName(m)) return m;
  }
  return absl::InvalidArgumentError(absl::StrCat("--calibration-mode ", name.substr(0, 40),
                                                 " is unknown; use original or sequential"));
}

absl::string_view HiddenDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kBF16:
      return "bf16";
    default:
      return "unknown";
  }
}

absl::StatusOr<DType> ParseHiddenDType(absl::string_view name) {
  for (DType d : {DType::kF32, DType::kBF16}) {
    if (name == HiddenDTypeName(d)) return d;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--hidden-dtype ", BoundedQuote(name), " is unknown; use f32 or bf16"));
}

absl::string_view ServeName(Serve serve) {
  switch (serve) {
    case Serve::kVllm:
      return "vllm";
    case Serve::kLlamacpp:
      return "llamacpp";
    default:
      return "none";
  }
}

absl::StatusOr<Serve> ParseServe(absl::string_view name) {
  for (Serve v : {Serve::kNone, Serve::kVllm, Serve::kLlamacpp}) {
    if (name == ServeName(v)) return v;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--serve ", BoundedQuote(name), " is unknown; use none, vllm or llamacpp"));
}

namespace {

// Sets `*out` to the parse of `name` unless it is empty.
template <typename T, typename Parse>
absl::Status ParseUnlessEmpty(const std::string& name, Parse parse, T* out) {
  if (name.empty()) return absl::OkStatus();
  absl::StatusOr<T> v = parse(name);
  if (!v.ok()) return v.status();
  *out = *v;
  return absl::OkStatus();
}

// A NUL cuts a path short; a newline makes a directory name that breaks every
// line-based tool and log. Says which byte and where.
absl::Status CheckNoControlCharacters(absl::string_view uri, absl::string_view flag) {
  for (size_t i = 0; i < uri.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(uri[i]);
    if (c < 0x20 || c == 0x7F) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " holds a control character (byte 0x", absl::Hex(c, absl::kZeroPad2),
                       " at offset ", i, "); use a location of printable characters"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplySettingNames(const SettingNames& n, JobSpec* s) {
  for (absl::Status st : {
           ParseUnlessEmpty(n.method, decompose::ParseMethod, &s->method),
           ParseUnlessEmpty(n.quantizer, quant::ParseQuantizer, &s->quantizer),
           ParseUnlessEmpty(n.incoherence, ParseIncoherence, &s->incoherence),
           ParseUnlessEmpty(n.ttlora_init, ttlora::ParseInitMode, &s->ttlora_init),
           ParseUnlessEmpty(n.calibration_mode, ParseCalibrationMode, &s->calibration_mode),
           ParseUnlessEmpty(n.hidden_dtype, ParseHiddenDType, &s->hidden_dtype),
           ParseUnlessEmpty(n.serve, ParseServe, &s->serve),
       }) {
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status ValidateLocations(const JobSpec& spec) {
  if (spec.model.empty()) return absl::InvalidArgumentError("--model is required (a model URI)");
  if (spec.calibration.empty()) {
    return absl::InvalidArgumentError("--calibration is required (a token file URI)");
  }
  if (spec.out.empty()) return absl::InvalidArgumentError("--out is required (an output URI)");
  for (const auto& [flag, uri] :
       {std::pair{"--model", &spec.model}, std::pair{"--calibration", &spec.calibration},
        std::pair{"--out", &spec.out}}) {
    if (uri->size() > kMaxUriBytes) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " is ", uri->size(),
                                                     " bytes long, above the limit of ",
                                                     kMaxUriBytes, " bytes for a URI"));
    }
    if (absl::Status s = CheckNoControlCharacters(*uri, flag); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ValidateJobSpec(const JobSpec& spec) {
  if (absl::Status s = ValidateLocations(spec); !s.ok()) return s;
  if (absl::Status s = ValidateDecompositionSettings(spec); !s.ok()) return s;
  if (absl::Status s = ValidateTargetBits(spec.target_bits); !s.ok()) return s;
  if (absl::Status s = ValidateServe(spec); !s.ok()) return s;
  if (absl::Status s = ValidateFinetuneSettings(spec); !s.ok()) return s;
  if (absl::Status s = model::ValidateShareRatio(spec.share_heads, "--share-heads"); !s.ok()) {
    return s;
  }
  if (spec.share_heads > 0 && spec.ttlora_rank > 0) {
    return absl::InvalidArgumentError(
        "--share-heads and --ttlora-rank cannot be combined yet (an adapter of a module with "
        "aliased heads has no defined shape); drop one of them");
  }
  if (spec.ttlora_rank < 0 || spec.ttlora_rank > kMaxRank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--ttlora-rank ", spec.ttlora_rank, " is outside [0, ", kMaxRank,
        "] (0 = no adapter; a rank above a matrix's min(m, n) means nothing; 8 to 64 is usual)"));
  }
  if (spec.calibration_shards < 1 || spec.calibration_shards > kMaxCalibrationShards) {
    return absl::InvalidArgumentError(
        absl::StrCat("--calibration-shards ", spec.calibration_shards, " must be in [1, ",
                     kMaxCalibrationShards, "] (and at most the number of calibration samples)"));
  }
  if (spec.hidden_dtype != DType::kF32 && spec.hidden_dtype != DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("--hidden-dtype ", DTypeName(spec.hidden_dtype),
                                                   " is not supported; use f32 or bf16"));
  }
  std::vector<std::string> known;
  for (const model::LinearModule& m : model::kLinearModules) known.push_back(m.name);
  for (size_t i = 0; i < spec.modules.size(); ++i) {
    const std::string& m = spec.modules[i];
    if (std::find(known.begin(), known.end(), m) == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat("--modules: '", BoundedQuote(m),
                                                     "' is not a linear module; use ",
                                                     absl::StrJoin(known, ",")));
    }
    if (std::find(spec.modules.begin(), spec.modules.begin() + i, m) != spec.modules.begin() + i) {
      return absl::InvalidArgumentError(
          absl::StrCat("--modules names ", m, " twice; name each module at most once"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateDecompositionSettings(const JobSpec& spec) {
  if (!(spec.ttlora_alpha > 0 && spec.ttlora_alpha <= kMaxTtloraAlpha)) {
    return absl::InvalidArgumentError(absl::StrCat("--ttlora-alpha ", spec.ttlora_alpha,
                                                   " is outside (0, ", kMaxTtloraAlpha,
                                                   "]; the usual value is 16"));
  }
  if (spec.rank < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--rank ", spec.rank, " is negative; use a rank >= 1, or 0 for min(m, n) / 16 per matrix"));
  }
  if (spec.rank > kMaxRank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--rank ", spec.rank, " is above ", kMaxRank,
        " (a rank above a matrix's min(m, n) means nothing; the default 0 picks one per matrix)"));
  }
  if (spec.q_group_size < kMinQuantizerGroupSize || spec.q_group_size > kMaxQuantizerGroupSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("--q-group-size ", spec.q_group_size, " is out of range; use ",
                     kMinQuantizerGroupSize, " to ", kMaxQuantizerGroupSize, " (e.g. 32 or 128)"));
  }
  for (auto [flag, bits] :
       {std::pair{"--q-bits", spec.q_bits}, std::pair{"--lr-bits", spec.lr_bits}}) {
    quant::QuantizerSpec q = quant::SpecFor(spec.quantizer, bits, spec.q_group_size);
    if (absl::Status s = quant::ValidateSpec(q); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", bits, " is not supported by --quantizer ",
                       quant::QuantizerName(spec.quantizer), ": ", s.message()));
    }
  }
  if (spec.iters < 1 || spec.iters > kMaxIters) {
    return absl::InvalidArgumentError(
        absl::StrCat("--iters ", spec.iters, " is outside [1, ", kMaxIters,
                     "] (the error settles within ~20 outer iterations; 15 is the default)"));
  }
  if (spec.lplr_iters < 0 || spec.lplr_iters > kMaxLplrIters) {
    return absl::InvalidArgumentError(absl::StrCat("--lplr-iters ", spec.lplr_iters,
                                                   " is outside [0, ", kMaxLplrIters,
                                                   "] (10 is the default)"));
  }
  return absl::OkStatus();
}

SampleRange ShardSamples(int64_t samples, int shard, int num_shards) {
  if (num_shards < 1) num_shards = 1;
  return SampleRange{shard * samples / num_shards, (shard + 1) * samples / num_shards};
}

bool CompressesModule(const JobSpec& spec, absl::string_view module) {
  // An expert's matrix ("experts.3.gate_proj") is selected by its kind.
  const std::string kind = model::LinearKind(module);
  const absl::string_view name = kind.empty() ? module : absl::string_view(kind);
  return spec.modules.empty() ||
         std::find(spec.modules.begin(), spec.modules.end(), name) != spec.modules.end();
}

bool UsesHadamard(const JobSpec& spec) {
  if (spec.incoherence == Incoherence::kAuto) return spec.quantizer == quant::Quantizer::kE8p;
  return spec.incoherence != Incoherence::kNone;
}

namespace {

// --serve llamacpp (job_spec.h Serve): what GGUF's Q4_0 / Q8_0 hold exactly.
absl::Status ValidateLlamacpp(const JobSpec& spec) {
  auto refuse = [](absl::string_view what, absl::string_view fix) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--serve llamacpp: ", what, " has no exact GGUF block type (Q4_0, Q8_0); ", fix));
  };
  if (spec.share_heads > 0) return refuse("head sharing (--share-heads)", "drop --share-heads");
  if (spec.ttlora_rank > 0) {
    return refuse("a TT-LoRA adapter (--ttlora-rank)", "drop --ttlora-rank");
  }
  if (spec.incoherence == Incoherence::kRht) {
    return refuse("the Hadamard transform (--incoherence rht)", "use --incoherence none");
  }
  if (spec.target_bits > 0) return absl::OkStatus();  // the ladder (bit_budget.h) picks the rest
  if (spec.method == decompose::Method::kCaldera) {
    return refuse("L·R (--method caldera)",
                  "use --method ldlq (or compress without --serve, --quantizer int "
                  "--q-group-size 32 --incoherence none: export --format gguf then writes L·R as "
                  "a GGUF LoRA adapter)");
  }
  if (spec.quantizer == quant::Quantizer::kQ4k) return absl::OkStatus();  // Q4_K (4 bits)
  if (spec.quantizer != quant::Quantizer::kInt) {
    return refuse(
        absl::StrCat("Q on the ", quant::QuantizerName(spec.quantizer), " grid (--quantizer)"),
        "use --quantizer int (Q4_0, Q8_0) or q4k (Q4_K)");
  }
  if (spec.q_bits != 4 && spec.q_bits != 8) {
    return refuse(absl::StrCat("Q in ", spec.q_bits, " bits (--q-bits)"),
                  "use --q-bits 4 (Q4_0) or 8 (Q8_0)");
  }
  if (spec.q_group_size != 32) {
    return refuse(absl::StrCat("a group of ", spec.q_group_size, " columns (--q-group-size)"),
                  "use --q-group-size 32");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateFinetuneSettings(const JobSpec& spec) {
  if (spec.finetune_steps < 0 || spec.finetune_steps > kMaxFinetuneSteps) {
    return absl::InvalidArgumentError(absl::StrCat("--finetune-steps ", spec.finetune_steps,
                                                   " is outside [0, ", kMaxFinetuneSteps,
                                                   "] (0 = no fine-tuning; 200 to 1000 is usual)"));
  }
  if (!(spec.finetune_lr > 0 && spec.finetune_lr <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--finetune-lr ", spec.finetune_lr,
        " is outside (0, 1] (it is relative to each tensor's RMS; 0.01 is the default)"));
  }
  if (!(spec.finetune_holdout > 0 && spec.finetune_holdout <= kMaxFinetuneHoldout)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--finetune-holdout ", spec.finetune_holdout, " is outside (0, ", kMaxFinetuneHoldout,
        "] (the share of calibration sequences held out; 0.125 is the default)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateServe(const JobSpec& spec) {
  if (spec.serve == Serve::kNone) return absl::OkStatus();
  if (spec.serve == Serve::kLlamacpp) return ValidateLlamacpp(spec);
  auto refuse = [](absl::string_view what, absl::string_view fix) {
    return absl::InvalidArgumentError(
        absl::StrCat("--serve vllm: ", what, " cannot be served by vLLM's int kernels; ", fix));
  };
  if (spec.share_heads > 0) {
    return refuse("head sharing (--share-heads)", "drop --share-heads");
  }
  if (spec.ttlora_rank > 0) {
    return refuse("a TT-LoRA adapter (--ttlora-rank)", "drop --ttlora-rank");
  }
  if (spec.incoherence == Incoherence::kRht) {
    return refuse("the Hadamard transform (--incoherence rht)", "use --incoherence none");
  }
  if (spec.target_bits > 0) {
    // The ladder picks method, quantizer, bits, group and rank (bit_budget.h).
    if (spec.lr_bits != 16) {
      return refuse(absl::StrCat("L·R in ", spec.lr_bits, " bits (--lr-bits)"),
                    "use --lr-bits 16 (the LoRA adapter is stored in 16 bits)");
    }
    return absl::OkStatus();
  }
  if (spec.quantizer != quant::Quantizer::kInt) {  // vLLM's WNA16 kernels: int grids only
    return refuse(
        absl::StrCat("Q on the ", quant::QuantizerName(spec.quantizer), " grid (--quantizer)"),
        "use --quantizer int (4 or 8 bits)");
  }
  if (spec.q_bits != 4 && spec.q_bits != 8) {
    return refuse(absl::StrCat("Q in ", spec.q_bits, " bits (--q-bits)"), "use --q-bits 4 or 8");
  }
  if (spec.method == decompose::Method::kCaldera) {
    if (spec.lr_bits != 16) {
      return refuse(absl::StrCat("L·R in ", spec.lr_bits, " bits (--lr-bits)"),
                    "use --lr-bits 16 (the LoRA adapter is stored in 16 bits)");
    }
    if (spec.rank > kMaxServeLoraRank) {
      return refuse(absl::StrCat("a LoRA rank of ", spec.rank, " (--rank)"),
                    absl::StrCat("use --rank ", kMaxServeLoraRank, " or less"));
    }
  }
  const int64_t g = spec.q_group_size;
  if (std::find(std::begin(kServeGroupSizes), std::end(kServeGroupSizes), g) ==
          std::end(kServeGroupSizes) &&
      g < kMaxQuantizerGroupSize) {
    return refuse(absl::StrCat("a group of ", g, " columns (--q-group-size)"),
                  absl::StrCat("use --q-group-size 32, 64 or 128, or ", kMaxQuantizerGroupSize,
                               " for one scale per row"));
  }
  return absl::OkStatus();
}

absl::Status ValidateServeShape(const JobSpec& spec, absl::string_view module, int64_t rows,
                                int64_t cols) {
  (void)rows;
  if (spec.serve == Serve::kLlamacpp && spec.quantizer == quant::Quantizer::kQ4k &&
      spec.target_bits <= 0 && cols % 256 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--serve llamacpp: ", module, " has ", cols,
        " input columns, not a multiple of 256, which Q4_K (--quantizer q4k) cannot hold; use "
        "--quantizer int (Q4_0, 32-column blocks), or leave it out with --modules"));
  }
  if (spec.serve == Serve::kLlamacpp && cols % 32 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--serve llamacpp: ", module, " has ", cols,
        " input columns, not a multiple of 32, which no GGUF block type holds; leave it out with "
        "--modules (it stays dense), or compress without --serve and export with "
        "--dense-fallback"));
  }
  if (spec.serve != Serve::kVllm || spec.target_bits > 0) return absl::OkStatus();
  if (spec.q_group_size < cols && cols % spec.q_group_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--serve vllm: ", module, " has ", cols,
                     " input columns, not a multiple of --q-group-size ", spec.q_group_size,
                     "; use a group size that divides it, or ", kMaxQuantizerGroupSize,
                     " for one scale per row (or --target-bits, which picks per matrix)"));
  }
  return absl::OkStatus();
}

int64_t AutoRank(int64_t rows, int64_t cols) {
  return std::clamp<int64_t>(std::min(rows, cols) / 16, 1, 64);
}

int64_t RankFor(const JobSpec& spec, int64_t rows, int64_t cols) {
  if (spec.method != decompose::Method::kCaldera) return 0;
  return spec.rank == kAutoRank ? AutoRank(rows, cols) : spec.rank;
}

decompose::DecomposeOptions DecomposeOptionsFor(const JobSpec& spec) {
  const int64_t group_size = spec.q_group_size;
  decompose::DecomposeOptions o;
  o.method = spec.method;
  o.rank = spec.method == decompose::Method::kCaldera ? spec.rank : 0;
  o.q_spec = quant::SpecFor(spec.quantizer, spec.q_bits, group_size);
  // Without L·R, an E8P Q gets one fp16 scale per row: rows of near-low-rank
  // matrices (q/k) differ in size, which one scale per matrix fits badly.
  // stories260K, LDLQ E8P 4-bit: perplexity 6.98 -> 4.17 (+16 bits per row:
  // 0.25 bits/param at its width 64, 0.004 at 4096); 3-bit 13.7 -> 7.5. With
  // L·R the low-rank part is L·R's and row scales bought nothing measurable.
  o.q_spec.row_scales = spec.method != decompose::Method::kCaldera &&
                        o.q_spec.kind == quant::QuantizerSpec::Kind::kLattice;
  o.lr_spec = quant::SpecFor(spec.quantizer, spec.lr_bits, group_size);
  o.iters = spec.iters;
  o.lplr_iters = spec.lplr_iters;
  o.seed = spec.seed;
  o.hadamard = UsesHadamard(spec);
  // GPTQ's act order for uniform Q (E8P's 8-column blocks ignore it).
  // stories260K, LDLQ uniform: 3-bit 5.68 -> 5.56, 4-bit 4.00 -> 3.99, 3-bit
  // g32 5.36 -> 5.28, CALDERA rank 4 3-bit 4.78 -> 4.71; 2-bit 26.8 -> 27.6.
  o.act_order = true;
  return o;
}

}  // namespace caldera::job
