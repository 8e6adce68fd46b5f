#include "core/model/model_runner.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace caldera::model {
namespace {

absl::StatusOr<RowMatrixF> ReadMatrix(const Checkpoint& ckpt, const std::string& name, int64_t rows,
                                      int64_t cols) {
  absl::StatusOr<Tensor> t = ckpt.ReadF32(name);
  if (!t.ok()) return t.status();
  if (t->rank() != 2 || t->dim(0) != rows || t->dim(1) != cols) {
    return absl::InvalidArgumentError(absl::StrCat("model ", ckpt.name(), ": '", name,
                                                   "' has shape ", ShapeString(t->shape()),
                                                   ", expected [", rows, ", ", cols, "]"));
  }
  return Eigen::Map<const RowMatrixF>(t->data<float>().data(), rows, cols);
}

// Runs blocks [0, last] over `hidden`, calling `after(layer)` after each.
absl::Status RunLayersUpTo(const Checkpoint& ckpt, int64_t seq_len, int64_t last,
                           const RunOptions& options, RowMatrixF* hidden,
                           const std::function<BlockHessians*(int64_t)>& hessians_for,
                           const std::function<absl::Status(int64_t)>& after) {
  for (int64_t layer = 0; layer <= last; ++layer) {
    absl::StatusOr<BlockWeights> w = LoadBlock(ckpt, layer);
    if (!w.ok()) return w.status();
    if (absl::Status s = RunLayer(ckpt, *w, seq_len, options, hidden, hessians_for(layer));
        !s.ok()) {
      return s;
    }
    if (options.progress) {
      options.progress(layer + 1, last + 1, absl::StrCat("layer ", layer));
    }
    if (absl::Status s = after(layer); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Runs every block over the embeddings of `tokens` (no Hessians).
absl::StatusOr<RowMatrixF> FinalHidden(const Checkpoint& ckpt, const TokenSet& tokens,
                                       const RunOptions& options) {
  absl::StatusOr<RowMatrixF> hidden = EmbedTokens(ckpt, tokens);
  if (!hidden.ok()) return hidden.status();
  absl::Status s = RunLayersUpTo(
      ckpt, tokens.seq_len, ckpt.config().num_layers - 1, options, &*hidden,
      [](int64_t) -> BlockHessians* { return nullptr; }, [](int64_t) { return absl::OkStatus(); });
  if (!s.ok()) return s;
  return hidden;
}

absl::StatusOr<VectorF> FinalNorm(const Checkpoint& ckpt) {
  absl::StatusOr<Tensor> norm = ckpt.ReadF32("model.norm.weight");
  if (!norm.ok()) return norm.status();
  if (norm->numel() != ckpt.config().hidden_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("model ", ckpt.name(), ": model.norm.weight has the wrong size"));
  }
  return Eigen::Map<const VectorF>(norm->data<float>().data(), norm->numel());
}

absl::StatusOr<RowMatrixF> LmHead(const Checkpoint& ckpt) {
  const ModelConfig& c = ckpt.config();
  const std::string name = c.tie_word_embeddings || ckpt.Find("lm_head.weight") == nullptr
                               ? "model.embed_tokens.weight"
                               : "lm_head.weight";
  return ReadMatrix(ckpt, name, c.vocab_size, c.hidden_size);
}

}  // namespace

absl::StatusOr<TokenSet> LoadTokens(const SafetensorsReader& reader, const ModelConfig& config) {
  return format::ReadTokenFile(reader, config.vocab_size, config.max_position_embeddings);
}

absl::StatusOr<RowMatrixF> ReadEmbeddingTable(const Checkpoint& ckpt) {
  const ModelConfig& c = ckpt.config();
  return ReadMatrix(ckpt, "model.embed_tokens.weight", c.vocab_size, c.hidden_size);
}

void EmbedIds(const RowMatrixF& table, std::span<const int32_t> ids, RowMatrixF* out) {
  out->resize(static_cast<int64_t>(ids.size()), table.cols());
  for (size_t i = 0; i < ids.size(); ++i) out->row(static_cast<int64_t>(i)) = table.row(ids[i]);
}

absl::StatusOr<RowMatrixF> EmbedTokens(const Checkpoint& ckpt, const TokenSet& tokens) {
  absl::StatusOr<RowMatrixF> table = ReadEmbeddingTable(ckpt);
  if (!table.ok()) return table.status();
  RowMatrixF out;
  EmbedIds(*table, tokens.ids, &out);
  return out;
}

absl::Status RunLayer(const Checkpoint& ckpt, const BlockWeights& weights, int64_t seq_len,
                      const RunOptions& options, RowMatrixF* hidden, BlockHessians* hessians) {
  const ModelConfig& c = ckpt.config();
  absl::StatusOr<std::unique_ptr<BlockRunner>> runner =
      options.prepare_block ? options.prepare_block(c, weights, seq_len, hessians)
                            : MakeCpuBlockRunner(c, weights, seq_len, hessians);
  if (!runner.ok()) return runner.status();
  const int64_t batch_rows = std::max<int64_t>(1, options.batch_sequences) * seq_len;
  RowMatrixF chunk;
  for (int64_t r0 = 0; r0 < hidden->rows(); r0 += batch_rows) {
    const int64_t rows = std::min(batch_rows, hidden->rows() - r0);
    chunk = hidden->middleRows(r0, rows);
    if (absl::Status s = (*runner)->Forward(&chunk); !s.ok()) return s;
    hidden->middleRows(r0, rows) = chunk;
  }
  if (absl::Status s = (*runner)->Flush(); !s.ok()) return s;
  if (hessians != nullptr) {
    hessians->SymmetrizeAll();
  }
  return absl::OkStatus();
}

absl::Status CalibrateLayers(const Checkpoint& ckpt, const TokenSet& tokens, int64_t first,
                             int64_t last, const RunOptions& options,
                             const std::function<absl::Status(int64_t, BlockHessians&)>& sink) {
  const ModelConfig& c = ckpt.config();
  if (first < 0 || last >= c.num_layers || first > last) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layers ", first, "-", last, " out of range; the model has layers 0-", c.num_layers - 1));
  }
  absl::StatusOr<RowMatrixF> hidden = EmbedTokens(ckpt, tokens);
  if (!hidden.ok()) return hidden.status();
  BlockHessians current;
  return RunLayersUpTo(
      ckpt, tokens.seq_len, last, options, &*hidden,
      [&](int64_t layer) -> BlockHessians* {
        if (layer < first) return nullptr;
        current = BlockHessians::Zeros(c);
        return &current;
      },
      [&](int64_t layer) { return layer < first ? absl::OkStatus() : sink(layer, current); });
}

absl::StatusOr<RowMatrixF> ComputeLogits(const Checkpoint& ckpt, const TokenSet& tokens,
                                         const RunOptions& options) {
  absl::StatusOr<RowMatrixF> hidden = FinalHidden(ckpt, tokens, options);
  if (!hidden.ok()) return hidden.status();
  absl::StatusOr<VectorF> norm = FinalNorm(ckpt);
  if (!norm.ok()) return norm.status();
  absl::StatusOr<RowMatrixF> head = LmHead(ckpt);
  if (!head.ok()) return head.status();
  RowMatrixF normed;
  RmsNorm(*hidden, *norm, ckpt.config().rms_norm_eps, &normed);
  return RowMatrixF(normed * head->transpose());
}

absl::StatusOr<EvalResult> EvaluatePerplexity(const Checkpoint& ckpt, const TokenSet& tokens,
                                              const RunOptions& options) {
  const ModelConfig& c = ckpt.config();
  absl::StatusOr<RowMatrixF> hidden = FinalHidden(ckpt, tokens, options);
  if (!hidden.ok()) return hidden.status();
  absl::StatusOr<VectorF> norm = FinalNorm(ckpt);
  if (!norm.ok()) return norm.status();
  absl::StatusOr<RowMatrixF> head = LmHead(ckpt);
  if (!head.ok()) return head.status();
  double total = 0;
  int64_t count = 0;
  RowMatrixF normed, logits;
  const int64_t T = tokens.seq_len;
  for (int64_t sample = 0; sample < tokens.samples; ++sample) {
    RmsNorm(hidden->middleRows(sample * T, T), *norm, c.rms_norm_eps, &normed);
    logits.noalias() = normed * head->transpose();
    for (int64_t t = 0; t + 1 < T; ++t) {
      const auto row = logits.row(t);
      const double mx = row.maxCoeff();
      double sum = 0;
      for (int64_t v = 0; v < c.vocab_size; ++v) sum += std::exp(double{row(v)} - mx);
      const int32_t next = tokens.ids[sample * T + t + 1];
      total += std::log(sum) + mx - row(next);
      ++count;
    }
  }
  EvalResult r;
  r.predictions = count;
  r.mean_nll = total / static_cast<double>(count);
  r.perplexity = std::exp(r.mean_nll);
  return r;
}

}  // namespace caldera::model
