#include "core/quant/e8p.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace caldera::quant {
namespace {

// The 29 norm-12 patterns: positions of the three 1/2 entries (others 3/2).
constexpr int kExtraHalves[29][3] = {
    {1, 2, 3}, {0, 2, 3}, {0, 1, 3}, {0, 1, 2}, {3, 6, 7}, {3, 5, 7}, {3, 4, 7}, {3, 5, 6},
    {3, 4, 6}, {3, 4, 5}, {2, 6, 7}, {2, 5, 7}, {2, 4, 7}, {2, 5, 6}, {2, 4, 6}, {2, 4, 5},
    {1, 6, 7}, {1, 5, 7}, {1, 4, 7}, {1, 5, 6}, {1, 4, 6}, {0, 4, 5}, {0, 6, 7}, {0, 5, 7},
    {0, 4, 7}, {0, 5, 6}, {0, 4, 6}, {0, 1, 4}, {2, 3, 7}};

constexpr float kInf = std::numeric_limits<float>::infinity();

// Lanes of the minimum tracked alongside the distances: element-wise minima
// over 16 interleaved slices vectorise, a serial min over 256 values does not.
constexpr int kLanes = 16;

// dist[j] = |y|² - 2·score_j + |a_j|², score_j = Σ a_j[i]·|y_i| minus
// flip[j]·min_i a_j[i]·|y_i| (the cheapest sign flip when parities differ):
// the squared distance from y to the nearest signed version of pattern j.
// lane_min[l] = min over j ≡ l (mod 16) of dist[j]. Same operation order as a
// scalar loop, no FMA (this file is compiled with -ffp-contract=off), so every
// clone returns identical values.
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void PatternDistances(const float* __restrict abs_soa, const float* __restrict norm2,
                      const float* __restrict flip, const float* ay, float y2,
                      float* __restrict dist, float* __restrict lane_min) {
  for (int l = 0; l < kLanes; ++l) lane_min[l] = kInf;
  for (int j0 = 0; j0 < 256; j0 += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const int j = j0 + l;
      float score = 0, mn = kInf;
      for (int i = 0; i < 8; ++i) {
        const float p = abs_soa[i * 256 + j] * ay[i];
        score += p;
        mn = p < mn ? p : mn;
      }
      score -= flip[j] * mn;
      const float d = y2 - 2 * score + norm2[j];
      dist[j] = d;
      lane_min[l] = d < lane_min[l] ? d : lane_min[l];
    }
  }
}

// dist[k] = |p_k|² - 2·<p_k, x>, with lane minima as above.
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void PointDistances(const float* __restrict pts_soa, const float* __restrict norm2,
                    const float* x, float* __restrict dist, float* __restrict lane_min) {
  for (int l = 0; l < kLanes; ++l) lane_min[l] = kInf;
  for (int k0 = 0; k0 < 256; k0 += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const int k = k0 + l;
      float dot = 0;
      for (int i = 0; i < 8; ++i) dot += pts_soa[i * 256 + k] * x[i];
      const float d = norm2[k] - 2 * dot;
      dist[k] = d;
      lane_min[l] = d < lane_min[l] ? d : lane_min[l];
    }
  }
}

// The first index of the minimum of dist[0..256) (ties: the lowest index).
// Only lanes whose minimum equals the overall one can hold it; each lane's
// first hit is its lowest index, and the answer is the lowest of those.
int FirstArgMin(const float* dist, const float* lane_min, float* min_out) {
  float best = lane_min[0];
  for (int l = 1; l < kLanes; ++l) best = lane_min[l] < best ? lane_min[l] : best;
  int arg = 256;
  for (int l = 0; l < kLanes; ++l) {
    if (!(lane_min[l] == best)) continue;
    for (int j = l; j < arg; j += kLanes) {
      if (dist[j] == best) {
        arg = j;
        break;
      }
    }
  }
  *min_out = best;
  return arg < 256 ? arg : 0;
}

}  // namespace

