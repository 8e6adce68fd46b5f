#include "core/quant/e8p.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// The batched search's 64-byte vector helpers are internal and always
// inlined; GCC's note that passing them by value would change the ABI without
// AVX-512 does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

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

// ---- Batched search: kBatch vectors at once, one per lane (kernels in
// e8p_batch_kernels.inc, built for AVX-512, AVX2 and baseline x86-64 and
// chosen at construction from what the CPU supports).
constexpr int kBatch = 16;

namespace e8p_kernels {
#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
constexpr int kLanes = 16;
#include "core/quant/e8p_batch_kernels.inc"
}  // namespace avx512
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
constexpr int kLanes = 8;
#include "core/quant/e8p_batch_kernels.inc"
}  // namespace avx2
#pragma GCC pop_options
#endif
namespace baseline {
constexpr int kLanes = 4;
#include "core/quant/e8p_batch_kernels.inc"
}  // namespace baseline
}  // namespace e8p_kernels

// The kernels for `isa`, or for the best this CPU supports (kAuto, or an
// instruction set it lacks).
E8PBatchKernels ChooseBatchKernels(E8PIsa isa, E8PIsa* chosen) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2");
  if (isa == E8PIsa::kAuto)
    isa = avx512 ? E8PIsa::kAvx512 : avx2 ? E8PIsa::kAvx2 : E8PIsa::kBaseline;
  if (isa == E8PIsa::kAvx512 && avx512) {
    *chosen = E8PIsa::kAvx512;
    return {e8p_kernels::avx512::CosetRound, e8p_kernels::avx512::FullSearchBatch,
            e8p_kernels::avx512::PointSearchBatch};
  }
  if (isa != E8PIsa::kBaseline && avx2) {
    *chosen = E8PIsa::kAvx2;
    return {e8p_kernels::avx2::CosetRound, e8p_kernels::avx2::FullSearchBatch,
            e8p_kernels::avx2::PointSearchBatch};
  }
#endif
  (void)isa;
  *chosen = E8PIsa::kBaseline;
  return {e8p_kernels::baseline::CosetRound, e8p_kernels::baseline::FullSearchBatch,
          e8p_kernels::baseline::PointSearchBatch};
}

}  // namespace

E8PCodebook::E8PCodebook(E8PIsa isa) {
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
  for (int j = 0; j < 256; ++j) {
    for (int i = 0; i < 8; ++i) abs_aos_[8 * j + i] = abs_[j][i];
  }
  batch_ = ChooseBatchKernels(isa, &isa_);
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
  *j_out = j;
  *signs_out = SignBits(j, y);
  return best;
}

int E8PCodebook::SignBits(int j, const float* y) const {
  const float* a = abs_[j].data();
  int signs = 0, neg = 0;
  for (int i = 0; i < 8; ++i) {
    signs |= (y[i] < 0) << i;
    neg += y[i] < 0;
  }
  if ((neg & 1) != parity_[j]) {
    int arg = 0;
    for (int i = 1; i < 8; ++i) {
      if (a[i] * std::fabs(y[i]) < a[arg] * std::fabs(y[arg])) arg = i;
    }
    signs ^= 1 << arg;
  }
  return signs;
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
  uint16_t code;
  QuantizeBatch(x, 1, &code, out);
  return code;
}

