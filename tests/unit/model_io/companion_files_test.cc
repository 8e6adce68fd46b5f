#include "model_io/companion_files.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/support/fixtures.h"

namespace caldera::model_io {
namespace {

TEST(CompanionFilesTest, TokenizerAndGenerationFilesAreCompanionsWeightsAreNot) {
  for (const char* yes :
       {"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "tokenizer_vocab.json",
        "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt",
        "generation_config.json", "chat_template.jinja", "chat_template.json", "cl100k.tiktoken"}) {
    EXPECT_TRUE(IsCompanionFile(yes)) << yes;
  }
  for (const char* no : {"config.json", "model.safetensors", "model-00001-of-00002.safetensors",
                         "model.safetensors.index.json", "pytorch_model.bin", "report.json",
                         "sub/tokenizer.json", "", "README.md"}) {
    EXPECT_FALSE(IsCompanionFile(no)) << no;
  }
}

TEST(CompanionFilesTest, CopiesOnlyTopLevelCompanionsByteForByte) {
  testing::TempDir tmp;
  const std::string from = tmp.Join("model"), to = tmp.Join("out");
  std::filesystem::create_directories(from + "/sub");
  const std::string tokenizer("{\"model\": {}}\n\xff\x00 bytes", 22);  // binary-safe copy
  auto write = [](const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
  };
  write(from + "/tokenizer.json", tokenizer);
  write(from + "/generation_config.json", "{}");
  write(from + "/model.safetensors", "weights");
  write(from + "/config.json", "{}");
  write(from + "/sub/tokenizer.json", "nested");
  absl::StatusOr<std::vector<std::string>> copied =
      CopyCompanionFiles(from, to, storage::StorageOptions());
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(*copied, (std::vector<std::string>{"generation_config.json", "tokenizer.json"}));
  std::ifstream in(to + "/tokenizer.json", std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, tokenizer);
  EXPECT_FALSE(std::filesystem::exists(to + "/model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(to + "/config.json"));
  EXPECT_FALSE(std::filesystem::exists(to + "/sub"));
}

}  // namespace
}  // namespace caldera::model_io
