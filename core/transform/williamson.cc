#include "core/transform/williamson.h"

#include <string_view>

namespace caldera::transform {
namespace {

// First rows of A, B, C, D ('+' = +1, '-' = -1), output of
// tools/hadamard/williamson_search.cc for the odd order n = length.
struct WilliamsonRows {
  std::string_view a, b, c, d;
};

constexpr WilliamsonRows kRows[] = {
    // n = 29 -> order 116.
    {"+-+++-+++--+-++++-+--+++-+++-", "++--++-+-++++----++++-+-++--+",
     "+--+---+-+--++++++--+-+---+--", "+--++----+-++++++++-+----++--"},
    // n = 39 -> order 156.
    {"+---+---+-++-++----++----++-++-+---+---", "++--+++-+--++-+----------+-++--+-+++--+",
     "+-++------++--+-+-++++-+-+--++------++-", "+---+--++++----+-+-++-+-+----++++--+---"},
    // n = 43 -> order 172 (the fixture's MLP width; 11008 = 64 * 172).
    {"+-++++--++--+-+-+-++++++++-+-+-+--++--++++-", "+------++-+---++++-++--++-++++---+-++------",
     "++---+-+--++--+---++++++++---+--++--+-+---+", "+----++++-+--+--+-+--++--+-+--+--+-++++----"},
};

Eigen::MatrixXf Circulant(std::string_view first_row) {
  const int n = static_cast<int>(first_row.size());
  Eigen::MatrixXf m(n, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) m(i, j) = first_row[(j - i + n) % n] == '+' ? 1.0f : -1.0f;
  }
  return m;
}

}  // namespace

const std::vector<int>& WilliamsonOrders() {
  static const std::vector<int> kOrders = [] {
    std::vector<int> v;
    for (const WilliamsonRows& r : kRows) v.push_back(4 * static_cast<int>(r.a.size()));
    return v;
  }();
  return kOrders;
}

std::optional<Eigen::MatrixXf> WilliamsonHadamard(int order) {
  for (const WilliamsonRows& r : kRows) {
    const int n = static_cast<int>(r.a.size());
    if (4 * n != order) continue;
    const Eigen::MatrixXf a = Circulant(r.a), b = Circulant(r.b), c = Circulant(r.c),
                          d = Circulant(r.d);
    Eigen::MatrixXf h(order, order);
    h << a, b, c, d,   //
        -b, a, -d, c,  //
        -c, d, a, -b,  //
        -d, -c, b, a;
    return h;
  }
  return std::nullopt;
}

}  // namespace caldera::transform
