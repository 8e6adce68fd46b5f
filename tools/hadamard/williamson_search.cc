// Williamson search: symmetric circulant ±1 matrices A, B, C, D of odd order n
// with A² + B² + C² + D² = 4n·I, which the Williamson array turns into a
// Hadamard matrix of order 4n. Written for core/transform/williamson.cc; run
// once, the result is stored there as ±1 strings.
//
//   g++ -O2 -std=c++20 -o williamson_search tools/hadamard/williamson_search.cc
//   ./williamson_search 29        # prints the first rows of A, B, C, D
//
// Method: a symmetric first row is fixed by a_0..a_h (h = (n-1)/2); negating a
// matrix keeps its square, so a_0 = +1. Every such row is enumerated (2^h) and
// kept only if its power spectral density |DFT|² stays <= 4n at every
// frequency (a necessary condition). For a decomposition 4n = ra²+rb²+rc²+rd²
// into odd squares (the row sums), pairs (A, B) that pass the pair PSD bound
// are hashed by PAF_A + PAF_B (periodic autocorrelation at shifts 1..h); pairs
// (C, D) are streamed and matched with -(PAF_C + PAF_D) (meet in the middle).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct Seq {
  std::vector<int> row;     // n entries
  std::vector<int> paf;     // shifts 1..h
  std::vector<double> psd;  // frequencies 0..h
  int sum = 0;
};

std::string ToString(const std::vector<int>& r) {
  std::string s;
  for (int v : r) s += v > 0 ? '+' : '-';
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s N (odd)\n", argv[0]);
    return 2;
  }
  const int n = std::atoi(argv[1]);
  const int h = (n - 1) / 2;
  const double bound = 4.0 * n + 1e-6;
  std::vector<std::vector<Seq>> by_sum(n + 1);  // by |row sum|
  for (uint32_t bits = 0; bits < (1u << h); ++bits) {
    Seq s;
    s.row.assign(n, 1);
    for (int i = 1; i <= h; ++i) {
      const int v = (bits >> (i - 1)) & 1 ? -1 : 1;
      s.row[i] = v;
      s.row[n - i] = v;
    }
    bool ok = true;
    s.psd.resize(h + 1);
    for (int k = 0; k <= h && ok; ++k) {
      double f = 0;
      for (int i = 0; i < n; ++i) f += s.row[i] * std::cos(2 * M_PI * i * k / n);
      s.psd[k] = f * f;
      ok = s.psd[k] <= bound;
    }
    if (!ok) continue;
    s.paf.resize(h);
    for (int t = 1; t <= h; ++t) {
      int p = 0;
      for (int i = 0; i < n; ++i) p += s.row[i] * s.row[(i + t) % n];
      s.paf[t - 1] = p;
    }
    for (int v : s.row) s.sum += v;
    by_sum[std::abs(s.sum)].push_back(std::move(s));
  }
  for (int r = 0; r <= n; ++r) {
    if (!by_sum[r].empty()) std::fprintf(stderr, "row sum %d: %zu rows\n", r, by_sum[r].size());
  }
  auto key_of = [&](const Seq& a, const Seq& b, int sign) {
    std::string k(h, 0);
    for (int t = 0; t < h; ++t) k[t] = static_cast<char>(sign * (a.paf[t] + b.paf[t]));
    return k;
  };
  auto pair_ok = [&](const Seq& a, const Seq& b) {
    for (int k = 0; k <= h; ++k) {
      if (a.psd[k] + b.psd[k] > bound) return false;
    }
    return true;
  };
  // Row sums: odd ra >= rb >= rc >= rd >= 1 with squares adding to 4n.
  for (int ra = n | 1; ra >= 1; ra -= 2) {
    for (int rb = ra; rb >= 1; rb -= 2) {
      for (int rc = rb; rc >= 1; rc -= 2) {
        for (int rd = rc; rd >= 1; rd -= 2) {
          if (ra * ra + rb * rb + rc * rc + rd * rd != 4 * n) continue;
          const auto &A = by_sum[ra], &B = by_sum[rb], &C = by_sum[rc], &D = by_sum[rd];
          std::fprintf(stderr, "sums %d %d %d %d: %zu x %zu vs %zu x %zu\n", ra, rb, rc, rd,
                       A.size(), B.size(), C.size(), D.size());
          std::unordered_map<std::string, std::pair<int, int>> table;
          for (size_t i = 0; i < A.size(); ++i) {
            for (size_t j = (ra == rb ? i : 0); j < B.size(); ++j) {
              if (pair_ok(A[i], B[j]))
                table.emplace(key_of(A[i], B[j], 1), std::pair<int, int>(i, j));
            }
          }
          std::fprintf(stderr, "  %zu (A,B) keys\n", table.size());
          for (size_t i = 0; i < C.size(); ++i) {
            for (size_t j = (rc == rd ? i : 0); j < D.size(); ++j) {
              if (!pair_ok(C[i], D[j])) continue;
              auto it = table.find(key_of(C[i], D[j], -1));
              if (it == table.end()) continue;
              std::printf("n=%d\nA %s\nB %s\nC %s\nD %s\n", n,
                          ToString(A[it->second.first].row).c_str(),
                          ToString(B[it->second.second].row).c_str(), ToString(C[i].row).c_str(),
                          ToString(D[j].row).c_str());
              return 0;
            }
          }
        }
      }
    }
  }
  std::fprintf(stderr, "no solution found\n");
  return 1;
}
