// Head-wise weight sharing across layers (DirectShare, arXiv 2402.11819): an
// attention head reuses the weights of a similar head of an earlier layer,
// with no retraining.
//
// The unit of sharing is one KV group: KV head g of a layer (rows
// [g·d, (g+1)·d) of k_proj and v_proj, d = head_dim), its
// h = num_heads / num_kv_heads query heads (rows [g·h·d, (g+1)·h·d) of
// q_proj) and the same span of o_proj's COLUMNS (the output projection reads
// those heads' outputs). Sharing whole groups keeps grouped-query layouts
// consistent: the shared query heads always attend with the shared KV head.
// Without GQA (h = 1) a group is one head.
//
// A share (layer ℓ, group g) <- (source layer ℓ' < ℓ, group g') means: the
// four slices of group g of layer ℓ are the slices of group g' of layer ℓ'.
// A source slice is never itself aliased, and every layer keeps at least one
// group of its own, so each attention matrix keeps some stored rows/columns.
// The map is stored as `head_sharing.json` beside a checkpoint
// (docs/format/head-sharing.md); Checkpoint::ReadLinearWeight applies it.
//
// Everything here is plain data and pure functions; thread-compatible.
#ifndef CALDERA_CORE_MODEL_HEAD_SHARING_H_
#define CALDERA_CORE_MODEL_HEAD_SHARING_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model/model_config.h"
#include "core/tensor/tensor.h"

namespace caldera::model {

// The file name of the sharing map inside a checkpoint directory.
inline constexpr char kHeadSharingFile[] = "head_sharing.json";
inline constexpr int kHeadSharingFormatVersion = 1;

struct HeadShare {
  int64_t layer = 0;  // the target (its group's slices are aliases)
  int64_t group = 0;
  int64_t source_layer = 0;  // < layer
  int64_t source_group = 0;
  double cosine = 0;  // similarity of the two groups' weight vectors
};

struct HeadSharing {
  double ratio = 0;  // the requested fraction of groups to alias
  int64_t num_layers = 0;
  int64_t groups_per_layer = 0;  // num_kv_heads
  int64_t heads_per_group = 0;   // num_heads / num_kv_heads
  int64_t head_dim = 0;
  std::vector<HeadShare> shares;  // sorted by (layer, group), one per target

  bool empty() const { return shares.empty(); }
  // The share whose target is (layer, group), or nullptr.
  const HeadShare* Find(int64_t layer, int64_t group) const;
};

// A candidate pair of groups in different layers, layer_a < layer_b.
struct HeadPair {
  int64_t layer_a = 0, group_a = 0;
  int64_t layer_b = 0, group_b = 0;
  double cosine = 0;
};

// INVALID_ARGUMENT unless `ratio` is a finite number in [0, 1]; the message
// names `flag` ("--share-heads") and the fix.
absl::Status ValidateShareRatio(double ratio, absl::string_view flag);

// How many groups a ratio asks to alias: round(ratio · layers · groups),
// capped at (layers − 1) · (groups − 1), the most the rules above allow
// (layer 0 has no earlier layer; every layer keeps one group).
int64_t ShareCount(double ratio, int64_t num_layers, int64_t groups_per_layer);

// Every pair of groups in different layers by cosine similarity of their
// vectors (`vectors[layer][group]`, all the same length), most similar first;
// ties broken by (layer_b, group_b, layer_a, group_a) ascending, so the order
// is deterministic.
std::vector<HeadPair> RankHeadPairs(const std::vector<std::vector<std::vector<float>>>& vectors);

// Greedy choice of up to `count` shares from `ranked`, in order: a pair is
// taken when its later group is not yet a target or a source, its earlier
// group is not a target, and the later layer keeps at least one group of
// its own. The earlier layer's group is the source. Sorted by (layer, group).
std::vector<HeadShare> SelectShares(const std::vector<HeadPair>& ranked, int64_t num_layers,
                                    int64_t groups_per_layer, int64_t count);

// The vector of group `group` of a layer: its q_proj rows, k_proj rows,
// v_proj rows and o_proj columns, concatenated (F32 row-major tensors of the
// config's shapes).
std::vector<float> GroupVector(const ModelConfig& config, const Tensor& q, const Tensor& k,
                               const Tensor& v, const Tensor& o, int64_t group);

// The sharing plan from the attention weights of every layer
// (`weights(layer, "q_proj")` returns the F32 [out, in] weight). INVALID_ARGUMENT
// for a bad ratio; the plan is empty for ratio 0 or a one-layer model.
using LinearSource = std::function<absl::StatusOr<Tensor>(int64_t layer, absl::string_view module)>;
absl::StatusOr<HeadSharing> PlanHeadSharing(const ModelConfig& config, double ratio,
                                            const LinearSource& weights);

// One aliased span of a matrix: rows (q/k/v) or columns (o) [begin, begin+size)
// equal the source layer's [source_begin, source_begin+size).
struct AliasedSlice {
  int64_t begin = 0;
  int64_t size = 0;
  int64_t source_layer = 0;
  int64_t source_begin = 0;
};

// True for the modules whose aliased slices are columns (o_proj).
bool SharesColumns(absl::string_view module);

// The aliased slices of (layer, module), sorted by begin; empty for modules
// other than q/k/v/o_proj and for layers without targets.
std::vector<AliasedSlice> AliasedSlices(const HeadSharing& sharing, int64_t layer,
                                        absl::string_view module);

// The indices in [0, extent) outside `slices`, ascending: the rows (or
// columns) that are stored.
std::vector<int64_t> KeptIndices(int64_t extent, const std::vector<AliasedSlice>& slices);

// Rows (or columns) of `full` (F32 [rows, cols]) outside `slices`, in order:
// what is stored for a module with aliases.
absl::StatusOr<Tensor> RemoveAliased(const Tensor& full, const std::vector<AliasedSlice>& slices,
                                     bool columns);

// The full weight of a module with aliases: `stored` is either the full
// shape (its aliased slices are overwritten) or the reduced shape
// RemoveAliased gives (the slices are inserted); the aliased slices come from
// `source(layer)`, the full weight of the source layer's same module.
// INVALID_ARGUMENT when `stored` has neither shape.
absl::StatusOr<Tensor> ExpandAliased(const Tensor& stored, const std::vector<int64_t>& full_shape,
                                     const std::vector<AliasedSlice>& slices, bool columns,
                                     const std::function<absl::StatusOr<Tensor>(int64_t)>& source);

// head_sharing.json (docs/format/head-sharing.md), 2-space indent.
std::string SerializeHeadSharing(const HeadSharing& sharing);
// Checked parse; the map must fit `config` (layers, groups, head sizes) and
// obey the rules above. `where` names the file in messages.
absl::StatusOr<HeadSharing> ParseHeadSharing(absl::string_view text, absl::string_view where,
                                             const ModelConfig& config);

}  // namespace caldera::model

#endif  // CALDERA_CORE_MODEL_HEAD_SHARING_H_
