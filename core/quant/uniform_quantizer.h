// UniformQuantizer: round-to-grid with per-group scales, 2 to 8 bits.
//
// Each row is cut into groups of group_size consecutive columns (the last one
// shorter; group_size larger than cols means one group) with one fp16 scale
// each, chosen by Prepare() as the best of the grids shrunk by 1, 0.99, ...,
// 0.60 (clipping) in Σ|error|^2.4 over the group: symmetric grids use the mid-rise levels (k + 1/2)
// * scale for k in
// [-2^(b-1), 2^(b-1) - 1]; asymmetric grids add an fp16 minimum per group and
// use min + k * scale for k in [0, 2^b - 1]. block_cols() is 1.
// Exported tensors: "codes" U8 [ceil(rows*cols*bits/8)] (row-major codes,
// packed least significant bit first), "scales" F16 [rows, groups] and, when
// asymmetric, "mins" F16 [rows, groups].
#ifndef CALDERA_CORE_QUANT_UNIFORM_QUANTIZER_H_
#define CALDERA_CORE_QUANT_UNIFORM_QUANTIZER_H_

#include <cstdint>
#include <vector>

#include "core/quant/quantizer.h"

namespace caldera::quant {

class UniformQuantizer final : public MatrixQuantizer {
 public:
  // `spec` is a valid uniform spec (MakeMatrixQuantizer checks it).
  UniformQuantizer(const QuantizerSpec& spec, int64_t rows, int64_t cols);

  int64_t block_cols() const override { return 1; }
  void Prepare(const MatrixF& a) override;
  // Instead of Prepare(): these scales ([rows, groups] row-major, rounded to
  // fp16 as stored), for re-encoding codes chosen elsewhere (the
  // fine-tuning's learned rounding). INVALID_ARGUMENT for the wrong count, a
  // scale that is not positive and finite, or an asymmetric grid.
  absl::Status SetScales(const std::vector<float>& scales);
  void QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                     Eigen::Ref<MatrixF> out) override;
  int64_t StorageBits() const override {
    return rows_ * cols_ * bits_ + rows_ * groups_ * (symmetric_ ? 16 : 32);
  }
  NamedTensors Export() const override;
  absl::StatusOr<MatrixF> Decode(const NamedTensors& tensors) const override;

 private:
  int bits_;
  int64_t group_, groups_;  // columns per group (at most cols), groups per row
  bool symmetric_;
  std::vector<float> scales_, mins_;  // [rows, groups], fp16 values
  std::vector<uint8_t> codes_;        // [rows, cols]
};

}  // namespace caldera::quant

#endif  // CALDERA_CORE_QUANT_UNIFORM_QUANTIZER_H_
