// Hessians files (core/format/hessians.h, docs/format/hessians.md) read by
// storage URI, and the shards of a sharded calibration combined.
#ifndef CALDERA_MODEL_IO_HESSIANS_READER_H_
#define CALDERA_MODEL_IO_HESSIANS_READER_H_

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/storage_options.h"

namespace caldera::model_io {

// Reads the normalised Hessian named `name` ("q_proj") from a Hessians file
// (also the float32 files of older `calderactl calibrate`).
absl::StatusOr<Eigen::MatrixXd> ReadHessian(const std::string& hessians_uri,
                                            const std::string& name,
                                            const storage::StorageOptions& options);

// The Hessian named `name` of a sharded calibration: the files of shards
// 0 .. N-1 (`hessians_uris`, in shard order) combined as
//   H = (Σ_s tokens_s · H_s) / Σ_s tokens_s,
// summed in shard order (docs/format/hessians.md, "Shards"). One file is
// read exactly as ReadHessian reads it. `bytes_read` (may be null) gains the
// bytes of the matrices read.
absl::StatusOr<Eigen::MatrixXd> ReadShardedHessian(const std::vector<std::string>& hessians_uris,
                                                   const std::string& name,
                                                   const storage::StorageOptions& options,
                                                   int64_t* bytes_read = nullptr);

// Expert `expert`'s calibration token count and prior share (the few-token
// fallback's weight) from a mixture's Hessians file.
absl::StatusOr<std::pair<int64_t, double>> ReadExpertTokens(const std::string& hessians_uri,
                                                            int64_t expert,
                                                            const storage::StorageOptions& options);

}  // namespace caldera::model_io

#endif  // CALDERA_MODEL_IO_HESSIANS_READER_H_
