#include "core/format/tokens.h"

#include "gtest/gtest.h"
#include "tests/unit/format/format_test_util.h"

namespace caldera::format {
namespace {

using testing::Contains;
using testing::OpenBytes;

absl::Status ReadError(const std::string& bytes, int64_t vocab = 10, int64_t max_seq = 8) {
  auto reader = OpenBytes(bytes, "tok.safetensors");
  if (!reader.ok()) return reader.status();
  return ReadTokenFile(**reader, vocab, max_seq).status();
}

TEST(TokensTest, RoundTrip) {
  const TokenSet in{2, 3, {1, 2, 3, 4, 5, 9}};
  absl::StatusOr<std::string> bytes = SerializeTokenFile(in);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto reader = OpenBytes(*bytes);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->Find("input_ids")->dtype, DType::kI32);
  absl::StatusOr<TokenSet> back = ReadTokenFile(**reader, 10, 8);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->samples, 2);
  EXPECT_EQ(back->seq_len, 3);
  EXPECT_EQ(back->ids, in.ids);
  EXPECT_FALSE(SerializeTokenFile(TokenSet{2, 3, {1}}).ok());
}

TEST(TokensTest, Int64IdsAreAccepted) {
  SafetensorsWriter w;
  std::vector<int64_t> ids = {0, 1, 2, 3};
  ASSERT_TRUE(w.Add("input_ids", *Tensor::FromValues<int64_t>({1, 4}, ids)).ok());
  EXPECT_TRUE(ReadError(*w.Serialize()).ok());
}

TEST(TokensTest, BadFilesAreClearErrors) {
  absl::Status s = ReadError(*SerializeTokenFile(TokenSet{1, 3, {1, 2, 10}}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "tok.safetensors: token id 10 at sample 0, position 2")) << s;
  s = ReadError(*SerializeTokenFile(TokenSet{1, 9, std::vector<int32_t>(9, 1)}));
  EXPECT_TRUE(Contains(s.message(), "max_position_embeddings 8")) << s;
  s = ReadError(*SerializeTokenFile(TokenSet{1, 1, {1}}));
  EXPECT_TRUE(Contains(s.message(), "two or more tokens")) << s;
  SafetensorsWriter w;
  ASSERT_TRUE(w.Add("input_ids", *Tensor::Zeros(DType::kF32, {1, 4})).ok());
  EXPECT_TRUE(Contains(ReadError(*w.Serialize()).message(), "expected I32")) << s;
  SafetensorsWriter none;
  ASSERT_TRUE(none.Add("ids", *Tensor::Zeros(DType::kI32, {1, 4})).ok());
  EXPECT_TRUE(Contains(ReadError(*none.Serialize()).message(), "no 'input_ids'"));
  std::string cut = *SerializeTokenFile(TokenSet{2, 3, {1, 2, 3, 4, 5, 9}});
  cut.resize(cut.size() - 3);
  EXPECT_FALSE(ReadError(cut).ok());
}

}  // namespace
}  // namespace caldera::format
