#include "job/bit_budget.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "absl/strings/str_cat.h"
#include "core/transform/hadamard.h"

namespace caldera::job {
namespace {

// A candidate before its shape is known: the L·R share in bits per parameter
// (0 = no L·R).
struct Template {
  decompose::Method method;
  quant::Quantizer quantizer;
  int q_bits;
  int64_t q_group_size;  // 0: one group per row (per channel)
  double lr_share;
  bool row_scales = true;  // E8P without L·R: fp16 row scales, else one global scale
};

constexpr decompose::Method kCaldera = decompose::Method::kCaldera;
constexpr decompose::Method kLdlq = decompose::Method::kLdlq;
constexpr quant::Quantizer kE8p = quant::Quantizer::kE8p;
constexpr quant::Quantizer kUniform = quant::Quantizer::kUniform;
constexpr quant::Quantizer kInt = quant::Quantizer::kInt;
constexpr quant::Quantizer kQ4k = quant::Quantizer::kQ4k;

constexpr Template kTemplates[] = {
    {kLdlq, kE8p, 2, 128, 0.0},
    {kCaldera, kE8p, 2, 128, 0.25},
    {kCaldera, kE8p, 2, 128, 0.5},
    {kCaldera, kE8p, 2, 128, 0.75},
    {kCaldera, kE8p, 2, 128, 1.0},
    {kCaldera, kE8p, 2, 128, 1.5},
    {kLdlq, kUniform, 3, 128, 0.0},
    {kLdlq, kUniform, 3, 64, 0.0},
    {kLdlq, kUniform, 3, 32, 0.0},
    {kCaldera, kUniform, 3, 128, 0.25},
    {kCaldera, kUniform, 3, 128, 0.5},
    {kCaldera, kUniform, 3, 128, 0.75},
    {kLdlq, kUniform, 4, 128, 0.0},
    {kLdlq, kUniform, 4, 64, 0.0},
    {kLdlq, kUniform, 4, 32, 0.0},
    {kCaldera, kUniform, 4, 128, 0.25},
    // Lower-bit points for the block allocation (bit_allocation.h): E8P with
    // one global scale (2 + ~0.02 bits), uniform per channel (one group per
    // row, also on rows longer than 128), and uniform 5-bit.
    {kLdlq, kE8p, 2, 128, 0.0, false},
    {kLdlq, kUniform, 3, 0, 0.0},
    {kLdlq, kUniform, 4, 0, 0.0},
    {kLdlq, kUniform, 5, 128, 0.0},
    {kLdlq, kUniform, 5, 0, 0.0},
};

// --serve vllm: only what compressed-tensors stores and vLLM's int kernels run
// (job_spec.h Serve): Q on the int4 grid with one group size per shape
// (kServedGroup: 128 columns when that divides the row, else one scale per
// row), with or without an L·R kept as a 16-bit LoRA adapter (lr_bits 16;
// shares of 1/8 to 2 bits per parameter). One Q scheme per shape because
// vLLM fuses q/k/v and gate/up, which share their input width, into one
// kernel that needs one scheme; only the L·R rank differs between them.
constexpr int64_t kServedGroup = -1;
constexpr Template kServeTemplates[] = {
    {kLdlq, kInt, 4, kServedGroup, 0.0},     {kCaldera, kInt, 4, kServedGroup, 0.125},
    {kCaldera, kInt, 4, kServedGroup, 0.25}, {kCaldera, kInt, 4, kServedGroup, 0.5},
    {kCaldera, kInt, 4, kServedGroup, 1.0},  {kCaldera, kInt, 4, kServedGroup, 2.0},
};

// --serve llamacpp: LDLQ on the int grid at group 32, exactly GGUF's Q4_0
// (4.5 bits) and Q8_0 (8.5 bits), and on Q4_K's grid (4.5 bits, rows of a
// multiple of 256 columns only); no L·R (a GGUF base holds Q only).
constexpr Template kLlamacppTemplates[] = {
    {kLdlq, kInt, 4, 32, 0.0},
    {kLdlq, kQ4k, 4, 256, 0.0},
    {kLdlq, kInt, 8, 32, 0.0},
};

std::span<const Template> TemplatesFor(Serve serve) {
  if (serve == Serve::kVllm) return kServeTemplates;
  if (serve == Serve::kLlamacpp) return kLlamacppTemplates;
  return kTemplates;
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The size a dimension is padded to: a multiple of `block` (the E8P blocks
// along it: 8 for Q's columns and for both sides of E8P factors, else 1) and,
// with the Hadamard transform (E8P: incoherence auto), a size the transform
// accepts -- the rule core/decompose applies.
int64_t PaddedDim(int64_t n, bool e8p, int64_t block) {
  if (!e8p) return n;
  for (int64_t v = CeilDiv(n, block) * block;; v += block) {
    if (transform::HadamardTransform::Create(v).ok()) return v;
  }
}

// Stored bits of one candidate on a rows x cols matrix, as the decomposition
// counts them (checked against it in bit_budget_test): Q's codes over the
// padded shape; its fp16 scales (uniform: one per group of a row; E8P without
// L·R: one per row); a float32 global scale; the 64-bit Hadamard seed (E8P);
// and per rank component of L·R its codes plus fp16 scales (uniform: one per
// group along each factor; E8P: one per component in each factor) and, for
// E8P, the factors' own float32 scale.
double StoredBits(const Template& t, int64_t rank, int lr_bits, int64_t rows, int64_t cols) {
  if (t.quantizer == kQ4k) {
    // Q4_K: 4-bit codes, 6-bit scale and minimum per 32 columns, fp16 d and
    // dmin per 256; the record's float32 global scale (1.0).
    const double m = static_cast<double>(rows), n = static_cast<double>(cols);
    return 4 * m * n + 12 * m * static_cast<double>(cols / 32) +
           32 * m * static_cast<double>(cols / 256) + 32;
  }
  if (t.quantizer == kInt) {
    // No transform, no padding; fp16 scales per group; the float32 global
    // scale (1.0 for int); 16-bit factors (lr_bits >= 16) store no scales.
    const double m = static_cast<double>(rows), n = static_cast<double>(cols);
    const double lr = lr_bits >= 16 ? lr_bits * (m + n)
                                    : lr_bits * (m + n) +
                                          16.0 * static_cast<double>(CeilDiv(rows, t.q_group_size) +
                                                                     CeilDiv(cols, t.q_group_size));
    return t.q_bits * m * n + 16.0 * m * static_cast<double>(CeilDiv(cols, t.q_group_size)) + 32 +
           static_cast<double>(rank) * lr;
  }
  const bool uniform = t.quantizer == kUniform;
  const double mp = static_cast<double>(PaddedDim(rows, !uniform, rank > 0 ? 8 : 1));
  const double np = static_cast<double>(PaddedDim(cols, !uniform, 8));
  double bits = t.q_bits * mp * np + 32;
  if (uniform) {
    bits += 16.0 * mp * static_cast<double>(CeilDiv(cols, t.q_group_size));
  } else {
    bits += 64;                                    // Hadamard seed
    bits += rank == 0 && t.row_scales ? 16.0 * mp  // row scales of Q
                                      : 32;        // Q's or L·R's global scale
  }
  const double per_rank =
      lr_bits * (mp + np) + (uniform ? 16.0 * static_cast<double>(CeilDiv(rows, t.q_group_size) +
                                                                  CeilDiv(cols, t.q_group_size))
                                     : 32.0);
  return bits + static_cast<double>(rank) * per_rank;
}

BudgetCandidate Instantiate(const Template& t, int lr_bits, int64_t rows, int64_t cols) {
  BudgetCandidate c;
  c.method = t.method;
  c.quantizer = t.quantizer;
  c.q_bits = t.q_bits;
  c.q_group_size = t.q_group_size == 0 ? cols : t.q_group_size;
  c.row_scales = t.row_scales;
  const double mn = static_cast<double>(rows) * static_cast<double>(cols);
  if (t.lr_share > 0) {
    // The rank whose L·R codes take lr_share bits per parameter.
    const double per_rank = static_cast<double>(rows + cols) * lr_bits / mn;
    c.rank = std::max<int64_t>(
        1, std::min<int64_t>(std::min(rows, cols),
                             static_cast<int64_t>(std::floor(t.lr_share / per_rank + 1e-9))));
  }
  Template sized = t;
  sized.q_group_size = c.q_group_size;
  c.estimated_bits = StoredBits(sized, c.rank, lr_bits, rows, cols) / mn;
  return c;
}

}  // namespace

std::string BudgetCandidate::Label() const {
  std::string q = absl::StrCat(quant::QuantizerName(quantizer), q_bits);
  if (quantizer == kUniform || quantizer == kInt) absl::StrAppend(&q, " g", q_group_size);
  if (quantizer == kE8p && method != kCaldera && !row_scales) absl::StrAppend(&q, " global");
  return method == kCaldera ? absl::StrCat("caldera r", rank, " ", q)
                            : absl::StrCat(decompose::MethodName(method), " ", q);
}

absl::Status ValidateTargetBits(double target_bits) {
  if (target_bits == 0) return absl::OkStatus();
  if (!std::isfinite(target_bits) || target_bits < kMinTargetBits || target_bits > kMaxTargetBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target-bits ", target_bits, " is out of range; use 0 (off) or ",
                     kMinTargetBits, " to ", kMaxTargetBits, " bits per parameter (e.g. 3 or 4)"));
  }
  return absl::OkStatus();
}

namespace {

// Every template instantiated for the shape, each setting once, in template order.
std::vector<BudgetCandidate> AllCandidates(int lr_bits, int64_t rows, int64_t cols, Serve serve) {
  std::vector<BudgetCandidate> out;
  if (rows < 1 || cols < 1 || lr_bits < 1) return out;
  for (const Template& t : TemplatesFor(serve)) {
    // A served group divides the row (else one scale per row).
    Template sized = t;
    if (t.q_group_size == kServedGroup) sized.q_group_size = cols % 128 == 0 ? 128 : 0;
    if (t.quantizer == kQ4k && cols % 256 != 0) continue;  // Q4_K's super-blocks
    BudgetCandidate c = Instantiate(sized, lr_bits, rows, cols);
    // Without L·R, group sizes >= the row length are one setting (one scale
    // per row): run it once. (With L·R the group size also splits the
    // factors, so they differ.)
    const bool seen = std::any_of(out.begin(), out.end(), [&](const BudgetCandidate& o) {
      return o.method == c.method && o.quantizer == c.quantizer && o.q_bits == c.q_bits &&
             o.rank == c.rank && o.row_scales == c.row_scales &&
             ((c.quantizer != kUniform && c.quantizer != kInt) ||
              o.q_group_size == c.q_group_size ||
              (c.rank == 0 && std::min(o.q_group_size, cols) == std::min(c.q_group_size, cols)));
    });
    if (!seen) out.push_back(std::move(c));
  }
  return out;
}

void LargestFirst(std::vector<BudgetCandidate>* v) {
  std::stable_sort(v->begin(), v->end(), [](const BudgetCandidate& a, const BudgetCandidate& b) {
    return a.estimated_bits > b.estimated_bits;
  });
}

}  // namespace

std::vector<BudgetCandidate> BudgetCandidates(double budget, int lr_bits, int64_t rows,
                                              int64_t cols, int max_count, Serve serve) {
  std::vector<BudgetCandidate> out;
  for (BudgetCandidate& c : AllCandidates(lr_bits, rows, cols, serve)) {
    if (c.estimated_bits <= budget + 1e-9) out.push_back(std::move(c));
  }
  LargestFirst(&out);
  if (out.size() > static_cast<size_t>(std::max(0, max_count))) out.resize(std::max(0, max_count));
  return out;
}

std::vector<BudgetCandidate> BudgetWindow(double budget, int lr_bits, int64_t rows, int64_t cols,
                                          Serve serve) {
  std::vector<BudgetCandidate> above, below;
  for (BudgetCandidate& c : AllCandidates(lr_bits, rows, cols, serve)) {
    if (c.estimated_bits <= budget + 1e-9) {
      below.push_back(std::move(c));
    } else if (c.estimated_bits <= budget + kBudgetWindowAbove) {
      above.push_back(std::move(c));
    }
  }
  LargestFirst(&below);
  LargestFirst(&above);
  if (below.empty() && !above.empty()) {
    // None fits alone (a padded shape such as E8P on 172 columns): the
    // cheapest, which the block's other matrices may pay for.
    below.push_back(std::move(above.back()));
    above.pop_back();
  }
  if (below.size() > static_cast<size_t>(kBudgetWindowCountBelow)) {
    below.resize(kBudgetWindowCountBelow);
  }
  // The cheapest ones above the budget, so the ones nearest it.
  if (above.size() > static_cast<size_t>(kBudgetWindowCountAbove)) {
    above.erase(above.begin(), above.end() - kBudgetWindowCountAbove);
  }
  above.insert(above.end(), std::make_move_iterator(below.begin()),
               std::make_move_iterator(below.end()));
  return above;
}

decompose::DecomposeOptions CandidateOptions(const JobSpec& spec, const BudgetCandidate& c) {
  decompose::DecomposeOptions o = DecomposeOptionsFor(WithCandidate(spec, c));
  if (c.method != kCaldera && c.quantizer == kE8p && !c.row_scales) o.q_spec.row_scales = false;
  return o;
}

double SmallestEstimatedBits(int lr_bits, int64_t rows, int64_t cols, Serve serve) {
  double best = kMaxTargetBits * 2;
  for (const BudgetCandidate& c : AllCandidates(std::max(1, lr_bits), std::max<int64_t>(1, rows),
                                                std::max<int64_t>(1, cols), serve)) {
    best = std::min(best, c.estimated_bits);
  }
  return best;
}

JobSpec WithCandidate(const JobSpec& spec, const BudgetCandidate& c) {
  JobSpec s = spec;
  s.method = c.method;
  s.quantizer = c.quantizer;
  s.q_bits = c.q_bits;
  s.q_group_size = c.q_group_size;
  if (c.method == kCaldera) s.rank = c.rank;
  return s;
}

}  // namespace caldera::job
