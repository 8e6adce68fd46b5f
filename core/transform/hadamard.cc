#include "core/transform/hadamard.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/transform/williamson.h"
#include "core/util/splitmix64.h"

namespace caldera::transform {
namespace {

// Arithmetic in GF(p^d) for the small fields Paley needs. Elements are integers
// 0..q-1 read as polynomials in base p; `modulus` holds the monic irreducible
// polynomial's lower coefficients (x^d = -sum modulus[i] x^i).
struct Field {
  int p, d, q;
  std::vector<int> modulus;

  std::vector<int> Digits(int a) const {
    std::vector<int> v(d);
    for (int i = 0; i < d; ++i, a /= p) v[i] = a % p;
    return v;
  }
  int FromDigits(const std::vector<int>& v) const {
    int a = 0;
    for (int i = d - 1; i >= 0; --i) a = a * p + ((v[i] % p) + p) % p;
    return a;
  }
  int Sub(int a, int b) const {
    std::vector<int> x = Digits(a), y = Digits(b);
    for (int i = 0; i < d; ++i) x[i] -= y[i];
    return FromDigits(x);
  }
  int Mul(int a, int b) const {
    std::vector<int> x = Digits(a), y = Digits(b), r(2 * d, 0);
    for (int i = 0; i < d; ++i) {
      for (int j = 0; j < d; ++j) r[i + j] = (r[i + j] + x[i] * y[j]) % p;
    }
    for (int k = 2 * d - 2; k >= d; --k) {  // reduce x^k = x^(k-d) * x^d
      const int c = r[k];
      r[k] = 0;
      for (int i = 0; i < d; ++i) r[k - d + i] = ((r[k - d + i] - c * modulus[i]) % p + p) % p;
    }
    r.resize(d);
    return FromDigits(r);
  }
  // Quadratic character: 0, 1 (square) or -1.
  int Chi(int a) const {
    if (a == 0) return 0;
    int result = 1, base = a, e = (q - 1) / 2;
    while (e > 0) {
      if (e & 1) result = Mul(result, base);
      base = Mul(base, base);
      e >>= 1;
    }
    return result == 1 ? 1 : -1;
  }
};

// q -> its field. Irreducible moduli: x^3 + 2x + 1 over GF(3), x^2 + 2 over GF(5).
bool FieldFor(int q, Field* f) {
  for (int p : {3, 5, 11, 17, 19, 59, 61, 107, 139}) {
    if (q == p) {
      *f = Field{p, 1, q, {0}};
      return true;
    }
  }
  if (q == 27) {
    *f = Field{3, 3, 27, {1, 2, 0}};
    return true;
  }
  if (q == 25) {
    *f = Field{5, 2, 25, {2, 0}};
    return true;
  }
  return false;
}

// Jacobsthal matrix Q[i][j] = chi(j - i) over the field of order q.
Eigen::MatrixXf Jacobsthal(const Field& f) {
  Eigen::MatrixXf m(f.q, f.q);
  for (int i = 0; i < f.q; ++i) {
    for (int j = 0; j < f.q; ++j) m(i, j) = static_cast<float>(f.Chi(f.Sub(j, i)));
  }
  return m;
}

Eigen::MatrixXf PaleyOne(const Field& f) {  // order q + 1, q ≡ 3 mod 4
  const int q = f.q;
  Eigen::MatrixXf s = Eigen::MatrixXf::Zero(q + 1, q + 1);
  s.block(0, 1, 1, q).setOnes();
  s.block(1, 0, q, 1).setConstant(-1);
  s.block(1, 1, q, q) = Jacobsthal(f);
  return Eigen::MatrixXf::Identity(q + 1, q + 1) + s;
}

Eigen::MatrixXf PaleyTwo(const Field& f) {  // order 2(q + 1), q ≡ 1 mod 4
  const int q = f.q;
  Eigen::MatrixXf c = Eigen::MatrixXf::Zero(q + 1, q + 1);
  c.block(0, 1, 1, q).setOnes();
  c.block(1, 0, q, 1).setOnes();
  c.block(1, 1, q, q) = Jacobsthal(f);
  Eigen::MatrixXf h(2 * (q + 1), 2 * (q + 1));
  for (int i = 0; i <= q; ++i) {
    for (int j = 0; j <= q; ++j) {
      float a, b, cc, d;
      if (i == j) {
        a = 1, b = -1, cc = -1, d = -1;  // identity ⊗ [[1,-1],[-1,-1]]
      } else {
        const float v = c(i, j);  // C ⊗ [[1,1],[1,-1]]
        a = v, b = v, cc = v, d = -v;
      }
      h(2 * i, 2 * j) = a;
      h(2 * i, 2 * j + 1) = b;
      h(2 * i + 1, 2 * j) = cc;
      h(2 * i + 1, 2 * j + 1) = d;
    }
  }
  return h;
}

bool IsPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

template <typename Matrix>
void Fwht(Matrix* x, int64_t k, int64_t p) {
  // Each column holds K consecutive blocks of length p; transform each block.
  using Scalar = typename Matrix::Scalar;
  for (int64_t col = 0; col < x->cols(); ++col) {
    Scalar* v = x->col(col).data();
    for (int64_t blk = 0; blk < k; ++blk) {
      Scalar* b = v + blk * p;
      for (int64_t h = 1; h < p; h *= 2) {
        for (int64_t i = 0; i < p; i += 2 * h) {
          for (int64_t j = i; j < i + h; ++j) {
            const Scalar a = b[j], c = b[j + h];
            b[j] = a + c;
            b[j + h] = a - c;
          }
        }
      }
    }
  }
}

template <typename Matrix>
void Apply(const Eigen::MatrixXf& hk, int64_t n, int k, Matrix* x, bool transpose) {
  using Scalar = typename Matrix::Scalar;
  const int64_t p = n / k;
  Fwht(x, k, p);
  if (k > 1) {
    // Mix the K blocks: for every column, view it as a p × K matrix Y (block b
    // is column b of Y) and compute Y · H_Kᵀ (or Y · H_K for the transpose).
    Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> h = hk.cast<Scalar>();
    if (!transpose) h.transposeInPlace();
    Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> y(p, k);
    for (int64_t col = 0; col < x->cols(); ++col) {
      Eigen::Map<Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>> view(x->col(col).data(), p,
                                                                             k);
      y.noalias() = view * h;
      view = y;
    }
  }
  *x *= static_cast<Scalar>(1.0 / std::sqrt(static_cast<double>(n)));
}

// Row version of Apply: every row u of x becomes the transform ApplyToColumns
// would give the column u. Rows go in blocks of rb, copied into a contiguous
// rb × n buffer that stays in cache across the log2(p) butterfly passes (in
// place, the block's columns sit a whole column apart, and at power-of-two
// strides they all map to the same few cache sets); each butterfly pairs two
// of the buffer's columns.
template <typename Matrix>
void ApplyRows(const Eigen::MatrixXf& hk, int64_t n, int k, Matrix* x, bool transpose) {
  using Scalar = typename Matrix::Scalar;
  using Dense = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  const int64_t p = n / k, rows = x->rows();
  const int64_t block_rows = std::max<int64_t>(16, (256 * 1024 / sizeof(Scalar)) / n / 16 * 16);
  Dense h = hk.cast<Scalar>();
  if (!transpose) h.transposeInPlace();
  Dense y, buf;
  const Scalar scale = static_cast<Scalar>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int64_t r0 = 0; r0 < rows; r0 += block_rows) {
    const int64_t rb = std::min(block_rows, rows - r0);
    buf = x->middleRows(r0, rb);
    Scalar* base = buf.data();
    const int64_t ld = rb;
    for (int64_t blk = 0; blk < k; ++blk) {
      for (int64_t hh = 1; hh < p; hh *= 2) {
        for (int64_t i = 0; i < p; i += 2 * hh) {
          for (int64_t j = i; j < i + hh; ++j) {
            Scalar* a = base + (blk * p + j) * ld;
            Scalar* c = base + (blk * p + j + hh) * ld;
            for (int64_t r = 0; r < rb; ++r) {
              const Scalar av = a[r], cv = c[r];
              a[r] = av + cv;
              c[r] = av - cv;
            }
          }
        }
      }
    }
    if (k > 1) {
      // Column l of block a sits at (a·p + l)·ld: an rb × K matrix with outer
      // stride p·ld, mixed by H_K like the column version's p × K view.
      for (int64_t l = 0; l < p; ++l) {
        Eigen::Map<Dense, 0, Eigen::OuterStride<>> view(base + l * ld, rb, k,
                                                        Eigen::OuterStride<>(p * ld));
        y.noalias() = view * h;
        view = y;
      }
    }
    x->middleRows(r0, rb) = buf * scale;
  }
}

}  // namespace

