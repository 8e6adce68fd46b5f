#include "core/format/gguf.h"

#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace caldera::format {
namespace {

struct TypeInfo {
  GgufType type;
  const char* name;
  int64_t block_elements, block_bytes;
};

// ggml.c's type traits (blck_size, type_size) for the types we write.
constexpr TypeInfo kTypes[] = {
    {GgufType::kF32, "F32", 1, 4},       {GgufType::kF16, "F16", 1, 2},
    {GgufType::kQ4_0, "Q4_0", 32, 18},   {GgufType::kQ4_1, "Q4_1", 32, 20},
    {GgufType::kQ5_0, "Q5_0", 32, 22},   {GgufType::kQ5_1, "Q5_1", 32, 24},
    {GgufType::kQ8_0, "Q8_0", 32, 34},   {GgufType::kQ2_K, "Q2_K", 256, 84},
    {GgufType::kQ3_K, "Q3_K", 256, 110}, {GgufType::kQ4_K, "Q4_K", 256, 144},
    {GgufType::kQ5_K, "Q5_K", 256, 176}, {GgufType::kQ6_K, "Q6_K", 256, 210},
};

const TypeInfo* Find(uint32_t type) {
  for (const TypeInfo& t : kTypes) {
    if (static_cast<uint32_t>(t.type) == type) return &t;
  }
  return nullptr;
}

// GGUF value type ids (gguf.h enum gguf_type).
enum ValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32v = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

template <typename T>
void Put(std::string* out, T v) {
  static_assert(std::is_trivially_copyable_v<T>);
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (as ggml)
  out->append(b, sizeof(T));
}

void PutString(std::string* out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out->append(s);
}

void PutValue(std::string* out, const GgufValue& value) {
  std::visit(
      [out](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, uint32_t>) {
          Put<uint32_t>(out, kU32), Put(out, v);
        } else if constexpr (std::is_same_v<V, int32_t>) {
          Put<uint32_t>(out, kI32), Put(out, v);
        } else if constexpr (std::is_same_v<V, uint64_t>) {
          Put<uint32_t>(out, kU64), Put(out, v);
        } else if constexpr (std::is_same_v<V, float>) {
          Put<uint32_t>(out, kF32v), Put(out, v);
        } else if constexpr (std::is_same_v<V, bool>) {
          Put<uint32_t>(out, kBool), Put<uint8_t>(out, v ? 1 : 0);
        } else if constexpr (std::is_same_v<V, std::string>) {
          Put<uint32_t>(out, kString), PutString(out, v);
        } else if constexpr (std::is_same_v<V, std::vector<std::string>>) {
          Put<uint32_t>(out, kArray), Put<uint32_t>(out, kString), Put<uint64_t>(out, v.size());
          for (const std::string& s : v) PutString(out, s);
        } else if constexpr (std::is_same_v<V, std::vector<float>>) {
          Put<uint32_t>(out, kArray), Put<uint32_t>(out, kF32v), Put<uint64_t>(out, v.size());
          for (float f : v) Put(out, f);
        } else {
          static_assert(std::is_same_v<V, std::vector<int32_t>>);
          Put<uint32_t>(out, kArray), Put<uint32_t>(out, kI32), Put<uint64_t>(out, v.size());
          for (int32_t i : v) Put(out, i);
        }
      },
      value);
}

uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

absl::string_view GgufTypeName(GgufType type) {
  const TypeInfo* t = Find(static_cast<uint32_t>(type));
  return t == nullptr ? "?" : t->name;
}
int64_t GgufBlockElements(GgufType type) {
  return Find(static_cast<uint32_t>(type))->block_elements;
}
int64_t GgufBlockBytes(GgufType type) { return Find(static_cast<uint32_t>(type))->block_bytes; }
int64_t GgufTensorBytes(GgufType type, int64_t elements) {
  return elements / GgufBlockElements(type) * GgufBlockBytes(type);
}

void GgufWriter::Set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

