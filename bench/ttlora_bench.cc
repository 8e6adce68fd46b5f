// TT-LoRA adapters: parameters against a rank-8 LoRA of the same matrix, TT-SVD
// time, and the weighted error before/after the residual init.
//
//   ttlora_bench [--model DIR --hessians DIR] [--size N] [--rank R]
//
// The "after" error uses E = W − Ŵ with Ŵ a 2-bit E8P LDLQ reconstruction.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "core/decompose/caldera.h"
#include "core/format/safetensors.h"
#include "core/ttlora/adapter.h"

namespace {

using Clock = std::chrono::steady_clock;
using caldera::quant::MatrixF;

void Run(const std::string& name, const MatrixF& w, const Eigen::MatrixXd& h, int64_t rank) {
  caldera::decompose::DecomposeOptions o;
  o.method = caldera::decompose::Method::kLdlq;
  auto dec = caldera::decompose::Decompose(w, h, o);
  if (!dec.ok()) {
    std::printf("%s: %s\n", name.c_str(), std::string(dec.status().message()).c_str());
    return;
  }
  auto shape = caldera::ttlora::DefaultShape(w.rows(), w.cols());
  const auto t0 = Clock::now();
  auto init = caldera::ttlora::InitializeAdapter(w, dec->w_hat, h.cast<float>(), *shape, rank, 1.0,
                                                 caldera::ttlora::InitMode::kResidual, 1);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!init.ok()) {
    std::printf("%s: %s\n", name.c_str(), std::string(init.status().message()).c_str());
    return;
  }
  const double base = (w.cast<double>() * h).cwiseProduct(w.cast<double>()).sum();
  const int64_t lora8 = 8 * (w.rows() + w.cols());
  // Parameters of the residual TT (before any fallback), from its ranks.
  caldera::ttlora::InitResult probe = *init;
  std::printf("%-30s %-22s %7ld %8ld %6.2f%% %8.3f %10.5f %10.5f %8.4f %s\n", name.c_str(),
              caldera::ttlora::ShapeSpec(*shape).c_str(), static_cast<long>(probe.adapter.Params()),
              static_cast<long>(lora8), 100.0 * probe.adapter.Params() / lora8, secs,
              std::sqrt(init->weighted_error_before / base),
              std::sqrt(init->weighted_error_after / base), init->captured_energy,
              init->fell_back_to_zero ? "kept zero" : "kept residual");
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, hess;
  int64_t size = 4096, rank = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    if (!std::strcmp(argv[i], "--hessians")) hess = argv[i + 1];
    if (!std::strcmp(argv[i], "--size")) size = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rank")) rank = std::atoll(argv[i + 1]);
  }
  std::printf("%-30s %-22s %7s %8s %7s %8s %10s %10s %8s\n", "matrix", "shape", "TT par", "LoRA r8",
              "ratio", "TT s", "w.err bef", "w.err aft", "energy");
  if (!model.empty()) {
    auto m = caldera::SafetensorsReader::OpenFile(model + "/model.safetensors");
    auto h = caldera::SafetensorsReader::OpenFile(hess + "/layer-0.hessians.safetensors");
    if (!m.ok() || !h.ok()) {
      std::fprintf(stderr, "cannot open the model or Hessians\n");
      return 1;
    }
    for (auto [module, hname] :
         {std::pair{"self_attn.q_proj", "q_proj"}, std::pair{"mlp.gate_proj", "gate_proj"},
          std::pair{"mlp.down_proj", "down_proj"}}) {
      auto wt =
          (*m)->ReadAs(std::string("model.layers.0.") + module + ".weight", caldera::DType::kF32);
      auto ht = (*h)->ReadAs(hname, caldera::DType::kF64);
      if (!wt.ok() || !ht.ok()) return 1;
      MatrixF w = Eigen::Map<const Eigen::Matrix<float, -1, -1, Eigen::RowMajor>>(
          wt->data<float>().data(), wt->dim(0), wt->dim(1));
      Eigen::MatrixXd hd = Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>>(
          ht->data<double>().data(), ht->dim(0), ht->dim(1));
      Run(std::string("stories260K L0 ") + module, w, hd, rank);
    }
  }
  if (size > 0) {
    std::mt19937 rng(3);
    std::normal_distribution<float> normal;
    MatrixF w(size, size);
    for (int64_t i = 0; i < w.size(); ++i) w.data()[i] = normal(rng) / std::sqrt(float(size));
    Run(std::to_string(size) + "x" + std::to_string(size) + " synthetic (H = I)", w,
        Eigen::MatrixXd::Identity(size, size), rank);
  }
  return 0;
}
