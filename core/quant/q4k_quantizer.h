// Q4kQuantizer: the grid of llama.cpp's Q4_K block type (--quantizer q4k, one of
// the grids of --serve llamacpp), so that LDLQ rounds onto exactly what the GGUF
// file stores and llama.cpp runs.
//
// Along each row, super-blocks of 256 columns, each of 8 sub-blocks of 32:
// value = (d·sc)·q − (dmin·m) with q in [0, 15], sc and m 6-bit integers per
// sub-block, d and dmin fp16 per super-block -- ggml's dequantize_row_q4_K,
// evaluated in float32 in that order (d·sc and d·sc·q are exact, so the result
// is the same with or without fused multiply-add). Prepare() fixes sc, m, d and
// dmin from the matrix (per sub-block the affine grid over [min(0, x), max x],
// shrunk by the best of p = 1, 0.98, ..., 0.8 in Σ|error|^2.4; then d = max
// scale / 63, dmin = max min / 63 rounded to fp16 and sc, m the nearest 6-bit
// multiples), before any rounding, so the LDLQ feedback sees the real grid;
// QuantizeBlock() rounds to the nearest q. cols must be a multiple of 256.
// 4.5 bits per weight (144 bytes per 256), as Q4_K.
// Exported tensors: "codes" U8 (row-major q, 4 bits each, packed least
// significant bit first), "scales" and "mins" U8 [rows, cols / 32], "d" and
// "dmin" F16 [rows, cols / 256].
#ifndef CALDERA_CORE_QUANT_Q4K_QUANTIZER_H_
#define CALDERA_CORE_QUANT_Q4K_QUANTIZER_H_

#include <cstdint>
#include <vector>

#include "core/quant/quantizer.h"

namespace caldera::quant {

inline constexpr int64_t kQ4kSuperBlock = 256;
inline constexpr int64_t kQ4kSubBlock = 32;

class Q4kQuantizer final : public MatrixQuantizer {
 public:
  // `spec` is a valid q4k spec and cols a multiple of 256 (MakeMatrixQuantizer checks).
  Q4kQuantizer(const QuantizerSpec& spec, int64_t rows, int64_t cols);

  int64_t block_cols() const override { return 1; }
  void Prepare(const MatrixF& a) override;
  void QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                     Eigen::Ref<MatrixF> out) override;
  int64_t StorageBits() const override {
    return rows_ * cols_ * 4 + rows_ * (cols_ / kQ4kSubBlock) * 12 +
           rows_ * (cols_ / kQ4kSuperBlock) * 32;
  }
  NamedTensors Export() const override;
  absl::StatusOr<MatrixF> Decode(const NamedTensors& tensors) const override;

 private:
  int64_t subs_, supers_;           // sub-blocks and super-blocks per row
  std::vector<uint8_t> sc_, m_;     // [rows, subs]
  std::vector<uint16_t> d_, dmin_;  // [rows, supers], fp16 bits
  std::vector<float> step_, min_;   // [rows, subs]: d·sc and dmin·m in float32
  std::vector<uint8_t> codes_;      // [rows, cols]
};

}  // namespace caldera::quant

#endif  // CALDERA_CORE_QUANT_Q4K_QUANTIZER_H_
