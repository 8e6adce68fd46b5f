#include "job/bit_budget.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "core/decompose/caldera.h"
#include "gtest/gtest.h"

namespace caldera::job {
namespace {

TEST(BitBudgetTest, TargetBitsRange) {
  EXPECT_TRUE(ValidateTargetBits(0).ok());
  EXPECT_TRUE(ValidateTargetBits(3.5).ok());
  for (double bad : {1.9, 8.5, -1.0, std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity()}) {
    absl::Status s = ValidateTargetBits(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("--target-bits"), std::string::npos) << s.message();
  }
}

TEST(BitBudgetTest, CandidatesFitTheBudgetBestFirst) {
  for (double budget : {2.3, 3.0, 3.6, 4.3, 8.0}) {
    const std::vector<BudgetCandidate> c = BudgetCandidates(budget, 4, 64, 64, 100);
    ASSERT_FALSE(c.empty()) << budget;
    for (size_t i = 0; i < c.size(); ++i) {
      EXPECT_LE(c[i].estimated_bits, budget + 1e-9) << c[i].Label();
      if (i > 0) {
        EXPECT_GE(c[i - 1].estimated_bits, c[i].estimated_bits);
      }
    }
  }
  EXPECT_EQ(BudgetCandidates(8.0, 4, 64, 64, 2).size(), 2u);
  // stories260K's 64-wide matrices: E8P 2-bit needs 2 + 16/64 bits with row
  // scales; with one global scale 2 + 128/4096 (the only setting below 2.2).
  EXPECT_TRUE(BudgetCandidates(2.0, 4, 64, 64, 10).empty());
  ASSERT_EQ(BudgetCandidates(2.2, 4, 64, 64, 10).size(), 1u);
  EXPECT_EQ(BudgetCandidates(2.2, 4, 64, 64, 10)[0].Label(), "ldlq e8p2 global");
  EXPECT_DOUBLE_EQ(SmallestEstimatedBits(4, 64, 64), 2.0 + 128.0 / 4096);
  // At 4.3 bits the best estimate is uniform 4-bit with one scale per row.
  EXPECT_EQ(BudgetCandidates(4.3, 4, 64, 64, 1)[0].Label(), "ldlq uniform4 g128");
  // g64, g128 and per channel are one setting on a 64-wide matrix: listed once.
  EXPECT_EQ(BudgetCandidates(3.3, 4, 64, 64, 100).size(), 7u);
  // On a 172-wide row, per channel (one group) is a setting of its own.
  bool per_channel = false;
  for (const BudgetCandidate& c : BudgetCandidates(8.0, 4, 64, 172, 100)) {
    per_channel |= c.Label() == "ldlq uniform4 g172";
  }
  EXPECT_TRUE(per_channel);
}

TEST(BitBudgetTest, WindowReachesAboveTheBudget) {
  for (double budget : {2.21, 3.21, 4.21, 4.47}) {
    const std::vector<BudgetCandidate> w = BudgetWindow(budget, 4, 64, 64);
    int above = 0, below = 0;
    for (const BudgetCandidate& c : w) {
      EXPECT_LE(c.estimated_bits, budget + kBudgetWindowAbove) << c.Label();
      (c.estimated_bits > budget + 1e-9 ? above : below)++;
    }
    EXPECT_GE(below, 1) << budget;
    EXPECT_LE(below, kBudgetWindowCountBelow) << budget;
    EXPECT_GE(above, 1) << budget;
    EXPECT_LE(above, kBudgetWindowCountAbove) << budget;
    // Above first, then within, each largest first.
    for (size_t i = 1; i < w.size(); ++i) {
      EXPECT_GE(w[i - 1].estimated_bits, w[i].estimated_bits) << budget;
    }
  }
  // 4.21 on a 64-wide matrix: uniform 4-bit per row (4.25) is above, so the
  // allocation can still give it to some matrices.
  bool u4 = false;
  for (const BudgetCandidate& c : BudgetWindow(4.21, 4, 64, 64)) {
    u4 |= c.Label() == "ldlq uniform4 g128";
  }
  EXPECT_TRUE(u4);
}

TEST(BitBudgetTest, LowRankShareScalesWithTheShape) {
  auto rank_of = [](int64_t rows, int64_t cols) {  // the E8P CALDERA with most L·R
    int64_t rank = -1;
    for (const BudgetCandidate& c : BudgetCandidates(8.0, 4, rows, cols, 100)) {
      if (c.method == decompose::Method::kCaldera && c.quantizer == quant::Quantizer::kE8p)
        rank = std::max(rank, c.rank);
    }
    return rank;
  };
  // 1.5 bits per parameter of 4-bit L·R: rank · (rows + cols) · 4 = 1.5 · rows · cols.
  EXPECT_EQ(rank_of(64, 64), 12);
  EXPECT_EQ(rank_of(4096, 4096), 768);
  EXPECT_EQ(rank_of(172, 64), 17);  // floor(1.5 · 172 · 64 / (236 · 4))
}

TEST(BitBudgetTest, WithCandidateKeepsTheRest) {
  JobSpec s;
  s.lr_bits = 3;
  s.iters = 2;
  s.seed = 9;
  BudgetCandidate c;
  c.method = decompose::Method::kCaldera;
  c.quantizer = quant::Quantizer::kUniform;
  c.q_bits = 3;
  c.q_group_size = 32;
  c.rank = 5;
  const JobSpec t = WithCandidate(s, c);
  EXPECT_EQ(t.method, decompose::Method::kCaldera);
  EXPECT_EQ(t.quantizer, quant::Quantizer::kUniform);
  EXPECT_EQ(t.q_bits, 3);
  EXPECT_EQ(t.q_group_size, 32);
  EXPECT_EQ(t.rank, 5);
  EXPECT_EQ(t.lr_bits, 3);
  EXPECT_EQ(t.iters, 2);
  EXPECT_EQ(t.seed, 9u);
  EXPECT_EQ(c.Label(), "caldera r5 uniform3 g32");
}

// The estimates against the bits the decomposition really stores, for every
// candidate on two shapes: the budget search relies on them to choose what to
// run.
TEST(BitBudgetTest, EstimatesMatchStoredBits) {
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  for (auto [rows, cols] :
       {std::pair<int64_t, int64_t>{64, 64}, {128, 256}, {172, 64}, {64, 172}}) {
    Eigen::MatrixXf w(rows, cols);
    for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = g(rng);
    Eigen::MatrixXd x(cols, 4 * cols);
    for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = g(rng);
    const Eigen::MatrixXd h = x * x.transpose() / static_cast<double>(x.cols());
    for (const BudgetCandidate& c : BudgetCandidates(8.0, 4, rows, cols, 100)) {
      JobSpec s;
      s.iters = 1;
      s.lplr_iters = 1;
      absl::StatusOr<decompose::DecomposeResult> r =
          decompose::Decompose(w, h, CandidateOptions(s, c));
      ASSERT_TRUE(r.ok()) << c.Label() << ": " << r.status();
      EXPECT_NEAR(r->bits_per_param, c.estimated_bits, 1e-9)
          << c.Label() << " on " << rows << "x" << cols;
    }
  }
}

// --serve vllm: the ladder holds only int4 Q (group 128 when it divides the
// row, else one scale per row: one scheme per width, as vLLM's fused q/k/v and
// gate/up need) with or without a 16-bit L·R, and its estimates are the bits
// the decomposition stores.
TEST(BitBudgetTest, ServeLadderIsWhatVllmRuns) {
  std::mt19937 rng(11);
  std::normal_distribution<float> g;
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{64, 64}, {64, 256}, {256, 172}}) {
    const std::vector<BudgetCandidate> all =
        BudgetCandidates(8.0, 16, rows, cols, 100, Serve::kVllm);
    ASSERT_GE(all.size(), 3u);
    Eigen::MatrixXf w(rows, cols);
    for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = g(rng);
    const Eigen::MatrixXd h = Eigen::MatrixXd::Identity(cols, cols);
    for (const BudgetCandidate& c : all) {
      SCOPED_TRACE(c.Label());
      EXPECT_EQ(c.quantizer, quant::Quantizer::kInt);
      EXPECT_EQ(c.q_bits, 4);
      EXPECT_EQ(c.q_group_size, cols % 128 == 0 ? 128 : cols);
      JobSpec s;
      s.serve = Serve::kVllm;
      s.lr_bits = 16;
      s.iters = 1;
      s.lplr_iters = 1;
      const decompose::DecomposeOptions o = CandidateOptions(s, c);
      EXPECT_FALSE(o.hadamard);
      if (c.rank > 0) {
        EXPECT_EQ(o.lr_spec.kind, quant::QuantizerSpec::Kind::kFloat);
      }
      absl::StatusOr<decompose::DecomposeResult> r = decompose::Decompose(w, h, o);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_NEAR(r->bits_per_param, c.estimated_bits, 1e-9);
    }
  }
}

