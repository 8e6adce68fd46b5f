// JobSpec: the one type for the settings of a compression job. Its member
// initialisers are THE defaults of every setting: calderactl's job flags (and
// their help texts), the proto conversion (unset wire fields) and the
// decompose subcommand all read them from here. Validation names the
// calderactl flag of a bad setting and the fix.
#ifndef CALDERA_JOB_JOB_SPEC_H_
#define CALDERA_JOB_JOB_SPEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/decompose/caldera.h"
#include "core/quant/quantizer.h"
#include "core/tensor/dtype.h"
#include "core/ttlora/adapter.h"

namespace caldera::job {

// The default group size of the uniform quantizer (JobSpec::q_group_size).
inline constexpr int64_t kQuantizerGroupSize = 128;
// Bounds of JobSpec::q_group_size.
inline constexpr int64_t kMinQuantizerGroupSize = 8;
inline constexpr int64_t kMaxQuantizerGroupSize = 1 << 16;

// --incoherence: the two-sided randomized Hadamard transform before the
// decomposition: rht, none, or auto (rht for E8P, none for uniform).
enum class Incoherence { kAuto, kRht, kNone };
// "auto", "rht" or "none".
absl::string_view IncoherenceName(Incoherence incoherence);
// INVALID_ARGUMENT "--incoherence X is unknown; use auto, rht or none".
absl::StatusOr<Incoherence> ParseIncoherence(absl::string_view name);

// --calibration-mode (proto JobSpec.calibration_mode says what each means).
enum class CalibrationMode { kSequential, kOriginal };
// "sequential" or "original".
absl::string_view CalibrationModeName(CalibrationMode mode);
// INVALID_ARGUMENT "--calibration-mode X is unknown; use original or
// sequential" (X cut to 40 bytes).
absl::StatusOr<CalibrationMode> ParseCalibrationMode(absl::string_view name);

// --hidden-dtype: "f32" (DType::kF32) or "bf16" (DType::kBF16); other dtypes
// are not hidden-state formats (ValidateJobSpec refuses them).
absl::string_view HiddenDTypeName(DType dtype);
// INVALID_ARGUMENT "--hidden-dtype X is unknown; use f32 or bf16".
absl::StatusOr<DType> ParseHiddenDType(absl::string_view name);

// --serve: what the output must be servable by. kVllm restricts every setting
// (and the --target-bits ladder) to what `calderactl export --format
// compressed-tensors` writes and vLLM's int kernels run: Q on the int grid
// (4 or 8 bits, a group of 32/64/128 columns or one per row), no Hadamard
// transform, L·R as a 16-bit LoRA adapter of rank <= kMaxServeLoraRank, no
// TT-LoRA, no head sharing (docs/format/compressed-tensors.md).
// kLlamacpp restricts them to what `calderactl export --format gguf` writes in
// llama.cpp's exact block types: Q on the int grid at 4 or 8 bits in groups of
// 32 (Q4_0, Q8_0) or on Q4_K's grid (--quantizer q4k), no L·R (method ldlq or rtn), no Hadamard, no TT-LoRA, no
// head sharing, and every linear's columns a multiple of 32
// (docs/format/gguf.md).
enum class Serve { kNone, kVllm, kLlamacpp };
// "none", "vllm" or "llamacpp".
absl::string_view ServeName(Serve serve);
// INVALID_ARGUMENT "--serve X is unknown; use none, vllm or llamacpp".
absl::StatusOr<Serve> ParseServe(absl::string_view name);
// The largest LoRA rank vLLM's --max-lora-rank accepts.
inline constexpr int64_t kMaxServeLoraRank = 512;
// The group sizes vLLM's compressed-tensors WNA16 kernels take (besides one
// group per row).
inline constexpr int64_t kServeGroupSizes[] = {32, 64, 128};

// JobSpec::rank 0: each matrix gets AutoRank(rows, cols).
inline constexpr int64_t kAutoRank = 0;
// The rank an m x n matrix gets by default: min(m, n) / 16, between 1 and 64.
// 64 is the CALDERA paper's rank for 4096-wide Llama matrices (L and R at
// 4 bits add 0.125 bits per weight there); a fixed 64 is most of a small
// matrix (the bundled model's 32 x 64 k_proj cannot take it at all), while a
// sixteenth of the thinner side keeps L·R's share of the bits about the same
// at every width (4 bits · rank · (m + n) / (m · n) <= 0.5 bits per weight).
int64_t AutoRank(int64_t rows, int64_t cols);
struct JobSpec;
// The rank `spec` decomposes an m x n matrix with: 0 unless the method is
// caldera, else spec.rank, or AutoRank when it is kAutoRank.
int64_t RankFor(const JobSpec& spec, int64_t rows, int64_t cols);

struct JobSpec {
  std::string model;        // --model: Hugging Face directory URI (path, file://, s3://)
  std::string calibration;  // --calibration: safetensors URI, int32 input_ids [samples, seq_len]
  std::string out;          // --out: output checkpoint directory URI
  decompose::Method method = decompose::Method::kCaldera;  // caldera | ldlq | rtn
  // Rank of L and R (caldera only); kAutoRank = per matrix, AutoRank().
  int64_t rank = kAutoRank;
  int q_bits = 2;   // bits per weight of Q
  int lr_bits = 4;  // bits per weight of L and R (>= 16 keeps floats)
  quant::Quantizer quantizer = quant::Quantizer::kE8p;  // e8p | uniform
  // Columns per fp16 scale of the uniform quantizer (at most the row: 128 is
  // one scale per row of a 64- or 128-wide matrix). 32 is GPTQ's "g32".
  int64_t q_group_size = kQuantizerGroupSize;
  // auto | rht | none: the two-sided randomized Hadamard transform before
  // the decomposition. auto = rht for E8P (the lattice needs incoherent
  // weights) and none for uniform, where it hurt on stories260K: LDLQ 3-bit
  // perplexity 9.95 with it, 5.68 without; CALDERA rank 4 3-bit 4.95 / 4.78.
  Incoherence incoherence = Incoherence::kAuto;
  int iters = 15;                                          // outer CALDERA iterations
  int lplr_iters = 10;                                     // inner L/R refinements
  uint64_t seed = 42;                                      // seed of the random Hadamard signs
  int64_t ttlora_rank = 0;                                 // 0 = no adapter
  ttlora::InitMode ttlora_init = ttlora::InitMode::kZero;  // zero | residual
  double ttlora_alpha = 16.0;        // adapter scale α (ΔW = α/r · TT product)
  std::vector<std::string> modules;  // empty = all seven linears of every block
  // sequential | original (proto JobSpec.calibration_mode says what each
  // means). Sequential measured better on stories260K in 7 of 8 settings
  // (uniform 3-bit perplexity 10.53 -> 9.98, caldera rank 8 7.05 -> 6.82);
  // original keeps every layer's decompositions free to run at once.
  CalibrationMode calibration_mode = CalibrationMode::kSequential;
  // Calibration shards per layer (proto JobSpec.calibration_shards): the
  // samples split into this many contiguous ranges, one calibrate task each.
  // 1 = the unsharded plan; at most kMaxCalibrationShards and the number of
  // calibration samples (checked at submit, job_validation.h).
  int calibration_shards = 1;
  // --share-heads: the fraction in [0, 1] of attention KV groups that reuse
  // the weights of a similar group of an earlier layer (DirectShare,
  // core/model/head_sharing.h), chosen before calibration; 0 = off.
  double share_heads = 0;
  // f32 | bf16: how calibrate tasks store the hidden states between layers
  // (proto JobSpec.hidden_dtype). bf16 halves the scratch bytes and I/O.
  DType hidden_dtype = DType::kF32;
  std::string request_id;  // idempotency key of the create request
  // --overwrite: write into an output location that holds files not written
  // by caldera (job/output_safety.h). An output overlapping an input is
  // refused even so.
  bool overwrite = false;
  // --target-bits B (proto JobSpec.target_bits): 0 = off. Otherwise each
  // matrix is decomposed with a window of candidates around B
  // (job/bit_budget.h) and each block gets the choice with the lowest total
  // Hessian-weighted error whose stored bits average within B
  // (job/bit_allocation.h); method, quantizer, q_bits, rank and q_group_size above
  // are then ignored, lr_bits, iters, lplr_iters, seed and incoherence apply.
  double target_bits = 0;
  // --serve (proto JobSpec.serve): none | vllm, see Serve.
  Serve serve = Serve::kNone;
  // Recovery fine-tuning (proto JobSpec.finetune_steps/_lr/_holdout): Adam
  // steps per block (0 = off: no finetune tasks are planned), the learning
  // rate relative to each tensor's RMS, the share of calibration sequences
  // held out. Bounds: kMaxFinetuneSteps, (0, 1], (0, kMaxFinetuneHoldout].
  int finetune_steps = 0;
  double finetune_lr = 1e-2;
  double finetune_holdout = 0.125;
};

inline constexpr int kMaxFinetuneSteps = 100000;
inline constexpr double kMaxFinetuneHoldout = 0.5;

// The settings that are names where they are parsed (calderactl's flags, the
// proto's strings): empty = not given, the JobSpec default stays.
struct SettingNames {
  std::string method, quantizer, incoherence, ttlora_init, calibration_mode, hidden_dtype, serve;
};

// Sets `spec`'s method, quantizer, incoherence, ttlora_init, calibration_mode,
// hidden_dtype and serve from the non-empty names, in that order (ValidateJobSpec's
// order); the first unknown name is the INVALID_ARGUMENT of its parser (the
// flag named, the valid names listed) and leaves `spec` partly set.
absl::Status ApplySettingNames(const SettingNames& names, JobSpec* spec);

// The largest TT-LoRA adapter scale α a job accepts.
inline constexpr double kMaxTtloraAlpha = 1e6;

// The most calibration shards a job may ask for.
inline constexpr int kMaxCalibrationShards = 256;

// The calibration samples [begin, end) of shard `shard` of `num_shards` over `samples`
// sequences: contiguous, begin = floor(shard * samples / num_shards), so the
// shards cover every sample once, in order, and differ in size by at most one.
struct SampleRange {
  int64_t begin = 0;
  int64_t end = 0;
};
SampleRange ShardSamples(int64_t samples, int shard, int num_shards);

// The longest model, calibration or output URI a job accepts.
inline constexpr size_t kMaxUriBytes = 4096;

// Upper bounds of the settings that drive work (docs/cli.md#limits). Outer
// CALDERA iterations: the best iterate is kept and the weighted error settles
// within ~20 (the default is 15), so 100 is already 5x past any gain; inner
// L/R refinements likewise (default 10). Ranks (--rank, --ttlora-rank): a
// rank above min(m, n) of a matrix means nothing (ValidateJob checks that
// against the model); without the model, no supported matrix has
// min(m, n) above 16,384, so 65,536 bounds every meaningful rank.
inline constexpr int kMaxIters = 100;
inline constexpr int kMaxLplrIters = 100;
inline constexpr int64_t kMaxRank = int64_t{1} << 16;

// Checks the three locations alone: --model, --calibration and --out given,
// each at most kMaxUriBytes long and without control characters.
absl::Status ValidateLocations(const JobSpec& spec);

// Checks the settings that do not need the model: ValidateLocations, then
// methods, bits, counts, iterations up to kMaxIters / kMaxLplrIters, ranks up
// to kMaxRank, module names, each at most once. INVALID_ARGUMENT names the
// flag and the fix; quoted values are cut to ~200 bytes.
absl::Status ValidateJobSpec(const JobSpec& spec);

// The part of ValidateJobSpec about the decomposition alone (method,
// quantizer, rank, bits, group size, incoherence, iterations), for tools
// that decompose one matrix without a job.
absl::Status ValidateDecompositionSettings(const JobSpec& spec);

// True when `module` ("q_proj") is compressed by `spec`.
bool CompressesModule(const JobSpec& spec, absl::string_view module);

// The core decomposition options for `spec` (rank 0 unless method is
// caldera, kAutoRank when the rank is per matrix: set it with RankFor before
// decomposing; an E8P Q without L·R gets per-row scales; the Hadamard transform
// as `incoherence` resolves; LDLQ in act order, which only a uniform Q uses).
decompose::DecomposeOptions DecomposeOptionsFor(const JobSpec& spec);

// Whether `spec` runs the randomized Hadamard transform (resolves "auto").
bool UsesHadamard(const JobSpec& spec);

// With --serve vllm / llamacpp: INVALID_ARGUMENT naming the first setting the
// engine cannot run and the flag that avoids it; OK otherwise (and for --serve
// none).
absl::Status ValidateServe(const JobSpec& spec);

// The fine-tuning settings: steps in [0, kMaxFinetuneSteps], lr in (0, 1],
// holdout in (0, kMaxFinetuneHoldout]; INVALID_ARGUMENT naming the flag.
absl::Status ValidateFinetuneSettings(const JobSpec& spec);

// With --serve vllm: INVALID_ARGUMENT when a `rows` x `cols` linear cannot be
// written in compressed-tensors' pack-quantized form with `spec`'s group size
// (a group that does not divide the row); with --serve llamacpp when its
// columns are not a multiple of 32 (GGUF's blocks), also under
// --target-bits; names `module`. Used at submit for every selected linear.
absl::Status ValidateServeShape(const JobSpec& spec, absl::string_view module, int64_t rows,
                                int64_t cols);

}  // namespace caldera::job

#endif  // CALDERA_JOB_JOB_SPEC_H_
