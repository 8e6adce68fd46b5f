#include "server/token_file.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
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
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat("line ", line_number);
    if (f.size() != 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, " has ", f.size(), " fields; want: <sha256 hex of the token> <role> <name>"));
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
    std::string hash = absl::AsciiStrToLower(f[0]);
    if (out.count(hash) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": this token hash appears twice"));
    }
    out[std::move(hash)] = Principal{std::string(f[2]), *role};
  }
  return out;
}

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::Open(const std::string& path) {
  std::unique_ptr<TokenFile> file(new TokenFile(path));
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth-tokens ", path, " cannot be read; give the token file"));
  }
  std::lock_guard<std::mutex> lock(file->mu_);
  const Stamp stamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
  if (absl::Status s = file->Load(stamp); !s.ok()) return s;
  return file;
}

absl::Status TokenFile::Load(const Stamp& stamp) {
  std::ifstream in(path_, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("--auth-tokens ", path_, " cannot be read"));
  }
  absl::StatusOr<std::map<std::string, Principal>> parsed = ParseTokenFile(text.str());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth-tokens ", path_, ": ", parsed.status().message()));
  }
  by_hash_ = *std::move(parsed);
  stamp_ = stamp;
  return absl::OkStatus();
}

std::optional<Principal> TokenFile::Lookup(absl::string_view token) {
  std::lock_guard<std::mutex> lock(mu_);
  struct stat st {};
  if (stat(path_.c_str(), &st) == 0) {
    const Stamp stamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
    if (stamp != stamp_) {
      if (absl::Status s = Load(stamp); !s.ok()) {
        std::fprintf(stderr, "caldera-coordinator: %s; keeping the previous tokens\n",
                     std::string(s.message()).c_str());
        stamp_ = stamp;  // report each broken version once
      }
    }
  }
  if (token.empty()) return std::nullopt;
  auto it = by_hash_.find(storage::Sha256Hex(token));
  if (it == by_hash_.end()) return std::nullopt;
  return it->second;
}

}  // namespace caldera::server
