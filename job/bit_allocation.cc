#include "job/bit_allocation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace caldera::job {
namespace {

struct Solution {
  std::vector<int> choice;
  int64_t bits = 0;
  double error = 0;
};

// Σ of the chosen options, summed in item order (so equal choices give equal
// totals bit for bit, whoever computes them).
Solution Evaluate(const std::vector<AllocationItem>& items, std::vector<int> choice) {
  Solution s;
  for (size_t i = 0; i < items.size(); ++i) {
    const AllocationOption& o = items[i].options[static_cast<size_t>(choice[i])];
    s.bits += o.storage_bits;
    s.error += o.error;
  }
  s.choice = std::move(choice);
  return s;
}

bool Better(const Solution& a, const Solution& b) {
  if (a.error != b.error) return a.error < b.error;
  if (a.bits != b.bits) return a.bits < b.bits;
  return a.choice < b.choice;
}

// The options of one item on its lower convex hull of (bits, error), cheapest
// first: each step buys less error per bit than the one before.
std::vector<int> Hull(const AllocationItem& item) {
  std::vector<int> order(item.options.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const AllocationOption &x = item.options[static_cast<size_t>(a)],
                           &y = item.options[static_cast<size_t>(b)];
    return x.storage_bits != y.storage_bits ? x.storage_bits < y.storage_bits : x.error < y.error;
  });
  std::vector<int> hull;
  for (int k : order) {
    const AllocationOption& p = item.options[static_cast<size_t>(k)];
    if (!hull.empty() && p.error >= item.options[static_cast<size_t>(hull.back())].error) continue;
    while (hull.size() >= 2) {
      const AllocationOption& a = item.options[static_cast<size_t>(hull[hull.size() - 2])];
      const AllocationOption& b = item.options[static_cast<size_t>(hull.back())];
      // b lies on or above the segment a -> p: drop it.
      const double cross =
          (static_cast<double>(b.storage_bits - a.storage_bits)) * (p.error - a.error) -
          (b.error - a.error) * static_cast<double>(p.storage_bits - a.storage_bits);
      if (cross <= 0) {
        hull.pop_back();
      } else {
        break;
      }
    }
    hull.push_back(k);
  }
  return hull;
}

// The Lagrangian pass: start from every item's cheapest hull point and take
// hull steps in order of error saved per bit while they fit.
std::vector<int> Lagrangian(const std::vector<AllocationItem>& items, int64_t budget) {
  const size_t n = items.size();
  std::vector<std::vector<int>> hulls(n);
  std::vector<size_t> at(n, 0);
  std::vector<int> choice(n);
  int64_t bits = 0;
  for (size_t i = 0; i < n; ++i) {
    hulls[i] = Hull(items[i]);
    choice[i] = hulls[i][0];
    bits += items[i].options[static_cast<size_t>(choice[i])].storage_bits;
  }
  std::vector<bool> blocked(n, false);
  for (;;) {
    int best = -1;
    double best_slope = 0;
    for (size_t i = 0; i < n; ++i) {
      if (blocked[i] || at[i] + 1 >= hulls[i].size()) continue;
      const AllocationOption& a = items[i].options[static_cast<size_t>(hulls[i][at[i]])];
      const AllocationOption& b = items[i].options[static_cast<size_t>(hulls[i][at[i] + 1])];
      const double slope = (a.error - b.error) / static_cast<double>(std::max<int64_t>(
                                                     1, b.storage_bits - a.storage_bits));
      if (best < 0 || slope > best_slope) {
        best = static_cast<int>(i);
        best_slope = slope;
      }
    }
    if (best < 0) break;
    const size_t i = static_cast<size_t>(best);
    const AllocationOption& a = items[i].options[static_cast<size_t>(hulls[i][at[i]])];
    const AllocationOption& b = items[i].options[static_cast<size_t>(hulls[i][at[i] + 1])];
    if (bits - a.storage_bits + b.storage_bits > budget) {
      blocked[i] = true;  // its later steps cost more still
      continue;
    }
    bits += b.storage_bits - a.storage_bits;
    ++at[i];
    choice[i] = hulls[i][at[i]];
  }
  return choice;
}

