// The E8P nearest-point search for one 8-vector (quant::E8PCodebook's
// QuantizeBatch, restated per vector) as a plain body the CUDA kernel runs
// one thread per vector and the host tests run against the CPU codebook.
// Same operations in the same order as e8p.cc's coset rounding and full
// search (single IEEE operations, no contraction), so the codes and points
// are the CPU's bit for bit:
//   1. for each shift t = ±1/4, the nearest point of the coset D8 + 1/2 to
//      x − t by rounding; it is the answer for that shift when it is a
//      codeword, and a lower bound on that shift's distance otherwise;
//   2. the full search over the 256 patterns for a shift the bound cannot
//      rule out (both shifts when some |x_i| >= 64);
//   3. the shift with the smaller distance (shift 1 only when strictly
//      smaller or shift 0 was ruled out).
#ifndef CALDERA_CORE_BACKEND_KERNELS_E8P_SEARCH_H_
#define CALDERA_CORE_BACKEND_KERNELS_E8P_SEARCH_H_

#include <math.h>

#include <cstdint>

#include "core/util/hd.h"

namespace caldera::backend::kernels {

// The codebook's tables (see e8p_tables.h for building them on the host).
struct E8pTablesView {
  const float* abs_aos;              // 256 × 8: abs_aos[8·j + i] = pattern j, coordinate i
  const float* norm2;                // 256: |pattern j|²
  const int* parity;                 // 256: sum(pattern j) mod 2
  const int16_t* pattern_of_digits;  // 65,536: pattern of a digit key, or -1
};

// One shift's candidate.
struct E8pCandidate {
  float dist = 0;  // squared distance (a lower bound while j < 0)
  int j = -1;      // pattern, -1 while unknown
  int signs = 0;   // sign bits of coordinates 0-7
  float point[8] = {0, 0, 0, 0, 0, 0, 0, 0};
};

// Step 1 for one shift t (CosetRound of e8p_batch_kernels.inc, one lane).
CALDERA_HD inline void E8pCosetRound(const float* x, float t, float* dist, int* key, bool* fits,
                                     int* signs, float* point) {
  float y[8], e[8];
  int f[8], parity = 0;
  for (int i = 0; i < 8; ++i) {
    float v = HdSub(x[i], t);
    v = v >= -100.0f ? v : -100.0f;  // NaN too
    v = v > 100.0f ? 100.0f : v;
    const int c = static_cast<int>(v);                // toward zero
    f[i] = c + (static_cast<float>(c) > v ? -1 : 0);  // floor
    y[i] = v;
    e[i] = HdSub(v, HdAdd(static_cast<float>(f[i]), 0.5f));  // in [-1/2, 1/2)
    parity ^= f[i];
  }
  float amax = HdAbs(e[0]);
  int arg = 0;
  for (int i = 1; i < 8; ++i) {
    const float ae = HdAbs(e[i]);
    if (ae > amax) {
      amax = ae;
      arg = i;
    }
  }
  const bool odd = (parity & 1) != 0;
  float d = 0;
  int k = 0, sg = 0;
  bool fit = true;
  for (int i = 0; i < 8; ++i) {
    const int move = odd && arg == i ? (e[i] > 0 ? 1 : -1) : 0;
    const int fi = f[i] + move;
    const float p = HdAdd(static_cast<float>(fi), 0.5f);
    const float r = HdSub(y[i], p);
    d = HdAdd(d, HdMul(r, r));
    const int digit = fi >= 0 ? fi : -fi - 1;  // |p| - 1/2
    fit = fit && digit <= 3;
    k = (k << 2) | (digit & 3);
    sg |= (fi < 0 ? 1 : 0) << i;
    point[i] = HdAdd(p, t);
  }
  *dist = d;
  *key = k;
  *fits = fit;
  *signs = sg;
}

// The sign bits of the nearest signed version of pattern j to y (y = x − t):
// those of y, with the cheapest coordinate flipped when the parity of the
// negatives differs from the pattern's (E8PCodebook::SignBits).
CALDERA_HD inline int E8pSignBits(const E8pTablesView& tb, int j, const float* y) {
  const float* a = tb.abs_aos + 8 * j;
  int signs = 0, neg = 0;
  for (int i = 0; i < 8; ++i) {
    signs |= (y[i] < 0 ? 1 : 0) << i;
    neg += y[i] < 0 ? 1 : 0;
  }
  if ((neg & 1) != tb.parity[j]) {
    int arg = 0;
    for (int i = 1; i < 8; ++i) {
      if (HdMul(a[i], HdAbs(y[i])) < HdMul(a[arg], HdAbs(y[arg]))) arg = i;
    }
    signs ^= 1 << arg;
  }
  return signs;
}

// Step 2 for one shift: the first pattern of the minimum distance
// (FullSearchBatch, one lane), its sign bits and point.
CALDERA_HD inline void E8pFullSearch(const E8pTablesView& tb, const float* x, float t,
                                     E8pCandidate* c) {
  float y[8], ay[8];
  int neg = 0;
  float y2 = 0;
  for (int i = 0; i < 8; ++i) {
    y[i] = HdSub(x[i], t);
    ay[i] = HdAbs(y[i]);
    neg += y[i] < 0 ? 1 : 0;
    y2 = HdAdd(y2, HdMul(y[i], y[i]));
  }
  const int neg_parity = neg & 1;
  const float inf = INFINITY;
  float best = inf;
  int best_j = 0;
  for (int j = 0; j < 256; ++j) {
    const float* a = tb.abs_aos + 8 * j;
    float score = 0, mn = inf;
    for (int i = 0; i < 8; ++i) {
      const float p = HdMul(a[i], ay[i]);
      score = HdAdd(score, p);
      mn = p < mn ? p : mn;
    }
    const float flip = neg_parity != tb.parity[j] ? 2.0f : 0.0f;
    score = HdSub(score, HdMul(flip, mn));
    const float d = HdAdd(HdSub(y2, HdMul(2.0f, score)), tb.norm2[j]);
    if (d < best) {
      best = d;
      best_j = j;
    }
  }
  const float* a = tb.abs_aos + 8 * best_j;
  const int sb = E8pSignBits(tb, best_j, y);
  c->dist = best;
  c->j = best_j;
  c->signs = sb;
  for (int i = 0; i < 8; ++i) c->point[i] = HdAdd((sb >> i) & 1 ? -a[i] : a[i], t);
}

// The nearest codeword of x: its 16-bit code (bits 8-15 pattern, bit 7
// shift, bits 0-6 signs) and the point in out[0..8).
CALDERA_HD inline uint16_t E8pNearestBody(const E8pTablesView& tb, const float* x, float* out) {
  E8pCandidate c[2];
  bool in_range = true;
  for (int i = 0; i < 8; ++i) in_range = in_range && HdAbs(x[i]) < 64.0f;
  for (int sh = 0; sh < 2; ++sh) {
    int key = 0;
    bool fits = false;
    E8pCosetRound(x, sh == 0 ? 0.25f : -0.25f, &c[sh].dist, &key, &fits, &c[sh].signs, c[sh].point);
    c[sh].j = in_range && fits ? tb.pattern_of_digits[key] : -1;
  }
  // Round 1: shift 0 needs the full search unless shift 1's codeword beats
  // even its bound (vectors out of range: both shifts).
  if (!in_range) {
    E8pFullSearch(tb, x, 0.25f, &c[0]);
    E8pFullSearch(tb, x, -0.25f, &c[1]);
  } else if (c[0].j < 0 && !(c[1].j >= 0 && c[1].dist < c[0].dist)) {
    E8pFullSearch(tb, x, 0.25f, &c[0]);
  }
  // Round 2: shift 1 only if its bound beats shift 0's answer.
  if (c[0].j >= 0 && c[1].j < 0 && c[1].dist < c[0].dist) E8pFullSearch(tb, x, -0.25f, &c[1]);
  const int sh = c[0].j < 0 || (c[1].j >= 0 && c[1].dist < c[0].dist) ? 1 : 0;
  for (int i = 0; i < 8; ++i) out[i] = c[sh].point[i];
  return static_cast<uint16_t>((c[sh].j << 8) | (sh << 7) | (c[sh].signs & 0x7F));
}

}  // namespace caldera::backend::kernels

#endif  // CALDERA_CORE_BACKEND_KERNELS_E8P_SEARCH_H_
