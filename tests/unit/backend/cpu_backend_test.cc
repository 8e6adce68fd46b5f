// The CPU backend is the reference: each operation must equal the plain
// Eigen expression it wraps, bit for bit, and the device choice parses and
// falls back as documented.
#include "core/backend/cpu/cpu_backend.h"

#include <random>

#include "core/backend/device.h"
#include "gtest/gtest.h"

namespace caldera::backend {
namespace {

MatrixF Random(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  MatrixF m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

TEST(CpuBackendTest, GemmEqualsTheEigenExpressions) {
  CpuBackend cpu;
  const MatrixF a = Random(70, 40, 1), b = Random(40, 90, 2), bt = b.transpose();
  MatrixF c(70, 90);
  ASSERT_TRUE(cpu.Gemm(Op::kN, Op::kN, 1.0f, a, b, Accumulate::kAssign, c).ok());
  MatrixF expect(70, 90);
  expect.noalias() = a * b;
  EXPECT_TRUE(c == expect);
  ASSERT_TRUE(cpu.Gemm(Op::kN, Op::kT, -1.0f, a, bt, Accumulate::kAdd, c).ok());
  expect.noalias() -= a * bt.transpose();
  EXPECT_TRUE(c == expect);
  // Blocks of larger matrices, as LDLQ's feedback products pass them.
  MatrixF big = Random(70, 200, 3);
  MatrixF big_expect = big;
  ASSERT_TRUE(
      cpu.Gemm(Op::kN, Op::kN, 1.0f, a, b.leftCols(50), Accumulate::kAdd, big.middleCols(100, 50))
          .ok());
  big_expect.middleCols(100, 50).noalias() += a * b.leftCols(50);
  EXPECT_TRUE(big == big_expect);
}

TEST(CpuBackendTest, FactorizationsEqualEigen) {
  CpuBackend cpu;
  const MatrixF x = Random(80, 30, 4);
  const MatrixD h = (x.transpose() * x).cast<double>() + MatrixD::Identity(30, 30);
  absl::StatusOr<MatrixD> l = cpu.CholeskyLowerD(h);
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(*l == MatrixD(Eigen::LLT<MatrixD>(h).matrixL()));
  EXPECT_EQ(cpu.CholeskyLowerD(-h).status().code(), absl::StatusCode::kFailedPrecondition);
  const MatrixF lf = l->cast<float>();
  MatrixF y;
  ASSERT_TRUE(cpu.TrmmRightLower(x, lf, &y).ok());
  MatrixF expect = x * lf.triangularView<Eigen::Lower>();
  EXPECT_TRUE(y == expect);
  ASSERT_TRUE(cpu.TrsmRightLower(lf, &y).ok());
  EXPECT_LT((y - x).norm(), 1e-4 * x.norm());
}

TEST(DeviceTest, ParsesAndResolves) {
  EXPECT_EQ(ParseDevice("cpu")->kind, DeviceChoice::Kind::kCpu);
  EXPECT_EQ(ParseDevice("auto")->kind, DeviceChoice::Kind::kAuto);
  EXPECT_EQ(ParseDevice("cuda:3")->index, 3);
  EXPECT_EQ(ParseDevice("cuda")->index, 0);
  EXPECT_EQ(ParseDevice("gpu").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseDevice("cuda:-1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(DeviceFlagHelp().find("experimental: not yet run on a GPU"), std::string::npos);
  absl::StatusOr<ResolvedDevice> cpu = ResolveDevice(*ParseDevice("cpu"));
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ(cpu->name, "cpu");
  EXPECT_TRUE(cpu->note.empty());
  // auto never fails; when it picks the CPU it says why.
  absl::StatusOr<ResolvedDevice> automatic = ResolveDevice(*ParseDevice("auto"));
  ASSERT_TRUE(automatic.ok());
  if (automatic->name == "cpu") {
    EXPECT_FALSE(automatic->note.empty());
  }
  // A device index no machine has.
  absl::StatusOr<ResolvedDevice> far = ResolveDevice(*ParseDevice("cuda:999"));
  EXPECT_EQ(far.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(far.status().message().find("--device cpu"), std::string::npos) << far.status();
  absl::StatusOr<std::unique_ptr<ComputeBackend>> be = CreateBackend("cpu");
  ASSERT_TRUE(be.ok());
  EXPECT_EQ((*be)->Name(), "cpu");
}

}  // namespace
}  // namespace caldera::backend
