#include "job/memory_estimate.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_format.h"

namespace caldera::job {

int64_t EstimateCalibrateBytes(const model::ModelConfig& c, int64_t shard_samples,
                               int64_t seq_len) {
  const int64_t h = c.hidden_size, a = c.num_heads * c.head_dim, k = c.num_kv_heads * c.head_dim,
                i = c.intermediate_size, L = seq_len, T = shard_samples * seq_len;
  const int64_t w = 4 * (2 * h * a + 2 * h * k + 3 * h * i);
  const int64_t s = 8 * (2 * h * h + a * a + i * i);
  const int64_t x = 4 * T * h;
  const int64_t act = 4 * L * (6 * h + 3 * i + 2 * a + 2 * k) + 4 * c.num_heads * L * L;
  return kTaskBaseBytes + 2 * w + 3 * s + 3 * x + act;
}

int64_t EstimateDecomposeBytes(const model::ModelConfig& config, absl::string_view module) {
  const std::vector<int64_t> dims = model::LinearShape(config, module);
  if (dims.size() != 2) return kTaskBaseBytes;
  const int64_t m = dims[0], n = dims[1];
  return kTaskBaseBytes + 4 * m * n + 4 * 8 * n * n + 6 * 8 * m * n;
}

int64_t EstimateFinalizeBytes(const model::ModelConfig& c) {
  return kTaskBaseBytes + 3 * 4 * c.vocab_size * c.hidden_size;
}

int64_t LargestShardSamples(int64_t samples, int num_shards) {
  if (num_shards < 1) num_shards = 1;
  return (samples + num_shards - 1) / num_shards;
}

int MinShardsToFit(const model::ModelConfig& config, int64_t samples, int64_t seq_len,
                   int64_t limit_bytes, int max_shards) {
  const int64_t most = std::min<int64_t>(samples, max_shards);
  for (int n = 1; n <= most; ++n) {
    if (EstimateCalibrateBytes(config, LargestShardSamples(samples, n), seq_len) <= limit_bytes) {
      return n;
    }
  }
  return 0;
}

std::string FormatBytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= double(int64_t{1} << 30)) return absl::StrFormat("%.2f GiB", b / (int64_t{1} << 30));
  return absl::StrFormat("%.1f MiB", b / (int64_t{1} << 20));
}

}  // namespace caldera::job
