// One compressed linear (a CALDERA matrix record) with the parts that stay
// continuous once Q's codes are fixed opened up for training, in the record's
// own (padded, Hadamard-transformed) basis:
//
//   W̃ = C ⊙ S + Lᵀᵀ·R,   Ŵ = g · Inverse(W̃)
//
// C: Q's code values, fixed; S: Q's scales (one per matrix or per row for
// E8P, one per row and group for symmetric uniform Q; not trained for
// asymmetric uniform Q, whose minimums would have to move with them), L and R
// the low-rank factors (rank > 0). The global scale g and the transform stay.
//
// Export() writes the record back with the same tensors, shapes and dtypes
// (so the same stored bits): S rounded to its stored dtype (F16 or F32), L and
// R quantized to their stored precision (the record's own quantizer, round to
// nearest). Not thread-safe.
#ifndef CALDERA_CORE_FINETUNE_TUNABLE_LINEAR_H_
#define CALDERA_CORE_FINETUNE_TUNABLE_LINEAR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/decompose/caldera.h"
#include "core/quant/quantizer.h"
#include "core/tensor/tensor.h"

namespace caldera::finetune {

using quant::MatrixF;

class TunableLinear {
 public:
  // `record`: the record's tensors named relative to the module
  // ("caldera.config", "caldera.q.codes", ...), as DecomposeResult::record.
  static absl::StatusOr<TunableLinear> FromRecord(const NamedTensors& record);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t rank() const { return lt_.rows(); }
  bool scales_trainable() const { return scales_trainable_; }

  // Ŵ (rows × cols, original basis) of the current parameters.
  absl::StatusOr<MatrixF> Weight() const;

  // The trainable parameters and their gradients, in a fixed order: the
  // scales (when trainable), then Lᵀ and R (when rank > 0).
  std::vector<MatrixF*> Parameters();
  std::vector<MatrixF*> Gradients();
  // Sets Gradients() from dL/dŴ (rows × cols, original basis).
  absl::Status Backward(const MatrixF& d_weight);
  // Freezes Lᵀ and R at their stored precision (quantizes them now; they
  // leave Parameters()), for a last phase that trains the scales alone.
  absl::Status QuantizeFactors();
  // The same for Lᵀ alone (R stays trainable, so it can absorb Lᵀ's rounding).
  absl::Status QuantizeLeft();

  // Learned rounding (AutoRound's offsets, anchored at the stored codes) for
  // symmetric uniform Q: each code becomes clamp(code + round(V)), V in
  // [-1, 1] starting at 0, so a code moves one step once its offset passes
  // ±0.5. (Starting V at the distance from the continuous value, as
  // AutoRound does from round-to-nearest, undid LDLQ's error feedback and
  // measured worse.) Returns false, doing nothing, for other quantizers.
  bool EnableRounding();
  bool rounding() const { return rounding_; }
  // V and dL/dV (straight through the rounding), when rounding().
  MatrixF* offsets() { return &offsets_; }
  const MatrixF& offset_gradient() const { return d_offsets_; }
  // Fixes the codes at their current rounding (V leaves the parameters).
  void FreezeRounding();

  // The record with the trained values (Lᵀ and R quantized if they are not
  // yet), same tensors, shapes and dtypes as the input record.
  absl::StatusOr<NamedTensors> Export();

 private:
  TunableLinear() = default;
  // S expanded to one value per element of W̃.
  MatrixF ExpandedScales() const;

  NamedTensors record_;  // the input record, copied
  decompose::DecodedRecord decoded_;
  int64_t rows_ = 0, cols_ = 0;
  float global_scale_ = 0;
  // Q = codes_ ⊙ expand(scales_): scales_ is scale_rows_ (1 or mp) × groups,
  // each covering group_cols_ consecutive columns.
  MatrixF codes_, scales_;
  int64_t group_cols_ = 0;
  bool scales_trainable_ = false;
  std::string scales_name_;  // "caldera.q.scale", "caldera.q.row_scales" or "caldera.q.scales"
  MatrixF lt_, r_;
  bool factors_quantized_ = false, left_quantized_ = false;
  absl::Status QuantizeFactor(MatrixF* m, NamedTensors* out);
  NamedTensors l_export_, r_export_;
  MatrixF d_scales_, d_lt_, d_r_;
  // Learned rounding: offsets V (mp × np) and the codes' range.
  bool rounding_ = false, codes_changed_ = false;
  MatrixF offsets_, d_offsets_;
  float code_max_ = 0;  // codes are half-integers in [-code_max_, code_max_]
  // The codes Weight() uses: codes_ + round(V), clamped.
  MatrixF EffectiveCodes() const;
};

}  // namespace caldera::finetune

#endif  // CALDERA_CORE_FINETUNE_TUNABLE_LINEAR_H_
