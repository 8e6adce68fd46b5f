#include "model_io/model_inputs.h"

#include "core/decompose/record.h"
#include "core/format/compressed_tensors.h"
#include "core/model/head_sharing.h"
#include "core/ttlora/adapter.h"
#include "storage/storage.h"
#include "storage/uri.h"

namespace caldera::model_io {

using storage::JoinKey;
using storage::OpenObjectSource;

absl::StatusOr<std::unique_ptr<model::Checkpoint>> OpenCheckpointAt(
    const std::string& uri, const storage::StorageOptions& options) {
  model::FileOpener opener = [uri, options](const std::string& name) {
    return OpenObjectSource(JoinKey(uri, name), options);
  };
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> ckpt =
      model::Checkpoint::Open(std::move(opener), uri);
  if (ckpt.ok()) {
    // Ŵ from the CALDERA record, plus the module's TT-LoRA adapter α·ΔW when
    // the checkpoint holds one: the weight the compressed model computes with.
    // A compressed-tensors pack-quantized linear (our export's base, or
    // llm-compressor's output) is dequantized (format/compressed_tensors.h).
    (*ckpt)->SetLinearReconstructor(
        [base = decompose::CalderaReconstructor()](
            const SafetensorsReader& reader, const std::string& prefix) -> absl::StatusOr<Tensor> {
          if (format::HasPackQuantized(reader, prefix)) {
            return format::ReadPackQuantized(reader, prefix);
          }
          absl::StatusOr<Tensor> w = base(reader, prefix);
          if (!w.ok()) return w;
          if (absl::Status s = ttlora::AddStoredAdapter(reader, prefix, &*w); !s.ok()) return s;
          return w;
        });
    // A checkpoint written with --share-heads: its attention records hold only
    // the unaliased heads; the map says where the others come from.
    absl::StatusOr<std::string> sharing =
        storage::ReadObject(JoinKey(uri, model::kHeadSharingFile), options);
    if (sharing.ok()) {
      absl::StatusOr<model::HeadSharing> map = model::ParseHeadSharing(
          *sharing, JoinKey(uri, model::kHeadSharingFile), (*ckpt)->config());
      if (!map.ok()) return map.status();
      (*ckpt)->SetHeadSharing(std::make_shared<const model::HeadSharing>(*std::move(map)));
    } else if (sharing.status().code() != absl::StatusCode::kNotFound) {
      return sharing.status();
    }
  }
  return ckpt;
}

absl::StatusOr<std::unique_ptr<SafetensorsReader>> OpenSafetensorsAt(
    const std::string& uri, const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src = OpenObjectSource(uri, options);
  if (!src.ok()) return src.status();
  return SafetensorsReader::Open(*std::move(src));
}

absl::StatusOr<model::TokenSet> LoadTokensAt(const std::string& uri,
                                             const model::ModelConfig& config,
                                             const storage::StorageOptions& options) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader = OpenSafetensorsAt(uri, options);
  if (!reader.ok()) return reader.status();
  return model::LoadTokens(**reader, config);
}

}  // namespace caldera::model_io
