// Matrix quantizers behind one interface, with exact bit accounting.
//
// A MatrixQuantizer is made for one spec and one rows x cols matrix. It
// encodes: Prepare() fixes its scales from the matrix about to be quantized;
// QuantizeBlock() then quantizes column blocks (of block_cols() columns, in
// any order, each once), so LDLQ can feed back the error of one block into
// the next; Export() gives the codes and side information as named tensors for
// the per-matrix record. It decodes: Decode() rebuilds a matrix from such
// tensors.
//
// Kinds, one class and file each (made by MakeMatrixQuantizer):
//  - lattice, bits 2/3/4 (lattice_quantizer.h): E8P (2 bits), E8P + 1-bit E8
//    residual (3), E8P + E8P residual (4); 8-vectors along rows; one float32
//    scale per matrix.
//  - uniform, bits 2..8 (uniform_quantizer.h): per-group scales along rows
//    (group_size consecutive columns), symmetric (fp16 scale) or asymmetric
//    (fp16 scale and minimum).
//  - int, bits 4 or 8 (int_quantizer.h): q·scale with a signed integer q and
//    an fp16 scale per group (or row): the grid compressed-tensors stores and
//    vLLM serves (--serve vllm).
//  - q4k, bits 4 (q4k_quantizer.h): llama.cpp's Q4_K grid (super-blocks of
//    256 columns: fp16 d and dmin, 6-bit scale and minimum per 32 columns),
//    --serve llamacpp.
//  - float, bits 16 or 32 (float_quantizer.h): values kept as fp16 or fp32
//    ("unquantized factors").
#ifndef CALDERA_CORE_QUANT_QUANTIZER_H_
#define CALDERA_CORE_QUANT_QUANTIZER_H_

#include <Eigen/Dense>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/tensor/tensor.h"

namespace caldera::quant {

using MatrixF = Eigen::MatrixXf;  // column-major

// Codes and side information of one quantized matrix, by name relative to the
// matrix ("codes", "scale", ...).

struct QuantizerSpec {
  enum class Kind { kLattice, kUniform, kFloat, kInt, kQ4k };
  Kind kind = Kind::kLattice;
  int bits = 2;
  int64_t group_size = 128;  // uniform and int only
  bool symmetric = true;     // uniform only (int is symmetric)
  // Lattice only: one fp16 scale per row instead of one float32 per matrix
  // (16 bits per row). Rows of very different size -- the rank components of
  // L and R, near-low-rank Q -- then each use the codebook's full resolution.
  bool row_scales = false;

  std::string Name()
      const;  // "e8p2", "e8p-rvq4", "e8p2-rs", "uniform3-g128-sym", "int4-g128", "fp16"
};

// Checks bits against the kind. INVALID_ARGUMENT names the supported values.
absl::Status ValidateSpec(const QuantizerSpec& spec);

// The quantizer a setting names (--quantizer): E8P lattice, uniform, or the
// integer grid of compressed-tensors (int). With 16 or 32 bits each one keeps
// floats (SpecFor).
enum class Quantizer { kE8p, kUniform, kInt, kQ4k };

// "e8p", "uniform", "int" or "q4k": the spelling of flags, the proto and report.json.
absl::string_view QuantizerName(Quantizer quantizer);
// The inverse of QuantizerName. INVALID_ARGUMENT "--quantizer X is unknown;
// use e8p, uniform or int" (X cut to ~200 bytes) for anything else.
absl::StatusOr<Quantizer> ParseQuantizer(absl::string_view name);

// A spec for "--quantizer e8p|uniform --bits B" style flags: bits >= 16 is float.
QuantizerSpec SpecFor(Quantizer quantizer, int bits, int64_t group_size);

class MatrixQuantizer {
 public:
  virtual ~MatrixQuantizer() = default;

  const QuantizerSpec& spec() const { return spec_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  // Columns quantized jointly; cols() is a multiple of it.
  virtual int64_t block_cols() const = 0;

  // ---- encode
  // Fixes scales from `a` (rows x cols).
  virtual void Prepare(const MatrixF& a) = 0;
  // Quantizes `target` (rows x width, width a multiple of block_cols()), which
  // holds columns [c0, c0 + width); writes the dequantized values to `out`.
  virtual void QuantizeBlock(int64_t c0, const Eigen::Ref<const MatrixF>& target,
                             Eigen::Ref<MatrixF> out) = 0;
  // Every stored bit for the whole matrix: codes and side information.
  virtual int64_t StorageBits() const = 0;
  // The codes and side information as named tensors (names relative to the
  // matrix, e.g. "codes", "scale"); enough for Decode().
  virtual NamedTensors Export() const = 0;

  // ---- decode
  // The rows x cols matrix that `tensors` (as Export() of a quantizer with
  // this spec and shape writes them) hold; independent of what this quantizer
  // has encoded. INVALID_ARGUMENT when a tensor is missing or malformed.
  virtual absl::StatusOr<MatrixF> Decode(const NamedTensors& tensors) const = 0;

  // Threads QuantizeBlock may split its rows among, the calling thread being
  // one of them (1, the default: no others). The results do not depend on it.
  void set_threads(int threads) { threads_ = threads < 1 ? 1 : threads; }

  // The E8P codebook's nearest points of `count` 8-vectors (x and out
  // count × 8 row-major, codes[i] vector i's 16-bit code), as
  // E8PCodebook::QuantizeBatch computes them. A compute backend sets one so
  // that the searches of QuantizeBlock run on its device
  // (backend::ComputeBackend::E8pNearest); null (the default) is the CPU's
  // QuantizeBatch. With a search set, QuantizeBlock runs on the calling
  // thread only (the search is called from it alone). Quantizers without an
  // E8P search ignore it.
  using E8pSearch = std::function<void(const float* x, int64_t count, uint16_t* codes, float* out)>;
  virtual void set_e8p_search(E8pSearch search) { (void)search; }

 protected:
  // `spec` is valid for the kind (see MakeMatrixQuantizer).
  MatrixQuantizer(const QuantizerSpec& spec, int64_t rows, int64_t cols)
      : spec_(spec), rows_(rows), cols_(cols) {}
  QuantizerSpec spec_;
  int64_t rows_, cols_;
  int threads_ = 1;
};

// The quantizer of `spec`'s kind for a rows x cols matrix. INVALID_ARGUMENT
// when the spec is bad or cols is not a multiple of the block size (callers
// pad).
absl::StatusOr<std::unique_ptr<MatrixQuantizer>> MakeMatrixQuantizer(const QuantizerSpec& spec,
                                                                     int64_t rows, int64_t cols);

// Columns a matrix must be padded to a multiple of for this spec.
int64_t BlockColsFor(const QuantizerSpec& spec);

// Round-to-nearest of the whole matrix (Prepare + every block in order).
MatrixF QuantizeNearest(MatrixQuantizer& q, const MatrixF& a);

// Rebuilds the matrix from exported tensors (the inverse of Export()): the
// Decode() of MakeMatrixQuantizer(spec, rows, cols).
absl::StatusOr<MatrixF> Dequantize(const QuantizerSpec& spec, int64_t rows, int64_t cols,
                                   const NamedTensors& tensors);

}  // namespace caldera::quant

#endif  // CALDERA_CORE_QUANT_QUANTIZER_H_
