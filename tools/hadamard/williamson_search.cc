// Williamson search: symmetric circulant ±1 matrices A, B, C, D of odd order n
// with A² + B² + C² + D² = 4n·I, which the Williamson array turns into a
// Hadamard matrix of order 4n. Written for core/transform/williamson.cc; run
// once, the result is stored there as ±1 strings.
//
//   g++ -O2 -std=c++20 -o williamson_search tools/hadamard/williamson_search.cc
//   ./williamson_search 39        # prints the first rows of A, B, C, D
//
// Method. A symmetric first row is fixed by a_1..a_h (h = (n-1)/2) with a_0 = +1
// (negating a matrix keeps its square). Every such row is enumerated (2^h) and
// kept only if its power spectral density |DFT|² stays <= 4n at every frequency
// (necessary), grouped by |row sum|. For each decomposition 4n = x²+y²+z²+w²
// into odd squares, the four roles are assigned to make the work smallest:
// pairs (X, Y) that pass the pair PSD bound go into a table keyed by a hash of
// PAF_X + PAF_Y (periodic autocorrelation at shifts 1..h), sorted; pairs (Z, W)
// are streamed and looked up with -(PAF_Z + PAF_W) (meet in the middle), hits
// verified exactly. A multiplier i -> m·i (m coprime to n) applied to all four
// keeps a solution a solution, so Z runs over the lexicographically smallest
// row of each multiplier orbit only. n = 29: < 1 s; n = 39: ~13 s, ~0.4 GB;
// n = 43: ~11 min, ~4 GB (third decomposition, 11 5 | 1 5).
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

namespace {

// Rows with the same |row sum|, in flat arrays: h PAF and h PSD values each.
struct RowSet {
  std::vector<uint32_t> bits;
  std::vector<int8_t> paf;  // shifts 1..h
  std::vector<float> psd;   // frequencies 1..h
  size_t size() const { return bits.size(); }
};

struct Search {
  int n, h;
  double bound;

  std::vector<int> Row(uint32_t bits) const {
    std::vector<int> row(n, 1);
    for (int i = 1; i <= h; ++i) {
      const int v = (bits >> (i - 1)) & 1 ? -1 : 1;
      row[i] = row[n - i] = v;
    }
    return row;
  }

  bool PairOk(const RowSet& x, size_t i, const RowSet& y, size_t j) const {
    const float* a = &x.psd[i * h];
    const float* b = &y.psd[j * h];
    for (int k = 0; k < h; ++k) {
      if (a[k] + b[k] > bound) return false;
    }
    return true;
  }

