// The E8P 2-bit lattice codebook (65,536 points of E8 + 1/4 in 8 dimensions,
// 16 bits per 8 weights) with exact nearest-neighbour search, and the 1-bit E8
// residual table used for 3-bit codes. See docs/format/caldera-matrix-record.md.
//
// Points: c = s ⊙ a + t, where a is one of 256 absolute patterns (the 227
// vectors of {1/2,3/2,5/2,7/2}^8 with |a|^2 <= 10 in lexicographic order, then
// 29 patterns of |a|^2 = 12 with five 3/2 and three 1/2), s a sign vector with
// #negatives ≡ sum(a) (mod 2) (so s ⊙ a lies in D8 + 1/2), and t = ±1/4.
// Our 16-bit code: bits 8-15 pattern index, bit 7 shift (1 = -1/4), bits 0-6 the
// signs of coordinates 0-6 (1 = negative); coordinate 7's sign follows from parity.
//
// The full search scores all 256 patterns (or table points) of one vector in
// a data-parallel loop built for AVX-512, AVX2 and baseline x86-64 (chosen at
// load time) with floating-point contraction off, so every machine computes
// the same distances and picks the same code: the first minimum in (shift,
// index) order. E8PCodebook::Quantize runs it only where rounding to the
// coset D8 + 1/2 does not already give the answer (about a quarter of the
// shift searches for Gaussian data at the 2-bit scale).
#ifndef CALDERA_CORE_QUANT_E8P_H_
#define CALDERA_CORE_QUANT_E8P_H_

#include <array>
#include <cstdint>
#include <vector>

namespace caldera::quant {

// Instruction sets the batched search is built for (x86-64; elsewhere only
// the baseline). kAuto picks the best the CPU supports.
enum class E8PIsa { kAuto, kAvx512, kAvx2, kBaseline };

// The batched search's two kernels for one instruction set (e8p.cc).
struct E8PBatchKernels {
  void (*coset_round)(const float* xs, float t, float* dist, int* key, int* fits, int* signs,
                      float* point);
  void (*full_search)(const float* abs_aos, const float* norm2, const int* parity, const float* ay,
                      const float* y2, const int* neg_parity, float* best, int* best_j);
  void (*point_search)(const float* pts_aos, const float* norm2, const float* xs, int* best_k);
};

class E8PCodebook {
 public:
  // `isa` forces the batched search's kernels (tests compare them); one the
  // CPU lacks falls back to the best it has. isa() says which runs.
  explicit E8PCodebook(E8PIsa isa = E8PIsa::kAuto);
  E8PIsa isa() const { return isa_; }

  // Nearest codeword to x (exact, over all 65,536 points); returns its code and
  // writes the point to out (may alias x).
  // Fast path: the nearest point of the coset D8 + 1/2 (+ t) for each shift is
  // found by rounding; when it is a codeword it is the answer for that shift,
  // and otherwise it bounds that shift's distance from below, so the full
  // search over 256 patterns runs only for a shift the bound cannot rule out.
  uint16_t Quantize(const float* x, float* out) const;
  // Quantize for `count` vectors at once (x and out: count × 8, row-major; out
  // may alias x): the rounding runs on 16 vectors per step and the full
  // searches left over are gathered and run 16 at a time. Same codes as
  // Quantize.
  void QuantizeBatch(const float* x, int64_t count, uint16_t* codes, float* out) const;
  // The full search over both shifts, for tests and benchmarks; the same
  // nearest point as Quantize up to ties within float rounding.
  uint16_t QuantizeExhaustive(const float* x, float* out) const;
  void Decode(uint16_t code, float* out) const;

  const std::array<std::array<float, 8>, 256>& patterns() const { return abs_; }

 private:
  // Nearest codeword with shift `shift` (0: +1/4, 1: -1/4) by the full
  // search: its squared distance (as the search computes it), pattern and the
  // sign bits of coordinates 0-7.
  float SearchShift(int shift, const float* x, int* j_out, int* signs_out) const;
  // The sign bits of the nearest signed version of pattern j to y (y - t):
  // those of y, with the cheapest coordinate flipped when the parity of the
  // negatives differs from the pattern's.
  int SignBits(int j, const float* y) const;

  std::array<std::array<float, 8>, 256> abs_;
  std::array<float, 256> norm2_;
  std::array<int, 256> parity_;  // sum(a) mod 2
  // The search's layout: coordinate-major patterns (abs_soa_[i * 256 + j] =
  // abs_[j][i]) and, for a vector whose sign parity is p, 2 where pattern j's
  // parity differs from p (one sign must flip) and 0 where it matches.
  std::array<float, 8 * 256> abs_soa_;
  std::array<std::array<float, 256>, 2> flip_weight_;
  std::array<float, 8 * 256> abs_aos_;  // abs_aos_[8 * j + i] = abs_[j][i]
  // Pattern index of an absolute vector with digits d_i = a_i - 1/2 in 0..3,
  // keyed by sum d_i << 2(7 - i); -1 where the vector is not a pattern.
  std::vector<int16_t> pattern_of_digits_;
  E8PBatchKernels batch_;  // for isa_
  E8PIsa isa_ = E8PIsa::kBaseline;
};

// The 256-entry 1-bit E8 table: the 241 points of E8 with |x|^2 <= 2 and the
// 15 vectors ±2e_i other than -2e_8, in a fixed documented order.
class E8OneBitTable {
 public:
  explicit E8OneBitTable(E8PIsa isa = E8PIsa::kAuto);  // isa: as for E8PCodebook
  uint8_t Quantize(const float* x, float* out) const;  // exact nearest
  // Quantize for `count` vectors (x and out: count × 8, row-major; out may
  // alias x), 16 per step with the batched kernels; the same codes.
  void QuantizeBatch(const float* x, int64_t count, uint8_t* codes, float* out) const;
  void Decode(uint8_t code, float* out) const;
  const std::array<std::array<float, 8>, 256>& points() const { return pts_; }
  E8PIsa isa() const { return isa_; }

 private:
  std::array<std::array<float, 8>, 256> pts_;
  std::array<float, 256> norm2_;
  std::array<float, 8 * 256> pts_soa_;  // pts_soa_[i * 256 + k] = pts_[k][i]
  std::array<float, 8 * 256> pts_aos_;  // pts_aos_[8 * k + i] = pts_[k][i]
  E8PBatchKernels batch_;
  E8PIsa isa_ = E8PIsa::kBaseline;
};

}  // namespace caldera::quant

#endif  // CALDERA_CORE_QUANT_E8P_H_
