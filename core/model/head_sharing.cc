#include "core/model/head_sharing.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/format/json_fields.h"
#include "nlohmann/json.hpp"

namespace caldera::model {
namespace {

// Rows of group g in a module's row space (q/k/v) or column space (o).
std::pair<int64_t, int64_t> GroupSpan(int64_t heads_per_group, int64_t head_dim,
                                      absl::string_view module, int64_t group) {
  const int64_t size =
      (module == "k_proj" || module == "v_proj") ? head_dim : heads_per_group * head_dim;
  return {group * size, size};
}

bool IsAttention(absl::string_view module) {
  return module == "q_proj" || module == "k_proj" || module == "v_proj" || module == "o_proj";
}

}  // namespace

const HeadShare* HeadSharing::Find(int64_t layer, int64_t group) const {
  for (const HeadShare& s : shares) {
    if (s.layer == layer && s.group == group) return &s;
  }
  return nullptr;
}

absl::Status ValidateShareRatio(double ratio, absl::string_view flag) {
  if (!std::isfinite(ratio) || ratio < 0 || ratio > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", ratio,
                     " is not a fraction: give the share of attention head groups to alias, a "
                     "number in [0, 1] (0 = no sharing, 0.2 = 20 %)"));
  }
  return absl::OkStatus();
}

int64_t ShareCount(double ratio, int64_t num_layers, int64_t groups_per_layer) {
  if (!(ratio > 0) || num_layers < 2 || groups_per_layer < 2) return 0;
  const double want = std::round(std::min(ratio, 1.0) * static_cast<double>(num_layers) *
                                 static_cast<double>(groups_per_layer));
  const int64_t cap = (num_layers - 1) * (groups_per_layer - 1);
  return std::min(static_cast<int64_t>(want), cap);
}

std::vector<HeadPair> RankHeadPairs(const std::vector<std::vector<std::vector<float>>>& vectors) {
  // Norms once; cosine of zero vectors is 0.
  std::vector<std::vector<double>> norms(vectors.size());
  for (size_t l = 0; l < vectors.size(); ++l) {
    for (const std::vector<float>& v : vectors[l]) {
      double s = 0;
      for (float x : v) s += static_cast<double>(x) * x;
      norms[l].push_back(std::sqrt(s));
    }
  }
  std::vector<HeadPair> pairs;
  for (size_t a = 0; a < vectors.size(); ++a) {
    for (size_t b = a + 1; b < vectors.size(); ++b) {
      for (size_t ga = 0; ga < vectors[a].size(); ++ga) {
        for (size_t gb = 0; gb < vectors[b].size(); ++gb) {
          const std::vector<float>& x = vectors[a][ga];
          const std::vector<float>& y = vectors[b][gb];
          double dot = 0;
          const size_t n = std::min(x.size(), y.size());
          for (size_t i = 0; i < n; ++i) dot += static_cast<double>(x[i]) * y[i];
          const double den = norms[a][ga] * norms[b][gb];
          HeadPair p;
          p.layer_a = static_cast<int64_t>(a);
          p.group_a = static_cast<int64_t>(ga);
          p.layer_b = static_cast<int64_t>(b);
          p.group_b = static_cast<int64_t>(gb);
          p.cosine = den > 0 ? dot / den : 0.0;
          pairs.push_back(p);
        }
      }
    }
  }
  std::stable_sort(pairs.begin(), pairs.end(), [](const HeadPair& x, const HeadPair& y) {
    if (x.cosine != y.cosine) return x.cosine > y.cosine;
    return std::tie(x.layer_b, x.group_b, x.layer_a, x.group_a) <
           std::tie(y.layer_b, y.group_b, y.layer_a, y.group_a);
  });
  return pairs;
}