  uint64_t Key(const int8_t* a, const int8_t* b, int sign) const {
    uint64_t k = 0;
    for (int t = 0; t < h; ++t) {
      k ^= static_cast<uint64_t>(static_cast<uint8_t>(sign * (a[t] + b[t]))) + 256u * t;
      k ^= k >> 31;
      k *= 0x7fb5d329728ea185ULL;
      k ^= k >> 27;
    }
    return k;
  }
};

std::string Signs(const std::vector<int>& row) {
  std::string s;
  for (int v : row) s += v > 0 ? '+' : '-';
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::atoi(argv[1]) < 3 || std::atoi(argv[1]) % 2 == 0) {
    std::fprintf(stderr, "usage: %s N   (odd N >= 3; finds the Hadamard order 4N)\n", argv[0]);
    return 2;
  }
  Search s{std::atoi(argv[1]), (std::atoi(argv[1]) - 1) / 2, 4.0 * std::atoi(argv[1]) + 1e-3};
  const int n = s.n, h = s.h;
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::vector<double> cosines((h + 1) * n);
  for (int k = 0; k <= h; ++k) {
    for (int i = 0; i < n; ++i) cosines[k * n + i] = std::cos(2 * M_PI * i * k / n);
  }
  std::vector<int> multipliers;
  for (int m = 2; m <= h; ++m) {
    if (std::gcd(m, n) == 1) multipliers.push_back(m);
  }
  std::vector<RowSet> all(n + 1), canonical(n + 1);
  for (uint32_t bits = 0; bits < (1u << h); ++bits) {
    const std::vector<int> row = s.Row(bits);
    float psd[64];
    bool ok = true;
    for (int k = 1; k <= h && ok; ++k) {
      double f = 1;
      for (int i = 1; i <= h; ++i) f += 2 * row[i] * cosines[k * n + i];
      psd[k - 1] = static_cast<float>(f * f);
      ok = f * f <= s.bound;
    }
    if (!ok) continue;
    int8_t paf[64];
    for (int t = 1; t <= h; ++t) {
      int p = 0;
      for (int i = 0; i < n; ++i) p += row[i] * row[(i + t) % n];
      paf[t - 1] = static_cast<int8_t>(p);
    }
    bool smallest_in_orbit = true;
    for (int m : multipliers) {
      uint32_t image = 0;
      for (int i = 1; i <= h; ++i) {
        int j = (m * i) % n;
        if (j > h) j = n - j;
        if (row[j] < 0) image |= 1u << (i - 1);
      }
      if (image < bits) {
        smallest_in_orbit = false;
        break;
      }
    }
    const int sum = std::abs(std::accumulate(row.begin(), row.end(), 0));
    for (RowSet* set : {&all[sum], smallest_in_orbit ? &canonical[sum] : nullptr}) {
      if (set == nullptr) continue;
      set->bits.push_back(bits);
      set->paf.insert(set->paf.end(), paf, paf + h);
      set->psd.insert(set->psd.end(), psd, psd + h);
    }
  }
  // Decompositions into odd squares; for each, the role assignment with the
  // least work: |X|·|Y| table pairs + |canonical Z|·|W| streamed pairs.
  struct Plan {
    int x, y, z, w;
    double cost;
  };
  std::vector<Plan> plans;
  for (int a = n | 1; a >= 1; a -= 2) {
    for (int b = a; b >= 1; b -= 2) {
      for (int c = b; c >= 1; c -= 2) {
        for (int d = c; d >= 1; d -= 2) {
          if (a * a + b * b + c * c + d * d != 4 * n) continue;
          std::array<int, 4> r = {a, b, c, d};
          std::sort(r.begin(), r.end());
          Plan best{0, 0, 0, 0, 1e300};
          do {
            const double cost = double(all[r[0]].size()) * all[r[1]].size() +
                                double(canonical[r[2]].size()) * all[r[3]].size();
            if (cost < best.cost) best = {r[0], r[1], r[2], r[3], cost};
          } while (std::next_permutation(r.begin(), r.end()));
          plans.push_back(best);
        }
      }
    }
  }
  std::sort(plans.begin(), plans.end(),
            [](const Plan& a, const Plan& b) { return a.cost < b.cost; });
  struct Entry {
    uint64_t key;
    uint32_t i, j;
  };
  for (const Plan& p : plans) {
    const RowSet &x = all[p.x], &y = all[p.y], &z = canonical[p.z], &w = all[p.w];
    std::fprintf(stderr, "row sums %d %d | %d %d: %zu x %zu table, %zu x %zu streamed\n", p.x, p.y,
                 p.z, p.w, x.size(), y.size(), z.size(), w.size());
    std::vector<Entry> table;
    for (size_t i = 0; i < x.size(); ++i) {
      for (size_t j = (p.x == p.y ? i : 0); j < y.size(); ++j) {
        if (s.PairOk(x, i, y, j)) {
          table.push_back({s.Key(&x.paf[i * h], &y.paf[j * h], 1), static_cast<uint32_t>(i),
                           static_cast<uint32_t>(j)});
        }
      }
    }
    std::sort(table.begin(), table.end(),
              [](const Entry& a, const Entry& b) { return a.key < b.key; });
    std::fprintf(stderr, "  %zu table entries at %.1f s\n", table.size(), seconds());
    for (size_t i = 0; i < z.size(); ++i) {
      for (size_t j = 0; j < w.size(); ++j) {
        if (!s.PairOk(z, i, w, j)) continue;
        const uint64_t key = s.Key(&z.paf[i * h], &w.paf[j * h], -1);
        auto it = std::lower_bound(table.begin(), table.end(), key,
                                   [](const Entry& e, uint64_t k) { return e.key < k; });
        for (; it != table.end() && it->key == key; ++it) {
          bool exact = true;
          for (int t = 0; t < h && exact; ++t) {
            exact =
                x.paf[it->i * h + t] + y.paf[it->j * h + t] + z.paf[i * h + t] + w.paf[j * h + t] ==
                0;
          }
          if (!exact) continue;
          std::printf("n=%d\nA %s\nB %s\nC %s\nD %s\n", n, Signs(s.Row(x.bits[it->i])).c_str(),
                      Signs(s.Row(y.bits[it->j])).c_str(), Signs(s.Row(z.bits[i])).c_str(),
                      Signs(s.Row(w.bits[j])).c_str());
          std::fprintf(stderr, "found at %.1f s\n", seconds());
          return 0;
        }
      }
    }
    std::fprintf(stderr, "  none at %.1f s\n", seconds());
  }
  std::fprintf(stderr, "no solution found\n");
  return 1;
}
