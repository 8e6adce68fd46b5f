#include "core/format/hidden_states.h"
#include "gtest/gtest.h"
#include "tests/unit/format/format_test_util.h"

namespace caldera::format {
namespace {

using testing::Contains;

TEST(HiddenStatesFileTest, RoundTripAndChecks) {
  Tensor v = *Tensor::Zeros(DType::kF32, {2, 3, 4});
  v.mutable_data<float>()[23] = 1.5f;
  absl::StatusOr<std::string> bytes = SerializeHiddenStatesFile({2, std::move(v)});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto reader = testing::OpenBytes(*bytes, "h.safetensors");
  ASSERT_TRUE(reader.ok());
  absl::StatusOr<HiddenStatesFile> back = ReadHiddenStatesFile(**reader, 4, 3);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->layer, 2);
  EXPECT_EQ(back->values.data<float>()[23], 1.5f);
  absl::Status s = ReadHiddenStatesFile(**reader, 8, 3).status();
  EXPECT_TRUE(Contains(s.message(), "h.safetensors")) << s;
  EXPECT_TRUE(Contains(s.message(), "8]")) << s;
  s = ReadHiddenStatesFile(**reader, 4, 1).status();
  EXPECT_TRUE(Contains(s.message(), "'layer'")) << s;
  EXPECT_FALSE(SerializeHiddenStatesFile({0, *Tensor::Zeros(DType::kF64, {1, 1, 4})}).ok());
  EXPECT_FALSE(SerializeHiddenStatesFile({-1, *Tensor::Zeros(DType::kF32, {1, 1, 4})}).ok());
  std::string cut = *bytes;
  cut.resize(cut.size() - 4);
  EXPECT_FALSE(testing::OpenBytes(cut).ok());
}

}  // namespace
}  // namespace caldera::format