std::vector<HeadShare> SelectShares(const std::vector<HeadPair>& ranked, int64_t num_layers,
                                    int64_t groups_per_layer, int64_t count) {
  std::set<std::pair<int64_t, int64_t>> targets, sources;
  std::vector<int64_t> per_layer(static_cast<size_t>(std::max<int64_t>(num_layers, 0)), 0);
  std::vector<HeadShare> out;
  for (const HeadPair& p : ranked) {
    if (static_cast<int64_t>(out.size()) >= count) break;
    if (p.layer_a >= p.layer_b || p.layer_b >= num_layers || p.layer_a < 0) continue;
    const std::pair<int64_t, int64_t> t{p.layer_b, p.group_b}, s{p.layer_a, p.group_a};
    if (targets.count(t) || sources.count(t) || targets.count(s)) continue;
    if (per_layer[static_cast<size_t>(p.layer_b)] + 1 >= groups_per_layer) continue;
    targets.insert(t);
    sources.insert(s);
    ++per_layer[static_cast<size_t>(p.layer_b)];
    out.push_back(HeadShare{p.layer_b, p.group_b, p.layer_a, p.group_a, p.cosine});
  }
  std::sort(out.begin(), out.end(), [](const HeadShare& x, const HeadShare& y) {
    return std::tie(x.layer, x.group) < std::tie(y.layer, y.group);
  });
  return out;
}

std::vector<float> GroupVector(const ModelConfig& config, const Tensor& q, const Tensor& k,
                               const Tensor& v, const Tensor& o, int64_t group) {
  const int64_t hpg = config.num_heads / config.num_kv_heads;
  std::vector<float> out;
  for (const auto& [t, module] : {std::pair<const Tensor*, absl::string_view>{&q, "q_proj"},
                                  {&k, "k_proj"},
                                  {&v, "v_proj"},
                                  {&o, "o_proj"}}) {
    const auto [begin, size] = GroupSpan(hpg, config.head_dim, module, group);
    const int64_t rows = t->dim(0), cols = t->dim(1);
    std::span<const float> d = t->data<float>();
    if (module == "o_proj") {
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = begin; c < begin + size; ++c) out.push_back(d[r * cols + c]);
      }
    } else {
      for (int64_t r = begin; r < begin + size; ++r) {
        for (int64_t c = 0; c < cols; ++c) out.push_back(d[r * cols + c]);
      }
    }
  }
  return out;
}

absl::StatusOr<HeadSharing> PlanHeadSharing(const ModelConfig& config, double ratio,
                                            const LinearSource& weights) {
  if (absl::Status s = ValidateShareRatio(ratio, "--share-heads"); !s.ok()) return s;
  HeadSharing plan;
  plan.ratio = ratio;
  plan.num_layers = config.num_layers;
  plan.groups_per_layer = config.num_kv_heads;
  plan.heads_per_group = config.num_heads / config.num_kv_heads;
  plan.head_dim = config.head_dim;
  const int64_t count = ShareCount(ratio, config.num_layers, config.num_kv_heads);
  if (count == 0) return plan;
  std::vector<std::vector<std::vector<float>>> vectors(static_cast<size_t>(config.num_layers));
  for (int64_t l = 0; l < config.num_layers; ++l) {
    std::vector<Tensor> w;
    for (absl::string_view m : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      absl::StatusOr<Tensor> t = weights(l, m);
      if (!t.ok()) return t.status();
      if (t->shape() != LinearShape(config, m)) {
        return absl::InvalidArgumentError(
            absl::StrCat("head sharing: layer ", l, " ", m, " does not have the config's shape"));
      }
      w.push_back(*std::move(t));
    }
    for (int64_t g = 0; g < config.num_kv_heads; ++g) {
      vectors[static_cast<size_t>(l)].push_back(GroupVector(config, w[0], w[1], w[2], w[3], g));
    }
  }
  plan.shares = SelectShares(RankHeadPairs(vectors), config.num_layers, config.num_kv_heads, count);
  return plan;
}

bool SharesColumns(absl::string_view module) { return module == "o_proj"; }

