// LatticeQuantizer: the E8P lattice quantizer, 2, 3 or 4 bits per weight.
//
// Rows are cut into 8-vectors along the columns (block_cols() = 8) and
// quantized with the E8P codebook (e8p.h) after dividing by one float32 scale
// per matrix (the matrix RMS over a per-bit-width constant), or with
// spec.row_scales one fp16 scale per row (the row's RMS over that constant):
//  - 2 bits: one E8P code (16 bits) per vector;
//  - 3 bits: plus a 1-bit E8 residual code (8 bits, E8OneBitTable) of the
//    residual magnified 2.04x;
//  - 4 bits: plus a second E8P code of the residual magnified 3.45x.
// Exported tensors (docs/format/caldera-matrix-record.md): "codes" U8
// [rows, cols/8*2] (little-endian 16-bit codes), "codes2" (3 bits: U8
// [rows, cols/8]; 4 bits: U8 [rows, cols/8*2]), "scale" F32 [1] or, with
// row scales, "row_scales" F16 [rows].
#ifndef CALDERA_CORE_QUANT_LATTICE_QUANTIZER_H_
#define CALDERA_CORE_QUANT_LATTICE_QUANTIZER_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "core/quant/e8p.h"
#include "core/quant/quantizer.h"

namespace caldera::quant {

class LatticeQuantizer final : public MatrixQuantizer {
 public:
  // `spec` is a valid lattice spec and cols a multiple of 8 (MakeMatrixQuantizer
  // checks both).
  LatticeQuantizer(const QuantizerSpec& spec, int64_t rows, int64_t cols);

  int64_t block_cols() const override { return 8; }
  void Prepare(const MatrixF& a) override;
  void QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                     Eigen::Ref<MatrixF> out) override;
  int64_t StorageBits() const override {
    return rows_ * cols_ * bits_ + (spec_.row_scales ? 16 * rows_ : 32);
  }
  void set_e8p_search(E8pSearch search) override { e8p_search_ = std::move(search); }
  NamedTensors Export() const override;
  absl::StatusOr<MatrixF> Decode(const NamedTensors& tensors) const override;

 private:
  // One thread's scratch: an 8-column group's rows as vectors.
  struct Scratch {
    std::vector<float> x, q1, q2;
    std::vector<uint16_t> codes;
    std::vector<uint8_t> codes8;
  };

  // QuantizeBlock for rows [r0, r1) of the 8-column groups [v0, v1) of
  // target: each group's rows as contiguous vectors, searched as a batch
  // (E8PCodebook::QuantizeBatch), written back.
  void QuantizeRange(int64_t c0, int64_t r0, int64_t r1, int64_t v0, int64_t v1,
                     const Eigen::Ref<const MatrixF>& target, Eigen::Ref<MatrixF>& out, Scratch* s);

  int bits_;
  float scale_ = 1.0f;
  std::vector<float> row_scale_;  // with spec.row_scales: fp16-exact, one per row
  // QuantizeBlock with e8p_search_ set: every vector of the block in one
  // search per stage (a device wants large batches), the same values and
  // codes as QuantizeRange would give with that search.
  void QuantizeBlockBatched(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                            Eigen::Ref<MatrixF> out);
  E8pSearch e8p_search_;
  Scratch batch_;  // QuantizeBlockBatched's
  E8PCodebook book_;
  E8OneBitTable one_bit_;
  std::vector<uint16_t> codes1_, codes2_;  // row-major, one per 8-vector
  std::vector<Scratch> scratch_;           // one per thread QuantizeBlock uses
};

}  // namespace caldera::quant

#endif  // CALDERA_CORE_QUANT_LATTICE_QUANTIZER_H_
