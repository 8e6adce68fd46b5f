#include "operations/gguf_export.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "core/decompose/caldera.h"
#include "core/decompose/record.h"
#include "core/format/gguf.h"
#include "core/format/gguf_blocks.h"
#include "core/format/matrix_record.h"
#include "core/format/safetensors.h"
#include "core/quant/quantized_tensors.h"
#include "model_io/model_inputs.h"
#include "model_io/text_tokens.h"
#include "nlohmann/json.hpp"
#include "storage/object_store.h"
#include "storage/storage.h"

namespace caldera::operations {
namespace {

using format::GgufType;

// What the plan decided for one linear.
struct Planned {
  std::string module, name,
      gguf_name;           // "model.layers.0.self_attn.q_proj", "q_proj", "blk.0.attn_q"
  int bits = 0;            // 4 or 8: Q4_0 / Q8_0 (or Q4_K when q4k) from the record; 0: dense
  bool q4k = false;        // the record is on Q4_K's grid
  int64_t rank = 0;        // L·R rank of the record (0: none)
  int64_t rope_heads = 0;  // > 0: rows reordered for llama's RoPE over these heads
};

// llama.cpp's architecture name for ours, and whether it wants q/k reordered.
struct Arch {
  std::string name;
  bool permute_qk = false;
};

absl::StatusOr<Arch> ArchFor(const model::ModelConfig& c) {
  if (c.architecture == "LlamaForCausalLM" || c.architecture == "MistralForCausalLM") {
    return Arch{"llama", true};
  }
  if (c.architecture == "Qwen2ForCausalLM") return Arch{"qwen2", false};
  if (c.architecture == "Qwen3ForCausalLM") return Arch{"qwen3", false};
  return absl::InvalidArgumentError(
      absl::StrCat("export --format gguf: architecture ", c.architecture, " has no GGUF mapping"));
}

constexpr const char* kGgufLinearNames[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                            "ffn_gate", "ffn_up", "ffn_down"};

// The row order llama.cpp's RoPE wants for a q or k weight of `rows` rows in
// `heads` heads (convert_hf_to_gguf.py's permute): within each head of size d,
// row 2i + j of the result is row j·(d/2) + i of the Hugging Face weight.
std::vector<int64_t> RopeRowOrder(int64_t rows, int64_t heads) {
  const int64_t d = rows / heads;
  std::vector<int64_t> source(static_cast<size_t>(rows));
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < d / 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) source[h * d + 2 * i + j] = h * d + j * (d / 2) + i;
    }
  }
  return source;
}

// Why the record of `module` cannot be written in a block type ("" when it can).
absl::StatusOr<std::string> Unrepresentable(const model::Checkpoint& ckpt,
                                            const std::string& module, int* bits, bool* q4k,
                                            int64_t* rank) {
  const SafetensorsReader* reader =
      ckpt.ReaderFor(absl::StrCat(module, ".", format::kRecordConfigName));
  if (reader == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("model ", ckpt.name(), ": neither '", module,
                                                   ".weight' nor a CALDERA record of it"));
  }
  for (const TensorInfo& t : reader->tensors()) {
    if (absl::StartsWith(t.name, module + ".ttlora.")) return std::string("a TT-LoRA adapter");
  }
  absl::StatusOr<NamedTensors> record = format::ReadRecord(*reader, module);
  if (!record.ok()) return record.status();
  const Tensor* config_tensor = quant::FindTensor(*record, format::kRecordConfigName);
  if (config_tensor == nullptr) {
    return absl::InvalidArgumentError(module + ": record has no config");
  }
  absl::StatusOr<format::MatrixRecordConfig> c =
      format::RecordConfigFromTensor(*config_tensor, module);
  if (!c.ok()) return c.status();
  *rank = c->rank;  // L·R goes to the adapter (or is merged): never a refusal
  const bool k4 = c->q.kind == "q4k";
  if (!k4 && (c->q.kind != "int" || (c->q.bits != 4 && c->q.bits != 8))) {
    return absl::StrCat("Q on the ", c->q.kind, " grid at ", c->q.bits, " bits");
  }
  if (c->hadamard) return std::string("the Hadamard transform");
  if (c->global_scale != 1.0 || c->padded_rows != c->rows || c->padded_cols != c->cols) {
    return std::string("a global scale or padding");
  }
  if (k4) {
    if (c->cols % 256 != 0) return absl::StrCat(c->cols, " columns (Q4_K: not a multiple of 256)");
    *bits = 4;
    *q4k = true;
    return std::string();
  }
  if (c->cols % 32 != 0) return absl::StrCat(c->cols, " columns (not a multiple of 32)");
  if (c->q.group_size != 32) return absl::StrCat("groups of ", c->q.group_size, " (not 32)");
  *bits = c->q.bits;
  return std::string();
}

