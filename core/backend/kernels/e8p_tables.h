// Host side of the E8P search body: the tables E8pNearestBody reads, built
// from the CPU codebook's patterns (same values as E8PCodebook's own).
#ifndef CALDERA_CORE_BACKEND_KERNELS_E8P_TABLES_H_
#define CALDERA_CORE_BACKEND_KERNELS_E8P_TABLES_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/backend/kernels/e8p_search.h"
#include "core/quant/e8p.h"

namespace caldera::backend::kernels {

struct E8pTables {
  std::vector<float> abs_aos = std::vector<float>(8 * 256);
  std::vector<float> norm2 = std::vector<float>(256);
  std::vector<int> parity = std::vector<int>(256);
  std::vector<int16_t> pattern_of_digits = std::vector<int16_t>(1 << 16, -1);

  // Points into this object: valid while it lives and is not modified.
  E8pTablesView View() const {
    return {abs_aos.data(), norm2.data(), parity.data(), pattern_of_digits.data()};
  }
};

inline E8pTables BuildE8pTables(const quant::E8PCodebook& cb) {
  E8pTables t;
  const auto& pats = cb.patterns();
  for (int j = 0; j < 256; ++j) {
    float n2 = 0, sum = 0;
    int key = 0;
    for (int i = 0; i < 8; ++i) {
      const float v = pats[j][i];
      n2 += v * v;
      sum += v;
      t.abs_aos[8 * j + i] = v;
      key = key << 2 | static_cast<int>(v - 0.5f);
    }
    t.norm2[j] = n2;
    t.parity[j] = static_cast<int>(std::lround(sum)) & 1;
    t.pattern_of_digits[key] = static_cast<int16_t>(j);
  }
  return t;
}

}  // namespace caldera::backend::kernels

#endif  // CALDERA_CORE_BACKEND_KERNELS_E8P_TABLES_H_
