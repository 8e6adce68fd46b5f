// Hidden states streamed in chunks of sequences (model_io/hidden_states_stream.h):
// the bytes equal the whole-file writer's, ranged reads return any run of
// sequences, BF16 round-trips within its rounding (S3: hidden_states_s3_test).
#include "model_io/hidden_states_stream.h"

#include <random>

#include "core/format/safetensors.h"
#include "core/model/hidden_states.h"
#include "gtest/gtest.h"
#include "storage/storage.h"
#include "tests/support/fixtures.h"

namespace caldera::model_io {
namespace {

model::ModelConfig Config(int64_t hidden) {
  model::ModelConfig c;
  c.hidden_size = hidden;
  c.num_layers = 4;
  return c;
}

model::RowMatrixF Values(int64_t rows, int64_t hidden) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 2.0f);
  model::RowMatrixF m(rows, hidden);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = d(rng);
  return m;
}

// Writes `all` (samples x seq_len sequences) through a sink in chunks of
// `chunk` sequences; returns the bytes written.
int64_t WriteInChunks(const std::string& uri, const storage::StorageOptions& options,
                      const model::RowMatrixF& all, int64_t samples, int64_t seq_len, int64_t chunk,
                      DType dtype) {
  format::HiddenStatesLayout layout;
  layout.layer = 2;
  layout.samples = samples;
  layout.seq_len = seq_len;
  layout.hidden_size = all.cols();
  layout.dtype = dtype;
  absl::StatusOr<std::unique_ptr<HiddenStatesSink>> sink =
      HiddenStatesSink::Create(uri, options, layout);
  EXPECT_TRUE(sink.ok()) << sink.status();
  if (!sink.ok()) return -1;
  for (int64_t s0 = 0; s0 < samples; s0 += chunk) {
    const int64_t n = std::min(chunk, samples - s0);
    model::RowMatrixF part = all.middleRows(s0 * seq_len, n * seq_len);
    EXPECT_TRUE((*sink)->Append(part).ok());
  }
  absl::StatusOr<int64_t> bytes = (*sink)->Finish();
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : -1;
}

TEST(HiddenStatesStreamTest, ChunkedWriteEqualsTheWholeFileWriterAndReadsBackAnyRange) {
  testing::TempDir tmp;
  const storage::StorageOptions options;
  const int64_t samples = 7, seq_len = 5, hidden = 12;
  const model::RowMatrixF all = Values(samples * seq_len, hidden);
  const std::string uri = tmp.Join("streamed.safetensors");
  const int64_t bytes = WriteInChunks(uri, options, all, samples, seq_len, 3, DType::kF32);

  model::HiddenStates whole;
  whole.samples = samples;
  whole.seq_len = seq_len;
  whole.layer = 2;
  whole.values = all;
  absl::StatusOr<std::string> expect = model::SerializeHiddenStates(whole);
  ASSERT_TRUE(expect.ok());
  absl::StatusOr<std::string> got = storage::ReadObject(uri, options);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, *expect);  // same bytes as the whole-file writer
  EXPECT_EQ(bytes, static_cast<int64_t>(expect->size()));

  absl::StatusOr<std::unique_ptr<HiddenStatesSource>> source =
      HiddenStatesSource::Open(uri, options, Config(hidden));
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->layout().samples, samples);
  EXPECT_EQ((*source)->layout().layer, 2);
  EXPECT_EQ((*source)->FileBytes(), expect->size());
  model::RowMatrixF part;
  ASSERT_TRUE((*source)->Read(2, 4, &part).ok());
  EXPECT_EQ(part, all.middleRows(2 * seq_len, 4 * seq_len));
  EXPECT_EQ((*source)->Read(5, 3, &part).code(), absl::StatusCode::kOutOfRange);
  // Wrong model: named in the message.
  absl::Status wrong = HiddenStatesSource::Open(uri, options, Config(16)).status();
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.message().find("another model"), std::string::npos) << wrong;
}

TEST(HiddenStatesStreamTest, Bf16HalvesTheBytesAndRoundsToNearest) {
  testing::TempDir tmp;
  const storage::StorageOptions options;
  const int64_t samples = 4, seq_len = 3, hidden = 16;
  const model::RowMatrixF all = Values(samples * seq_len, hidden);
  const std::string f32 = tmp.Join("f32.safetensors"), bf16 = tmp.Join("bf16.safetensors");
  const int64_t b32 = WriteInChunks(f32, options, all, samples, seq_len, 2, DType::kF32);
  const int64_t b16 = WriteInChunks(bf16, options, all, samples, seq_len, 2, DType::kBF16);
  EXPECT_LT(b16, b32 / 2 + 256);
  absl::StatusOr<std::unique_ptr<HiddenStatesSource>> source =
      HiddenStatesSource::Open(bf16, options, Config(hidden));
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->layout().dtype, DType::kBF16);
  model::RowMatrixF back;
  ASSERT_TRUE((*source)->Read(0, samples, &back).ok());
  // bf16 keeps 8 significant bits: relative rounding error <= 2^-8 per value.
  const float worst = ((back - all).cwiseAbs().array() / all.cwiseAbs().array()).maxCoeff();
  EXPECT_LE(worst, 1.0f / 256);
  EXPECT_GT(worst, 0.0f);
  // The whole-file reader widens BF16 too.
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader = SafetensorsReader::OpenFile(bf16);
  ASSERT_TRUE(reader.ok());
  absl::StatusOr<model::HiddenStates> whole = model::ReadHiddenStates(**reader, Config(hidden));
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->values, back);
}

TEST(HiddenStatesStreamTest, UnfinishedSinkWritesNothingAndCountsSequences) {
  testing::TempDir tmp;
  const storage::StorageOptions options;
  format::HiddenStatesLayout layout;
  layout.samples = 2;
  layout.seq_len = 2;
  layout.hidden_size = 4;
  const std::string uri = tmp.Join("never.safetensors");
  {
    absl::StatusOr<std::unique_ptr<HiddenStatesSink>> sink =
        HiddenStatesSink::Create(uri, options, layout);
    ASSERT_TRUE(sink.ok());
    ASSERT_TRUE((*sink)->Append(Values(2, 4)).ok());
    EXPECT_EQ((*sink)->Finish().status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ((*sink)->Append(Values(3, 4)).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_FALSE(storage::ReadObject(uri, options).ok());
}

}  // namespace
}  // namespace caldera::model_io