std::vector<AliasedSlice> AliasedSlices(const HeadSharing& sharing, int64_t layer,
                                        absl::string_view module) {
  std::vector<AliasedSlice> out;
  if (!IsAttention(module)) return out;
  for (const HeadShare& s : sharing.shares) {
    if (s.layer != layer) continue;
    const auto [begin, size] =
        GroupSpan(sharing.heads_per_group, sharing.head_dim, module, s.group);
    const auto [source_begin, unused] =
        GroupSpan(sharing.heads_per_group, sharing.head_dim, module, s.source_group);
    out.push_back(AliasedSlice{begin, size, s.source_layer, source_begin});
  }
  std::sort(out.begin(), out.end(),
            [](const AliasedSlice& a, const AliasedSlice& b) { return a.begin < b.begin; });
  return out;
}

namespace {

// For each index along the shared axis (length `extent`): -1 when stored,
// else the position inside `slices` flattened (slice i, offset j).
std::vector<std::pair<int, int64_t>> AxisMap(int64_t extent,
                                             const std::vector<AliasedSlice>& slices) {
  std::vector<std::pair<int, int64_t>> map(static_cast<size_t>(extent), {-1, 0});
  for (size_t i = 0; i < slices.size(); ++i) {
    for (int64_t j = 0; j < slices[i].size; ++j) {
      const int64_t at = slices[i].begin + j;
      if (at >= 0 && at < extent) map[static_cast<size_t>(at)] = {static_cast<int>(i), j};
    }
  }
  return map;
}

int64_t AliasedCount(int64_t extent, const std::vector<AliasedSlice>& slices) {
  int64_t n = 0;
  for (const auto& [slice, offset] : AxisMap(extent, slices)) n += slice >= 0 ? 1 : 0;
  return n;
}

}  // namespace

std::vector<int64_t> KeptIndices(int64_t extent, const std::vector<AliasedSlice>& slices) {
  std::vector<int64_t> out;
  const auto map = AxisMap(extent, slices);
  for (int64_t i = 0; i < extent; ++i) {
    if (map[static_cast<size_t>(i)].first < 0) out.push_back(i);
  }
  return out;
}

absl::StatusOr<Tensor> RemoveAliased(const Tensor& full, const std::vector<AliasedSlice>& slices,
                                     bool columns) {
  if (full.rank() != 2 || full.dtype() != DType::kF32) {
    return absl::InvalidArgumentError("head sharing: expected an F32 matrix");
  }
  const int64_t rows = full.dim(0), cols = full.dim(1);
  const int64_t extent = columns ? cols : rows;
  const auto map = AxisMap(extent, slices);
  const int64_t kept = extent - AliasedCount(extent, slices);
  std::vector<int64_t> shape =
      columns ? std::vector<int64_t>{rows, kept} : std::vector<int64_t>{kept, cols};
  absl::StatusOr<Tensor> out = Tensor::Zeros(DType::kF32, shape);
  if (!out.ok()) return out.status();
  std::span<const float> in = full.data<float>();
  std::span<float> o = out->mutable_data<float>();
  size_t w = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (!columns && map[static_cast<size_t>(r)].first >= 0) continue;
    for (int64_t c = 0; c < cols; ++c) {
      if (columns && map[static_cast<size_t>(c)].first >= 0) continue;
      o[w++] = in[static_cast<size_t>(r * cols + c)];
    }
  }
  return out;
}

