#include "core/model/block_runner.h"

#include "absl/strings/str_cat.h"

namespace caldera::model {
namespace {

class CpuBlockRunner final : public BlockRunner {
 public:
  CpuBlockRunner(const ModelConfig& config, const BlockWeights& weights, int64_t seq_len,
                 BlockHessians* hessians)
      : config_(config),
        weights_(weights),
        rope_(MakeRopeTable(config, seq_len)),
        seq_len_(seq_len),
        hessians_(hessians) {}

  absl::Status Forward(RowMatrixF* hidden) override {
    if (hidden->rows() % seq_len_ != 0 || hidden->cols() != config_.hidden_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("block forward: hidden states of ", hidden->rows(), " x ", hidden->cols(),
                       " are not whole sequences of ", seq_len_, " x ", config_.hidden_size));
    }
    BlockForward(config_, weights_, rope_, seq_len_, hidden, hessians_);
    return absl::OkStatus();
  }
  absl::Status Flush() override { return absl::OkStatus(); }

 private:
  const ModelConfig& config_;
  const BlockWeights& weights_;
  const RopeTable rope_;
  const int64_t seq_len_;
  BlockHessians* const hessians_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlockRunner>> MakeCpuBlockRunner(const ModelConfig& config,
                                                                const BlockWeights& weights,
                                                                int64_t seq_len,
                                                                BlockHessians* hessians) {
  if (seq_len <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("block forward: seq_len ", seq_len));
  }
  return std::unique_ptr<BlockRunner>(
      std::make_unique<CpuBlockRunner>(config, weights, seq_len, hessians));
}

}  // namespace caldera::model
