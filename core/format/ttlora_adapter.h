// The stored layout of a TT-LoRA adapter (format `caldera.ttlora.v1`,
// docs/format/ttlora-adapter.md): the cores "<prefix>.ttlora.core.{k}" (F32
// [r_{k-1}, s_k, r_k], s = in_factors ++ out_factors) and the config JSON in
// the file's "ttlora_config" metadata. The TT math (initialisation, forward,
// materialisation) lives in core/ttlora.
#ifndef CALDERA_CORE_FORMAT_TTLORA_ADAPTER_H_
#define CALDERA_CORE_FORMAT_TTLORA_ADAPTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/format/safetensors.h"
#include "core/tensor/tensor.h"

namespace caldera::format {

inline constexpr char kTtloraFormat[] = "caldera.ttlora.v1";
inline constexpr char kTtloraConfigKey[] = "ttlora_config";  // safetensors metadata key

// "ttlora_config.<prefix>": the key under which a checkpoint shard, which
// holds several modules' adapters, stores the config of `prefix`'s adapter.
std::string TtloraConfigKeyOf(absl::string_view prefix);

struct TtloraAdapterConfig {
  std::vector<std::string> base_modules;
  std::vector<int64_t> in_factors;   // m_1..m_p, product d_in
  std::vector<int64_t> out_factors;  // n_1..n_q, product d_out
  std::vector<int64_t> ranks;        // p + q + 1 bond ranks, first and last 1
  double alpha = 1.0;
  std::string init;  // zero | residual
};

// The config JSON text (pretty-printed, keys in the documented order).
std::string SerializeTtloraConfig(const TtloraAdapterConfig& config);
// Checked parsing: format tag, keys and types, ranks.size() == factors + 1
// with both ends 1, every factor and rank >= 1. `where` names the file.
absl::StatusOr<TtloraAdapterConfig> ParseTtloraConfig(absl::string_view json,
                                                      absl::string_view where);

// "<prefix>.ttlora.core.<k>"
std::string TtloraCoreName(absl::string_view prefix, size_t k);

// An adapter as stored: its config and the cores in order.
struct TtloraAdapterFile {
  TtloraAdapterConfig config;
  std::vector<Tensor> cores;
};

// Adds the cores under `prefix` (consumes them) and sets the "ttlora_config"
// metadata. INVALID_ARGUMENT when a core's shape does not match the config.
absl::Status AddTtloraAdapter(absl::string_view prefix, TtloraAdapterFile adapter,
                              SafetensorsWriter* writer);

// Reads the adapter of `prefix` from a file written by AddTtloraAdapter (its
// config under "ttlora_config") or from a checkpoint shard (config under
// TtloraConfigKeyOf(prefix), looked up first); checks the config and every
// core's dtype and shape. NOT_FOUND when neither metadata entry exists.
absl::StatusOr<TtloraAdapterFile> ReadTtloraAdapter(const SafetensorsReader& reader,
                                                    absl::string_view prefix);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_TTLORA_ADAPTER_H_
