#include <algorithm>
#include <cstring>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/format/safetensors.h"
#include "core/util/bounded_quote.h"
#include "nlohmann/json.hpp"

namespace caldera {
namespace {

using Json = nlohmann::json;

absl::Status Corrupt(const std::string& file, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(file, ": corrupt safetensors file: ", what,
                   "; re-export the checkpoint (e.g. save_file/save_pretrained again)"));
}

absl::Status TensorError(const std::string& file, const std::string& tensor,
                         absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": tensor '", BoundedQuote(tensor),
                                                 "': ", what,
                                                 "; the file is corrupt or was not written "
                                                 "by a safetensors writer"));
}

// Reads a non-negative integer that fits in int64 from a JSON value.
bool AsNonNegativeInt(const Json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return *out <= static_cast<uint64_t>(INT64_MAX);
  }
  if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    if (s < 0) return false;
    *out = static_cast<uint64_t>(s);
    return true;
  }
  return false;
}

absl::StatusOr<TensorInfo> ParseEntry(const std::string& file, const std::string& name,
                                      const Json& entry, uint64_t data_size) {
  if (!entry.is_object()) return TensorError(file, name, "entry is not a JSON object");
  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return TensorError(file, name, "missing or non-string \"dtype\"");
  }
  absl::StatusOr<DType> dtype = ParseDType(dtype_it->get<std::string>());
  if (!dtype.ok()) return TensorError(file, name, dtype.status().message());
  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return TensorError(file, name, "missing or non-array \"shape\"");
  }
  TensorInfo info;
  info.name = name;
  info.dtype = *dtype;
  for (const Json& d : *shape_it) {
    uint64_t dim = 0;
    if (!AsNonNegativeInt(d, &dim)) {
      return TensorError(
          file, name,
          absl::StrCat("shape entry ",
                       BoundedQuote(d.dump(-1, ' ', false, Json::error_handler_t::replace)),
                       " is not a non-negative integer"));
    }
    info.shape.push_back(static_cast<int64_t>(dim));
  }
  auto off_it = entry.find("data_offsets");
  if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2) {
    return TensorError(file, name, "missing \"data_offsets\" [begin, end]");
  }
  if (!AsNonNegativeInt((*off_it)[0], &info.begin) || !AsNonNegativeInt((*off_it)[1], &info.end)) {
    return TensorError(file, name, "data_offsets are not non-negative integers");
  }
  if (info.begin > info.end) {
    return TensorError(
        file, name, absl::StrCat("data_offsets [", info.begin, ", ", info.end, "] are reversed"));
  }
  if (info.end > data_size) {
    return TensorError(file, name,
                       absl::StrCat("data_offsets [", info.begin, ", ", info.end,
                                    "] are out of bounds: the data section has ", data_size,
                                    " bytes (truncated file?)"));
  }
  const size_t elem = DTypeSize(info.dtype);
  if (info.begin % elem != 0) {
    return TensorError(file, name,
                       absl::StrCat("data offset ", info.begin, " is not aligned to the ",
                                    DTypeName(info.dtype), " element size ", elem));
  }
  absl::StatusOr<int64_t> numel = CheckedNumel(info.shape);
  if (!numel.ok()) return TensorError(file, name, numel.status().message());
  const uint64_t range = info.end - info.begin;
  if (static_cast<uint64_t>(*numel) > range / elem ||
      static_cast<uint64_t>(*numel) * elem != range) {
    return TensorError(file, name,
                       absl::StrCat("shape ", ShapeString(info.shape), " x ", DTypeName(info.dtype),
                                    " needs ", static_cast<uint64_t>(*numel) * elem,
                                    " bytes but data_offsets span ", range, " bytes"));
  }
  return info;
}

// A SAX handler that builds nothing: it remembers the first key that appears
// twice in one object, and the top-level key (tensor) it was found under.
class DuplicateKeyFinder final : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    open_objects_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (open_objects_.empty()) return true;
    if (open_objects_.size() == 1) top_key_ = k;
    if (!open_objects_.back().insert(k).second && duplicate_.empty()) {
      duplicate_ = k;
      duplicate_in_ = open_objects_.size() == 1 ? "" : top_key_;
    }
    return true;
  }
  bool end_object() override {
    if (!open_objects_.empty()) open_objects_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;  // the DOM parse reports invalid JSON
  }

  // The first duplicated key ("" if none), and the tensor holding it ("" when
  // the duplicate is a top-level name).
  const std::string& duplicate() const { return duplicate_; }
  const std::string& duplicate_in() const { return duplicate_in_; }

 private:
  std::vector<std::set<std::string>> open_objects_;
  std::string top_key_;
  std::string duplicate_;
  std::string duplicate_in_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsReader>> SafetensorsReader::OpenFile(
    const std::string& path) {
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> source = OpenMappedFile(path);
  if (!source.ok()) return source.status();
  return Open(*std::move(source));
}

