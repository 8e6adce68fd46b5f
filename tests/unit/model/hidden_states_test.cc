#include "core/model/hidden_states.h"

#include <vector>

#include "absl/status/status.h"
#include "core/io/random_access_source.h"
#include "gtest/gtest.h"

namespace caldera::model {
namespace {

ModelConfig SmallConfig() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 4;
  c.num_layers = 3;
  return c;
}

std::unique_ptr<SafetensorsReader> OpenBytes(const std::string& bytes) {
  auto reader = SafetensorsReader::Open(
      MakeMemorySource("h.safetensors", std::vector<uint8_t>(bytes.begin(), bytes.end())));
  EXPECT_TRUE(reader.ok()) << reader.status();
  return reader.ok() ? *std::move(reader) : nullptr;
}

HiddenStates Sample() {
  HiddenStates h;
  h.samples = 2;
  h.seq_len = 3;
  h.layer = 2;
  h.values = RowMatrixF::Random(6, 4);
  return h;
}

TEST(HiddenStatesTest, RoundTripIsExact) {
  const HiddenStates h = Sample();
  absl::StatusOr<std::string> bytes = SerializeHiddenStates(h);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto reader = OpenBytes(*bytes);
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<HiddenStates> back = ReadHiddenStates(*reader, SmallConfig());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->samples, 2);
  EXPECT_EQ(back->seq_len, 3);
  EXPECT_EQ(back->layer, 2);
  EXPECT_EQ(back->values, h.values);
}

TEST(HiddenStatesTest, RowCountMustMatch) {
  HiddenStates h = Sample();
  h.samples = 3;
  absl::StatusOr<std::string> bytes = SerializeHiddenStates(h);
  ASSERT_FALSE(bytes.ok());
  EXPECT_NE(bytes.status().message().find("samples*seq_len"), std::string::npos);
}

TEST(HiddenStatesTest, OtherModelsHiddenSizeIsNamed) {
  absl::StatusOr<std::string> bytes = SerializeHiddenStates(Sample());
  ASSERT_TRUE(bytes.ok());
  auto reader = OpenBytes(*bytes);
  ASSERT_NE(reader, nullptr);
  ModelConfig c = SmallConfig();
  c.hidden_size = 8;
  absl::StatusOr<HiddenStates> back = ReadHiddenStates(*reader, c);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(back.status().message().find("h.safetensors"), std::string::npos);
  EXPECT_NE(back.status().message().find("8]"), std::string::npos);
}

TEST(HiddenStatesTest, LayerBeyondTheModelIsRejected) {
  HiddenStates h = Sample();
  h.layer = 7;
  absl::StatusOr<std::string> bytes = SerializeHiddenStates(h);
  ASSERT_TRUE(bytes.ok());
  auto reader = OpenBytes(*bytes);
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<HiddenStates> back = ReadHiddenStates(*reader, SmallConfig());
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("'layer'"), std::string::npos);
}

}  // namespace
}  // namespace caldera::model
