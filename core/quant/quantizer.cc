#include "core/quant/quantizer.h"

#include "absl/strings/str_cat.h"
#include "core/quant/float_quantizer.h"
#include "core/quant/int_quantizer.h"
#include "core/quant/lattice_quantizer.h"
#include "core/quant/q4k_quantizer.h"
#include "core/quant/uniform_quantizer.h"
#include "core/util/bounded_quote.h"

namespace caldera::quant {

std::string QuantizerSpec::Name() const {
  switch (kind) {
    case Kind::kLattice:
      return absl::StrCat(bits == 2 ? "e8p2" : absl::StrCat("e8p-rvq", bits),
                          row_scales ? "-rs" : "");
    case Kind::kUniform:
      return absl::StrCat("uniform", bits, "-g", group_size, symmetric ? "-sym" : "-asym");
    case Kind::kInt:
      return absl::StrCat("int", bits, "-g", group_size);
    case Kind::kQ4k:
      return "q4k";
    case Kind::kFloat:
      return absl::StrCat("fp", bits);
  }
  return "unknown";
}

absl::Status ValidateSpec(const QuantizerSpec& s) {
  if (s.row_scales && s.kind != QuantizerSpec::Kind::kLattice) {
    return absl::InvalidArgumentError(
        "row scales are an e8p option (the uniform quantizer has per-group scales)");
  }
  switch (s.kind) {
    case QuantizerSpec::Kind::kLattice:
      if (s.bits < 2 || s.bits > 4) {
        return absl::InvalidArgumentError(absl::StrCat(
            "e8p quantizer supports 2, 3 or 4 bits (or 16/32 to keep floats), not ", s.bits));
      }
      return absl::OkStatus();
    case QuantizerSpec::Kind::kUniform:
      if (s.bits < 2 || s.bits > 8) {
        return absl::InvalidArgumentError(absl::StrCat(
            "uniform quantizer supports 2 to 8 bits (or 16/32 to keep floats), not ", s.bits));
      }
      if (s.group_size < 1) {
        return absl::InvalidArgumentError("--group-size must be at least 1");
      }
      return absl::OkStatus();
    case QuantizerSpec::Kind::kInt:
      if (!IntGridBits(s.bits)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "int quantizer supports 4 or 8 bits (or 16/32 to keep floats), not ", s.bits));
      }
      if (!s.symmetric) {
        return absl::InvalidArgumentError("the int quantizer is symmetric (zero point 0)");
      }
      if (s.group_size < 1) {
        return absl::InvalidArgumentError("--group-size must be at least 1");
      }
      return absl::OkStatus();
    case QuantizerSpec::Kind::kQ4k:
      if (s.bits != 4) {
        return absl::InvalidArgumentError(absl::StrCat(
            "q4k quantizer (llama.cpp's Q4_K) is 4 bits (or 16/32 to keep floats), not ", s.bits));
      }
      return absl::OkStatus();
    case QuantizerSpec::Kind::kFloat:
      if (s.bits != 16 && s.bits != 32) {
        return absl::InvalidArgumentError(
            absl::StrCat("float storage is 16 or 32 bits, not ", s.bits));
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown quantizer kind");
}

absl::string_view QuantizerName(Quantizer quantizer) {
  switch (quantizer) {
    case Quantizer::kE8p:
      return "e8p";
    case Quantizer::kUniform:
      return "uniform";
    case Quantizer::kInt:
      return "int";
    case Quantizer::kQ4k:
      return "q4k";
  }
  return "unknown";
}

absl::StatusOr<Quantizer> ParseQuantizer(absl::string_view name) {
  for (Quantizer q : {Quantizer::kE8p, Quantizer::kUniform, Quantizer::kInt, Quantizer::kQ4k}) {
    if (name == QuantizerName(q)) return q;
  }
  return absl::InvalidArgumentError(absl::StrCat("--quantizer ", BoundedQuote(name),
                                                 " is unknown; use e8p, uniform, int or q4k"));
}

QuantizerSpec SpecFor(Quantizer quantizer, int bits, int64_t group_size) {
  QuantizerSpec s;
  s.bits = bits;
  s.group_size = group_size;
  if (bits >= 16) {
    s.kind = QuantizerSpec::Kind::kFloat;
  } else if (quantizer == Quantizer::kUniform) {
    s.kind = QuantizerSpec::Kind::kUniform;
  } else if (quantizer == Quantizer::kInt) {
    s.kind = QuantizerSpec::Kind::kInt;
  } else if (quantizer == Quantizer::kQ4k) {
    s.kind = QuantizerSpec::Kind::kQ4k;
  } else {
    s.kind = QuantizerSpec::Kind::kLattice;
  }
  return s;
}

int64_t BlockColsFor(const QuantizerSpec& spec) {
  return spec.kind == QuantizerSpec::Kind::kLattice ? 8 : 1;
}

absl::StatusOr<std::unique_ptr<MatrixQuantizer>> MakeMatrixQuantizer(const QuantizerSpec& spec,
                                                                     int64_t rows, int64_t cols) {
  if (absl::Status s = ValidateSpec(spec); !s.ok()) return s;
  if (spec.kind == QuantizerSpec::Kind::kQ4k && cols % kQ4kSuperBlock != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("q4k (llama.cpp's Q4_K) needs rows of a multiple of 256 columns, got ", cols));
  }
  if (cols % BlockColsFor(spec) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(spec.Name(), " needs a multiple of ",
                                                   BlockColsFor(spec), " columns, got ", cols));
  }
  switch (spec.kind) {
    case QuantizerSpec::Kind::kLattice:
      return std::make_unique<LatticeQuantizer>(spec, rows, cols);
    case QuantizerSpec::Kind::kUniform:
      return std::make_unique<UniformQuantizer>(spec, rows, cols);
    case QuantizerSpec::Kind::kInt:
      return std::make_unique<IntQuantizer>(spec, rows, cols);
    case QuantizerSpec::Kind::kQ4k:
      return std::make_unique<Q4kQuantizer>(spec, rows, cols);
    case QuantizerSpec::Kind::kFloat:
      return std::make_unique<FloatQuantizer>(spec, rows, cols);
  }
  return absl::InvalidArgumentError("unknown quantizer kind");
}

MatrixF QuantizeNearest(MatrixQuantizer& q, const MatrixF& a) {
  q.Prepare(a);
  MatrixF out(a.rows(), a.cols());
  q.QuantizeBlock(0, a, out);  // all columns: the quantizer splits the work
  return out;
}

absl::StatusOr<MatrixF> Dequantize(const QuantizerSpec& spec, int64_t rows, int64_t cols,
                                   const NamedTensors& tensors) {
  absl::StatusOr<std::unique_ptr<MatrixQuantizer>> q = MakeMatrixQuantizer(spec, rows, cols);
  if (!q.ok()) return q.status();
  return (*q)->Decode(tensors);
}

}  // namespace caldera::quant