absl::StatusOr<Tensor> ExpandAliased(const Tensor& stored, const std::vector<int64_t>& full_shape,
                                     const std::vector<AliasedSlice>& slices, bool columns,
                                     const std::function<absl::StatusOr<Tensor>(int64_t)>& source) {
  if (full_shape.size() != 2 || stored.rank() != 2 || stored.dtype() != DType::kF32) {
    return absl::InvalidArgumentError("head sharing: expected an F32 matrix");
  }
  const int64_t rows = full_shape[0], cols = full_shape[1];
  const int64_t extent = columns ? cols : rows;
  const auto map = AxisMap(extent, slices);
  const int64_t kept = extent - AliasedCount(extent, slices);
  const std::vector<int64_t> reduced =
      columns ? std::vector<int64_t>{rows, kept} : std::vector<int64_t>{kept, cols};
  const bool is_full = stored.shape() == full_shape;
  if (!is_full && stored.shape() != reduced) {
    return absl::InvalidArgumentError(
        absl::StrCat("head sharing: a stored matrix of shape [", stored.dim(0), ", ", stored.dim(1),
                     "] is neither the full [", rows, ", ", cols,
                     "] nor the shape without its aliased heads [", reduced[0], ", ", reduced[1],
                     "]; the checkpoint's head_sharing.json does not belong to it"));
  }
  // The source layers' full weights, each read once.
  std::vector<Tensor> sources;
  std::vector<int64_t> source_layers;
  std::vector<size_t> source_of(slices.size());
  for (size_t i = 0; i < slices.size(); ++i) {
    auto it = std::find(source_layers.begin(), source_layers.end(), slices[i].source_layer);
    if (it == source_layers.end()) {
      absl::StatusOr<Tensor> t = source(slices[i].source_layer);
      if (!t.ok()) return t.status();
      if (t->shape() != full_shape) {
        return absl::InvalidArgumentError(absl::StrCat("head sharing: source layer ",
                                                       slices[i].source_layer,
                                                       " has another shape than its target"));
      }
      source_layers.push_back(slices[i].source_layer);
      sources.push_back(*std::move(t));
      source_of[i] = sources.size() - 1;
    } else {
      source_of[i] = static_cast<size_t>(it - source_layers.begin());
    }
  }
  absl::StatusOr<Tensor> out = Tensor::Zeros(DType::kF32, full_shape);
  if (!out.ok()) return out.status();
  std::span<float> o = out->mutable_data<float>();
  std::span<const float> in = stored.data<float>();
  // The stored part: all of `stored`, or its rows/columns at the kept indices.
  std::vector<int64_t> kept_index;
  for (int64_t i = 0; i < extent; ++i) {
    if (is_full || map[static_cast<size_t>(i)].first < 0) kept_index.push_back(i);
  }
  const int64_t in_cols = stored.dim(1);
  for (int64_t r = 0; r < stored.dim(0); ++r) {
    for (int64_t c = 0; c < in_cols; ++c) {
      const int64_t fr = columns ? r : kept_index[static_cast<size_t>(r)];
      const int64_t fc = columns ? kept_index[static_cast<size_t>(c)] : c;
      o[static_cast<size_t>(fr * cols + fc)] = in[static_cast<size_t>(r * in_cols + c)];
    }
  }
  // The aliased slices from their sources.
  for (size_t i = 0; i < slices.size(); ++i) {
    const AliasedSlice& s = slices[i];
    std::span<const float> src = sources[source_of[i]].data<float>();
    for (int64_t j = 0; j < s.size; ++j) {
      const int64_t at = s.begin + j, from = s.source_begin + j;
      if (at < 0 || at >= extent || from < 0 || from >= extent) {
        return absl::InvalidArgumentError("head sharing: an aliased slice is out of range");
      }
      if (columns) {
        for (int64_t r = 0; r < rows; ++r) {
          o[static_cast<size_t>(r * cols + at)] = src[static_cast<size_t>(r * cols + from)];
        }
      } else {
        std::copy(src.begin() + from * cols, src.begin() + (from + 1) * cols,
                  o.begin() + at * cols);
      }
    }
  }
  return out;
}

