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
  }
}

uint16_t E8PCodebook::Quantize(const float* x, float* out) const {
  float best = std::numeric_limits<float>::infinity();
  uint16_t best_code = 0;
  for (int shift = 0; shift < 2; ++shift) {
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
    for (int j = 0; j < 256; ++j) {
      const float* a = abs_[j].data();
      float score = 0, mn = std::numeric_limits<float>::infinity();
      for (int i = 0; i < 8; ++i) {
        const float p = a[i] * ay[i];
        score += p;
        mn = std::min(mn, p);
      }
      if ((neg & 1) != parity_[j]) score -= 2 * mn;
      const float dist = y2 - 2 * score + norm2_[j];
      if (dist < best) {
        best = dist;
        // Signs: those of y, with the cheapest coordinate flipped if parity is wrong.
        int signs = 0;
        for (int i = 0; i < 8; ++i) signs |= (y[i] < 0) << i;
        if ((neg & 1) != parity_[j]) {
          int arg = 0;
          for (int i = 1; i < 8; ++i) {
            if (a[i] * ay[i] < a[arg] * ay[arg]) arg = i;
          }
          signs ^= 1 << arg;
        }
        best_code = static_cast<uint16_t>((j << 8) | (shift << 7) | (signs & 0x7F));
      }
    }
  }
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
  }
}

uint8_t E8OneBitTable::Quantize(const float* x, float* out) const {
  float best = std::numeric_limits<float>::infinity();
  int arg = 0;
  for (int k = 0; k < 256; ++k) {
    float dot = 0;
    for (int i = 0; i < 8; ++i) dot += pts_[k][i] * x[i];
    const float d = norm2_[k] - 2 * dot;
    if (d < best) {
      best = d;
      arg = k;
    }
  }
  Decode(static_cast<uint8_t>(arg), out);
  return static_cast<uint8_t>(arg);
}

void E8OneBitTable::Decode(uint8_t code, float* out) const {
  for (int i = 0; i < 8; ++i) out[i] = pts_[code][i];
}

}  // namespace caldera::quant
