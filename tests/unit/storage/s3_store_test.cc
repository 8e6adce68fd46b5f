// S3Store against a real S3 server process (moto with signature checks) on
// loopback, plus a fault-injecting proxy for retry behaviour.
#include "storage/s3_store.h"

#include <memory>
#include <random>

#include "absl/status/status.h"
#include "core/format/safetensors.h"
#include "gtest/gtest.h"
#include "storage/sha256.h"
#include "storage/storage.h"
#include "tests/support/s3_server.h"

namespace caldera::storage {
namespace {

class S3StoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<testing::S3TestServer> s = testing::S3TestServer::Start();
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = new testing::S3TestServer(*std::move(s));
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  StorageOptions Options() const {
    StorageOptions o;
    o.endpoint = server_->endpoint();
    o.access_key_id = server_->access_key();
    o.secret_access_key = server_->secret_key();
    o.retry.base_delay = std::chrono::milliseconds(5);
    o.retry.max_delay = std::chrono::milliseconds(20);
    return o;
  }
  std::string Uri(const std::string& key) const { return "s3://" + server_->bucket() + "/" + key; }

  static testing::S3TestServer* server_;
};

testing::S3TestServer* S3StoreTest::server_ = nullptr;

TEST_F(S3StoreTest, PutGetHeadRecordsSha256) {
  ASSERT_NE(server_, nullptr);
  S3Store store(Options(), server_->bucket());
  absl::StatusOr<ObjectInfo> put = store.PutBytes("dir/hello.txt", "hello s3");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->sha256, Sha256Hex("hello s3"));
  absl::StatusOr<std::string> got = store.Get("dir/hello.txt");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "hello s3");
  absl::StatusOr<ObjectInfo> head = store.Head("dir/hello.txt");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->size, 8u);
  EXPECT_EQ(head->sha256, Sha256Hex("hello s3"));
  EXPECT_EQ(*store.GetRange("dir/hello.txt", 6, 2), "s3");
  EXPECT_EQ(store.GetRange("dir/hello.txt", 6, 5).status().code(), absl::StatusCode::kOutOfRange);
  absl::Status missing = store.Get("dir/missing").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("s3://caldera-test/dir/missing"), std::string::npos);
  // Keys with spaces and unicode are encoded and signed correctly.
  ASSERT_TRUE(store.PutBytes("odd key/ü+x=1", "v").ok());
  EXPECT_EQ(*store.Get("odd key/ü+x=1"), "v");
}

TEST_F(S3StoreTest, CopyAndDelete) {
  S3Store store(Options(), server_->bucket());
  ASSERT_TRUE(store.PutBytes("c/src", "data").ok());
  ASSERT_TRUE(store.Copy("c/src", "c/dst").ok());
  EXPECT_EQ(*store.Get("c/dst"), "data");
  EXPECT_EQ(store.Head("c/dst")->sha256, Sha256Hex("data"));  // metadata travels
  ASSERT_TRUE(store.Delete("c/dst").ok());
  EXPECT_EQ(store.Head("c/dst").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(store.Copy("c/none", "c/x").ok());
}

TEST_F(S3StoreTest, RangedReadOfSafetensorsHeaderThenOneTensor) {
  SafetensorsWriter w;
  Tensor big = *Tensor::Zeros(DType::kF32, {512, 512});
  for (size_t i = 0; i < 16; ++i) big.mutable_data<float>()[i] = static_cast<float>(i);
  ASSERT_TRUE(w.Add("big", std::move(big)).ok());
  std::vector<float> small_values = {1.5f, -2.5f, 3.25f};
  ASSERT_TRUE(w.Add("small", *Tensor::FromValues<float>({3}, small_values)).ok());
  const std::string bytes = *w.Serialize();
  StorageOptions options = Options();
  ASSERT_TRUE(WriteObject(Uri("model/model.safetensors"), bytes, options).ok());
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> src =
      OpenObjectSource(Uri("model/model.safetensors"), options);
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ((*src)->Size(), bytes.size());
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> reader =
      SafetensorsReader::Open(*std::move(src));
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->name(), Uri("model/model.safetensors"));
  absl::StatusOr<Tensor> small = (*reader)->Read("small");
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->data<float>()[1], -2.5f);
}

