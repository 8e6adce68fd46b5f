#include "operations/peft_adapter.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/decompose/record.h"
#include "core/format/matrix_record.h"
#include "core/model/head_sharing.h"
#include "core/model/model_config.h"
#include "nlohmann/json.hpp"

namespace caldera::operations {
namespace {

// An Eigen matrix as a row-major F32 tensor converted to `dtype`.
absl::StatusOr<Tensor> ToTensor(const quant::MatrixF& m, DType dtype) {
  absl::StatusOr<Tensor> t = Tensor::Zeros(DType::kF32, {m.rows(), m.cols()});
  if (!t.ok()) return t.status();
  std::span<float> d = t->mutable_data<float>();
  for (int64_t r = 0; r < m.rows(); ++r) {
    for (int64_t c = 0; c < m.cols(); ++c) d[r * m.cols() + c] = m(r, c);
  }
  if (dtype == DType::kF32) return t;
  return t->ConvertTo(dtype);
}

}  // namespace

std::string BaseModelName(const std::string& base) {
  if (base.find("://") != std::string::npos) return base;
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::absolute(base, ec);
  return ec ? base : p.lexically_normal().string();
}

absl::StatusOr<Tensor> PeftAdapterBuilder::Split(const model::Checkpoint& ckpt,
                                                 const std::string& module, const std::string& name,
                                                 Tensor w) {
  ++count_of_name_[name];
  const SafetensorsReader* reader =
      ckpt.ReaderFor(absl::StrCat(module, ".", format::kRecordConfigName));
  if (reader == nullptr) return w;  // kept dense by compress: all in the base
  absl::StatusOr<decompose::RecordFactors> f = decompose::ReadRecordFactors(*reader, module);
  if (!f.ok()) return f.status();
  if (f->l.cols() == 0) return w;  // ldlq / rtn (a --target-bits choice): all in the base
  if (ckpt.head_sharing() != nullptr && w.rank() == 2 &&
      (f->l.rows() != w.dim(0) || f->r.cols() != w.dim(1))) {
    // A record without its aliased heads (docs/format/head-sharing.md): the
    // adapter covers the stored heads; the aliased rows of L (q/k/v) or
    // columns of R (o) are zero, so those slices stay whole in the base.
    for (const model::LinearModule& lm : model::kLinearModules) {
      if (!absl::EndsWith(module, absl::StrCat(".", lm.suffix))) continue;
      const std::string layer_prefix = module.substr(0, module.size() - std::strlen(lm.suffix));
      for (int64_t layer = 0; layer < ckpt.config().num_layers; ++layer) {
        if (ckpt.config().LayerPrefix(layer) != layer_prefix) continue;
        const std::vector<model::AliasedSlice> slices =
            model::AliasedSlices(*ckpt.head_sharing(), layer, lm.name);
        const bool columns = model::SharesColumns(lm.name);
        const std::vector<int64_t> kept = model::KeptIndices(columns ? w.dim(1) : w.dim(0), slices);
        if (!columns && static_cast<int64_t>(kept.size()) == f->l.rows()) {
          quant::MatrixF l = quant::MatrixF::Zero(w.dim(0), f->l.cols());
          for (size_t i = 0; i < kept.size(); ++i)
            l.row(kept[i]) = f->l.row(static_cast<int64_t>(i));
          f->l = std::move(l);
        } else if (columns && static_cast<int64_t>(kept.size()) == f->r.cols()) {
          quant::MatrixF r = quant::MatrixF::Zero(f->r.rows(), w.dim(1));
          for (size_t i = 0; i < kept.size(); ++i)
            r.col(kept[i]) = f->r.col(static_cast<int64_t>(i));
          f->r = std::move(r);
        }
      }
    }
  }
  const int64_t rows = f->l.rows(), cols = f->r.cols();
  if (w.dtype() != DType::kF32 || w.shape() != std::vector<int64_t>{rows, cols}) {
    return absl::InternalError(absl::StrCat("module '", module, "': weight and record disagree"));
  }
  const int64_t k = ft_rank_ > 0 ? std::min<int64_t>(ft_rank_, f->l.cols()) : f->l.cols();
  const quant::MatrixF b = f->l.leftCols(k);
  const quant::MatrixF a = f->r.topRows(k);
  const quant::MatrixF ba = b * a;
  std::span<float> d = w.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) d[r * cols + c] -= ba(r, c);
  }
  absl::StatusOr<Tensor> ta = ToTensor(a, dtype_);
  absl::StatusOr<Tensor> tb = ToTensor(b, dtype_);
  if (!ta.ok()) return ta.status();
  if (!tb.ok()) return tb.status();
  const std::string key = absl::StrCat("base_model.model.", module);
  if (absl::Status s = writer_.Add(key + ".lora_A.weight", *std::move(ta)); !s.ok()) return s;
  if (absl::Status s = writer_.Add(key + ".lora_B.weight", *std::move(tb)); !s.ok()) return s;
  rank_of_[module] = k;
  modules_of_name_[name].push_back(module);
  return w;
}

absl::StatusOr<std::string> PeftAdapterBuilder::ConfigJson(const std::string& base_model) const {
  if (rank_of_.empty()) {
    return absl::FailedPreconditionError(
        "--format peft needs L and R, but no module of the checkpoint has them (each was "
        "compressed with method ldlq or rtn, or kept dense): there is nothing to put in an "
        "adapter; use --format hf or dense");
  }
  // r: the most common adapter rank; the others go to rank_pattern (and
  // alpha_pattern, lora_alpha = r everywhere so the scaling is 1).
  std::map<int64_t, int> votes;
  for (const auto& [module, k] : rank_of_) ++votes[k];
  int64_t r = 0;
  int best = 0;
  for (const auto& [k, n] : votes) {
    if (n > best) r = k, best = n;
  }
  nlohmann::json rank_pattern = nlohmann::json::object();
  nlohmann::json alpha_pattern = nlohmann::json::object();
  for (const auto& [module, k] : rank_of_) {
    if (k == r) continue;
    rank_pattern[module] = k;
    alpha_pattern[module] = k;
  }
  // target_modules: the short names when every linear of that name has
  // factors, else the full module names (PEFT matches either as a suffix).
  nlohmann::json targets = nlohmann::json::array();
  for (const auto& [name, modules] : modules_of_name_) {
    const auto seen = count_of_name_.find(name);
    if (seen != count_of_name_.end() && seen->second == static_cast<int>(modules.size())) {
      targets.push_back(name);
    } else {
      for (const std::string& m : modules) targets.push_back(m);
    }
  }
  nlohmann::json j = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", base_model},
      {"r", r},
      {"lora_alpha", r},
      {"rank_pattern", rank_pattern},
      {"alpha_pattern", alpha_pattern},
      {"target_modules", targets},
      {"lora_dropout", 0.0},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"use_rslora", false},
      {"init_lora_weights", true},
      {"inference_mode", true},
      {"modules_to_save", nullptr},
  };
  return j.dump(2) + "\n";
}

absl::StatusOr<std::string> PeftAdapterBuilder::SafetensorsBytes() const {
  return writer_.Serialize();
}

}  // namespace caldera::operations
