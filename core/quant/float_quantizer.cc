#include "core/quant/float_quantizer.h"

#include <span>
#include <utility>

#include "core/quant/quantized_tensors.h"
#include "core/tensor/half.h"

namespace caldera::quant {

FloatQuantizer::FloatQuantizer(const QuantizerSpec& spec, int64_t rows, int64_t cols)
    : MatrixQuantizer(spec, rows, cols), bits_(spec.bits), values_(rows, cols) {}

void FloatQuantizer::QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                                   Eigen::Ref<MatrixF> out) {
  for (int64_t j = 0; j < target.cols(); ++j) {
    for (int64_t r = 0; r < target.rows(); ++r) {
      const float v = bits_ == 16 ? RoundToHalf(target(r, j)) : target(r, j);
      out(r, j) = v;
      values_(r, c0 + j) = v;
    }
  }
}

NamedTensors FloatQuantizer::Export() const {
  Tensor t = *Tensor::Zeros(DType::kF32, {rows_, cols_});
  std::span<float> d = t.mutable_data<float>();
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t c = 0; c < cols_; ++c) d[r * cols_ + c] = values_(r, c);
  }
  NamedTensors out;
  out.emplace_back("values", bits_ == 16 ? *t.ConvertTo(DType::kF16) : std::move(t));
  return out;
}

absl::StatusOr<MatrixF> FloatQuantizer::Decode(const NamedTensors& tensors) const {
  const Tensor* t = FindTensor(tensors, "values");
  if (t == nullptr || t->numel() != rows_ * cols_) {
    return absl::InvalidArgumentError("float record has no 'values' tensor of the right size");
  }
  absl::StatusOr<Tensor> f = t->ConvertTo(DType::kF32);
  if (!f.ok()) return f.status();
  MatrixF out(rows_, cols_);
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t c = 0; c < cols_; ++c) out(r, c) = f->data<float>()[r * cols_ + c];
  }
  return out;
}

}  // namespace caldera::quant