// --serve llamacpp: the ladder holds LDLQ int4 / int8 at group 32 only (GGUF's
// Q4_0 / Q8_0: 4.5 and 8.5 bits per weight plus the 32-bit global scale), and
// the estimates are the bits the decomposition stores.
TEST(BitBudgetTest, LlamacppLadderIsQ4_0AndQ8_0) {
  const int64_t rows = 64, cols = 96;
  const std::vector<BudgetCandidate> all =
      BudgetCandidates(16.0, 16, rows, cols, 100, Serve::kLlamacpp);
  ASSERT_EQ(all.size(), 2u);
  std::mt19937 rng(5);
  std::normal_distribution<float> g;
  Eigen::MatrixXf w(rows, cols);
  for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = g(rng);
  const Eigen::MatrixXd h = Eigen::MatrixXd::Identity(cols, cols);
  for (const BudgetCandidate& c : all) {
    SCOPED_TRACE(c.Label());
    EXPECT_EQ(c.method, decompose::Method::kLdlq);
    EXPECT_EQ(c.quantizer, quant::Quantizer::kInt);
    EXPECT_EQ(c.q_group_size, 32);
    EXPECT_EQ(c.rank, 0);
    EXPECT_NEAR(c.estimated_bits, c.q_bits + 0.5 + 32.0 / (rows * cols), 1e-9);
    JobSpec s;
    s.serve = Serve::kLlamacpp;
    const decompose::DecomposeOptions o = CandidateOptions(s, c);
    EXPECT_FALSE(o.hadamard);
    absl::StatusOr<decompose::DecomposeResult> r = decompose::Decompose(w, h, o);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_NEAR(r->bits_per_param, c.estimated_bits, 1e-9);
  }
  EXPECT_EQ(all[0].q_bits, 8);
  EXPECT_EQ(all[1].q_bits, 4);
}

}  // namespace
}  // namespace caldera::job
