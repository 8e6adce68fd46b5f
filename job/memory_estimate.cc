#include "job/memory_estimate.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/model/llama_block.h"

namespace caldera::job {

namespace {

struct CalibrateTerms {
  int64_t weights = 0;      // W: the block's linears in float32
  int64_t hessians = 0;     // S: the four float64 Hessians
  int64_t embedding = 0;    // E: the embedding table in float32
  int64_t chunk = 0;        // C: one chunk of float32 states
  int64_t activations = 0;  // A: one sequence through the block
  int64_t panel = 0;        // F: the float32 accumulation panel
  int64_t largest = 0;      // 8·n*²: the largest Hessian, copied when written
};

CalibrateTerms Terms(const model::ModelConfig& c, int64_t shard_samples, int64_t seq_len) {
  const int64_t h = c.hidden_size, a = c.num_heads * c.head_dim, k = c.num_kv_heads * c.head_dim,
                i = c.intermediate_size, L = seq_len;
  const int64_t widest = std::max({h, a, i});
  CalibrateTerms t;
  t.weights = 4 * (2 * h * a + 2 * h * k + 3 * h * i);
  t.hessians = 8 * (2 * h * h + a * a + i * i);
  t.embedding = 4 * c.vocab_size * h;
  t.chunk = 4 * CalibrateChunkSamples(c, shard_samples, seq_len) * L * h;
  t.activations = 4 * L * (6 * h + 3 * i + 2 * a + 2 * k) + 4 * L * L;
  t.panel = 4 * widest * std::min<int64_t>(widest, model::kAccumulatePanel);
  t.largest = 8 * widest * widest;
  if (c.is_moe()) {
    // A mixture (e = experts, j = each expert's width): every expert's
    // weights and two Hessians, the router; an expert's gathered rows. In
    // double, saturated: a hostile config (1024 experts of 2^24 columns)
    // would overflow int64 and estimate a negative size.
    const double e = static_cast<double>(c.num_experts),
                 j = static_cast<double>(c.moe_intermediate_size), hd = static_cast<double>(h),
                 ad = static_cast<double>(a), kd = static_cast<double>(k),
                 Ld = static_cast<double>(L);
    const double n = std::max({hd, ad, j});
    auto bytes = [](double b) { return b >= 0x1p60 ? int64_t{1} << 60 : static_cast<int64_t>(b); };
    t.weights = bytes(4 * (2 * hd * ad + 2 * hd * kd + e * (3 * hd * j + hd)));
    t.hessians = bytes(8 * (2 * hd * hd + ad * ad + e * (hd * hd + j * j)));
    t.activations = bytes(4 * Ld * (9 * hd + 3 * j + e + 2 * ad + 2 * kd) + 4 * Ld * Ld);
    t.panel = bytes(4 * n * std::min(n, static_cast<double>(model::kAccumulatePanel)));
    // Written: the two means (router input, experts' down) and a matrix's
    // tensor beside its sum (model/hessians_file.cc normalises each sum in
    // place and frees it once copied), charged twice as the dense write is
    // charged its largest copy: measured 1.2x below (docs/sizing.md).
    const double m = std::max(hd, j);
    t.largest = bytes(8 * (hd * hd + j * j) + 2 * 8 * m * m);
  }
  return t;
}

}  // namespace

int64_t CalibrateChunkSamples(const model::ModelConfig& c, int64_t shard_samples, int64_t seq_len) {
  const int64_t sequence = std::max<int64_t>(1, 4 * seq_len * c.hidden_size);
  return std::max<int64_t>(1, std::min(shard_samples, kCalibrateChunkBytes / sequence));
}

namespace {

// The calibrate estimate with P = `input` (the memory_estimate.h formula).
int64_t CalibrateBytesWith(const CalibrateTerms& t, int64_t input) {
  const int64_t forward = t.weights + input + t.hessians + 2 * t.chunk + t.activations + t.panel;
  const int64_t write = t.hessians + t.largest;
  return kTaskBaseBytes + std::max(forward, write);
}

}  // namespace

int64_t EstimateCalibrateBytes(const model::ModelConfig& c, int64_t shard_samples, int64_t seq_len,
                               bool sequential) {
  const CalibrateTerms t = Terms(c, shard_samples, seq_len);
  // Layer 0 holds the embedding table; a later layer in sequential mode the
  // previous block, dequantised.
  const int64_t input =
      sequential && c.num_layers > 1 ? std::max(t.embedding, t.weights) : t.embedding;
  return CalibrateBytesWith(t, input);
}

int64_t EstimateCalibrateTaskBytes(const model::ModelConfig& c, int64_t shard_samples,
                                   int64_t seq_len, int64_t layer, bool sequential) {
  const CalibrateTerms t = Terms(c, shard_samples, seq_len);
  return CalibrateBytesWith(t, layer == 0 ? t.embedding : (sequential ? t.weights : 0));
}

int64_t CalibrateTargetBytes(const model::ModelConfig& c, int64_t shard_samples, int64_t seq_len) {
  const CalibrateTerms t = Terms(c, shard_samples, seq_len);
  return (t.weights + t.hessians + t.chunk) * 3 / 2;
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
                   bool sequential, int64_t limit_bytes, int max_shards) {
  const int64_t most = std::min<int64_t>(samples, max_shards);
  for (int n = 1; n <= most; ++n) {
    if (EstimateCalibrateBytes(config, LargestShardSamples(samples, n), seq_len, sequential) <=
        limit_bytes) {
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