// The Q4_K blocks of a linear whose record is on Q4_K's grid.
absl::StatusOr<std::string> Q4kData(const model::Checkpoint& ckpt, const Planned& p, int64_t rows,
                                    int64_t cols) {
  const SafetensorsReader* reader =
      ckpt.ReaderFor(absl::StrCat(p.module, ".", format::kRecordConfigName));
  absl::StatusOr<NamedTensors> record = format::ReadRecord(*reader, p.module);
  if (!record.ok()) return record.status();
  const int64_t subs = rows * (cols / 32), supers = rows * (cols / 256);
  absl::StatusOr<const Tensor*> codes =
      quant::RequireTensor(*record, {}, "caldera.q.codes", DType::kU8, rows * cols / 2);
  absl::StatusOr<const Tensor*> scales =
      quant::RequireTensor(*record, {}, "caldera.q.scales", DType::kU8, subs);
  absl::StatusOr<const Tensor*> mins =
      quant::RequireTensor(*record, {}, "caldera.q.mins", DType::kU8, subs);
  absl::StatusOr<const Tensor*> d =
      quant::RequireTensor(*record, {}, "caldera.q.d", DType::kF16, supers);
  absl::StatusOr<const Tensor*> dmin =
      quant::RequireTensor(*record, {}, "caldera.q.dmin", DType::kF16, supers);
  for (const auto* s : {&codes, &scales, &mins, &d, &dmin}) {
    if (!s->ok()) return s->status();
  }
  std::vector<uint8_t> unpacked(static_cast<size_t>(rows * cols));
  const std::span<const uint8_t> packed = (*codes)->data<uint8_t>();
  for (int64_t i = 0; i < rows * cols; ++i) {
    unpacked[i] = static_cast<uint8_t>(quant::UnpackCode(packed, i, 4));
  }
  return format::EncodeQ4K(rows, cols, unpacked, (*scales)->data<uint8_t>(),
                           (*mins)->data<uint8_t>(), (*d)->raw16(), (*dmin)->raw16());
}

// The bytes of one planned linear in its GGUF type.
absl::StatusOr<format::GgufTensor> LinearTensor(const model::Checkpoint& ckpt, const Planned& p,
                                                GgufType dense_type) {
  const std::vector<int64_t> shape = model::LinearShape(ckpt.config(), p.name);
  const int64_t rows = shape[0], cols = shape[1];
  format::GgufTensor t;
  t.name = p.gguf_name + ".weight";
  t.ne = {cols, rows};
  if (p.bits == 0) {
    absl::StatusOr<Tensor> w = ckpt.ReadLinearWeight(p.module, p.name);
    if (!w.ok()) return w.status();
    t.type = dense_type;
    t.data = format::EncodeFloat(dense_type, w->data<float>());
  } else if (p.q4k) {
    absl::StatusOr<std::string> data = Q4kData(ckpt, p, rows, cols);
    if (!data.ok()) return data.status();
    t.type = GgufType::kQ4_K;
    t.data = *std::move(data);
  } else {
    const SafetensorsReader* reader =
        ckpt.ReaderFor(absl::StrCat(p.module, ".", format::kRecordConfigName));
    absl::StatusOr<NamedTensors> record = format::ReadRecord(*reader, p.module);
    if (!record.ok()) return record.status();
    absl::StatusOr<const Tensor*> codes = quant::RequireTensor(
        *record, {}, "caldera.q.codes", DType::kU8, (rows * cols * p.bits + 7) / 8);
    absl::StatusOr<const Tensor*> scales =
        quant::RequireTensor(*record, {}, "caldera.q.scales", DType::kF16, rows * (cols / 32));
    if (!codes.ok()) return codes.status();
    if (!scales.ok()) return scales.status();
    std::vector<uint8_t> unpacked(static_cast<size_t>(rows * cols));
    const std::span<const uint8_t> packed = (*codes)->data<uint8_t>();
    for (int64_t i = 0; i < rows * cols; ++i) {
      unpacked[i] = static_cast<uint8_t>(quant::UnpackCode(packed, i, p.bits));
    }
    absl::StatusOr<std::string> data =
        format::EncodeIntGrid(p.bits, rows, cols, unpacked, (*scales)->raw16());
    if (!data.ok()) return data.status();
    t.type = format::IntGridType(p.bits);
    t.data = *std::move(data);
  }
  if (p.rope_heads > 0) t.data = format::PermuteRows(t.data, RopeRowOrder(rows, p.rope_heads));
  return t;
}