void E8PCodebook::QuantizeBatch(const float* x, int64_t count, uint16_t* codes, float* out) const {
  // Vectors go in chunks of kChunk; each chunk is rounded 16 at a time, then
  // its pending full searches ((vector, shift) pairs) run 16 at a time, so the
  // search lanes stay full. Per-chunk state is a few tens of KiB.
  constexpr int kChunk = 256;
  struct Pending {
    int vec, shift;
  };
  alignas(64) float xs[8 * kBatch], point[2][8 * kBatch], dist_l[2][kBatch];
  alignas(64) int key[2][kBatch], fits[2][kBatch], signs_l[2][kBatch];
  // Per vector of the chunk and shift: squared distance (a lower bound while
  // j < 0), pattern (-1: the coset point is not a codeword, or not searched),
  // sign bits and the point.
  float dist[2][kChunk], pts[2][kChunk][8];
  int j[2][kChunk], sgn[2][kChunk];
  bool in_range[kChunk];
  Pending pending[2 * kChunk];
  for (int64_t c0 = 0; c0 < count; c0 += kChunk) {
    const int nv = static_cast<int>(std::min<int64_t>(kChunk, count - c0));
    const float* xc = x + 8 * c0;
    for (int g0 = 0; g0 < nv; g0 += kBatch) {
      const int lanes = std::min(kBatch, nv - g0);
      for (int l = 0; l < kBatch; ++l) {
        for (int i = 0; i < 8; ++i) xs[i * kBatch + l] = l < lanes ? xc[8 * (g0 + l) + i] : 0.0f;
      }
      for (int sh = 0; sh < 2; ++sh) {
        batch_.coset_round(xs, sh == 0 ? 0.25f : -0.25f, dist_l[sh], key[sh], fits[sh], signs_l[sh],
                           point[sh]);
      }
      for (int l = 0; l < lanes; ++l) {
        const int v = g0 + l;
        bool ok = true;
        for (int i = 0; i < 8; ++i) ok = ok && std::fabs(xc[8 * v + i]) < 64.0f;
        in_range[v] = ok;
        for (int sh = 0; sh < 2; ++sh) {
          dist[sh][v] = dist_l[sh][l];
          j[sh][v] = ok && fits[sh][l] ? pattern_of_digits_[key[sh][l]] : -1;
          sgn[sh][v] = signs_l[sh][l];
          for (int i = 0; i < 8; ++i) pts[sh][v][i] = point[sh][i * kBatch + l];
        }
      }
    }
    int n_pending = 0;
    auto run_pending = [&] {
      for (int p0 = 0; p0 < n_pending; p0 += kBatch) {
        const int n = std::min(kBatch, n_pending - p0);
        alignas(64) float ay[8 * kBatch], y2[kBatch], best[kBatch];
        alignas(64) int negp[kBatch], best_j[kBatch];
        float y[kBatch][8];
        for (int q = 0; q < kBatch; ++q) {
          const Pending& pd = pending[p0 + std::min(q, n - 1)];
          const float t = pd.shift == 0 ? 0.25f : -0.25f;
          int neg = 0;
          float sq = 0;
          for (int i = 0; i < 8; ++i) {
            y[q][i] = xc[8 * pd.vec + i] - t;
            ay[i * kBatch + q] = std::fabs(y[q][i]);
            neg += y[q][i] < 0;
            sq += y[q][i] * y[q][i];
          }
          negp[q] = neg & 1;
          y2[q] = sq;
        }
        batch_.full_search(abs_aos_.data(), norm2_.data(), parity_.data(), ay, y2, negp, best,
                           best_j);
        for (int q = 0; q < n; ++q) {
          const Pending& pd = pending[p0 + q];
          const float* a = abs_[best_j[q]].data();
          const int sb = SignBits(best_j[q], y[q]);
          const int sh = pd.shift, v = pd.vec;
          const float t = sh == 0 ? 0.25f : -0.25f;
          dist[sh][v] = best[q];
          j[sh][v] = best_j[q];
          sgn[sh][v] = sb;
          for (int i = 0; i < 8; ++i) pts[sh][v][i] = ((sb >> i) & 1 ? -a[i] : a[i]) + t;
        }
      }
      n_pending = 0;
    };
    // Round 1: shift 0 needs the full search unless shift 1's codeword beats
    // even its bound (vectors out of range: both shifts).
    for (int v = 0; v < nv; ++v) {
      if (!in_range[v]) {
        pending[n_pending++] = {v, 0};
        pending[n_pending++] = {v, 1};
      } else if (j[0][v] < 0 && !(j[1][v] >= 0 && dist[1][v] < dist[0][v])) {
        pending[n_pending++] = {v, 0};
      }
    }
    run_pending();
    // Round 2: shift 1 only if its bound beats shift 0's answer.
    for (int v = 0; v < nv; ++v) {
      if (j[0][v] >= 0 && j[1][v] < 0 && dist[1][v] < dist[0][v]) pending[n_pending++] = {v, 1};
    }
    run_pending();
    for (int v = 0; v < nv; ++v) {
      // j[1] < 0 here: shift 1 was ruled out by its bound; j[0] < 0: shift 0
      // was, by shift 1's codeword.
      const int sh = j[0][v] < 0 || (j[1][v] >= 0 && dist[1][v] < dist[0][v]) ? 1 : 0;
      codes[c0 + v] = static_cast<uint16_t>((j[sh][v] << 8) | (sh << 7) | (sgn[sh][v] & 0x7F));
      for (int i = 0; i < 8; ++i) out[8 * (c0 + v) + i] = pts[sh][v][i];
    }
  }
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

E8OneBitTable::E8OneBitTable(E8PIsa isa) {
  batch_ = ChooseBatchKernels(isa, &isa_);
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
    for (int i = 0; i < 8; ++i) {
      pts_soa_[i * 256 + k] = pts[k][i];
      pts_aos_[8 * k + i] = pts[k][i];
    }
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

void E8OneBitTable::QuantizeBatch(const float* x, int64_t count, uint8_t* codes, float* out) const {
  alignas(64) float xs[8 * kBatch];
  alignas(64) int best[kBatch];
  for (int64_t v0 = 0; v0 < count; v0 += kBatch) {
    const int lanes = static_cast<int>(std::min<int64_t>(kBatch, count - v0));
    for (int l = 0; l < kBatch; ++l) {
      for (int i = 0; i < 8; ++i) xs[i * kBatch + l] = l < lanes ? x[8 * (v0 + l) + i] : 0.0f;
    }
    batch_.point_search(pts_aos_.data(), norm2_.data(), xs, best);
    for (int l = 0; l < lanes; ++l) {
      codes[v0 + l] = static_cast<uint8_t>(best[l]);
      Decode(codes[v0 + l], out + 8 * (v0 + l));
    }
  }
}

void E8OneBitTable::Decode(uint8_t code, float* out) const {
  for (int i = 0; i < 8; ++i) out[i] = pts_[code][i];
}

}  // namespace caldera::quant
