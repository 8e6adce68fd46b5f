// Bit allocation (--target-bits B) across the matrices of one block: each
// matrix has a few decomposed candidates (stored bits, weighted error); choose
// one per matrix so that the block's stored bits stay within B bits per
// parameter and the sum of the errors is smallest -- a multiple-choice
// knapsack. Pure and deterministic: the sequential calibration of block l+1
// (which runs the compressed block l) and finalize call it on the same inputs
// and get the same choice (pipeline/budget_candidates.cc).
//
// Method: a Lagrangian pass (each matrix's lower convex hull of (bits, error),
// its steps taken in order of error saved per bit while they fit), a greedy
// fill of the slack that is left, then a depth-first branch and bound from
// that solution which makes the result exact (the tests compare it with
// brute force). Past kMaxAllocationNodes nodes the bound search stops and
// the best solution found so far is returned (never the case for a block's
// 7 matrices with their ~8 candidates each).
#ifndef CALDERA_JOB_BIT_ALLOCATION_H_
#define CALDERA_JOB_BIT_ALLOCATION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace caldera::job {

struct AllocationOption {
  int64_t storage_bits = 0;  // every stored bit of this candidate
  double error = 0;          // what the allocation minimises the sum of (>= 0)
};

struct AllocationItem {
  int64_t params = 0;  // the matrix's parameters (rows x cols)
  std::vector<AllocationOption> options;
};

inline constexpr int64_t kMaxAllocationNodes = 2'000'000;

// One option index per item, minimising Σ error subject to
// Σ storage_bits <= target_bits · Σ params. Ties: the smaller total of
// stored bits, then the lexicographically smallest index vector (items in
// the given order, options in the given order). INVALID_ARGUMENT when an
// item has no options, params < 1 or a negative / non-finite error or bits;
// FAILED_PRECONDITION (naming the smallest achievable bits per parameter)
// when even the cheapest option of every item exceeds the budget.
absl::StatusOr<std::vector<int>> AllocateBits(const std::vector<AllocationItem>& items,
                                              double target_bits);

// The budget in bits of `items` at `target_bits`, as AllocateBits applies it
// (floor of target_bits · Σ params, with 1e-9 relative slack for rounding).
int64_t BudgetBits(const std::vector<AllocationItem>& items, double target_bits);

}  // namespace caldera::job

#endif  // CALDERA_JOB_BIT_ALLOCATION_H_
