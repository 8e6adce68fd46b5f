// Hadamard matrices of order 4n from Williamson matrices: symmetric circulant
// ±1 matrices A, B, C, D of odd order n with A² + B² + C² + D² = 4n·I, placed in
// the Williamson array
//     [  A  B  C  D ]
//     [ -B  A -D  C ]
//     [ -C  D  A -B ]
//     [ -D -C  B  A ]
// The first rows were found by our own search, tools/hadamard/williamson_search.cc
// (rerun it to reproduce them); they are stored in williamson.cc.
#ifndef CALDERA_CORE_TRANSFORM_WILLIAMSON_H_
#define CALDERA_CORE_TRANSFORM_WILLIAMSON_H_

#include <Eigen/Dense>
#include <optional>
#include <vector>

namespace caldera::transform {

// The orders 4n for which Williamson rows are stored, ascending.
const std::vector<int>& WilliamsonOrders();

// The ±1 Hadamard matrix of order `order` (one of WilliamsonOrders()), or
// nullopt for any other order.
std::optional<Eigen::MatrixXf> WilliamsonHadamard(int order);

}  // namespace caldera::transform

#endif  // CALDERA_CORE_TRANSFORM_WILLIAMSON_H_
