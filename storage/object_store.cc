#include "storage/object_store.h"

#include <cstring>

namespace caldera::storage {

absl::Status ByteViewSource::ReadAt(uint64_t offset, std::span<uint8_t> out) const {
  if (absl::Status s = CheckRange(name_, bytes_.size(), offset, out.size()); !s.ok()) return s;
  if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
  return absl::OkStatus();
}

absl::StatusOr<ObjectInfo> ObjectStore::PutBytes(const std::string& key, absl::string_view bytes) {
  ByteViewSource source(UriOf(key), bytes);
  return Put(key, source);
}

absl::StatusOr<ObjectInfo> ObjectStore::PutFile(const std::string& key,
                                                const std::string& local_path) {
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> source = OpenMappedFile(local_path);
  if (!source.ok()) return source.status();
  return Put(key, **source);
}

}  // namespace caldera::storage