std::string SerializeHeadSharing(const HeadSharing& sharing) {
  nlohmann::json j;
  j["format_version"] = kHeadSharingFormatVersion;
  j["method"] = "directshare";
  j["granularity"] = "kv_group";
  j["ratio"] = sharing.ratio;
  j["num_layers"] = sharing.num_layers;
  j["groups_per_layer"] = sharing.groups_per_layer;
  j["heads_per_group"] = sharing.heads_per_group;
  j["head_dim"] = sharing.head_dim;
  nlohmann::json shares = nlohmann::json::array();
  for (const HeadShare& s : sharing.shares) {
    shares.push_back({{"layer", s.layer},
                      {"group", s.group},
                      {"source_layer", s.source_layer},
                      {"source_group", s.source_group},
                      {"cosine", s.cosine}});
  }
  j["shares"] = std::move(shares);
  return j.dump(2) + "\n";
}

absl::StatusOr<HeadSharing> ParseHeadSharing(absl::string_view text, absl::string_view where,
                                             const ModelConfig& config) {
  absl::StatusOr<nlohmann::json> j = format::ParseJsonObject(text, where);
  if (!j.ok()) return j.status();
  format::JsonFields f(*j, std::string(where));
  HeadSharing h;
  int version = 0;
  f.RequireInt("format_version", &version);
  f.RequireEquals("method", "directshare");
  f.RequireEquals("granularity", "kv_group");
  f.RequireDouble("ratio", &h.ratio);
  f.RequireInt("num_layers", &h.num_layers);
  f.RequireInt("groups_per_layer", &h.groups_per_layer);
  f.RequireInt("heads_per_group", &h.heads_per_group);
  f.RequireInt("head_dim", &h.head_dim);
  if (!f.ok()) return f.status();
  if (version != kHeadSharingFormatVersion) {
    f.Fail(absl::StrCat("format_version ", version, " is not known (this reader knows ",
                        kHeadSharingFormatVersion, ")"));
  } else if (h.num_layers != config.num_layers || h.groups_per_layer != config.num_kv_heads ||
             h.heads_per_group * config.num_kv_heads != config.num_heads ||
             h.head_dim != config.head_dim) {
    f.Fail("the layer and head sizes do not match the checkpoint's config.json");
  }
  if (!f.ok()) return f.status();
  const auto it = j->find("shares");
  if (it == j->end() || !it->is_array()) {
    f.Fail("'shares' must be an array");
    return f.status();
  }
  std::set<std::pair<int64_t, int64_t>> targets, sources;
  std::vector<int64_t> per_layer(static_cast<size_t>(h.num_layers), 0);
  for (const nlohmann::json& e : *it) {
    format::JsonFields s(e, absl::StrCat(where, " shares[", h.shares.size(), "]"));
    HeadShare share;
    s.RequireInt("layer", &share.layer);
    s.RequireInt("group", &share.group);
    s.RequireInt("source_layer", &share.source_layer);
    s.RequireInt("source_group", &share.source_group);
    s.OptionalDouble("cosine", &share.cosine);
    if (s.ok() &&
        (share.source_layer < 0 || share.source_layer >= share.layer ||
         share.layer >= h.num_layers || share.group < 0 || share.group >= h.groups_per_layer ||
         share.source_group < 0 || share.source_group >= h.groups_per_layer)) {
      s.Fail("needs 0 <= source_layer < layer < num_layers and groups in [0, groups_per_layer)");
    }
    if (!s.ok()) return s.status();
    const std::pair<int64_t, int64_t> t{share.layer, share.group};
    const std::pair<int64_t, int64_t> src{share.source_layer, share.source_group};
    if (targets.count(t) || sources.count(t) || targets.count(src)) {
      s.Fail("a group is aliased twice, or a source is itself aliased");
      return s.status();
    }
    if (++per_layer[static_cast<size_t>(share.layer)] >= h.groups_per_layer) {
      s.Fail("every layer must keep at least one group of its own");
      return s.status();
    }
    targets.insert(t);
    sources.insert(src);
    h.shares.push_back(share);
  }
  std::sort(h.shares.begin(), h.shares.end(), [](const HeadShare& x, const HeadShare& y) {
    return std::tie(x.layer, x.group) < std::tie(y.layer, y.group);
  });
  return h;
}

}  // namespace caldera::model
