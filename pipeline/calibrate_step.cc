#include "pipeline/calibrate_step.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <span>

#include "absl/strings/str_cat.h"
#include "core/backend/cpu/cpu_backend.h"
#include "core/format/hessians.h"
#include "core/format/safetensors.h"
#include "core/model/hessians_file.h"
#include "core/model/hidden_states.h"
#include "core/model/llama_block.h"
#include "core/model/model_runner.h"
#include "job/job_spec.h"
#include "model_io/hidden_states_stream.h"
#include "model_io/model_inputs.h"
#include "pipeline/compressed_block.h"
#include "pipeline/step_status.h"
#include "storage/storage.h"

namespace caldera::pipeline {

absl::StatusOr<CalibrateResult> Calibrate(const model::Checkpoint& checkpoint,
                                          const CalibrateRequest& request,
                                          const StepEnvironment& env) {
  const int64_t layer = request.layer;
  const std::string& input_uri = request.input_uri;
  const std::string& hessians_uri = request.hessians_uri;
  const std::string& hidden_out_uri = request.hidden_out_uri;
  const bool sequential = request.sequential;
  const int shard = request.shard, num_shards = request.num_shards;
  const storage::StorageOptions& options = env.storage;
  const model::ModelConfig& config = checkpoint.config();
  if (num_shards < 1 || shard < 0 || shard >= num_shards) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibrate: shard ", shard, " is outside [0, ", num_shards, ")"));
  }
  if (layer < 0 || layer >= config.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibrate: layer ", layer, " is outside [0, ", config.num_layers, ")"));
  }
  IoCounts io;
  // The input: token ids (layer 0, small) and the embedding table, or a
  // hidden-states file read chunk by chunk.
  int64_t samples = 0, seq_len = 0;
  model::TokenSet tokens;
  model::RowMatrixF embedding_table;
  std::unique_ptr<model_io::HiddenStatesSource> source;
  if (layer == 0) {
    absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
        model_io::OpenSafetensorsAt(input_uri, options);
    if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("reading ", input_uri));
    for (const TensorInfo& info : (*reader)->tensors()) {
      io.bytes_read += static_cast<int64_t>(info.end - info.begin);
    }
    absl::StatusOr<model::TokenSet> loaded = model::LoadTokens(**reader, config);
    if (!loaded.ok()) return loaded.status();
    tokens = *std::move(loaded);
    if (num_shards > 1) {
      const job::SampleRange r = job::ShardSamples(tokens.samples, shard, num_shards);
      if (r.end <= r.begin) {
        return absl::InvalidArgumentError(absl::StrCat("calibrate: shard ", shard, " of ",
                                                       num_shards, " holds none of the ",
                                                       tokens.samples, " samples of ", input_uri));
      }
      std::vector<int32_t> ids(tokens.ids.begin() + r.begin * tokens.seq_len,
                               tokens.ids.begin() + r.end * tokens.seq_len);
      tokens.ids = std::move(ids);
      tokens.samples = r.end - r.begin;
    }
    absl::StatusOr<model::RowMatrixF> table = model::ReadEmbeddingTable(checkpoint);
    if (!table.ok()) return table.status();
    embedding_table = *std::move(table);
    samples = tokens.samples;
    seq_len = tokens.seq_len;
  } else {
    absl::StatusOr<std::unique_ptr<model_io::HiddenStatesSource>> opened =
        model_io::HiddenStatesSource::Open(input_uri, options, config);
    if (!opened.ok()) return opened.status();
    source = *std::move(opened);
    const int64_t entering = sequential ? layer - 1 : layer;
    if (source->layout().layer != entering) {
      return absl::InvalidArgumentError(absl::StrCat(input_uri, " holds the states entering block ",
                                                     source->layout().layer, ", not block ",
                                                     entering));
    }
    io.bytes_read += static_cast<int64_t>(source->FileBytes());
    samples = source->layout().samples;
    seq_len = source->layout().seq_len;
  }
  // Sequential mode: the states entering `layer` come through the compressed
  // block layer-1; they are what calibrate(layer+1) continues from.
  std::optional<model::BlockWeights> previous;
  if (sequential && layer > 0) {
    absl::StatusOr<model::BlockWeights> prev =
        CompressedBlock(checkpoint, layer - 1, request.previous_artifacts,
                        request.previous_tuned_artifacts, request.previous_block_uri, options, &io);
    if (!prev.ok()) return prev.status();
    previous = *std::move(prev);
  }
  if (env.IsCancelled()) return absl::CancelledError("the job was cancelled");
  std::unique_ptr<model_io::HiddenStatesSink> sink;
  if (!hidden_out_uri.empty()) {
    format::HiddenStatesLayout out_layout;
    out_layout.layer = sequential ? layer : layer + 1;
    out_layout.samples = samples;
    out_layout.seq_len = seq_len;
    out_layout.hidden_size = config.hidden_size;
    out_layout.dtype = request.hidden_dtype;
    absl::StatusOr<std::unique_ptr<model_io::HiddenStatesSink>> created =
        model_io::HiddenStatesSink::Create(hidden_out_uri, options, out_layout);
    if (!created.ok()) return Annotate(created.status(), absl::StrCat("writing ", hidden_out_uri));
    sink = *std::move(created);
  }
  absl::StatusOr<model::BlockWeights> weights = model::LoadBlock(checkpoint, layer);
  if (!weights.ok()) return weights.status();
  model::BlockHessians hessians = model::BlockHessians::Zeros(config);
  // The block (and the previous, compressed one) through the compute
  // backend: model::BlockForward on the CPU, resident on a device.
  backend::CpuBackend cpu;
  backend::ComputeBackend& be = env.compute != nullptr ? *env.compute : cpu;
  absl::StatusOr<std::unique_ptr<backend::BlockRunner>> block =
      be.PrepareBlock(config, *weights, seq_len, &hessians);
  if (!block.ok())
    return Annotate(block.status(), absl::StrCat("block ", layer, " on ", be.Name()));
  std::unique_ptr<backend::BlockRunner> previous_block;
  if (previous.has_value()) {
    absl::StatusOr<std::unique_ptr<backend::BlockRunner>> prepared =
        be.PrepareBlock(config, *previous, seq_len, nullptr);
    if (!prepared.ok()) {
      return Annotate(prepared.status(), absl::StrCat("block ", layer - 1, " on ", be.Name()));
    }
    previous_block = *std::move(prepared);
  }
  // Sequences per chunk: as job/memory_estimate.h sizes the task.
  const int64_t chunk = job::CalibrateChunkSamples(config, samples, seq_len);
  model::RowMatrixF states, sequence;
  // One sequence per forward (as RunLayer with batch_sequences = 1), so a
  // sequence's activations do not depend on the chunking or the sharding.
  auto run_block = [&](backend::BlockRunner& runner) -> absl::Status {
    for (int64_t r0 = 0; r0 < states.rows(); r0 += seq_len) {
      sequence = states.middleRows(r0, seq_len);
      if (absl::Status s = runner.Forward(&sequence); !s.ok()) return s;
      states.middleRows(r0, seq_len) = sequence;
    }
    return absl::OkStatus();
  };
  for (int64_t s0 = 0; s0 < samples; s0 += chunk) {
    const int64_t n = std::min(chunk, samples - s0);
    if (layer == 0) {
      model::EmbedIds(embedding_table,
                      std::span<const int32_t>(tokens.ids).subspan(s0 * seq_len, n * seq_len),
                      &states);
    } else if (absl::Status s = source->Read(s0, n, &states); !s.ok()) {
      return Annotate(s, absl::StrCat("reading ", input_uri));
    }
    if (previous_block != nullptr) {
      if (absl::Status s = run_block(*previous_block); !s.ok()) return s;
    }
    if (sequential && sink != nullptr) {
      if (absl::Status s = sink->Append(states); !s.ok()) return s;
    }
    if (absl::Status s = run_block(**block); !s.ok()) return s;
    if (!sequential && sink != nullptr) {
      if (absl::Status s = sink->Append(states); !s.ok()) return s;
    }
    if (env.IsCancelled()) return absl::CancelledError("the job was cancelled");
  }
  if (absl::Status s = (*block)->Flush(); !s.ok()) return s;
  // Only the Hessians are needed from here: free the rest before converting them.
  block->reset();
  previous_block.reset();
  model::RowMatrixF().swap(states);
  model::RowMatrixF().swap(sequence);
  model::RowMatrixF().swap(embedding_table);
  weights = model::BlockWeights();
  previous.reset();
  hessians.SymmetrizeAll();
  absl::StatusOr<format::Hessians> normalised =
      model::NormalisedHessians(std::move(hessians), layer);
  if (!normalised.ok()) return normalised.status();
  // Streamed from the matrices to the store (S3: multipart), with neither a
  // serialised copy nor a local file: one write of the file's bytes.
  absl::StatusOr<storage::StoreAndKey> where = storage::OpenUri(hessians_uri, options);
  if (!where.ok()) return Annotate(where.status(), absl::StrCat("writing ", hessians_uri));
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> body =
      format::HessiansSource(*std::move(normalised), hessians_uri);
  if (!body.ok()) return body.status();
  absl::StatusOr<storage::ObjectInfo> put = where->store->Put(where->key, **body);
  if (!put.ok()) return Annotate(put.status(), absl::StrCat("writing ", hessians_uri));
  io.bytes_written += static_cast<int64_t>(put->size);
  if (sink != nullptr) {
    absl::StatusOr<int64_t> streamed = sink->Finish();
    if (!streamed.ok()) return streamed.status();
    io.bytes_written += *streamed;
  }
  return CalibrateResult{io};
}

}  // namespace caldera::pipeline
