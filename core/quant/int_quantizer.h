// IntQuantizer: the signed integer grid that compressed-tensors' pack-quantized
// format stores and vLLM's int4/int8 kernels run (--quantizer int, the grid of
// --serve vllm).
//
// value = q · scale with an integer q in [-2^(b-1), 2^(b-1) - 1] (b = 4 or 8)
// and one fp16 scale per group of group_size consecutive columns of a row
// (group_size >= cols: one scale per row, compressed-tensors' "channel"
// strategy). Symmetric only: zero point 0, so nothing else is stored. The
// scale is chosen by Prepare() as the best of the grids amax·p / (2^(b-1) -
// 1/2) for p = 1, 0.99, ..., 0.60 (clipping) in Σ|error|^2.4 over the group,
// rounded to fp16 as stored; QuantizeBlock() rounds to the nearest level.
// Because the scales are fp16 values and q·scale is exact in float32, the
// dequantized matrix is what compressed-tensors' (q - 0)·scale gives in float32
// to the last bit (core/format/compressed_tensors.h writes it).
// block_cols() is 1.
// Exported tensors: "codes" U8 [ceil(rows*cols*bits/8)] (row-major codes
// q + 2^(b-1), packed least significant bit first) and "scales" F16 [rows,
// groups].
#ifndef CALDERA_CORE_QUANT_INT_QUANTIZER_H_
#define CALDERA_CORE_QUANT_INT_QUANTIZER_H_

#include <cstdint>
#include <vector>

#include "core/quant/quantizer.h"

namespace caldera::quant {

// Bits the int grid supports: those vLLM's compressed-tensors WNA16 kernels run.
bool IntGridBits(int bits);

class IntQuantizer final : public MatrixQuantizer {
 public:
  // `spec` is a valid int spec (MakeMatrixQuantizer checks it).
  IntQuantizer(const QuantizerSpec& spec, int64_t rows, int64_t cols);

  int64_t block_cols() const override { return 1; }
  void Prepare(const MatrixF& a) override;
  void QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                     Eigen::Ref<MatrixF> out) override;
  int64_t StorageBits() const override { return rows_ * cols_ * bits_ + rows_ * groups_ * 16; }
  NamedTensors Export() const override;
  absl::StatusOr<MatrixF> Decode(const NamedTensors& tensors) const override;

 private:
  int bits_;
  int64_t group_, groups_;      // columns per group (at most cols), groups per row
  std::vector<float> scales_;   // [rows, groups], fp16 values
  std::vector<uint8_t> codes_;  // [rows, cols], q + 2^(bits-1)
};

}  // namespace caldera::quant

#endif  // CALDERA_CORE_QUANT_INT_QUANTIZER_H_