absl::Status GgufWriter::AddTensor(GgufTensor t) {
  if (t.name.empty() || t.name.size() > 63) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF tensor name '", t.name.substr(0, 80), "' is empty or over 63 bytes"));
  }
  for (const GgufTensor& other : tensors_) {
    if (other.name == t.name) {
      return absl::InvalidArgumentError(absl::StrCat("GGUF tensor '", t.name, "' added twice"));
    }
  }
  if (t.ne.empty() || t.ne.size() > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF tensor '", t.name, "' has ", t.ne.size(), " dimensions (1 to 4)"));
  }
  int64_t n = 1;
  for (int64_t d : t.ne) {
    if (d < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF tensor '", t.name, "' has a dimension ", d));
    }
    n *= d;
  }
  const int64_t block = GgufBlockElements(t.type);
  if (t.ne[0] % block != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF tensor '", t.name, "': rows of ", t.ne[0], " elements cannot be stored as ",
        GgufTypeName(t.type), " (blocks of ", block, ")"));
  }
  if (static_cast<int64_t>(t.data.size()) != GgufTensorBytes(t.type, n)) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF tensor '", t.name, "' has ", t.data.size(),
                                                   " bytes; ", GgufTypeName(t.type), " needs ",
                                                   GgufTensorBytes(t.type, n)));
  }
  tensors_.push_back(std::move(t));
  return absl::OkStatus();
}

std::string GgufWriter::Serialize() const {
  std::string out;
  out.append("GGUF", 4);
  Put<uint32_t>(&out, 3);
  Put<uint64_t>(&out, tensors_.size());
  Put<uint64_t>(&out, metadata_.size() + 1);
  PutString(&out, "general.alignment");
  PutValue(&out, GgufValue(alignment_));
  for (const auto& [key, value] : metadata_) {
    PutString(&out, key);
    PutValue(&out, value);
  }
  uint64_t offset = 0;
  for (const GgufTensor& t : tensors_) {
    PutString(&out, t.name);
    Put<uint32_t>(&out, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) Put<uint64_t>(&out, static_cast<uint64_t>(d));
    Put<uint32_t>(&out, static_cast<uint32_t>(t.type));
    Put<uint64_t>(&out, offset);
    offset = AlignUp(offset + t.data.size(), alignment_);
  }
  out.resize(AlignUp(out.size(), alignment_), '\0');
  const size_t data_start = out.size();
  for (const GgufTensor& t : tensors_) {
    out.append(t.data);
    out.resize(data_start + AlignUp(out.size() - data_start, alignment_), '\0');
  }
  return out;
}

namespace {

// A bounds-checked cursor over the file.
class Cursor {
 public:
  explicit Cursor(absl::string_view bytes) : bytes_(bytes) {}
  size_t pos() const { return pos_; }
  bool failed() const { return failed_; }

