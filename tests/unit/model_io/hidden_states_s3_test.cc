// Hidden states streamed to S3 (a real S3 server process on loopback): a
// sink's upload above the multipart threshold, read back with ranged GETs.
#include <random>

#include "gtest/gtest.h"
#include "model_io/hidden_states_stream.h"
#include "tests/support/s3_server.h"

namespace caldera::model_io {
namespace {

TEST(HiddenStatesStreamTest, S3MultipartUploadAndRangedReads) {
  absl::StatusOr<testing::S3TestServer> server = testing::S3TestServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  storage::StorageOptions options;
  options.endpoint = server->endpoint();
  options.access_key_id = server->access_key();
  options.secret_access_key = server->secret_key();
  options.multipart_threshold = 5ull << 20;
  options.part_size = 5ull << 20;
  const int64_t samples = 12, seq_len = 128, hidden = 1024;  // 6 MiB: two parts
  model::RowMatrixF all(samples * seq_len, hidden);
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int64_t i = 0; i < all.size(); ++i) all.data()[i] = d(rng);
  model::ModelConfig config;
  config.hidden_size = hidden;
  config.num_layers = 2;
  const std::string uri = "s3://" + server->bucket() + "/scratch/h.safetensors";
  format::HiddenStatesLayout layout;
  layout.layer = 1;
  layout.samples = samples;
  layout.seq_len = seq_len;
  layout.hidden_size = hidden;
  absl::StatusOr<std::unique_ptr<HiddenStatesSink>> sink =
      HiddenStatesSink::Create(uri, options, layout);
  ASSERT_TRUE(sink.ok()) << sink.status();
  for (int64_t s0 = 0; s0 < samples; s0 += 5) {
    const int64_t n = std::min<int64_t>(5, samples - s0);
    ASSERT_TRUE((*sink)->Append(all.middleRows(s0 * seq_len, n * seq_len)).ok());
  }
  absl::StatusOr<int64_t> bytes = (*sink)->Finish();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_GT(*bytes, static_cast<int64_t>(options.multipart_threshold));
  absl::StatusOr<std::unique_ptr<HiddenStatesSource>> source =
      HiddenStatesSource::Open(uri, options, config);
  ASSERT_TRUE(source.ok()) << source.status();
  model::RowMatrixF part;
  ASSERT_TRUE((*source)->Read(9, 3, &part).ok());
  EXPECT_EQ(part, all.middleRows(9 * seq_len, 3 * seq_len));
}

}  // namespace
}  // namespace caldera::model_io