TEST_F(S3StoreTest, MultipartUploadAboveThreshold) {
  StorageOptions options = Options();
  options.multipart_threshold = 5ull << 20;
  options.part_size = 5ull << 20;
  S3Store store(options, server_->bucket());
  std::string data(12u << 20, '\0');
  std::mt19937 rng(7);
  for (char& c : data) c = static_cast<char>(rng());
  const uint64_t before = store.requests_made();
  absl::StatusOr<ObjectInfo> put = store.PutBytes("big/blob", data);
  ASSERT_TRUE(put.ok()) << put.status();
  // initiate + 3 parts + complete + verifying HEAD
  EXPECT_EQ(store.requests_made() - before, 6u);
  EXPECT_EQ(put->size, data.size());
  absl::StatusOr<std::string> got = store.Get("big/blob");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == data);
  EXPECT_EQ(store.Head("big/blob")->sha256, Sha256Hex(data));
}

TEST_F(S3StoreTest, ListWithPaging) {
  S3Store store(Options(), server_->bucket());
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(store.PutBytes("list/k" + std::to_string(i), "v").ok());
  }
  ASSERT_TRUE(store.PutBytes("listother/x", "v").ok());
  std::vector<std::string> keys;
  std::string token;
  int pages = 0;
  do {
    absl::StatusOr<ListPage> page = store.List("list/", token, 3);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const ObjectInfo& o : page->objects) {
      keys.push_back(o.key);
      EXPECT_EQ(o.size, 1u);
    }
    token = page->next_page_token;
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(keys.size(), 7u);
  EXPECT_EQ(keys.front(), "list/k0");
  EXPECT_EQ(keys.back(), "list/k6");
}

TEST_F(S3StoreTest, RetriesAfterInjected503AndNotAfter4xx) {
  absl::StatusOr<testing::FaultProxy> proxy = testing::FaultProxy::Start(server_->endpoint());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  StorageOptions options = Options();
  options.endpoint = proxy->endpoint();
  S3Store store(options, server_->bucket());
  ASSERT_TRUE(proxy->InjectFaults(2, 503));
  const int seen_before = proxy->RequestsSeen();
  absl::StatusOr<ObjectInfo> put = store.PutBytes("retry/obj", "survives");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(proxy->RequestsSeen() - seen_before, 3);  // two 503s, then success
  EXPECT_EQ(*store.Get("retry/obj"), "survives");

  const int before_404 = proxy->RequestsSeen();
  EXPECT_EQ(store.Get("retry/absent").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(proxy->RequestsSeen() - before_404, 1);  // no retry on 4xx

  ASSERT_TRUE(proxy->InjectFaults(100, 500));
  options.retry.max_attempts = 3;
  S3Store impatient(options, server_->bucket());
  absl::Status s = impatient.Get("retry/obj").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("after 3 attempts"), std::string::npos) << s;
  ASSERT_TRUE(proxy->InjectFaults(0, 500));
}

TEST_F(S3StoreTest, WrongCredentialsGiveAClearError) {
  StorageOptions bad_secret = Options();
  bad_secret.secret_access_key = "not-the-secret";
  absl::Status s = S3Store(bad_secret, server_->bucket()).PutBytes("x", "y").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("SignatureDoesNotMatch"), std::string::npos) << s;
  EXPECT_NE(s.message().find("AWS_SECRET_ACCESS_KEY"), std::string::npos) << s;
  StorageOptions bad_key = Options();
  bad_key.access_key_id = "AKIDOESNOTEXIST";
  s = S3Store(bad_key, server_->bucket()).Get("x").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
}

TEST_F(S3StoreTest, UnreachableEndpointIsUnavailable) {
  StorageOptions options = Options();
  options.endpoint = "http://127.0.0.1:9";  // discard port: nothing listens
  options.retry.max_attempts = 2;
  absl::Status s = S3Store(options, "b").Get("k").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("127.0.0.1:9"), std::string::npos) << s;
}

TEST_F(S3StoreTest, NoSuchBucketSaysSo) {
  absl::Status s = S3Store(Options(), "no-such-bucket").Get("k").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("create bucket 'no-such-bucket'"), std::string::npos) << s;
}

}  // namespace
}  // namespace caldera::storage
