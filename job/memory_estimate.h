// The memory a task needs, estimated from the model's shapes, the tokens of
// its calibration shard and the dtypes the pipeline steps use, so that the
// coordinator leases a task only to a worker that can hold it and refuses at
// submit a job whose tasks exceed --max-task-memory. One formula per task
// kind, in bytes (h = hidden_size, a = num_heads·head_dim, k = num_kv_heads·
// head_dim, i = intermediate_size, n* = max(h, a, i), L = seq_len, V =
// vocab_size, B = kTaskBaseBytes):
//
//   calibrate  the larger of its two phases (pipeline/calibrate_step.h):
//     forward  B + W + P + S + 2·C + A + F   while the chunks run
//     write    B + S + 8·n*²                 normalising and writing the Hessians
//              W = 4·(2·h·a + 2·h·k + 3·h·i)   the block's linears in float32
//              P = E, or max(E, W) with sequential calibration:
//                                              what the task holds besides its
//                                              block to make its input: layer
//                                              0 the embedding table in float32
//                                              (E = 4·V·h), a later layer in
//                                              sequential mode the previous
//                                              block's compressed weights
//                                              dequantised to float32 (W); the
//                                              estimate is the largest layer's
//              S = 8·(2·h² + a² + i²)          the four float64 Hessians
//              C = 4·c·L·h                     one chunk of states in float32,
//                                              c = CalibrateChunkSamples(): the
//                                              chunk and its encoding for the
//                                              next layer (or the bytes read)
//              A = 4·L·(6·h + 3·i + 2·a + 2·k) + 4·L²
//                                              one sequence's activations and
//                                              one head's attention scores
//              F = 4·n*·min(n*, kAccumulatePanel)
//                                              the float32 accumulation panel
//              8·n*²                           the largest Hessian, copied into
//                                              the file's tensor
//     The shard's token count enters only through c: past one chunk a task's
//     memory does not grow with its tokens, and sharding does not shrink it.
//     Measured (README, sizing): the forward phase holds less than this (a
//     Hessian's pages are touched as its lower triangle fills), so the write
//     phase is the measured peak and the estimate is 1.2-1.3x it.
//   A mixture of experts (e experts of width j): W = 4·(2·h·a + 2·h·k +
//     e·(3·h·j + h)), S = 8·(2·h² + a² + e·(h² + j²)), A = 4·L·(9·h + 3·j + e +
//     2·a + 2·k) + 4·L², n* = max(h, a, j), and the write phase's 8·n*² is
//     8·(h² + j²) + 16·max(h, j)² (the router input's and the experts' mean
//     down Hessians, and one expert's scaled copy beside its tensor).
//   decompose  B + 4·m·n + 4·8·n² + 6·8·m·n   for an [m, n] weight: the float32
//              weight, four n×n float64 Hessian-sized work matrices, six
//              m×n float64 ones (W, Q, L·R, residual, reconstruction, record)
//   finalize   B + 3·4·V·h                   the largest tensor (the embedding)
//              read, converted and written
//
// An estimate of the peak RSS, not a bound: it follows the pipeline steps as they
// are written; bench/scale_bench prints it beside the measured peak, and the
// README's sizing section has the figures.
#ifndef CALDERA_JOB_MEMORY_ESTIMATE_H_
#define CALDERA_JOB_MEMORY_ESTIMATE_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "core/model/model_config.h"

namespace caldera::job {

// Process overhead of any task (code, allocator, I/O buffers).
inline constexpr int64_t kTaskBaseBytes = int64_t{64} << 20;

// The bytes of hidden states a calibrate task reads, runs and writes at a
// time: whole sequences, at least one (pipeline/calibrate_step.h).
inline constexpr int64_t kCalibrateChunkBytes = int64_t{16} << 20;

// The sequences of `seq_len` tokens in one chunk of a calibrate task over
// `shard_samples` sequences: kCalibrateChunkBytes of float32 states, at least
// 1, at most the shard.
int64_t CalibrateChunkSamples(const model::ModelConfig& config, int64_t shard_samples,
                              int64_t seq_len);

// The largest calibrate(l, s) task of a job over `shard_samples` sequences
// of `seq_len` tokens per shard; `sequential`: the job's calibration mode is
// sequential (its later layers also hold the previous block).
int64_t EstimateCalibrateBytes(const model::ModelConfig& config, int64_t shard_samples,
                               int64_t seq_len, bool sequential);
// calibrate(layer, s) itself: P is E at layer 0, W at a later layer in
// sequential mode, nothing at a later layer in parallel mode.
int64_t EstimateCalibrateTaskBytes(const model::ModelConfig& config, int64_t shard_samples,
                                   int64_t seq_len, int64_t layer, bool sequential);

// Issue #20's target for a calibrate task's peak RSS: (the block's linears in
// float32 + its four float64 Hessians + one chunk of float32 states) × 1.5.
int64_t CalibrateTargetBytes(const model::ModelConfig& config, int64_t shard_samples,
                             int64_t seq_len);

// decompose(l, module) of the linear `module` ("q_proj"); 0-sized for an
// unknown module name.
int64_t EstimateDecomposeBytes(const model::ModelConfig& config, absl::string_view module);

int64_t EstimateFinalizeBytes(const model::ModelConfig& config);

// The largest shard of `samples` split into `num_shards` (ceil(samples / N)).
int64_t LargestShardSamples(int64_t samples, int num_shards);

// The fewest shards (1 ≤ N ≤ min(samples, max_shards)) whose calibrate tasks
// each fit in `limit_bytes`; 0 when none does (even one sample is too much).
int MinShardsToFit(const model::ModelConfig& config, int64_t samples, int64_t seq_len,
                   bool sequential, int64_t limit_bytes, int max_shards);

// "1.50 GiB" / "12.0 MiB" for messages.
std::string FormatBytes(int64_t bytes);

}  // namespace caldera::job

#endif  // CALDERA_JOB_MEMORY_ESTIMATE_H_
