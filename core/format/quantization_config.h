// `quantization_config` in a CALDERA checkpoint's config.json
// (docs/format/checkpoint.md): the job's settings and a summary per
// compressed module. Also the config.json edits around it: the checkpoint's
// config.json is the input model's plus this key; a dense export drops it.
#ifndef CALDERA_CORE_FORMAT_QUANTIZATION_CONFIG_H_
#define CALDERA_CORE_FORMAT_QUANTIZATION_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caldera::format {

// The checkpoint format version (report.json's; quantization_config's was
// the same until version 2 below).
inline constexpr int kCheckpointFormatVersion = 1;
// quantization_config's format version. 2: "format": "caldera" and no
// "quant_method", so transformers and vLLM refuse the folder instead of
// loading it as random weights; version 1 (quant_method "caldera") is still
// read.
inline constexpr int kQuantizationConfigVersion = 2;

struct QuantizedModule {
  int64_t rows = 0, cols = 0, rank = 0;
  double bits_per_param = 0;
  bool ttlora = false;
};

struct QuantizationConfig {
  int format_version = kQuantizationConfigVersion;
  std::string method;  // caldera | ldlq | rtn | mixed (--target-bits: see target_bits)
  int64_t rank = 0;    // 0 for ldlq / rtn
  int q_bits = 0, lr_bits = 0;
  std::string quantizer;  // e8p | uniform
  int iters = 0, lplr_iters = 0;
  uint64_t seed = 0;
  int64_t ttlora_rank = 0;
  std::string ttlora_init;
  // --target-bits of the job (0 = off, key absent). With it, method and
  // quantizer are "mixed", rank and q_bits 0: each matrix's setting is in its
  // record and in report.json's "setting".
  double target_bits = 0;
  std::map<std::string, QuantizedModule> modules;  // by module name
};

// The input model's config.json text with "quantization_config" set; the
// result is pretty-printed (2 spaces, keys sorted). INVALID_ARGUMENT when the
// input is not a JSON object; `where` names it.
absl::StatusOr<std::string> AddQuantizationConfig(absl::string_view config_json,
                                                  const QuantizationConfig& config,
                                                  absl::string_view where);

// Checked reading of "quantization_config" from a config.json. NOT_FOUND when
// the key is absent (a dense model); INVALID_ARGUMENT for a wrong type, a
// missing key, a quant_method other than "caldera" (version 1) or a format
// other than "caldera" (version 2), or an unknown format_version.
absl::StatusOr<QuantizationConfig> ReadQuantizationConfig(absl::string_view config_json,
                                                          absl::string_view where);

// The config.json of a dense export: without "quantization_config", with
// "torch_dtype" set to `torch_dtype` ("float32", "float16", "bfloat16").
absl::StatusOr<std::string> DenseModelConfig(absl::string_view config_json, absl::string_view where,
                                             absl::string_view torch_dtype = "float32");

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_QUANTIZATION_CONFIG_H_
