// The memory a task needs, estimated from the model's shapes, the tokens of
// its calibration shard and the dtypes the executors use, so that the
// coordinator leases a task only to a worker that can hold it and refuses at
// submit a job whose tasks exceed --max-task-memory. One formula per task
// kind, in bytes (h = hidden_size, a = num_heads·head_dim, k = num_kv_heads·
// head_dim, i = intermediate_size, L = seq_len, T = samples of the shard · L,
// H = num_heads, V = vocab_size, B = kTaskBaseBytes):
//
//   calibrate  B + 2·W + 3·S + 3·X + A, where
//              W = 4·(2·h·a + 2·h·k + 3·h·i)   the block's linears in float32
//              S = 8·(2·h² + a² + i²)          the four float64 Hessians
//                  (accumulators, normalised copies, serialised bytes)
//              X = 4·T·h                       the shard's hidden states in float32
//                  (held, serialised for the next layer, and the input read)
//              A = 4·L·(6·h + 3·i + 2·a + 2·k) + 4·H·L²
//                  one sequence's activations and attention scores
//   decompose  B + 4·m·n + 4·8·n² + 6·8·m·n   for an [m, n] weight: the float32
//              weight, four n×n float64 Hessian-sized work matrices, six
//              m×n float64 ones (W, Q, L·R, residual, reconstruction, record)
//   finalize   B + 3·4·V·h                   the largest tensor (the embedding)
//              read, converted and written
//
// An estimate, not a bound: it follows the executors as they are written
// (the whole shard's hidden states in memory); measured peaks are in the
// README's sizing section.
#ifndef CALDERA_JOB_MEMORY_ESTIMATE_H_
#define CALDERA_JOB_MEMORY_ESTIMATE_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "core/model/model_config.h"

namespace caldera::job {

// Process overhead of any task (code, allocator, I/O buffers).
inline constexpr int64_t kTaskBaseBytes = int64_t{64} << 20;

// calibrate(l, s) over `shard_samples` sequences of `seq_len` tokens.
int64_t EstimateCalibrateBytes(const model::ModelConfig& config, int64_t shard_samples,
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
                   int64_t limit_bytes, int max_shards);

// "1.50 GiB" / "12.0 MiB" for messages.
std::string FormatBytes(int64_t bytes);

}  // namespace caldera::job

#endif  // CALDERA_JOB_MEMORY_ESTIMATE_H_
