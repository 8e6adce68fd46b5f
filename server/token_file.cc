#include "server/token_file.h"

#include <cstdio>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "storage/sha256.h"

namespace caldera::server {
namespace {

bool IsHexDigest(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsName(absl::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '@' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

std::optional<Role> ParseRole(absl::string_view s) {
  if (s == "viewer") return Role::kViewer;
  if (s == "submitter") return Role::kSubmitter;
  if (s == "admin") return Role::kAdmin;
  if (s == "worker") return Role::kWorker;
  return std::nullopt;
}

// Applies one `queued=N` / `running=N` field to `quota`.
absl::Status ParseQuotaField(absl::string_view field, const std::string& where, OwnerQuota* quota) {
  const size_t eq = field.find('=');
  const absl::string_view key = field.substr(0, eq);
  int64_t value = 0;
  int64_t* target = key == "queued"    ? &quota->max_queued
                    : key == "running" ? &quota->max_running
                                       : nullptr;
  if (eq == absl::string_view::npos || target == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": after the name only queued=N and running=N may follow"));
  }
  if (!absl::SimpleAtoi(field.substr(eq + 1), &value) || value < 1 || value > kMaxQuotaValue) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", key, "= must be a whole number in [1, ", kMaxQuotaValue, "]"));
  }
  *target = value;
  return absl::OkStatus();
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kSubmitter:
      return "submitter";
    case Role::kAdmin:
      return "admin";
    case Role::kWorker:
      return "worker";
  }
  return "unknown";
}

absl::StatusOr<std::map<std::string, Principal>> ParseTokenFile(absl::string_view text) {
  std::map<std::string, Principal> out;
  std::map<std::string, std::pair<OwnerQuota, int>> quota_line;  // name -> quota, first line
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat("line ", line_number);
    if (f.size() < 3 || f.size() > 5) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " has ", f.size(),
                       " fields; want: <sha256 hex of the token> <role> <name> [queued=N] "
                       "[running=N]"));
    }
    if (!IsHexDigest(f[0])) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": the first field is not a SHA-256 hex digest (64 hex digits); store "
                       "`printf %s TOKEN | sha256sum`, never the token itself"));
    }
    std::optional<Role> role = ParseRole(f[1]);
    if (!role) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": role must be viewer, submitter, admin or worker"));
    }
    if (!IsName(f[2])) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": name must be 1-128 letters, digits or . _ @ -"));
    }
    OwnerQuota quota;
    for (size_t i = 3; i < f.size(); ++i) {
      if (absl::Status s = ParseQuotaField(f[i], where, &quota); !s.ok()) return s;
    }
    std::string hash = absl::AsciiStrToLower(f[0]);
    if (out.count(hash) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": this token hash appears twice"));
    }
    auto [first, inserted] = quota_line.emplace(std::string(f[2]), std::pair{quota, line_number});
    if (!inserted && first->second.first != quota) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": name ", f[2], " has other quotas on line ", first->second.second,
                       "; give every line of one name the same queued= and running="));
    }
    out[std::move(hash)] = Principal{std::string(f[2]), *role, quota};
  }
  return out;
}

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::Open(
    const std::string& path, std::function<void()> on_reload_failure) {
  std::unique_ptr<TokenFile> file(new TokenFile(path, std::move(on_reload_failure)));
  file->stamp_ = service_runtime::StampOf(path);
  absl::StatusOr<std::shared_ptr<const Tokens>> tokens = file->Read();
  if (!tokens.ok()) return tokens.status();
  file->tokens_ = *std::move(tokens);
  return file;
}

absl::StatusOr<std::shared_ptr<const TokenFile::Tokens>> TokenFile::Read() const {
  absl::StatusOr<std::string> text = service_runtime::ReadOperatorFile(path_, "--auth-tokens");
  if (!text.ok()) return text.status();
  absl::StatusOr<std::map<std::string, Principal>> parsed = ParseTokenFile(*text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth-tokens ", path_, ": ", parsed.status().message()));
  }
  auto tokens = std::make_shared<Tokens>();
  tokens->by_hash = *std::move(parsed);
  for (const auto& [hash, who] : tokens->by_hash) tokens->by_name[who.name] = who.quota;
  return std::shared_ptr<const Tokens>(std::move(tokens));
}

void TokenFile::ReloadIfChanged() {
  const service_runtime::FileStamp stamp = service_runtime::StampOf(path_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stamp == stamp_) return;
  }
  // One reader at a time; the others answer with the tokens in force.
  std::unique_lock<std::mutex> reading(reload_mu_, std::try_to_lock);
  if (!reading.owns_lock()) return;
  absl::StatusOr<std::shared_ptr<const Tokens>> tokens = Read();  // no lookup lock held
  std::lock_guard<std::mutex> lock(mu_);
  stamp_ = stamp;  // a broken version is reported once
  if (tokens.ok()) {
    tokens_ = *std::move(tokens);
    return;
  }
  std::fprintf(stderr, "caldera-coordinator: %s; keeping the previous tokens\n",
               std::string(tokens.status().message()).c_str());
  if (on_reload_failure_) on_reload_failure_();
}

std::optional<Principal> TokenFile::Lookup(absl::string_view token) {
  ReloadIfChanged();
  if (token.empty()) return std::nullopt;
  std::shared_ptr<const Tokens> tokens;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tokens = tokens_;
  }
  auto it = tokens->by_hash.find(storage::Sha256Hex(token));
  if (it == tokens->by_hash.end()) return std::nullopt;
  return it->second;
}

OwnerQuota TokenFile::QuotaFor(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tokens_->by_name.find(name);
  return it == tokens_->by_name.end() ? OwnerQuota() : it->second;
}

}  // namespace caldera::server
