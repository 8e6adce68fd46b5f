#include "model_io/hessians_reader.h"

#include <algorithm>
#include <memory>
#include <span>

#include "absl/strings/str_cat.h"
#include "core/format/hessians.h"
#include "core/format/safetensors.h"
#include "model_io/model_inputs.h"

namespace caldera::model_io {
namespace {

absl::Status Annotate(const absl::Status& s, absl::string_view what) {
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

}  // namespace

absl::StatusOr<Eigen::MatrixXd> ReadHessian(const std::string& hessians_uri,
                                            const std::string& name,
                                            const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      OpenSafetensorsAt(hessians_uri, options);
  if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", hessians_uri));
  absl::StatusOr<Tensor> t = format::ReadHessian(**reader, name);
  if (!t.ok()) return t.status();
  Eigen::MatrixXd h(t->dim(0), t->dim(1));
  std::span<const double> d = t->data<double>();
  std::copy(d.begin(), d.end(), h.data());  // symmetric: storage order does not matter
  return h;
}

absl::StatusOr<std::pair<int64_t, double>> ReadExpertTokens(
    const std::string& hessians_uri, int64_t expert, const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      OpenSafetensorsAt(hessians_uri, options);
  if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", hessians_uri));
  return format::ReadExpertTokens(**reader, expert);
}

absl::StatusOr<Eigen::MatrixXd> ReadShardedHessian(const std::vector<std::string>& hessians_uris,
                                                   const std::string& name,
                                                   const storage::StorageOptions& options,
                                                   int64_t* bytes_read) {
  if (hessians_uris.empty()) return absl::InvalidArgumentError("no Hessians file to read");
  auto count = [&](const Eigen::MatrixXd& h) {
    if (bytes_read != nullptr) *bytes_read += h.size() * static_cast<int64_t>(sizeof(double));
  };
  if (hessians_uris.size() == 1) {
    absl::StatusOr<Eigen::MatrixXd> h = ReadHessian(hessians_uris[0], name, options);
    if (h.ok()) count(*h);
    return h;
  }
  Eigen::MatrixXd sum;
  int64_t total_tokens = 0;
  for (const std::string& uri : hessians_uris) {  // shard order: the summation order
    absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader = OpenSafetensorsAt(uri, options);
    if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", uri));
    absl::StatusOr<int64_t> tokens = format::ReadHessiansTokens(**reader);
    if (!tokens.ok()) return tokens.status();
    absl::StatusOr<Tensor> t = format::ReadHessian(**reader, name);
    if (!t.ok()) return t.status();
    if (sum.size() == 0) {
      sum = Eigen::MatrixXd::Zero(t->dim(0), t->dim(1));
    } else if (t->dim(0) != sum.rows()) {
      return absl::InvalidArgumentError(absl::StrCat(uri, ": Hessian ", name, " is ", t->dim(0),
                                                     "x", t->dim(1), ", other shards' are ",
                                                     sum.rows(), "x", sum.cols()));
    }
    std::span<const double> d = t->data<double>();
    const double w = static_cast<double>(*tokens);
    double* out = sum.data();  // symmetric: storage order does not matter
    for (size_t k = 0; k < d.size(); ++k) out[k] += w * d[k];
    total_tokens += *tokens;
    count(sum);
  }
  sum /= static_cast<double>(total_tokens);
  return sum;
}

}  // namespace caldera::model_io
