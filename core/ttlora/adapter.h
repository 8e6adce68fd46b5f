// TT-LoRA adapters: ΔW (d_out × d_in) as a tensor train over the split shape
// [m_1..m_p | n_1..n_q] of ΔWᵀ reshaped row-major (Π m = d_in, Π n = d_out, m_1
// and n_1 the most significant digits), bond ranks [1, r, …, r, 1]. The layer
// computes y = base(x) + α·x·ΔWᵀ. See docs/format/ttlora-adapter.md.
#ifndef CALDERA_CORE_TTLORA_ADAPTER_H_
#define CALDERA_CORE_TTLORA_ADAPTER_H_

#include <Eigen/Dense>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/format/ttlora_adapter.h"
#include "core/tensor/tensor.h"
#include "core/ttlora/tt_svd.h"

namespace caldera::ttlora {

struct AdapterShape {
  std::vector<int64_t> in_factors;   // m_1..m_p, product d_in
  std::vector<int64_t> out_factors;  // n_1..n_q, product d_out
};

// Factors d into `count` factors (count 0: the default, about one factor per
// 4x, at most 6), larger factors first. INVALID_ARGUMENT for d < 1.
absl::StatusOr<std::vector<int64_t>> FactorizeDim(int64_t d, int count);

// The default shape for a d_out × d_in matrix: input factors largest first,
// output factors largest last (large factors at both ends of the train).
absl::StatusOr<AdapterShape> DefaultShape(int64_t d_out, int64_t d_in, int count = 0);

// Parses "m1,m2,...:n1,n2,..." and checks the products against d_in / d_out.
absl::StatusOr<AdapterShape> ParseShape(absl::string_view spec, int64_t d_out, int64_t d_in);

std::string ShapeSpec(const AdapterShape& shape);  // "m1,m2:n1,n2"

// How an adapter starts (--ttlora-init): ΔW = 0 (zero) or fitted to the
// residual W − Ŵ (residual); see InitializeAdapter.
enum class InitMode { kZero, kResidual };

// "zero" or "residual": the spelling of flags, the proto and stored configs.
absl::string_view InitModeName(InitMode mode);
// The inverse of InitModeName. INVALID_ARGUMENT "--ttlora-init X is unknown;
// use zero or residual" (X cut to ~200 bytes) for anything else.
absl::StatusOr<InitMode> ParseInitMode(absl::string_view name);

struct Adapter {
  AdapterShape shape;
  TensorTrain tt;  // shape = in_factors ++ out_factors
  double alpha = 1.0;
  std::string init;  // as stored: InitModeName of the mode that produced it

  int64_t Params() const { return tt.Params(); }
  // A_in (d_in × r_p) and B_out (r_p × d_out): ΔWᵀ = A_in·B_out.
  Eigen::MatrixXd InputFactor() const;
  Eigen::MatrixXd OutputFactor() const;
  // α·x·ΔWᵀ for a batch x (tokens × d_in), without forming ΔW.
  Eigen::MatrixXf Apply(const Eigen::MatrixXf& x) const;
  // The dense α·ΔW (d_out × d_in), for tests and export.
  Eigen::MatrixXd Materialize() const;
  // Cores as float32 tensors [r_{k-1}, s_k, r_k] named "core.{k}".
  std::vector<std::pair<std::string, Tensor>> ExportCores() const;
};

struct InitResult {
  Adapter adapter;
  double weighted_error_before = 0;  // tr(E H Eᵀ) with E = W − Ŵ
  double weighted_error_after = 0;   // with E = W − Ŵ − α·ΔW
  double captured_energy = 0;        // ‖α·ΔW‖²/‖E‖² of the residual TT (0 for zero)
  bool fell_back_to_zero = false;    // residual did not lower the weighted error
};

// `zero`: random left-orthonormal cores (seeded), last core zero, so ΔW = 0.
// `residual`: TT-SVD of E = W − Ŵ (caps r), then refitted to E in the
// weighted norm tr((E − α·ΔW)·H·(E − α·ΔW)ᵀ) by alternating least squares
// (weighted_fit.h); kept only when it lowers tr(E H Eᵀ) (otherwise zero, which
// the fit makes rare: any single core update can reach ΔW = 0). Checks ranks
// and shapes.
absl::StatusOr<InitResult> InitializeAdapter(const Eigen::MatrixXf& w, const Eigen::MatrixXf& w_hat,
                                             const Eigen::MatrixXf& h, const AdapterShape& shape,
                                             int64_t rank, double alpha, InitMode mode,
                                             uint64_t seed);

// The adapter as stored (config + cores, format caldera.ttlora.v1, owned by
// core/format/ttlora_adapter.h) for a set of modules.
format::TtloraAdapterFile AdapterFile(const std::vector<std::string>& base_modules,
                                      const Adapter& a);

// The inverse: an adapter from its stored form (cores widened to double).
// INVALID_ARGUMENT when the cores do not match the config.
absl::StatusOr<Adapter> AdapterFromFile(const format::TtloraAdapterFile& file);

// Adds the stored adapter of `prefix` (α·ΔW) to `weight` (F32 [d_out, d_in])
// when `reader` holds one (its first core "<prefix>.ttlora.core.0"); a no-op
// otherwise, and for files that hold cores without a config (checkpoints
// written before the config was kept with them). Errors name the file.
absl::Status AddStoredAdapter(const SafetensorsReader& reader, absl::string_view prefix,
                              Tensor* weight);

}  // namespace caldera::ttlora

#endif  // CALDERA_CORE_TTLORA_ADAPTER_H_
