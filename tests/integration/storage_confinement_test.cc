// Storage confinement and output safety end to end (issue 18, part 3):
// `calderactl compress` (embedded) refusing outputs over inputs and over
// foreign files, and keeping a pre-existing output directory; a coordinator
// and a worker started with --allow-root refusing locations outside it (at
// submit, and in the worker for a task the coordinator let through).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"
#include "tests/support/subprocess.h"

namespace caldera {
namespace {

namespace fs = std::filesystem;
using testing::FixturePath;
using testing::ReadFile;
using testing::RunCommand;
using testing::Subprocess;
using testing::TempDir;
using namespace std::chrono_literals;

constexpr int kExitInvalidInput = 2;

std::string Ctl() { return CALDERACTL_PATH; }

std::string FixtureDir() {
  absl::StatusOr<std::string> p = FixturePath("stories260K/model.safetensors");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? p->substr(0, p->rfind('/')) : "";
}

// A writable copy of the fixture model (config, weights, tokenizer) in `dir`,
// and its calibration tokens beside it as `dir`/../calibration.safetensors.
void CopyModel(const std::string& dir) {
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer_vocab.json"}) {
    fs::copy_file(FixtureDir() + "/" + f, dir + "/" + f);
    fs::permissions(dir + "/" + f, fs::perms::owner_write, fs::perm_options::add);
  }
  const std::string calib = fs::path(dir).parent_path().string() + "/calibration.safetensors";
  if (!fs::exists(calib)) fs::copy_file(FixtureDir() + "/calibration.safetensors", calib);
}

std::string JobFlags(const std::string& model, const std::string& calibration,
                     const std::string& out) {
  return absl::StrCat(" --model ", model, " --calibration ", calibration, " --out ", out,
                      " --rank 8 --iters 1 --lplr-iters 1");
}

int Compress(const std::string& flags, std::string* log) {
  return RunCommand(absl::StrCat(Ctl(), " compress", flags, " --workers 1 2>&1"), log);
}

TEST(OutputSafety, CompressRefusesAnOutputEqualToOrInsideTheModel) {
  TempDir tmp;
  const std::string model = tmp.Join("m/model");
  CopyModel(model);
  const std::string calib = tmp.Join("m/calibration.safetensors");
  const std::string config = ReadFile(model + "/config.json");
  for (const std::string& out : {model, model + "/", model + "/compressed", tmp.Join("m")}) {
    for (const char* overwrite : {"", " --overwrite"}) {
      std::string log;
      EXPECT_EQ(Compress(JobFlags(model, calib, out) + overwrite, &log), kExitInvalidInput)
          << out << overwrite << ": " << log;
      EXPECT_NE(log.find("overlaps --model"), std::string::npos) << log;
    }
  }
  EXPECT_EQ(ReadFile(model + "/config.json"), config) << "the input model was written";
  EXPECT_FALSE(fs::exists(model + "/report.json"));
  EXPECT_FALSE(fs::exists(model + "/compressed"));
}

TEST(OutputSafety, CompressRefusesForeignFilesUnlessOverwrite) {
  TempDir tmp;
  const std::string model = tmp.Join("m/model");
  CopyModel(model);
  const std::string calib = tmp.Join("m/calibration.safetensors");
  const std::string out = tmp.Join("out");
  fs::create_directories(out);
  std::ofstream(out + "/config.json") << "root:x:0:0:root:/root:/bin/bash\n";
  std::ofstream(out + "/notes.txt") << "mine";
  std::string log;
  EXPECT_EQ(Compress(JobFlags(model, calib, out), &log), kExitInvalidInput) << log;
  EXPECT_NE(log.find("not written by caldera"), std::string::npos) << log;
  EXPECT_NE(log.find("--overwrite"), std::string::npos) << log;
  EXPECT_EQ(log.find("root:x"), std::string::npos) << "file contents quoted: " << log;
  EXPECT_EQ(ReadFile(out + "/config.json"), "root:x:0:0:root:/root:/bin/bash\n");
  EXPECT_FALSE(fs::exists(out + "/report.json"));

  ASSERT_EQ(Compress(JobFlags(model, calib, out) + " --overwrite", &log), 0) << log;
  EXPECT_TRUE(fs::exists(out + "/report.json"));
  EXPECT_NE(ReadFile(out + "/config.json").find("quantization_config"), std::string::npos);
  EXPECT_EQ(ReadFile(out + "/notes.txt"), "mine");
  // Now report.json marks the location as a completed caldera output: a new
  // job may replace it without --overwrite.
  EXPECT_EQ(Compress(JobFlags(model, calib, out), &log), 0) << log;
}

TEST(OutputSafety, ErrorsNameFilesButNeverQuoteTheirContents) {
  // /etc/passwd-like bytes as each input file in turn: refused at submit,
  // the file named, none of its bytes in the message.
  TempDir tmp;
  const std::string secret = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/sbin/nologin\n";
  const std::string model = tmp.Join("m/model");
  CopyModel(model);
  const std::string calib = tmp.Join("m/calibration.safetensors");
  std::ofstream(tmp.Join("passwd")) << secret;
  // The first 8 bytes read as a safetensors header length ("root:x:0" as a
  // little-endian number) must not appear either.
  uint64_t first8 = 0;
  for (int i = 7; i >= 0; --i) first8 = (first8 << 8) | static_cast<unsigned char>(secret[i]);
  const std::string number = std::to_string(first8);
  std::string log;
  EXPECT_EQ(Compress(JobFlags(model, tmp.Join("passwd"), tmp.Join("o1")), &log), kExitInvalidInput)
      << log;
  EXPECT_NE(log.find("passwd"), std::string::npos) << log;
  EXPECT_EQ(log.find("root:x"), std::string::npos) << log;
  EXPECT_EQ(log.find(number), std::string::npos) << log;
  for (const char* file : {"model.safetensors", "config.json"}) {
    const std::string bad = tmp.Join(absl::StrCat("bad-", file));
    CopyModel(bad);
    std::ofstream(bad + "/" + file, std::ios::trunc) << secret;
    EXPECT_EQ(Compress(JobFlags(bad, calib, tmp.Join("o2")), &log), kExitInvalidInput) << log;
    EXPECT_NE(log.find(file), std::string::npos) << log;
    EXPECT_EQ(log.find("root:x"), std::string::npos) << file << ": " << log;
    EXPECT_EQ(log.find("daemon"), std::string::npos) << file << ": " << log;
    EXPECT_EQ(log.find(number), std::string::npos) << file << ": " << log;
  }
}

TEST(OutputSafety, CompressKeepsAPreExistingEmptyOutputDirectory) {
  TempDir tmp;
  const std::string out = tmp.Join("out");
  ASSERT_EQ(::mkdir(out.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(out.c_str(), 0710), 0);
  struct stat before {};
  ASSERT_EQ(::stat(out.c_str(), &before), 0);
  std::string log;
  ASSERT_EQ(Compress(JobFlags(FixtureDir(), FixtureDir() + "/calibration.safetensors", out), &log),
            0)
      << log;
  struct stat after {};
  ASSERT_EQ(::stat(out.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the output directory was removed and re-created";
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_TRUE(fs::exists(out + "/report.json"));
}

using testing::FreePort;

// A coordinator and one worker on loopback, each with its own roots.
class Service {
 public:
  Service(const std::string& data_dir, const std::vector<std::string>& coordinator_roots,
          const std::vector<std::string>& worker_roots)
      : port_(FreePort()) {
    std::vector<std::string> c = {COORDINATOR_PATH,
                                  "--listen",
                                  absl::StrCat("127.0.0.1:", port_),
                                  "--data-dir",
                                  data_dir,
                                  "--lease-seconds",
                                  "5",
                                  "--heartbeat-seconds",
                                  "0.5",
                                  "--max-attempts",
                                  "1"};
    for (const std::string& r : coordinator_roots) c.insert(c.end(), {"--allow-root", r});
    absl::StatusOr<Subprocess> p = Subprocess::Start(c);
    EXPECT_TRUE(p.ok()) << p.status();
    if (p.ok()) coordinator_.emplace(*std::move(p));
    for (int i = 0; i < 100 && Run(" list") != 0; ++i) std::this_thread::sleep_for(100ms);
    std::vector<std::string> w = {WORKER_PATH,
                                  "--coordinator",
                                  absl::StrCat("127.0.0.1:", port_),
                                  "--threads",
                                  "1",
                                  "--poll-seconds",
                                  "1"};
    for (const std::string& r : worker_roots) w.insert(w.end(), {"--allow-root", r});
    absl::StatusOr<Subprocess> wp = Subprocess::Start(w);
    EXPECT_TRUE(wp.ok()) << wp.status();
    if (wp.ok()) worker_.emplace(*std::move(wp));
  }

  int Run(const std::string& args, std::string* out = nullptr) const {
    std::string ignored;
    return RunCommand(absl::StrCat(Ctl(), args, " --server 127.0.0.1:", port_, " 2>&1"),
                      out != nullptr ? out : &ignored);
  }

  // The job's final state as JSON (null after 120 s).
  nlohmann::json WaitTerminal(const std::string& name) const {
    for (int i = 0; i < 1200; ++i) {
      std::string out;
      if (RunCommand(absl::StrCat(Ctl(), " status ", name, " -o json --server 127.0.0.1:", port_),
                     &out) == 0) {
        nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
        const std::string s = j.is_object() ? j.value("state", "") : "";
        if (s == "SUCCEEDED" || s == "FAILED" || s == "CANCELLED") return j;
      }
      std::this_thread::sleep_for(100ms);
    }
    return nlohmann::json();
  }

 private:
  int port_;
  std::optional<Subprocess> coordinator_;
  std::optional<Subprocess> worker_;
};

std::string LastLine(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  const size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

TEST(StorageConfinement, CoordinatorRefusesLocationsOutsideItsRootsAtSubmit) {
  TempDir tmp;
  const std::string root = tmp.Join("root");
  CopyModel(root + "/model");
  const std::string calib = root + "/calibration.safetensors";
  fs::create_directories(tmp.Join("elsewhere"));
  fs::create_directory_symlink(tmp.Join("elsewhere"), root + "/escape");
  Service service(tmp.Join("state"), {root}, {root});

  struct Case {
    std::string what, flags, flag, uri;
  };
  const std::vector<Case> cases = {
      {"output through a symlink out of the root",
       JobFlags(root + "/model", calib, root + "/escape/out"), "--out", root + "/escape/out"},
      {"output escaping with ..", JobFlags(root + "/model", calib, root + "/../elsewhere/out"),
       "--out", tmp.Join("elsewhere/out")},
      {"model outside", JobFlags(FixtureDir(), calib, root + "/out1"), "--model", FixtureDir()},
      {"calibration outside",
       JobFlags(root + "/model", FixtureDir() + "/calibration.safetensors", root + "/out2"),
       "--calibration", FixtureDir() + "/calibration.safetensors"},
  };
  for (const Case& c : cases) {
    std::string out;
    EXPECT_EQ(service.Run(absl::StrCat(" submit", c.flags), &out), kExitInvalidInput)
        << c.what << ": " << out;
    EXPECT_NE(out.find("outside the allowed storage roots"), std::string::npos)
        << c.what << ": " << out;
    EXPECT_NE(out.find(c.uri), std::string::npos) << c.what << ": " << out;
    // Named by the submit-time check (not only by the storage layer below it).
    EXPECT_NE(out.find(c.flag + " '"), std::string::npos) << c.what << ": " << out;
    EXPECT_NE(out.find(root), std::string::npos) << c.what << ": " << out;
  }
  EXPECT_TRUE(fs::is_empty(tmp.Join("elsewhere"))) << "something was written outside the root";

  // Inside the roots the job runs.
  std::string out;
  ASSERT_EQ(
      service.Run(absl::StrCat(" submit", JobFlags(root + "/model", calib, root + "/out")), &out),
      0)
      << out;
  const nlohmann::json job = service.WaitTerminal(LastLine(out));
  EXPECT_EQ(job.value("state", ""), "SUCCEEDED") << job.dump();
  EXPECT_TRUE(fs::exists(root + "/out/report.json"));
}

TEST(StorageConfinement, WorkerRefusesATaskWhoseInputLiesOutsideItsRoots) {
  // The coordinator is not confined (as a misconfigured or compromised one
  // would be); the worker is, and refuses the task before reading anything.
  TempDir tmp;
  const std::string root = tmp.Join("root");
  fs::create_directories(root);
  CopyModel(tmp.Join("outside/model"));
  Service service(tmp.Join("state"), {}, {root});
  std::string out;
  ASSERT_EQ(
      service.Run(absl::StrCat(" submit", JobFlags(tmp.Join("outside/model"),
                                                   tmp.Join("outside/calibration.safetensors"),
                                                   root + "/out")),
                  &out),
      0)
      << out;
  const nlohmann::json job = service.WaitTerminal(LastLine(out));
  EXPECT_EQ(job.value("state", ""), "FAILED") << job.dump();
  const std::string error = job.value("error", "");
  EXPECT_NE(error.find("refused by this worker"), std::string::npos) << job.dump();
  EXPECT_NE(error.find("outside the allowed storage roots"), std::string::npos) << job.dump();
  EXPECT_FALSE(fs::exists(root + "/out/report.json"));
}

}  // namespace
}  // namespace caldera