  template <typename T>
  T Get() {
    T v{};
    if (failed_ || bytes_.size() - pos_ < sizeof(T)) {
      failed_ = true;
      return v;
    }
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string GetString() {
    const uint64_t n = Get<uint64_t>();
    if (failed_ || n > bytes_.size() - pos_) {
      failed_ = true;
      return {};
    }
    std::string s(bytes_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  void Skip(uint64_t n) {
    if (failed_ || n > bytes_.size() - pos_) {
      failed_ = true;
      return;
    }
    pos_ += n;
  }

 private:
  absl::string_view bytes_;
  size_t pos_ = 0;
  bool failed_ = false;
};

// Size of one scalar of value type `t` (0 for strings, arrays and unknown).
uint64_t ScalarBytes(uint32_t t) {
  switch (t) {
    case kU8:
    case kI8:
    case kBool:
      return 1;
    case kU16:
    case kI16:
      return 2;
    case kU32:
    case kI32:
    case kF32v:
      return 4;
    case kU64:
    case kI64:
    case kF64:
      return 8;
    default:
      return 0;
  }
}

// Reads one value of type `t` into `out`; `keep` is false for the types
// GgufValue does not hold (skipped over). False when truncated or unknown.
bool ReadValue(Cursor* c, uint32_t t, GgufValue* out, bool* keep) {
  *keep = true;
  switch (t) {
    case kU32:
      *out = c->Get<uint32_t>();
      return !c->failed();
    case kI32:
      *out = c->Get<int32_t>();
      return !c->failed();
    case kU64:
      *out = c->Get<uint64_t>();
      return !c->failed();
    case kF32v:
      *out = c->Get<float>();
      return !c->failed();
    case kBool:
      *out = c->Get<uint8_t>() != 0;
      return !c->failed();
    case kString:
      *out = c->GetString();
      return !c->failed();
    case kArray: {
      const uint32_t et = c->Get<uint32_t>();
      const uint64_t n = c->Get<uint64_t>();
      if (c->failed()) return false;
      if (et == kString) {
        std::vector<std::string> v;
        for (uint64_t i = 0; i < n && !c->failed(); ++i) v.push_back(c->GetString());
        *out = std::move(v);
      } else if (et == kF32v || et == kI32) {
        if (n > (std::numeric_limits<uint64_t>::max() / 4)) return false;
        std::vector<float> f;
        std::vector<int32_t> i32;
        for (uint64_t i = 0; i < n && !c->failed(); ++i) {
          if (et == kF32v) {
            f.push_back(c->Get<float>());
          } else {
            i32.push_back(c->Get<int32_t>());
          }
        }
        if (et == kF32v) {
          *out = std::move(f);
        } else {
          *out = std::move(i32);
        }
      } else {
        const uint64_t size = ScalarBytes(et);
        if (size == 0 || n > std::numeric_limits<uint64_t>::max() / size) return false;
        c->Skip(n * size);
        *keep = false;
      }
      return !c->failed();
    }
    default: {
      const uint64_t size = ScalarBytes(t);
      if (size == 0) return false;
      c->Skip(size);
      *keep = false;
      return !c->failed();
    }
  }
}

}  // namespace

absl::StatusOr<GgufFile> ReadGguf(absl::string_view bytes, absl::string_view where) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a valid GGUF file: ", what));
  };
  Cursor c(bytes);
  if (bytes.substr(0, 4) != "GGUF") return bad("no GGUF magic");
  c.Skip(4);
  GgufFile f;
  f.version = c.Get<uint32_t>();
  if (f.version != 3) return bad(absl::StrCat("version ", f.version, " (we read 3)"));
  const uint64_t n_tensors = c.Get<uint64_t>();
  const uint64_t n_kv = c.Get<uint64_t>();
  // Every key and tensor info takes at least 8 bytes: bound the counts.
  if (c.failed() || n_tensors > bytes.size() / 8 || n_kv > bytes.size() / 8) {
    return bad("truncated header or impossible counts");
  }
  uint64_t alignment = 32;
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.GetString();
    const uint32_t t = c.Get<uint32_t>();
    GgufValue v;
    bool keep = false;
    if (c.failed() || !ReadValue(&c, t, &v, &keep)) {
      return bad(absl::StrCat("metadata key ", i, " is truncated or of unknown type"));
    }
    if (key == "general.alignment") {
      const uint32_t* a = std::get_if<uint32_t>(&v);
      if (a == nullptr || *a == 0 || (*a & (*a - 1)) != 0) {
        return bad("general.alignment is not a power of two uint32");
      }
      alignment = *a;
    }
    if (keep) f.metadata[std::move(key)] = std::move(v);
  }
  struct Info {
    uint64_t offset;
    int64_t bytes;
  };
  std::vector<Info> infos;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.GetString();
    const uint32_t n_dims = c.Get<uint32_t>();
    if (c.failed() || n_dims < 1 || n_dims > 4) return bad(absl::StrCat("tensor info ", i));
    int64_t n = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.Get<uint64_t>();
      if (ne < 1 || ne > (uint64_t{1} << 40) ||
          static_cast<uint64_t>(n) > (uint64_t{1} << 50) / ne) {
        return bad(absl::StrCat("tensor '", t.name, "' has an impossible shape"));
      }
      t.ne.push_back(static_cast<int64_t>(ne));
      n *= static_cast<int64_t>(ne);
    }
    const TypeInfo* type = Find(c.Get<uint32_t>());
    const uint64_t offset = c.Get<uint64_t>();
    if (c.failed()) return bad(absl::StrCat("tensor info ", i, " is truncated"));
    if (type == nullptr)
      return bad(absl::StrCat("tensor '", t.name, "' has a type we do not read"));
    if (t.ne[0] % type->block_elements != 0) {
      return bad(absl::StrCat("tensor '", t.name, "' rows are not whole blocks"));
    }
    t.type = type->type;
    infos.push_back({offset, GgufTensorBytes(t.type, n)});
    f.tensors.push_back(std::move(t));
  }
  const uint64_t data_start = AlignUp(c.pos(), alignment);
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    const Info& info = infos[i];
    if (info.offset % alignment != 0 || data_start > bytes.size() ||
        info.offset > bytes.size() - data_start ||
        static_cast<uint64_t>(info.bytes) > bytes.size() - data_start - info.offset) {
      return bad(absl::StrCat("tensor '", f.tensors[i].name, "' lies outside the file"));
    }
    f.tensors[i].data = std::string(bytes.substr(data_start + info.offset, info.bytes));
  }
  return f;
}

}  // namespace caldera::format
