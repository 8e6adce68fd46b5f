// TunableLinear: its gradients against finite differences of ⟨G, Ŵ⟩ (so the
// adjoint of the record's transform is right), Ŵ as the record rebuilds it,
// and an export that keeps every tensor's name, shape and dtype.
#include "core/finetune/tunable_linear.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/unit/finetune/finetune_test_support.h"

namespace caldera::finetune {
namespace {

using testing::RecordKind;
using testing::RecordOf;

class TunableLinearTest : public ::testing::TestWithParam<RecordKind> {};

TEST_P(TunableLinearTest, StartsAtTheRecordsWeight) {
  const MatrixF w = testing::RandomMatrix(24, 40, 5, 0.1f);
  const NamedTensors record = RecordOf(w, GetParam());
  ASSERT_FALSE(record.empty());
  absl::StatusOr<TunableLinear> t = TunableLinear::FromRecord(record);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<MatrixF> mine = t->Weight();
  absl::StatusOr<MatrixF> theirs = decompose::Reconstruct(record);
  ASSERT_TRUE(mine.ok() && theirs.ok());
  EXPECT_LT((*mine - *theirs).cwiseAbs().maxCoeff(), 1e-5f);
  EXPECT_TRUE(t->scales_trainable());
}

TEST_P(TunableLinearTest, GradientsMatchFiniteDifferences) {
  const MatrixF w = testing::RandomMatrix(24, 40, 6, 0.1f);
  absl::StatusOr<TunableLinear> t = TunableLinear::FromRecord(RecordOf(w, GetParam()));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->EnableRounding(), GetParam() != RecordKind::kE8pLowRank);
  // L = ⟨G, Ŵ⟩ is linear in the scales and in each factor apart, so central
  // differences are exact up to float rounding.
  const MatrixF g = testing::RandomMatrix(24, 40, 7, 1.0f);
  ASSERT_TRUE(t->Backward(g).ok());
  auto loss = [&] { return t->Weight()->cast<double>().cwiseProduct(g.cast<double>()).sum(); };
  std::vector<MatrixF*> params = t->Parameters();
  std::vector<MatrixF*> grads = t->Gradients();
  ASSERT_EQ(params.size(), GetParam() == RecordKind::kUniformLdlq ? 1u : 3u);
  for (size_t p = 0; p < params.size(); ++p) {
    ASSERT_EQ(params[p]->size(), grads[p]->size());
    for (int64_t i = 0; i < params[p]->size(); i += 3) {
      float& v = params[p]->data()[i];
      const float saved = v, h = 0.5f * (std::abs(saved) + 0.1f);
      v = saved + h;
      const double up = loss();
      v = saved - h;
      const double down = loss();
      v = saved;
      const double fd = (up - down) / (2.0 * static_cast<double>(h));
      EXPECT_NEAR(grads[p]->data()[i], fd, 1e-4 * (1 + std::abs(fd))) << "param " << p << " " << i;
    }
  }
}

TEST_P(TunableLinearTest, ExportKeepsTheStoredLayout) {
  const MatrixF w = testing::RandomMatrix(24, 40, 8, 0.1f);
  const NamedTensors record = RecordOf(w, GetParam());
  absl::StatusOr<TunableLinear> t = TunableLinear::FromRecord(record);
  ASSERT_TRUE(t.ok()) << t.status();
  t->EnableRounding();
  // Move every parameter and every offset past a rounding boundary.
  for (MatrixF* p : t->Parameters()) *p *= 1.1f;
  if (t->rounding()) t->offsets()->setConstant(0.7f);
  absl::StatusOr<MatrixF> tuned = t->Weight();
  absl::StatusOr<NamedTensors> out = t->Export();
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), record.size());
  bool changed = false;
  for (size_t i = 0; i < record.size(); ++i) {
    EXPECT_EQ((*out)[i].first, record[i].first);
    EXPECT_EQ((*out)[i].second.dtype(), record[i].second.dtype()) << record[i].first;
    EXPECT_EQ((*out)[i].second.shape(), record[i].second.shape()) << record[i].first;
    changed = changed || (*out)[i].second.bytes().size() != record[i].second.bytes().size() ||
              !std::equal((*out)[i].second.bytes().begin(), (*out)[i].second.bytes().end(),
                          record[i].second.bytes().begin());
  }
  EXPECT_TRUE(changed);
  // The exported record rebuilds the tuned weight, up to fp16 scales and the
  // factors' re-quantization.
  absl::StatusOr<MatrixF> rebuilt = decompose::Reconstruct(*out);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  const float tol = GetParam() == RecordKind::kUniformLdlq ? 2e-3f : 0.05f;
  EXPECT_LT((*rebuilt - *tuned).norm() / tuned->norm(), tol);
}

INSTANTIATE_TEST_SUITE_P(Records, TunableLinearTest,
                         ::testing::Values(RecordKind::kE8pLowRank, RecordKind::kUniformLowRank,
                                           RecordKind::kUniformLdlq));

}  // namespace
}  // namespace caldera::finetune