const std::vector<int>& SupportedHadamardOrders() {
  static const std::vector<int> kOrders = [] {
    std::vector<int> v = {1, 12, 20, 28, 36, 52, 60, 108, 124, 140};
    for (int k : WilliamsonOrders()) v.push_back(k);
    std::sort(v.begin(), v.end());
    return v;
  }();
  return kOrders;
}

absl::StatusOr<Eigen::MatrixXf> HadamardMatrix(int k) {
  if (k == 1) return Eigen::MatrixXf::Ones(1, 1);
  if (std::optional<Eigen::MatrixXf> w = WilliamsonHadamard(k)) return *std::move(w);
  Field f;
  if (FieldFor(k - 1, &f) && (k - 1) % 4 == 3) return PaleyOne(f);
  if (k % 2 == 0 && FieldFor(k / 2 - 1, &f) && (k / 2 - 1) % 4 == 1) return PaleyTwo(f);
  return absl::InvalidArgumentError(
      absl::StrCat("no Hadamard construction of order ", k,
                   "; supported orders: ", absl::StrJoin(SupportedHadamardOrders(), ", ")));
}

int64_t SupportedSizeAtLeast(int64_t n) {
  n = std::max<int64_t>(n, 1);
  int64_t best = INT64_MAX;
  for (int k : SupportedHadamardOrders()) {
    int64_t v = k;
    while (v < n) v *= 2;
    best = std::min(best, v);
  }
  return best;
}

