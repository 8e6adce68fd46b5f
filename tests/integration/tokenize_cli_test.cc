// calderactl tokenize on the stories260K vocabulary: known ids, sample /
// seq-len shaping, --decode back to the text, the file eval takes, and clear
// errors for a missing vocabulary, empty text and too few tokens.
#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/format/safetensors.h"
#include "core/format/tokens.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"
#include "tests/support/subprocess.h"

namespace caldera {
namespace {

using testing::FixturePath;
using testing::RunCommand;
using testing::StoriesModelDir;
using testing::TempDir;

std::string Ctl() { return CALDERACTL_PATH; }

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

format::TokenSet ReadTokens(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> r = SafetensorsReader::OpenFile(path);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  absl::StatusOr<format::TokenSet> t = format::ReadTokenFile(**r, 512, 512);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : format::TokenSet{};
}

std::string Tokenize(const std::string& flags, int* rc) {
  std::string out;
  *rc = RunCommand(
      absl::StrCat(Ctl(), " tokenize --tokenizer ", StoriesModelDir(), " ", flags, " 2>&1"), &out);
  return out;
}

TEST(TokenizeCli, KnownIdsShapingDecodeAndEval) {
  TempDir tmp;
  const std::string text = tmp.Join("t.txt"), tokens = tmp.Join("t.safetensors");
  // BOS 1, ' Lily' 317, ' was' 286, ' happy' 393, '.' 426 (read off the
  // vocabulary by hand); 10 copies -> 1 + 40 tokens.
  std::string story;
  for (int i = 0; i < 10; ++i) story += i == 0 ? "Lily was happy." : " Lily was happy.";
  WriteFile(text, story);
  int rc = 0;
  std::string log = Tokenize(absl::StrCat("--text ", text, " --out ", tokens, " --seq-len 8"), &rc);
  ASSERT_EQ(rc, 0) << log;
  format::TokenSet t = ReadTokens(tokens);
  EXPECT_EQ(t.samples, 5);  // 41 tokens: five full windows of 8
  EXPECT_EQ(t.seq_len, 8);
  ASSERT_EQ(t.ids.size(), 40u);
  EXPECT_EQ(std::vector<int32_t>(t.ids.begin(), t.ids.begin() + 9),
            (std::vector<int32_t>{1, 317, 286, 393, 426, 317, 286, 393, 426}));

  log = Tokenize(absl::StrCat("--text ", text, " --out ", tokens, " --seq-len 4 --samples 3"), &rc);
  ASSERT_EQ(rc, 0) << log;
  t = ReadTokens(tokens);
  EXPECT_EQ(t.samples, 3);
  EXPECT_EQ(t.seq_len, 4);

  // --decode gives the text back (up to the dropped partial window).
  const std::string unicode = tmp.Join("u.txt"), utok = tmp.Join("u.safetensors");
  const std::string utext =
      "Once upon a time, Lily said “héllo” to 漢字 🙂.\n\tTabs and  two spaces.\n";
  WriteFile(unicode, utext);
  log = Tokenize(absl::StrCat("--text ", unicode, " --out ", utok, " --seq-len 2"), &rc);
  ASSERT_EQ(rc, 0) << log;
  std::string decoded;
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " tokenize --tokenizer ", StoriesModelDir(),
                                    " --decode ", utok, " 2>/dev/null"),
                       &decoded),
            0);
  EXPECT_FALSE(decoded.empty());
  EXPECT_EQ(utext.substr(0, decoded.size()), decoded);
  EXPECT_GE(decoded.size() + 4, utext.size()) << decoded;

  // eval takes the file.
  std::string out;
  EXPECT_EQ(RunCommand(absl::StrCat(Ctl(), " eval --model ", StoriesModelDir(), " --tokens ",
                                    tokens, " 2>&1"),
                       &out),
            0)
      << out;
}