// The greedy fill: while some single change of one item's option lowers the
// error and fits the slack, make the one that lowers it most.
void FillSlack(const std::vector<AllocationItem>& items, int64_t budget, std::vector<int>* choice) {
  int64_t bits = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    bits += items[i].options[static_cast<size_t>((*choice)[i])].storage_bits;
  }
  for (;;) {
    int bi = -1, bj = -1;
    double gain = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      const AllocationOption& cur = items[i].options[static_cast<size_t>((*choice)[i])];
      for (size_t j = 0; j < items[i].options.size(); ++j) {
        const AllocationOption& o = items[i].options[j];
        if (bits - cur.storage_bits + o.storage_bits > budget) continue;
        if (cur.error - o.error > gain) {
          gain = cur.error - o.error;
          bi = static_cast<int>(i);
          bj = static_cast<int>(j);
        }
      }
    }
    if (bi < 0) return;
    const size_t i = static_cast<size_t>(bi);
    bits += items[i].options[static_cast<size_t>(bj)].storage_bits -
            items[i].options[static_cast<size_t>((*choice)[i])].storage_bits;
    (*choice)[i] = bj;
  }
}

// Depth-first branch and bound over items in order, options in order (so
// among equal solutions the first found is the lexicographically smallest).
class BranchAndBound {
 public:
  BranchAndBound(const std::vector<AllocationItem>& items, int64_t budget, Solution incumbent)
      : items_(items), budget_(budget), best_(std::move(incumbent)) {
    const size_t n = items.size();
    min_bits_after_.assign(n + 1, 0);
    min_error_after_.assign(n + 1, 0.0);
    for (size_t i = n; i-- > 0;) {
      int64_t b = std::numeric_limits<int64_t>::max();
      double e = std::numeric_limits<double>::infinity();
      for (const AllocationOption& o : items[i].options) {
        b = std::min(b, o.storage_bits);
        e = std::min(e, o.error);
      }
      min_bits_after_[i] = min_bits_after_[i + 1] + b;
      min_error_after_[i] = min_error_after_[i + 1] + e;
    }
    current_.assign(n, 0);
  }

  Solution Run() {
    Visit(0, 0, 0.0);
    return best_;
  }

 private:
  void Visit(size_t k, int64_t bits, double error) {
    if (++nodes_ > kMaxAllocationNodes) return;
    if (k == items_.size()) {
      Solution s{current_, bits, error};
      if (Better(s, best_)) best_ = std::move(s);
      return;
    }
    for (size_t j = 0; j < items_[k].options.size(); ++j) {
      const AllocationOption& o = items_[k].options[j];
      const int64_t nb = bits + o.storage_bits;
      if (nb + min_bits_after_[k + 1] > budget_) continue;
      const double ne = error + o.error;
      // A lower bound; the slack keeps ties (summed in another order) alive.
      if (ne + min_error_after_[k + 1] > best_.error * (1 + 1e-12) + 1e-300) continue;
      current_[k] = static_cast<int>(j);
      Visit(k + 1, nb, ne);
    }
  }

  const std::vector<AllocationItem>& items_;
  const int64_t budget_;
  Solution best_;
  std::vector<int64_t> min_bits_after_;
  std::vector<double> min_error_after_;
  std::vector<int> current_;
  int64_t nodes_ = 0;
};

}  // namespace

int64_t BudgetBits(const std::vector<AllocationItem>& items, double target_bits) {
  double params = 0;
  for (const AllocationItem& it : items) params += static_cast<double>(it.params);
  return static_cast<int64_t>(std::floor(target_bits * params * (1 + 1e-9)));
}

absl::StatusOr<std::vector<int>> AllocateBits(const std::vector<AllocationItem>& items,
                                              double target_bits) {
  if (!std::isfinite(target_bits) || target_bits <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("bit allocation: target ", target_bits,
                                                   " bits per parameter is not positive"));
  }
  int64_t min_bits = 0, params = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const AllocationItem& it = items[i];
    if (it.params < 1 || it.options.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bit allocation: matrix ", i, " has no candidates or no parameters"));
    }
    int64_t b = std::numeric_limits<int64_t>::max();
    for (const AllocationOption& o : it.options) {
      if (o.storage_bits < 0 || !std::isfinite(o.error) || o.error < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "bit allocation: matrix ", i, " has a candidate with negative bits or a bad error"));
      }
      b = std::min(b, o.storage_bits);
    }
    min_bits += b;
    params += it.params;
  }
  const int64_t budget = BudgetBits(items, target_bits);
  if (min_bits > budget) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the cheapest candidates need ",
        absl::SixDigits(static_cast<double>(min_bits) / static_cast<double>(params)),
        " bits per parameter, above the budget of ", target_bits, "; raise --target-bits"));
  }
  std::vector<int> choice = Lagrangian(items, budget);
  FillSlack(items, budget, &choice);
  return BranchAndBound(items, budget, Evaluate(items, std::move(choice))).Run().choice;
}

}  // namespace caldera::job
