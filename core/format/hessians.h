// The calibration Hessians of one decoder block (format `caldera.hessians.v1`,
// docs/format/hessians.md): one writer and one reader, used by the worker's
// calibrate task and by `calderactl calibrate`.
//
// A safetensors file with four F64 [n, n] tensors, each the normalised input
// moment Σ xᵀx / tokens of a module group:
//   q_proj (q/k/v share it), o_proj, gate_proj (gate/up share it), down_proj
// and metadata format = "caldera.hessians.v1", layer = block index, tokens =
// the number of token positions summed over.
// A mixture of experts adds experts.E.gate_proj / experts.E.down_proj per
// expert E with metadata expert_tokens and expert_prior_share (comma lists);
// its gate_proj is the router's input, its down_proj the experts' mean.
//
// The reader also loads files written by older `calderactl calibrate`: F32
// tensors (converted to F64) with the token count in an I64 [1] tensor
// "tokens" instead of the metadata.
#ifndef CALDERA_CORE_FORMAT_HESSIANS_H_
#define CALDERA_CORE_FORMAT_HESSIANS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/format/safetensors.h"
#include "core/tensor/tensor.h"

namespace caldera::format {

inline constexpr char kHessiansFormat[] = "caldera.hessians.v1";
// The tensor names, in the order they are written.
inline constexpr std::array<const char*, 4> kHessianNames = {"q_proj", "o_proj", "gate_proj",
                                                             "down_proj"};

// One expert of a mixture-of-experts block: the moments of its gate/up input
// and of its down input over the tokens routed to it, after the few-token
// fallback (docs/format/hessians.md, "Experts").
struct ExpertHessians {
  Tensor gate, down;         // F64 [hidden, hidden], F64 [i, i]
  int64_t tokens = 0;        // tokens routed to the expert (>= 0)
  double prior_share = 0.0;  // the share of the layer's mean in gate/down, in [0, 1]
};

struct Hessians {
  int64_t layer = 0;   // the block these are the inputs of
  int64_t tokens = 0;  // token positions the moments were summed over (> 0)
  // F64 [n, n] each, Σ xᵀx / tokens; indexed like kHessianNames. For a
  // mixture, gate_proj is the router's input and down_proj the mean of the
  // experts' down inputs over every (token, chosen expert) pair.
  std::array<Tensor, 4> matrices;
  // A mixture's experts, written as "experts.E.gate_proj" / "experts.E.down_proj"
  // with metadata "expert_tokens" and "expert_prior_share"; empty when dense.
  std::vector<ExpertHessians> experts;
};

// The file's bytes (consumes the matrices, so a large block's Hessians are not
// held twice). INVALID_ARGUMENT when a matrix is not F64 square, or layer < 0
// or tokens < 1.
absl::StatusOr<std::string> SerializeHessians(Hessians hessians);
// The same bytes written to a local file (atomically, SafetensorsWriter::
// WriteFile), never held whole in memory.
absl::Status WriteHessiansFile(Hessians hessians, const std::string& path);
// The same bytes as a source named `name` that owns the matrices, to stream
// to object storage without a local file (SafetensorsWriter::ToSource).
absl::StatusOr<std::unique_ptr<RandomAccessSource>> HessiansSource(Hessians hessians,
                                                                   std::string name);

// Reads and validates the whole file: all four matrices square and F64 (F32
// in older files, converted), the format tag, layer and tokens. Messages name
// the file and what is wrong.
absl::StatusOr<Hessians> ReadHessians(const SafetensorsReader& reader);

// Reads one matrix by name ("q_proj", ..., "experts.3.gate_proj", "experts.3.down_proj") as F64 [n,
// n], checking the format tag and that tensor only (a remote file is read as three ranged reads).
absl::StatusOr<Tensor> ReadHessian(const SafetensorsReader& reader, absl::string_view name);

// The token count of the file (metadata "tokens", or the I64 tensor of older
// files), checking the format tag; what a sharded job weights each shard's
// matrices by when it sums them (docs/format/hessians.md, "Shards").
absl::StatusOr<int64_t> ReadHessiansTokens(const SafetensorsReader& reader);

// Expert e's token count and prior share from the metadata, checking the
// format tag; NOT_FOUND for a dense block's file, INVALID_ARGUMENT when e is
// out of range or the lists are malformed.
absl::StatusOr<std::pair<int64_t, double>> ReadExpertTokens(const SafetensorsReader& reader,
                                                            int64_t expert);

}  // namespace caldera::format

#endif  // CALDERA_CORE_FORMAT_HESSIANS_H_