E8PCodebook::E8PCodebook() {
  std::vector<std::array<float, 8>> small;
  // Enumerate {1/2, 3/2, 5/2, 7/2}^8 in lexicographic order (first coordinate slowest).
  for (int idx = 0; idx < (1 << 16); ++idx) {
    std::array<float, 8> a{};
    float n2 = 0;
    for (int i = 0; i < 8; ++i) {
      const int digit = (idx >> (2 * (7 - i))) & 3;
      a[i] = 0.5f + digit;
      n2 += a[i] * a[i];
    }
    if (n2 <= 10.0f) small.push_back(a);
  }
  size_t k = 0;
  for (const auto& a : small) abs_[k++] = a;  // 227 of them
  for (const auto& halves : kExtraHalves) {
    std::array<float, 8> a;
    a.fill(1.5f);
    for (int p : halves) a[p] = 0.5f;
    abs_[k++] = a;
  }
  for (int j = 0; j < 256; ++j) {
    float n2 = 0, sum = 0;
    for (float v : abs_[j]) {
      n2 += v * v;
      sum += v;
    }
    norm2_[j] = n2;
    parity_[j] = static_cast<int>(std::lround(sum)) & 1;
    for (int i = 0; i < 8; ++i) abs_soa_[i * 256 + j] = abs_[j][i];
    for (int p = 0; p < 2; ++p) flip_weight_[p][j] = parity_[j] != p ? 2.0f : 0.0f;
  }
  pattern_of_digits_.assign(1 << 16, -1);
  for (int j = 0; j < 256; ++j) {
    int key = 0;
    for (int i = 0; i < 8; ++i) key = key << 2 | static_cast<int>(abs_[j][i] - 0.5f);
    pattern_of_digits_[key] = static_cast<int16_t>(j);
  }
}

float E8PCodebook::SearchShift(int shift, const float* x, int* j_out, int* signs_out) const {
  alignas(64) float dist[256];
  alignas(64) float lane_min[kLanes];
  const float t = shift == 0 ? 0.25f : -0.25f;
  float y[8], ay[8];
  int neg = 0;
  float y2 = 0;
  for (int i = 0; i < 8; ++i) {
    y[i] = x[i] - t;
    ay[i] = std::fabs(y[i]);
    neg += y[i] < 0;
    y2 += y[i] * y[i];
  }
  PatternDistances(abs_soa_.data(), norm2_.data(), flip_weight_[neg & 1].data(), ay, y2, dist,
                   lane_min);
  float best;
  const int j = FirstArgMin(dist, lane_min, &best);
  // Signs: those of y, with the cheapest coordinate flipped if parity is wrong.
  const float* a = abs_[j].data();
  int signs = 0;
  for (int i = 0; i < 8; ++i) signs |= (y[i] < 0) << i;
  if ((neg & 1) != parity_[j]) {
    int arg = 0;
    for (int i = 1; i < 8; ++i) {
      if (a[i] * ay[i] < a[arg] * ay[arg]) arg = i;
    }
    signs ^= 1 << arg;
  }
  *j_out = j;
  *signs_out = signs;
  return best;
}

uint16_t E8PCodebook::QuantizeExhaustive(const float* x, float* out) const {
  float best = kInf;
  uint16_t best_code = 0;
  for (int shift = 0; shift < 2; ++shift) {
    int j, signs;
    const float d = SearchShift(shift, x, &j, &signs);
    if (!(d < best)) continue;
    best = d;
    best_code = static_cast<uint16_t>((j << 8) | (shift << 7) | (signs & 0x7F));
  }
  Decode(best_code, out);
  return best_code;
}

