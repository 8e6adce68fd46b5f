// Bit budgets (--target-bits B): the settings a matrix may get so that its
// block's stored bits per parameter stay within B, and the spec that runs one.
//
// The candidates are the settings of the measured quality frontier
// (bench/quality_bench.py on stories260K): LDLQ with E8P 2-bit Q (row scales
// or one global scale), LDLQ with uniform 3/4/5-bit Q at group sizes
// 128/64/32 or one group per row, CALDERA with E8P 2-bit or
// uniform 3-bit Q plus an L·R worth a fixed share of bits. The L·R rank is
// derived from the shape (rank = share · rows · cols / ((rows + cols) ·
// lr_bits)), so the same candidate costs the same bits on a 64-wide toy and a
// 4096-wide matrix. The decompose task runs the few candidates whose estimate
// is closest below B and a few above it (BudgetWindow) and stores them all;
// per block, AllocateBits (job/bit_allocation.h) then picks one per matrix so
// that the block's average stays within B (pipeline/budget_candidates.h).
#ifndef CALDERA_JOB_BIT_BUDGET_H_
#define CALDERA_JOB_BIT_BUDGET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "job/job_spec.h"

namespace caldera::job {

// --target-bits is 0 (off) or in [kMinTargetBits, kMaxTargetBits].
inline constexpr double kMinTargetBits = 2.0;
inline constexpr double kMaxTargetBits = 8.0;

struct BudgetCandidate {
  decompose::Method method = decompose::Method::kLdlq;  // ldlq | caldera
  quant::Quantizer quantizer = quant::Quantizer::kE8p;  // Q's; L and R use the same kind
  int q_bits = 2;
  int64_t q_group_size = 128;
  int64_t rank = 0;  // L·R rank for this shape (caldera), else 0
  // LDLQ E8P: fp16 row scales (DecomposeOptionsFor's default) or, false, one
  // global scale ("ldlq e8p2 global": 2 + ~0.02 bits per parameter).
  bool row_scales = true;
  double estimated_bits = 0.0;  // bits per parameter before running it
  // "ldlq uniform3 g32", "caldera r8 e8p2", as report.json's "setting".
  std::string Label() const;
};

// The block allocation's window (bit_allocation.h): per matrix the
// kBudgetWindowCountBelow largest estimates within the budget and the
// kBudgetWindowCountAbove smallest above it, up to kBudgetWindowAbove bits
// above it.
inline constexpr double kBudgetWindowAbove = 1.0;
inline constexpr int kBudgetWindowCountBelow = 4;
inline constexpr int kBudgetWindowCountAbove = 3;

// Checks --target-bits alone: 0, or finite and within the range above.
absl::Status ValidateTargetBits(double target_bits);

// The candidates for a rows x cols matrix whose estimate is within `budget`,
// best (largest estimate) first, at most `max_count`. Empty when even the
// smallest setting's estimate exceeds the budget.
// With serve = kVllm, the candidates are those --serve vllm allows (int Q,
// 16-bit L·R, groups that divide the row; bit_budget.cc kServeTemplates);
// with kLlamacpp, LDLQ int4 / int8 at group 32 (GGUF's Q4_0 / Q8_0) and q4k
// (Q4_K) where the row is a multiple of 256 columns.
std::vector<BudgetCandidate> BudgetCandidates(double budget, int lr_bits, int64_t rows,
                                              int64_t cols, int max_count,
                                              Serve serve = Serve::kNone);

// The window's candidates for a rows x cols matrix: those above the budget
// (largest estimate first), then those within it (largest first). When none
// is within the budget, the cheapest takes their place (the block's other
// matrices may pay for it; AllocateBits refuses when they cannot).
std::vector<BudgetCandidate> BudgetWindow(double budget, int lr_bits, int64_t rows, int64_t cols,
                                          Serve serve = Serve::kNone);

// The decomposition options of a candidate: DecomposeOptionsFor(WithCandidate)
// plus its E8P scale choice (row_scales false: one global scale).
decompose::DecomposeOptions CandidateOptions(const JobSpec& spec, const BudgetCandidate& c);

// The smallest estimate of any candidate for this shape (for the message
// when nothing fits).
double SmallestEstimatedBits(int lr_bits, int64_t rows, int64_t cols, Serve serve = Serve::kNone);

// `spec` with the candidate's method, quantizer, Q bits, group size and rank;
// everything else (lr_bits, iters, seed, incoherence, ...) kept.
JobSpec WithCandidate(const JobSpec& spec, const BudgetCandidate& c);

}  // namespace caldera::job

#endif  // CALDERA_JOB_BIT_BUDGET_H_
