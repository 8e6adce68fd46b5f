#include "job/bit_allocation.h"

#include <random>

#include "gtest/gtest.h"

namespace caldera::job {
namespace {

// Every combination, items in order; ties as AllocateBits breaks them (the
// first combination in lexicographic order with the smallest error, then the
// smallest bits). Errors are summed in item order, as AllocateBits does.
std::vector<int> BruteForce(const std::vector<AllocationItem>& items, double target_bits) {
  const int64_t budget = BudgetBits(items, target_bits);
  std::vector<int> cur(items.size(), 0), best;
  double best_error = 0;
  int64_t best_bits = 0;
  for (;;) {
    int64_t bits = 0;
    double error = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      bits += items[i].options[static_cast<size_t>(cur[i])].storage_bits;
      error += items[i].options[static_cast<size_t>(cur[i])].error;
    }
    if (bits <= budget &&
        (best.empty() || error < best_error || (error == best_error && bits < best_bits))) {
      best = cur, best_error = error, best_bits = bits;
    }
    size_t k = items.size();
    while (k > 0) {
      --k;
      if (++cur[k] < static_cast<int>(items[k].options.size())) break;
      cur[k] = 0;
      if (k == 0) return best;
    }
    if (items.empty()) return best;
  }
}

double TotalError(const std::vector<AllocationItem>& items, const std::vector<int>& c) {
  double e = 0;
  for (size_t i = 0; i < items.size(); ++i) e += items[i].options[static_cast<size_t>(c[i])].error;
  return e;
}

int64_t TotalBits(const std::vector<AllocationItem>& items, const std::vector<int>& c) {
  int64_t b = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    b += items[i].options[static_cast<size_t>(c[i])].storage_bits;
  }
  return b;
}

TEST(BitAllocationTest, MatchesBruteForceOnRandomInstances) {
  std::mt19937 rng(11);
  int checked = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 6);
    std::vector<AllocationItem> items(static_cast<size_t>(n));
    for (AllocationItem& it : items) {
      it.params = 64 + static_cast<int64_t>(rng() % 200);
      const int k = 1 + static_cast<int>(rng() % 6);
      for (int j = 0; j < k; ++j) {
        AllocationOption o;
        // 2 to 6 bits per parameter; errors falling with bits, noisy (not convex).
        const double bpp = 2.0 + 4.0 * std::uniform_real_distribution<double>(0, 1)(rng);
        o.storage_bits = static_cast<int64_t>(bpp * static_cast<double>(it.params));
        o.error = std::exp(-bpp) * (0.5 + std::uniform_real_distribution<double>(0, 1)(rng));
        it.options.push_back(o);
      }
    }
    const double target = 2.0 + 4.0 * std::uniform_real_distribution<double>(0, 1)(rng);
    const std::vector<int> want = BruteForce(items, target);
    absl::StatusOr<std::vector<int>> got = AllocateBits(items, target);
    if (want.empty()) {
      EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition) << trial;
      continue;
    }
    ASSERT_TRUE(got.ok()) << trial << ": " << got.status();
    EXPECT_EQ(TotalError(items, *got), TotalError(items, want)) << "trial " << trial;
    EXPECT_EQ(*got, want) << "trial " << trial;
    EXPECT_LE(TotalBits(items, *got), BudgetBits(items, target)) << trial;
    ++checked;
  }
  EXPECT_GT(checked, 200);
}

TEST(BitAllocationTest, MovesBitsBetweenMatrices) {
  // Two equal matrices: A gains much from 4 bits, B little. At 3.5 bits
  // average, A gets 4 (above the budget) and B 3.
  std::vector<AllocationItem> items(2);
  for (AllocationItem& it : items) it.params = 100;
  items[0].options = {{300, 10.0}, {400, 1.0}};
  items[1].options = {{300, 2.0}, {400, 1.9}};
  absl::StatusOr<std::vector<int>> c = AllocateBits(items, 3.5);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, (std::vector<int>{1, 0}));
  // The budget is the sum: 3.49 bits does not allow 700.
  c = AllocateBits(items, 3.49);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, (std::vector<int>{0, 0}));
  // Plenty of budget: both at their best.
  c = AllocateBits(items, 8);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, (std::vector<int>{1, 1}));
}

TEST(BitAllocationTest, TiesGoToFewerBitsThenTheFirstOption) {
  std::vector<AllocationItem> items(2);
  for (AllocationItem& it : items) it.params = 10;
  // Equal errors: the cheaper option wins.
  items[0].options = {{40, 1.0}, {30, 1.0}};
  // Equal errors and bits: the first option wins.
  items[1].options = {{30, 2.0}, {30, 2.0}, {20, 3.0}};
  absl::StatusOr<std::vector<int>> c = AllocateBits(items, 8);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, (std::vector<int>{1, 0}));
  // Same inputs, same answer.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*AllocateBits(items, 8), *c);
  // Across items: equal totals either way; the lexicographically first.
  std::vector<AllocationItem> sym(2);
  for (AllocationItem& it : sym) {
    it.params = 10;
    it.options = {{20, 2.0}, {40, 1.0}};
  }
  c = AllocateBits(sym, 3.0);  // room for one upgrade only
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, (std::vector<int>{0, 1}));
}

TEST(BitAllocationTest, RefusesWhatCannotFit) {
  std::vector<AllocationItem> items(1);
  items[0].params = 100;
  items[0].options = {{300, 1.0}};
  absl::StatusOr<std::vector<int>> c = AllocateBits(items, 2.5);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(c.status().message().find("raise --target-bits"), std::string::npos);
  items[0].options.clear();
  EXPECT_EQ(AllocateBits(items, 4).status().code(), absl::StatusCode::kInvalidArgument);
  items[0].options = {{300, -1.0}};
  EXPECT_EQ(AllocateBits(items, 4).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caldera::job
