// Records of random matrices for the fine-tuning tests: CALDERA with E8P Q
// and a Hadamard transform, CALDERA with uniform Q, and LDLQ with uniform Q.
#ifndef CALDERA_TESTS_UNIT_FINETUNE_FINETUNE_TEST_SUPPORT_H_
#define CALDERA_TESTS_UNIT_FINETUNE_FINETUNE_TEST_SUPPORT_H_

#include <random>

#include "core/decompose/caldera.h"

namespace caldera::finetune::testing {

enum class RecordKind { kE8pLowRank, kUniformLowRank, kUniformLdlq };

inline quant::MatrixF RandomMatrix(int64_t rows, int64_t cols, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, scale);
  quant::MatrixF m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

inline decompose::DecomposeOptions OptionsFor(RecordKind kind) {
  decompose::DecomposeOptions o;
  o.iters = 2;
  o.lplr_iters = 2;
  o.rank = kind == RecordKind::kUniformLdlq ? 0 : 4;
  o.method =
      kind == RecordKind::kUniformLdlq ? decompose::Method::kLdlq : decompose::Method::kCaldera;
  if (kind == RecordKind::kE8pLowRank) {
    o.q_spec = quant::QuantizerSpec{quant::QuantizerSpec::Kind::kLattice, 2};
    o.hadamard = true;
  } else {
    o.q_spec = quant::QuantizerSpec{quant::QuantizerSpec::Kind::kUniform, 3, 16};
    o.hadamard = false;
  }
  return o;
}

// The record of `w` decomposed under the identity Hessian.
inline NamedTensors RecordOf(const quant::MatrixF& w, RecordKind kind) {
  absl::StatusOr<decompose::DecomposeResult> r =
      decompose::Decompose(w, Eigen::MatrixXd::Identity(w.cols(), w.cols()), OptionsFor(kind));
  if (!r.ok()) return {};
  return std::move(r->record);
}

}  // namespace caldera::finetune::testing

#endif  // CALDERA_TESTS_UNIT_FINETUNE_FINETUNE_TEST_SUPPORT_H_
