// FloatQuantizer: values kept as floats, fp16 (bits 16) or fp32 (bits 32),
// for factors left unquantized. block_cols() is 1.
// Exported tensor: "values" F16 or F32 [rows, cols] (row-major).
#ifndef CALDERA_CORE_QUANT_FLOAT_QUANTIZER_H_
#define CALDERA_CORE_QUANT_FLOAT_QUANTIZER_H_

#include <cstdint>

#include "core/quant/quantizer.h"

namespace caldera::quant {

class FloatQuantizer final : public MatrixQuantizer {
 public:
  // `spec` is a valid float spec (MakeMatrixQuantizer checks it).
  FloatQuantizer(const QuantizerSpec& spec, int64_t rows, int64_t cols);

  int64_t block_cols() const override { return 1; }
  void Prepare(const MatrixF&) override {}
  void QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                     Eigen::Ref<MatrixF> out) override;
  int64_t StorageBits() const override { return rows_ * cols_ * bits_; }
  NamedTensors Export() const override;
  // Accepts "values" of any float dtype with rows * cols elements.
  absl::StatusOr<MatrixF> Decode(const NamedTensors& tensors) const override;

 private:
  int bits_;
  MatrixF values_;  // as stored (fp16-rounded for bits 16)
};

}  // namespace caldera::quant

#endif  // CALDERA_CORE_QUANT_FLOAT_QUANTIZER_H_