TEST(TokenizeCli, ClearErrors) {
  TempDir tmp;
  const std::string text = tmp.Join("t.txt"), empty = tmp.Join("e.txt");
  WriteFile(text, "Lily was happy.");
  WriteFile(empty, "");
  int rc = 0;
  std::string log =
      Tokenize(absl::StrCat("--text ", empty, " --out ", tmp.Join("x"), " --seq-len 4"), &rc);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("is empty"), std::string::npos) << log;
  log = Tokenize(absl::StrCat("--text ", text, " --out ", tmp.Join("x"), " --seq-len 64"), &rc);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("fewer than one window of --seq-len 64"), std::string::npos) << log;
  log = Tokenize(
      absl::StrCat("--text ", text, " --out ", tmp.Join("x"), " --seq-len 2 --samples 9"), &rc);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("fewer than --samples 9"), std::string::npos) << log;
  std::string out;
  rc = RunCommand(absl::StrCat(Ctl(), " tokenize --tokenizer ", tmp.Join(""), " --text ", text,
                               " --out ", tmp.Join("x"), " --seq-len 2 2>&1"),
                  &out);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("has no tokenizer_vocab.json"), std::string::npos) << out;
}

// --input/--model (the names), .jsonl with --field, --seed drawing
// windows, Parquet refused with the conversion to use.
TEST(TokenizeCli, JsonlFieldSeedAndParquet) {
  TempDir tmp;
  const std::string jsonl = tmp.Join("d.jsonl"), txt = tmp.Join("d.txt");
  std::string lines, text;
  for (int i = 0; i < 40; ++i) {
    lines += absl::StrCat("{\"body\": \"Lily was happy ", i, " times.\"}\n");
  }
  WriteFile(jsonl, lines);
  int rc = 0;
  std::string out;
  const std::string base = absl::StrCat(Ctl(), " tokenize --model ", StoriesModelDir(), " --input ",
                                        jsonl, " --field body");
  rc = RunCommand(absl::StrCat(base, " --seq-len 8 --out ", tmp.Join("a.safetensors"), " 2>&1"),
                  &out);
  ASSERT_EQ(rc, 0) << out;
  const format::TokenSet all = ReadTokens(tmp.Join("a.safetensors"));
  ASSERT_GT(all.samples, 8);
  // Every document starts with BOS (1).
  EXPECT_EQ(all.ids[0], 1);
  EXPECT_GT(std::count(all.ids.begin(), all.ids.end(), 1), 30);
  // --seed: 4 windows drawn from the same stream, in text order; same seed, same file.
  for (const char* name : {"s1.safetensors", "s2.safetensors"}) {
    rc = RunCommand(
        absl::StrCat(base, " --seq-len 8 --samples 4 --seed 11 --out ", tmp.Join(name), " 2>&1"),
        &out);
    ASSERT_EQ(rc, 0) << out;
  }
  const format::TokenSet s1 = ReadTokens(tmp.Join("s1.safetensors"));
  const format::TokenSet s2 = ReadTokens(tmp.Join("s2.safetensors"));
  EXPECT_EQ(s1.samples, 4);
  EXPECT_EQ(s1.ids, s2.ids);
  int64_t last = -1;
  for (int64_t w = 0; w < s1.samples; ++w) {
    const std::vector<int32_t> window(s1.ids.begin() + w * 8, s1.ids.begin() + (w + 1) * 8);
    int64_t found = -1;
    for (int64_t a = 0; a < all.samples && found < 0; ++a) {
      if (std::equal(window.begin(), window.end(), all.ids.begin() + a * 8)) found = a;
    }
    EXPECT_GT(found, last) << "window " << w;
    last = found;
  }
  // A line without the field, and Parquet.
  WriteFile(jsonl, "{\"body\": \"x\"}\n{\"text\": \"y\"}\n");
  rc = RunCommand(absl::StrCat(base, " --seq-len 2 --out ", tmp.Join("b"), " 2>&1"), &out);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("line 2"), std::string::npos) << out;
  WriteFile(tmp.Join("d.parquet"), "PAR1");
  rc =
      RunCommand(absl::StrCat(Ctl(), " tokenize --model ", StoriesModelDir(), " --input ",
                              tmp.Join("d.parquet"), " --seq-len 2 --out ", tmp.Join("b"), " 2>&1"),
                 &out);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("convert it to JSON lines"), std::string::npos) << out;
}