// A 1-D (or 2-D [rows, cols]) float tensor of the checkpoint under its GGUF name.
absl::StatusOr<format::GgufTensor> FloatTensor(const model::Checkpoint& ckpt,
                                               const std::string& name,
                                               const std::string& gguf_name, GgufType type,
                                               int64_t rope_heads = 0) {
  absl::StatusOr<Tensor> t = ckpt.ReadF32(name);
  if (!t.ok()) return t.status();
  format::GgufTensor g;
  g.name = gguf_name;
  g.type = t->shape().size() == 1 ? GgufType::kF32 : type;
  g.ne.assign(t->shape().rbegin(), t->shape().rend());
  g.data = format::EncodeFloat(g.type, t->data<float>());
  if (rope_heads > 0) {  // a q or k bias: the same reordering as the weight's rows
    g.data = format::PermuteRows(g.data, RopeRowOrder(t->shape()[0], rope_heads));
  }
  return g;
}

// llama.cpp token types (llama_token_type).
constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kByte = 6;

// The llama2.c vocabulary as llama.cpp's "llama" (SentencePiece) tokenizer:
// spaces as U+2581, BOS/EOS as control tokens "<s>"/"</s>", byte pieces.
void SetVocabTokenizer(const tokenizer::VocabTokenizer& v, format::GgufWriter* w) {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int32_t id = 0; id < v.size(); ++id) {
    int32_t type = kNormal;
    std::string piece = v.piece(id);
    if (id == v.unk_id()) {
      type = kUnknown;
    } else if (id == v.bos_id() || id == v.eos_id()) {
      type = kControl;
      piece = id == v.bos_id() ? "<s>" : "</s>";
    } else if (v.byte_value(id) >= 0) {
      type = kByte;
    } else {
      piece = absl::StrReplaceAll(piece, {{" ", "\xE2\x96\x81"}});
    }
    tokens.push_back(std::move(piece));
    scores.push_back(v.score(id));
    types.push_back(type);
  }
  w->Set("tokenizer.ggml.model", std::string("llama"));
  w->Set("tokenizer.ggml.tokens", std::move(tokens));
  w->Set("tokenizer.ggml.scores", std::move(scores));
  w->Set("tokenizer.ggml.token_type", std::move(types));
  if (v.bos_id() >= 0) w->Set("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(v.bos_id()));
  if (v.eos_id() >= 0) w->Set("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(v.eos_id()));
  if (v.unk_id() >= 0) {
    w->Set("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(v.unk_id()));
  }
  w->Set("tokenizer.ggml.add_bos_token", v.bos_id() >= 0);
  w->Set("tokenizer.ggml.add_eos_token", false);
}

// LLAMA_FTYPE of the file: that of the most common linear type.
uint32_t FileType(const std::map<GgufType, int>& counts) {
  GgufType most = GgufType::kF32;
  int best = -1;
  for (const auto& [type, n] : counts) {
    if (n > best) best = n, most = type;
  }
  switch (most) {
    case GgufType::kF16:
      return 1;
    case GgufType::kQ4_0:
      return 2;
    case GgufType::kQ8_0:
      return 7;
    case GgufType::kQ4_K:
      return 15;  // LLAMA_FTYPE_MOSTLY_Q4_K_M
    default:
      return 0;
  }
}

void SetArchitecture(const model::ModelConfig& c, const Arch& arch, const std::string& name,
                     format::GgufWriter* w) {
  const std::string a = arch.name;
  w->Set("general.architecture", a);
  w->Set("general.name", name);
  w->Set("general.quantization_version", uint32_t{2});
  w->Set(a + ".context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w->Set(a + ".embedding_length", static_cast<uint32_t>(c.hidden_size));
  w->Set(a + ".block_count", static_cast<uint32_t>(c.num_layers));
  w->Set(a + ".feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w->Set(a + ".attention.head_count", static_cast<uint32_t>(c.num_heads));
  w->Set(a + ".attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  w->Set(a + ".rope.freq_base", static_cast<float>(c.rope_theta));
  w->Set(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w->Set(a + ".rope.dimension_count", static_cast<uint32_t>(c.head_dim));
  w->Set(a + ".attention.key_length", static_cast<uint32_t>(c.head_dim));
  w->Set(a + ".attention.value_length", static_cast<uint32_t>(c.head_dim));
  w->Set(a + ".vocab_size", static_cast<uint32_t>(c.vocab_size));
  if (c.rope_scaling.type == "linear") {
    w->Set(a + ".rope.scaling.type", std::string("linear"));
    w->Set(a + ".rope.scaling.factor", static_cast<float>(c.rope_scaling.factor));
  }
}

// llama3 rope scaling as llama.cpp takes it: rope_freqs.weight [head_dim / 2],
// the factor each frequency is divided by (1 for short wavelengths, `factor`
// for long ones, and between them the smooth blend), as
// core/model/llama_block.cc's MakeRopeTable scales them.
format::GgufTensor RopeFreqs(const model::ModelConfig& c) {
  const model::RopeScaling& rs = c.rope_scaling;
  std::vector<float> factors;
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const double f = 1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / c.head_dim);
    const double old_len = static_cast<double>(rs.original_max_position_embeddings);
    const double wavelen = 2 * M_PI / f;
    double factor = 1.0;
    if (wavelen > old_len / rs.low_freq_factor) {
      factor = rs.factor;
    } else if (wavelen >= old_len / rs.high_freq_factor) {
      const double smooth =
          (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
      factor = 1.0 / ((1 - smooth) / rs.factor + smooth);
    }
    factors.push_back(static_cast<float>(factor));
  }
  return {"rope_freqs.weight",
          GgufType::kF32,
          {c.head_dim / 2},
          format::EncodeFloat(GgufType::kF32, factors)};
}

// `m` (rows x cols) as row-major values.
std::vector<float> RowMajor(const quant::MatrixF& m) {
  std::vector<float> out(static_cast<size_t>(m.size()));
  for (int64_t r = 0; r < m.rows(); ++r) {
    for (int64_t c = 0; c < m.cols(); ++c) out[r * m.cols() + c] = m(r, c);
  }
  return out;
}

// The GGUF LoRA adapter of the planned linears that keep Q in a block type
// and have L·R: "<tensor>.lora_a" = R [rank, in] (ne {in, rank}) and
// "<tensor>.lora_b" = L [out, rank] (ne {rank, out}, rows in the base's
// order), adapter.lora.alpha 0 (llama.cpp then scales B·A by 1 whatever
// the rank, so base + B·A is W = Q + L·R).
absl::StatusOr<std::string> LoraAdapter(const model::Checkpoint& ckpt, const Arch& arch,
                                        const std::vector<Planned>& plan, GgufType type) {
  format::GgufWriter w;
  w.Set("general.architecture", arch.name);
  w.Set("general.type", std::string("adapter"));
  w.Set("adapter.type", std::string("lora"));
  w.Set("adapter.lora.alpha", 0.0f);
  for (const Planned& p : plan) {
    if (p.bits == 0 || p.rank == 0) continue;
    const SafetensorsReader* reader =
        ckpt.ReaderFor(absl::StrCat(p.module, ".", format::kRecordConfigName));
    absl::StatusOr<decompose::RecordFactors> f = decompose::ReadRecordFactors(*reader, p.module);
    if (!f.ok()) return f.status();
    const int64_t rows = f->l.rows(), k = f->l.cols(), cols = f->r.cols();
    format::GgufTensor a{
        p.gguf_name + ".weight.lora_a", type, {cols, k}, format::EncodeFloat(type, RowMajor(f->r))};
    format::GgufTensor b{
        p.gguf_name + ".weight.lora_b", type, {k, rows}, format::EncodeFloat(type, RowMajor(f->l))};
    if (p.rope_heads > 0) b.data = format::PermuteRows(b.data, RopeRowOrder(rows, p.rope_heads));
    if (absl::Status s = w.AddTensor(std::move(a)); !s.ok()) return s;
    if (absl::Status s = w.AddTensor(std::move(b)); !s.ok()) return s;
  }
  return w.Serialize();
}

// The base name of the model folder (general.name).
std::string ModelName(const std::string& model) {
  std::string m = model;
  while (!m.empty() && m.back() == '/') m.pop_back();
  const size_t slash = m.rfind('/');
  return slash == std::string::npos ? m : m.substr(slash + 1);
}

}  // namespace

absl::StatusOr<GgufExportResult> ExportGguf(const GgufExportOptions& f,
                                            const storage::StorageOptions& options) {
  if (!absl::EndsWith(f.out, ".gguf")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "export --format gguf writes one file: --out must name a .gguf file, not ", f.out));
  }
  absl::StatusOr<std::string> text =
      storage::ReadObject(storage::JoinKey(f.model, "config.json"), options);
  if (!text.ok()) return text.status();
  GgufType dense_type = GgufType::kF16;
  if (f.dtype.empty()) {
    nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
    const auto it = j.is_object() ? j.find("torch_dtype") : j.end();
    if (it != j.end() && it->is_string() && it->get<std::string>() == "float32") {
      dense_type = GgufType::kF32;
    }
  } else if (f.dtype == "f32" || f.dtype == "float32") {
    dense_type = GgufType::kF32;
  } else if (f.dtype != "f16" && f.dtype != "float16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format gguf takes --dtype f16 or f32 for its dense tensors, not ",
                     f.dtype.substr(0, 40)));
  }
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> opened =
      model_io::OpenCheckpointAt(f.model, options);
  if (!opened.ok()) return opened.status();
  const model::Checkpoint& ckpt = **opened;
  const model::ModelConfig& config = ckpt.config();
  absl::StatusOr<Arch> arch = ArchFor(config);
  if (!arch.ok()) return arch.status();
  const std::string& rope = config.rope_scaling.type;
  if (!rope.empty() && rope != "default" && rope != "linear" &&
      !(rope == "llama3" && arch->name == "llama")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "export --format gguf: rope scaling '", rope, "' of ", config.architecture,
        " is not written yet (linear, and llama3 for Llama); export --format hf and convert with "
        "llama.cpp"));
  }
  if (ckpt.head_sharing() != nullptr && !ckpt.head_sharing()->empty()) {
    return absl::InvalidArgumentError(
        "export --format gguf: the checkpoint shares attention heads between layers "
        "(--share-heads), which GGUF cannot store; compress without --share-heads");
  }
  absl::StatusOr<std::optional<tokenizer::VocabTokenizer>> vocab =
      model_io::OpenVocabTokenizer(f.model, options);
  if (!vocab.ok()) return vocab.status();
  if (!vocab->has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "export --format gguf: ", f.model,
        " has no tokenizer_vocab.json; only the llama2.c vocabulary is written to GGUF yet "
        "(tokenizer.json and tokenizer.model: use llama.cpp's convert_hf_to_gguf.py on "
        "export --format hf)"));
  }
  // Plan every linear; collect every refusal.
  std::vector<Planned> plan;
  std::vector<std::string> refused;
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    for (size_t i = 0; i < std::size(model::kLinearModules); ++i) {
      const model::LinearModule& m = model::kLinearModules[i];
      Planned p;
      p.module = config.LayerPrefix(layer) + m.suffix;
      p.name = m.name;
      p.gguf_name = absl::StrCat("blk.", layer, ".", kGgufLinearNames[i]);
      if (arch->permute_qk && i < 2) p.rope_heads = i == 0 ? config.num_heads : config.num_kv_heads;
      if (ckpt.ReaderFor(p.module + ".weight") == nullptr) {
        absl::StatusOr<std::string> why = Unrepresentable(ckpt, p.module, &p.bits, &p.q4k, &p.rank);
        if (!why.ok()) return why.status();
        if (why->empty() && p.rank > 0 && f.merge_lr) {  // Q + L·R dense, no adapter
          p.bits = 0;
          p.q4k = false;
        }
        if (!why->empty() && !f.dense_fallback)
          refused.push_back(absl::StrCat(p.module, " (", *why, ")"));
      }
      plan.push_back(std::move(p));
    }
  }
  if (!refused.empty()) {
    const size_t shown = std::min<size_t>(refused.size(), 8);
    return absl::InvalidArgumentError(absl::StrCat(
        "export --format gguf: ", refused.size(), " linear(s) have no exact GGUF block type: ",
        absl::StrJoin(refused.begin(), refused.begin() + static_cast<std::ptrdiff_t>(shown), "; "),
        refused.size() > shown ? absl::StrCat("; and ", refused.size() - shown, " more") : "",
        ". GGUF's Q4_0 / Q8_0 hold Q on the int grid (--quantizer int --q-bits 4 or 8 "
        "--q-group-size 32, no Hadamard, no L·R, columns a multiple of 32), Q4_K Q on its grid "
        "(--quantizer q4k, columns a multiple of 256): compress with "
        "--serve llamacpp, or export with --dense-fallback to write these linears (Q + L·R) "
        "dense in --dtype"));
  }
  const bool any_adapter = std::any_of(plan.begin(), plan.end(),
                                       [](const Planned& p) { return p.bits > 0 && p.rank > 0; });
  const std::string adapter_path = f.out.substr(0, f.out.size() - 5) + ".lora.gguf";
  for (const std::string& path : {f.out, adapter_path}) {  // refuse existing files first
    if (path == adapter_path && !any_adapter) continue;
    absl::StatusOr<storage::StoreAndKey> at = storage::OpenUri(path, options);
    if (!at.ok()) return at.status();
    if (at->store->Head(at->key).ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " already exists; choose another --out or remove it"));
    }
  }
  format::GgufWriter w;
  SetArchitecture(config, *arch, ModelName(f.model), &w);
  SetVocabTokenizer(**vocab, &w);
  GgufExportResult result;
  auto add = [&](absl::StatusOr<format::GgufTensor> t) -> absl::Status {
    if (!t.ok()) return t.status();
    return w.AddTensor(*std::move(t));
  };
  if (absl::Status s =
          add(FloatTensor(ckpt, "model.embed_tokens.weight", "token_embd.weight", dense_type));
      !s.ok()) {
    return s;
  }
  if (rope == "llama3") {
    if (absl::Status s = w.AddTensor(RopeFreqs(config)); !s.ok()) return s;
  }
  std::map<GgufType, int> counts;
  size_t next = 0;
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    const std::string prefix = config.LayerPrefix(layer);
    const std::string blk = absl::StrCat("blk.", layer, ".");
    const std::pair<const char*, const char*> norms[] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"self_attn.q_norm.weight", "attn_q_norm.weight"},
        {"self_attn.k_norm.weight", "attn_k_norm.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.bias", "attn_v.bias"},
    };
    for (size_t i = 0; i < std::size(norms); ++i) {
      const std::string name = prefix + norms[i].first;
      if (ckpt.Find(name) == nullptr) continue;
      int64_t heads = 0;
      if (arch->permute_qk && i == 4) heads = config.num_heads;
      if (arch->permute_qk && i == 5) heads = config.num_kv_heads;
      if (absl::Status s = add(FloatTensor(ckpt, name, blk + norms[i].second, dense_type, heads));
          !s.ok()) {
        return s;
      }
    }
    for (; next < plan.size() && absl::StartsWith(plan[next].module, prefix); ++next) {
      absl::StatusOr<format::GgufTensor> t = LinearTensor(ckpt, plan[next], dense_type);
      if (!t.ok()) return t.status();
      ++counts[t->type];
      ++(plan[next].bits > 0 ? result.quantized_linears : result.dense_linears);
      result.linear_bytes += static_cast<int64_t>(t->data.size());
      if (absl::Status s = w.AddTensor(*std::move(t)); !s.ok()) return s;
    }
  }
  if (absl::Status s =
          add(FloatTensor(ckpt, "model.norm.weight", "output_norm.weight", dense_type));
      !s.ok()) {
    return s;
  }
  if (!config.tie_word_embeddings && ckpt.Find("lm_head.weight") != nullptr) {
    if (absl::Status s = add(FloatTensor(ckpt, "lm_head.weight", "output.weight", dense_type));
        !s.ok()) {
      return s;
    }
  }
  w.Set("general.file_type", FileType(counts));
  const std::string bytes = w.Serialize();
  result.file_bytes = static_cast<int64_t>(bytes.size());
  absl::StatusOr<std::string> adapter = std::string();
  if (any_adapter) adapter = LoraAdapter(ckpt, *arch, plan, dense_type);
  if (!adapter.ok()) return adapter.status();
  absl::StatusOr<storage::ObjectInfo> put = storage::WriteObject(f.out, bytes, options);
  if (!put.ok()) return put.status();
  if (any_adapter) {
    put = storage::WriteObject(adapter_path, *adapter, options);
    if (!put.ok()) {  // nothing half written: the base goes too
      if (absl::StatusOr<storage::StoreAndKey> at = storage::OpenUri(f.out, options); at.ok()) {
        (void)at->store->Delete(at->key);
      }
      return put.status();
    }
    result.adapter = adapter_path;
  }
  return result;
}

}  // namespace caldera::operations