absl::StatusOr<HadamardTransform> HadamardTransform::Create(int64_t n) {
  const std::vector<int>& orders = SupportedHadamardOrders();
  for (auto it = orders.rbegin(); it != orders.rend(); ++it) {
    if (n % *it == 0 && IsPowerOfTwo(n / *it)) {
      HadamardTransform t;
      t.n_ = n;
      t.k_ = *it;
      absl::StatusOr<Eigen::MatrixXf> h = HadamardMatrix(*it);
      if (!h.ok()) return h.status();
      t.hk_ = *std::move(h);
      return t;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("n=", n, " is not 2^k*K for K in {", absl::StrJoin(orders, ", "), "}; pad to ",
                   SupportedSizeAtLeast(n), " (SupportedSizeAtLeast)"));
}

void HadamardTransform::ApplyToColumns(Eigen::MatrixXf* x, bool transpose) const {
  Apply(hk_, n_, k_, x, transpose);
}

void HadamardTransform::ApplyToColumns(Eigen::MatrixXd* x, bool transpose) const {
  Apply(hk_, n_, k_, x, transpose);
}

void HadamardTransform::ApplyToRows(Eigen::MatrixXf* x, bool transpose) const {
  ApplyRows(hk_, n_, k_, x, transpose);
}

void HadamardTransform::ApplyToRows(Eigen::MatrixXd* x, bool transpose) const {
  ApplyRows(hk_, n_, k_, x, transpose);
}

std::vector<float> SignsFromSeed(uint64_t seed, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  SplitMix64 rng(seed);
  uint64_t word = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (i % 64 == 0) word = rng.Next();
    out[static_cast<size_t>(i)] = (word >> (i % 64)) & 1 ? -1.0f : 1.0f;
  }
  return out;
}

std::vector<uint8_t> PackSigns(const std::vector<float>& signs) {
  std::vector<uint8_t> bits((signs.size() + 7) / 8, 0);
  for (size_t i = 0; i < signs.size(); ++i) {
    if (std::signbit(signs[i])) bits[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  }
  return bits;
}

absl::StatusOr<std::vector<float>> UnpackSigns(const std::vector<uint8_t>& bits, int64_t n) {
  if (n < 0 || static_cast<int64_t>(bits.size()) < (n + 7) / 8) {
    return absl::InvalidArgumentError(absl::StrCat("packed signs: ", bits.size(),
                                                   " bytes cannot hold ", n, " signs; need ",
                                                   (std::max<int64_t>(n, 0) + 7) / 8, " bytes"));
  }
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    out[static_cast<size_t>(i)] = (bits[static_cast<size_t>(i / 8)] >> (i % 8)) & 1 ? -1.0f : 1.0f;
  }
  return out;
}

}  // namespace caldera::transform
