// The CUDA backend against the CPU backend, operation by operation (E8P
// codes identical; products, factorizations and transforms within float
// tolerance), and a whole decomposition within 1% relative weighted error.
// Needs a CUDA device: without one every test skips with "skipped: no CUDA
// device". (Written before any GPU was available: not yet run on one.)
#include "core/backend/cuda/cuda_backend.h"

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "core/backend/cpu/cpu_backend.h"
#include "core/backend/cuda/device_info.h"
#include "core/decompose/caldera.h"
#include "core/quant/quantizer.h"
#include "gtest/gtest.h"
#include "tests/support/random_block.h"

namespace caldera::backend {
namespace {

MatrixF Random(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  MatrixF m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const cuda::DeviceProbe probe = cuda::ProbeDevices();
    if (probe.device_count == 0) GTEST_SKIP() << "skipped: no CUDA device";
    absl::StatusOr<std::unique_ptr<ComputeBackend>> be = cuda::CreateCudaBackend(0);
    ASSERT_TRUE(be.ok()) << be.status();
    gpu_ = *std::move(be);
  }
  std::unique_ptr<ComputeBackend> gpu_;
  CpuBackend cpu_;
};

template <typename M>
double RelDiff(const M& a, const M& b) {
  return (a - b).norm() / std::max(1e-30, static_cast<double>(b.norm()));
}

TEST_F(CudaBackendTest, Gemm) {
  const MatrixF a = Random(300, 200, 1), b = Random(200, 250, 2);
  for (Op oa : {Op::kN, Op::kT}) {
    for (Op ob : {Op::kN, Op::kT}) {
      const MatrixF aa = oa == Op::kN ? a : MatrixF(a.transpose());
      const MatrixF bb = ob == Op::kN ? b : MatrixF(b.transpose());
      MatrixF c_gpu = Random(300, 250, 3), c_cpu = c_gpu;
      ASSERT_TRUE(gpu_->Gemm(oa, ob, -1.0f, aa, bb, Accumulate::kAdd, c_gpu).ok());
      ASSERT_TRUE(cpu_.Gemm(oa, ob, -1.0f, aa, bb, Accumulate::kAdd, c_cpu).ok());
      EXPECT_LT(RelDiff(c_gpu, c_cpu), 1e-5);
    }
  }
  // A block of a larger matrix (leading dimension != rows).
  MatrixF big_gpu = Random(300, 400, 4), big_cpu = big_gpu;
  ASSERT_TRUE(gpu_->Gemm(Op::kN, Op::kN, 1.0f, a, b.leftCols(100), Accumulate::kAssign,
                         big_gpu.middleCols(50, 100))
                  .ok());
  ASSERT_TRUE(cpu_.Gemm(Op::kN, Op::kN, 1.0f, a, b.leftCols(100), Accumulate::kAssign,
                        big_cpu.middleCols(50, 100))
                  .ok());
  EXPECT_LT(RelDiff(big_gpu, big_cpu), 1e-5);
}

TEST_F(CudaBackendTest, DoubleAlgebra) {
  const MatrixD x = Random(200, 120, 5).cast<double>();
  const MatrixD h = x.transpose() * x + MatrixD::Identity(120, 120);
  absl::StatusOr<MatrixD> l_gpu = gpu_->CholeskyLowerD(h), l_cpu = cpu_.CholeskyLowerD(h);
  ASSERT_TRUE(l_gpu.ok()) << l_gpu.status();
  EXPECT_LT(RelDiff(*l_gpu, *l_cpu), 1e-10);
  EXPECT_EQ(gpu_->CholeskyLowerD(-h).status().code(), absl::StatusCode::kFailedPrecondition);
  MatrixD p_gpu, p_cpu;
  ASSERT_TRUE(gpu_->GemmD(Op::kT, Op::kN, x, x, &p_gpu).ok());
  ASSERT_TRUE(cpu_.GemmD(Op::kT, Op::kN, x, x, &p_cpu).ok());
  EXPECT_LT(RelDiff(p_gpu, p_cpu), 1e-12);
  MatrixD s_gpu = h, s_cpu = h;
  ASSERT_TRUE(gpu_->SyrkLowerD(-0.5, x.leftCols(100).transpose(), &s_gpu).ok());
  ASSERT_TRUE(cpu_.SyrkLowerD(-0.5, x.leftCols(100).transpose(), &s_cpu).ok());
  EXPECT_LT(RelDiff(MatrixD(s_gpu.triangularView<Eigen::Lower>()),
                    MatrixD(s_cpu.triangularView<Eigen::Lower>())),
            1e-12);
}

TEST_F(CudaBackendTest, TriangularProducts) {
  const MatrixF a = Random(150, 120, 6);
  const MatrixF l = MatrixF(Random(120, 120, 7).triangularView<Eigen::Lower>()) +
                    10.0f * MatrixF::Identity(120, 120);
  MatrixF y_gpu, y_cpu;
  ASSERT_TRUE(gpu_->TrmmRightLower(a, l, &y_gpu).ok());
  ASSERT_TRUE(cpu_.TrmmRightLower(a, l, &y_cpu).ok());
  EXPECT_LT(RelDiff(y_gpu, y_cpu), 1e-5);
  ASSERT_TRUE(gpu_->TrsmRightLower(l, &y_gpu).ok());
  ASSERT_TRUE(cpu_.TrsmRightLower(l, &y_cpu).ok());
  EXPECT_LT(RelDiff(y_gpu, y_cpu), 1e-5);
}

TEST_F(CudaBackendTest, Hadamard) {
  for (int64_t n : {256, 12 * 32}) {
    const transform::HadamardTransform t = *transform::HadamardTransform::Create(n);
    for (bool transpose : {false, true}) {
      MatrixF c_gpu = Random(n, 33, 8), c_cpu = c_gpu;
      ASSERT_TRUE(gpu_->HadamardColumns(t, transpose, &c_gpu).ok());
      ASSERT_TRUE(cpu_.HadamardColumns(t, transpose, &c_cpu).ok());
      EXPECT_LT(RelDiff(c_gpu, c_cpu), 1e-6);
      if (t.order() == 1) {
        EXPECT_TRUE(c_gpu == c_cpu) << "power-of-two butterflies are exact";
      }
      MatrixF r_gpu = Random(45, n, 9), r_cpu = r_gpu;
      ASSERT_TRUE(gpu_->HadamardRows(t, transpose, &r_gpu).ok());
      ASSERT_TRUE(cpu_.HadamardRows(t, transpose, &r_cpu).ok());
      EXPECT_LT(RelDiff(r_gpu, r_cpu), 1e-6);
      MatrixD d_gpu = Random(n, n, 10).cast<double>(), d_cpu = d_gpu;
      ASSERT_TRUE(gpu_->HadamardColumnsD(t, transpose, &d_gpu).ok());
      ASSERT_TRUE(cpu_.HadamardColumnsD(t, transpose, &d_cpu).ok());
      EXPECT_LT(RelDiff(d_gpu, d_cpu), 1e-12);
    }
  }
}

TEST_F(CudaBackendTest, E8pCodesIdentical) {
  const int64_t count = 100000;
  const MatrixF x = Random(8, count, 11) * 1.3f;
  std::vector<uint16_t> c_gpu(count), c_cpu(count);
  std::vector<float> o_gpu(8 * count), o_cpu(8 * count);
  ASSERT_TRUE(gpu_->E8pNearest(x.data(), count, c_gpu.data(), o_gpu.data()).ok());
  ASSERT_TRUE(cpu_.E8pNearest(x.data(), count, c_cpu.data(), o_cpu.data()).ok());
  EXPECT_TRUE(c_gpu == c_cpu);
  EXPECT_TRUE(o_gpu == o_cpu);
}

// The quantizers' E8P searches on the device (QuantizeNearest, and the LDLQ
// block step): the CPU's codes but for exact ties.
TEST_F(CudaBackendTest, QuantizerSearchesOnTheDeviceGiveTheCpuCodes) {
  for (int bits : {2, 3, 4}) {
    const MatrixF a = Random(512, 128, 14);
    const quant::QuantizerSpec spec = quant::SpecFor(quant::Quantizer::kE8p, bits, 0);
    auto on_cpu = *quant::MakeMatrixQuantizer(spec, 512, 128);
    auto on_gpu = *quant::MakeMatrixQuantizer(spec, 512, 128);
    absl::StatusOr<MatrixF> q_cpu = cpu_.QuantizeNearest(*on_cpu, a);
    absl::StatusOr<MatrixF> q_gpu = gpu_->QuantizeNearest(*on_gpu, a);
    ASSERT_TRUE(q_cpu.ok() && q_gpu.ok()) << q_gpu.status();
    EXPECT_LT(RelDiff(*q_gpu, *q_cpu), 1e-3) << bits;
    MatrixF out_cpu(512, 16), out_gpu(512, 16);
    ASSERT_TRUE(cpu_.LdlqBlockStep(*on_cpu, 32, a.middleCols(32, 16), out_cpu).ok());
    ASSERT_TRUE(gpu_->LdlqBlockStep(*on_gpu, 32, a.middleCols(32, 16), out_gpu).ok());
    EXPECT_LT(RelDiff(out_gpu, out_cpu), 1e-3) << bits;
  }
}

TEST_F(CudaBackendTest, WholeDecompositionWithinOnePercent) {
  const MatrixF w = Random(256, 512, 12) / 16.0f;
  const MatrixF x = Random(1024, 512, 13);
  const Eigen::MatrixXd h = (x.transpose() * x / 1024.0f).cast<double>();
  decompose::DecomposeOptions o;
  o.rank = 32;
  o.iters = 4;
  o.lplr_iters = 3;
  absl::StatusOr<decompose::DecomposeResult> on_cpu = decompose::Decompose(w, h, o);
  o.backend = gpu_.get();
  absl::StatusOr<decompose::DecomposeResult> on_gpu = decompose::Decompose(w, h, o);
  ASSERT_TRUE(on_cpu.ok()) << on_cpu.status();
  ASSERT_TRUE(on_gpu.ok()) << on_gpu.status();
  EXPECT_LT(std::abs(on_gpu->weighted_relative_error - on_cpu->weighted_relative_error),
            0.01 * on_cpu->weighted_relative_error);
}

// The calibration forward on the device against the CPU's, over two chunks
// (the Hessian sums stay on the device until Flush): activations within
// float tolerance, Hessians within 1e-4 relative (issue #21).
TEST_F(CudaBackendTest, BlockForwardAndHessiansMatchTheCpu) {
  for (bool bias : {false, true}) {
    const model::ModelConfig c = testing::SmallBlockConfig(bias);
    const model::BlockWeights w = testing::RandomBlock(c, 11);
    std::mt19937 rng(12);
    const int64_t seq_len = 40;
    model::BlockHessians h_cpu = model::BlockHessians::Zeros(c);
    model::BlockHessians h_gpu = model::BlockHessians::Zeros(c);
    absl::StatusOr<std::unique_ptr<BlockRunner>> cpu = cpu_.PrepareBlock(c, w, seq_len, &h_cpu);
    absl::StatusOr<std::unique_ptr<BlockRunner>> gpu = gpu_->PrepareBlock(c, w, seq_len, &h_gpu);
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    for (int64_t sequences : {3, 1}) {
      const model::RowMatrixF input =
          testing::RandomRows(sequences * seq_len, c.hidden_size, 1.0f, &rng);
      model::RowMatrixF a = input, b = input;
      ASSERT_TRUE((*cpu)->Forward(&a).ok());
      absl::Status s = (*gpu)->Forward(&b);
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_LT((a - b).norm() / a.norm(), 1e-5) << "bias " << bias;
      EXPECT_GT((b - input).norm(), 0.1 * input.norm());  // the block did run
    }
    ASSERT_TRUE((*gpu)->Flush().ok());
    ASSERT_TRUE((*gpu)->Flush().ok());  // a second flush adds nothing
    EXPECT_EQ(h_gpu.tokens, h_cpu.tokens);
    for (auto [x, y] :
         {std::pair{&h_gpu.q_proj, &h_cpu.q_proj}, std::pair{&h_gpu.o_proj, &h_cpu.o_proj},
          std::pair{&h_gpu.gate_proj, &h_cpu.gate_proj},
          std::pair{&h_gpu.down_proj, &h_cpu.down_proj}}) {
      model::Symmetrize(x);
      model::Symmetrize(y);
      EXPECT_LT((*x - *y).norm() / y->norm(), 1e-4) << "bias " << bias;
    }
  }
}

}  // namespace
}  // namespace caldera::backend