absl::StatusOr<std::unique_ptr<SafetensorsReader>> SafetensorsReader::Open(
    std::unique_ptr<RandomAccessSource> source) {
  const std::string file = source->Name();
  const uint64_t size = source->Size();
  if (size < 8) {
    return Corrupt(
        file, absl::StrCat("file has ", size, " bytes, too short for the 8-byte header length"));
  }
  uint8_t len_bytes[8];
  if (absl::Status s = source->ReadAt(0, len_bytes); !s.ok()) return s;
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxHeaderBytes) {
    // The number is the file's first 8 bytes: never quoted (a token file
    // pointed at /etc/passwd would otherwise leak "root:x:0").
    return Corrupt(file, absl::StrCat("header length (the first 8 bytes) exceeds the limit of ",
                                      kMaxHeaderBytes, " bytes; this is not a safetensors file"));
  }
  if (header_len > size - 8) {
    return Corrupt(
        file, absl::StrCat("header length (the first 8 bytes) goes beyond the end of the file (",
                           size, " bytes); the file is truncated or not a safetensors file"));
  }
  std::string header(header_len, '\0');
  if (absl::Status s = source->ReadAt(
          8, std::span<uint8_t>(reinterpret_cast<uint8_t*>(header.data()), header.size()));
      !s.ok()) {
    return s;
  }

  // Duplicate keys at any depth (nlohmann keeps only the last) are found by a
  // SAX pass, then the DOM is built without a callback: nlohmann's callback
  // parser rescans the parent object at every nested object's end, which made
  // a header of N entries cost O(N^2). Both passes are O(n log n).
  DuplicateKeyFinder dups;
  (void)Json::sax_parse(header, &dups, nlohmann::detail::input_format_t::json,
                        /*strict=*/true);
  const std::string& duplicate = dups.duplicate();
  const std::string& duplicate_in = dups.duplicate_in();
  Json root = Json::parse(header, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Corrupt(file, "header is not valid JSON");
  if (!root.is_object()) return Corrupt(file, "header JSON is not an object");
  if (!duplicate.empty()) {
    if (duplicate_in.empty()) {
      return TensorError(file, duplicate, "the name appears more than once in the header");
    }
    return TensorError(
        file, duplicate_in,
        absl::StrCat("key \"", BoundedQuote(duplicate), "\" appears more than once in its entry"));
  }

  auto reader = std::unique_ptr<SafetensorsReader>(new SafetensorsReader());
  reader->data_offset_ = 8 + header_len;
  const uint64_t data_size = size - reader->data_offset_;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Corrupt(file, "__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) {
          return Corrupt(file, absl::StrCat("__metadata__ value for '", BoundedQuote(m.key()),
                                            "' is not a string"));
        }
        reader->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    absl::StatusOr<TensorInfo> info = ParseEntry(file, it.key(), *it, data_size);
    if (!info.ok()) return info.status();
    reader->tensors_.push_back(*std::move(info));
  }
  std::sort(reader->tensors_.begin(), reader->tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  uint64_t prev_end = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : reader->tensors_) {
    if (t.begin == t.end) continue;  // empty tensors occupy no bytes
    if (prev != nullptr && t.begin < prev_end) {
      return TensorError(file, t.name,
                         absl::StrCat("byte range [", t.begin, ", ", t.end, ") overlaps tensor '",
                                      prev->name, "' [", prev->begin, ", ", prev->end, ")"));
    }
    prev_end = t.end;
    prev = &t;
  }
  for (size_t i = 0; i < reader->tensors_.size(); ++i) {
    reader->index_.emplace(reader->tensors_[i].name, i);
  }
  reader->source_ = std::move(source);
  return reader;
}

const TensorInfo* SafetensorsReader::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<Tensor> SafetensorsReader::Read(absl::string_view name) const {
  const TensorInfo* info = Find(name);
  if (info == nullptr) {
    std::vector<std::string> names;
    for (size_t i = 0; i < tensors_.size() && i < 8; ++i) {
      names.push_back(BoundedQuote(tensors_[i].name, 64));
    }
    return absl::NotFoundError(absl::StrCat(source_->Name(), ": no tensor named '",
                                            BoundedQuote(name), "' (", tensors_.size(),
                                            " tensors, e.g. ", absl::StrJoin(names, ", "),
                                            tensors_.size() > names.size() ? ", ..." : "", ")"));
  }
  absl::StatusOr<Tensor> t = Tensor::Zeros(info->dtype, info->shape);
  if (!t.ok()) return t.status();
  if (t->nbytes() > 0) {
    if (absl::Status s = source_->ReadAt(data_offset_ + info->begin, t->mutable_bytes()); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("reading tensor '", info->name, "': ", s.message()));
    }
  }
  return t;
}

absl::Status SafetensorsReader::ReadTensorRange(const TensorInfo& info, uint64_t offset,
                                                std::span<uint8_t> out) const {
  if (absl::Status s = CheckRange(absl::StrCat(source_->Name(), " tensor '", info.name, "'"),
                                  info.end - info.begin, offset, out.size());
      !s.ok()) {
    return s;
  }
  if (out.empty()) return absl::OkStatus();
  if (absl::Status s = source_->ReadAt(data_offset_ + info.begin + offset, out); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("reading tensor '", info.name, "': ", s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::span<const uint8_t>> SafetensorsReader::MappedTensorBytes(
    absl::string_view name) const {
  const TensorInfo* info = Find(name);
  if (info == nullptr) return Read(name).status();  // the NOT_FOUND with the names
  const std::span<const uint8_t> mapped = source_->MappedBytes();
  if (mapped.empty() && source_->Size() > 0) {
    return absl::FailedPreconditionError(absl::StrCat(source_->Name(),
                                                      ": not memory-mapped; read tensor '",
                                                      info->name, "' with Read() instead"));
  }
  // Open() checked the range against the source size.
  return mapped.subspan(data_offset_ + info->begin, info->end - info->begin);
}

absl::StatusOr<Tensor> SafetensorsReader::ReadAs(absl::string_view name, DType dtype) const {
  absl::StatusOr<Tensor> t = Read(name);
  if (!t.ok() || t->dtype() == dtype) return t;
  return t->ConvertTo(dtype);
}

}  // namespace caldera