// compress --calibration-text, then eval --text (WikiText-2 windows) with the
// original model as the baseline.
TEST(TokenizeCli, CompressCalibrationTextAndEvalText) {
  TempDir tmp;
  const std::string text = tmp.Join("s.txt"), out = tmp.Join("out");
  std::string story;
  for (int i = 0; i < 60; ++i)
    story += "Once upon a time, Lily saw a big red ball. She was happy.\n";
  WriteFile(text, story);
  std::string log;
  int rc = RunCommand(
      absl::StrCat(Ctl(), " compress --model ", StoriesModelDir(), " --calibration-text ", text,
                   " --calibration-seq-len 32 --calibration-samples 8", " --out ", out,
                   " --rank 4 --iters 1 --lplr-iters 1", " --workers 1 2>&1"),
      &log);
  ASSERT_EQ(rc, 0) << log;
  const format::TokenSet calib = ReadTokens(out + ".calibration.safetensors");
  EXPECT_EQ(calib.samples, 8);
  EXPECT_EQ(calib.seq_len, 32);
  std::string json;
  rc =
      RunCommand(absl::StrCat(Ctl(), " eval --model ", out, " --text ", text,
                              " --seq-len 64 --baseline-model ", StoriesModelDir(), " --json 2>&1"),
                 &json);
  ASSERT_EQ(rc, 0) << json;
  for (const char* key : {"\"perplexity\"", "\"windows\"", "\"baseline\"", "\"seq_len\":64"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;
  }
  // Neither --calibration nor --calibration-text.
  rc = RunCommand(absl::StrCat(Ctl(), " compress --model ", StoriesModelDir(), " --out ",
                               tmp.Join("o2"), " 2>&1"),
                  &log);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("--calibration-text"), std::string::npos) << log;
}

// Issue 37, case 4: tokenize took 65-80 bytes of memory per input byte (a
// 200 MB text aborted under 4 GB). It now streams the file and encodes it in
// parts: the peak stays below 16 bytes per input byte on a 4 MiB text (the
// ids are ~4 bytes per token, ~1 token per 2.3 bytes here) plus the
// process's own ~40 MiB, and the ids are those of the whole text.
TEST(TokenizeCli, MemoryStaysBoundedPerInputByte) {
  TempDir tmp;
  std::string text;
  const std::string sentence = "Lily and the big cat sat on a red mat. They were happy!\n";
  while (text.size() < (size_t{4} << 20)) text += sentence;
  WriteFile(tmp.Join("big.txt"), text);
  int rc = 0;
  const std::string out =
      Tokenize(absl::StrCat("--input ", tmp.Join("big.txt"), " --seq-len 64 --out ",
                            tmp.Join("big.safetensors")),
               &rc);
  ASSERT_EQ(rc, 0) << out;
  rusage children{};
  ASSERT_EQ(getrusage(RUSAGE_CHILDREN, &children), 0);
  const double peak = static_cast<double>(children.ru_maxrss) * 1024;  // KiB -> bytes
  EXPECT_LT(peak, 40.0 * (1 << 20) + 16.0 * static_cast<double>(text.size()))
      << "peak RSS " << peak / (1 << 20) << " MiB for a " << text.size() / (1 << 20) << " MiB text";
  // The windows hold the ids of the whole: the first starts with BOS and the
  // sentence's ids, as a short text of the same sentence gives them.
  WriteFile(tmp.Join("small.txt"), sentence + sentence);
  const std::string small_out =
      Tokenize(absl::StrCat("--input ", tmp.Join("small.txt"), " --seq-len 8 --out ",
                            tmp.Join("small.safetensors")),
               &rc);
  ASSERT_EQ(rc, 0) << small_out;
  const format::TokenSet big = ReadTokens(tmp.Join("big.safetensors"));
  const format::TokenSet small = ReadTokens(tmp.Join("small.safetensors"));
  ASSERT_GE(big.ids.size(), small.ids.size());
  EXPECT_TRUE(std::equal(small.ids.begin(), small.ids.end(), big.ids.begin()));
}

}  // namespace
}  // namespace caldera