uint16_t E8PCodebook::Quantize(const float* x, float* out) const {
  // For each shift t: the nearest point p of the coset D8 + 1/2 to y = x - t
  // (every coordinate to its nearest odd half f + 1/2, f = floor(y); if the
  // sum is odd, the coordinate with the largest rounding error moves to its
  // other side), and whether p's absolute values form one of the 256 patterns.
  // In integers: |x| < 64 keeps the conversions exact; anything else (huge
  // or non-finite values) takes the full search.
  for (int i = 0; i < 8; ++i) {
    if (!(std::fabs(x[i]) < 64.0f)) return QuantizeExhaustive(x, out);
  }
  float dist[2];
  int key_j[2], signs[2];
  for (int shift = 0; shift < 2; ++shift) {
    const float t = shift == 0 ? 0.25f : -0.25f;
    float y[8], e[8];
    int f[8], parity = 0;
    for (int i = 0; i < 8; ++i) {
      y[i] = x[i] - t;
      const int c = static_cast<int>(y[i]);  // toward zero
      f[i] = c - (static_cast<float>(c) > y[i]);
      e[i] = y[i] - (static_cast<float>(f[i]) + 0.5f);  // in [-1/2, 1/2)
      parity ^= f[i];
    }
    if (parity & 1) {  // sum(p) = sum(f) + 4
      int arg = 0;
      for (int i = 1; i < 8; ++i) {
        if (std::fabs(e[i]) > std::fabs(e[arg])) arg = i;
      }
      f[arg] += e[arg] > 0 ? 1 : -1;
    }
    float d = 0;
    int key = 0, sign_bits = 0;
    bool fits = true;
    for (int i = 0; i < 8; ++i) {
      const float r = y[i] - (static_cast<float>(f[i]) + 0.5f);
      d += r * r;
      const int digit = f[i] >= 0 ? f[i] : -f[i] - 1;  // |p| - 1/2
      fits = fits && digit <= 3;
      key = key << 2 | (digit & 3);
      sign_bits |= (f[i] < 0) << i;
    }
    dist[shift] = d;
    key_j[shift] = fits ? pattern_of_digits_[key] : -1;
    signs[shift] = sign_bits;
  }
  // A coset point outside the codebook bounds its shift's codebook distance
  // from below; a shift is searched in full only when that bound could still
  // win (ties go to shift 0, as in QuantizeExhaustive).
  bool exact0 = key_j[0] >= 0, exact1 = key_j[1] >= 0;
  if (!exact0 && !(exact1 && dist[1] < dist[0])) {
    dist[0] = SearchShift(0, x, &key_j[0], &signs[0]);
    exact0 = true;
  }
  if (exact0 && !exact1 && dist[1] < dist[0]) {
    dist[1] = SearchShift(1, x, &key_j[1], &signs[1]);
    exact1 = true;
  }
  const int shift = !exact0 || (exact1 && dist[1] < dist[0]) ? 1 : 0;
  const uint16_t best_code =
      static_cast<uint16_t>((key_j[shift] << 8) | (shift << 7) | (signs[shift] & 0x7F));
  Decode(best_code, out);
  return best_code;
}

void E8PCodebook::Decode(uint16_t code, float* out) const {
  const int j = code >> 8;
  const float t = (code & 0x80) ? -0.25f : 0.25f;
  int signs = code & 0x7F;
  const int neg7 = __builtin_popcount(static_cast<unsigned>(signs)) & 1;
  if (neg7 != parity_[j]) signs |= 0x80;  // coordinate 7 completes the parity
  for (int i = 0; i < 8; ++i) {
    out[i] = ((signs >> i) & 1 ? -abs_[j][i] : abs_[j][i]) + t;
  }
}

E8OneBitTable::E8OneBitTable() {
  std::vector<std::array<float, 8>> pts;
  pts.push_back({});  // the origin
  // D8 points of norm 2: ±e_i ± e_j, i < j.
  for (int i = 0; i < 8; ++i) {
    for (int j = i + 1; j < 8; ++j) {
      for (int si = 0; si < 2; ++si) {
        for (int sj = 0; sj < 2; ++sj) {
          std::array<float, 8> p{};
          p[i] = si ? -1.0f : 1.0f;
          p[j] = sj ? -1.0f : 1.0f;
          pts.push_back(p);
        }
      }
    }
  }
  // (±1/2)^8 with an even number of minus signs.
  for (int s = 0; s < 256; ++s) {
    if (__builtin_popcount(static_cast<unsigned>(s)) % 2 != 0) continue;
    std::array<float, 8> p;
    for (int i = 0; i < 8; ++i) p[i] = (s >> i) & 1 ? -0.5f : 0.5f;
    pts.push_back(p);
  }
  // ±2 e_i except -2 e_8.
  for (int i = 0; i < 8; ++i) {
    for (int s = 0; s < 2; ++s) {
      if (i == 7 && s == 1) continue;
      std::array<float, 8> p{};
      p[i] = s ? -2.0f : 2.0f;
      pts.push_back(p);
    }
  }
  for (size_t k = 0; k < 256; ++k) {
    pts_[k] = pts[k];
    float n2 = 0;
    for (float v : pts[k]) n2 += v * v;
    norm2_[k] = n2;
    for (int i = 0; i < 8; ++i) pts_soa_[i * 256 + k] = pts[k][i];
  }
}

uint8_t E8OneBitTable::Quantize(const float* x, float* out) const {
  alignas(64) float dist[256];
  alignas(64) float lane_min[kLanes];
  PointDistances(pts_soa_.data(), norm2_.data(), x, dist, lane_min);
  float best;
  const int arg = FirstArgMin(dist, lane_min, &best);
  Decode(static_cast<uint8_t>(arg), out);
  return static_cast<uint8_t>(arg);
}

void E8OneBitTable::Decode(uint8_t code, float* out) const {
  for (int i = 0; i < 8; ++i) out[i] = pts_[code][i];
}

}  // namespace caldera::quant
