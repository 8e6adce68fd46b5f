#include "core/format/hessians.h"

#include "gtest/gtest.h"
#include "tests/unit/format/format_test_util.h"

namespace caldera::format {
namespace {

using testing::Contains;
using testing::OpenBytes;

Tensor Square(DType dtype, int64_t n, double base) {
  Tensor t = *Tensor::Zeros(dtype, {n, n});
  for (int64_t i = 0; i < n * n; ++i) {
    if (dtype == DType::kF64) t.mutable_data<double>()[i] = base + 0.25 * i;
    if (dtype == DType::kF32) t.mutable_data<float>()[i] = static_cast<float>(base + 0.25 * i);
  }
  return t;
}

Hessians Sample() {
  Hessians h;
  h.layer = 3;
  h.tokens = 512;
  for (size_t i = 0; i < h.matrices.size(); ++i) {
    h.matrices[i] = Square(DType::kF64, i == 3 ? 5 : 4, static_cast<double>(i));
  }
  return h;
}

TEST(HessiansTest, RoundTrip) {
  absl::StatusOr<std::string> bytes = SerializeHessians(Sample());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto reader = OpenBytes(*bytes);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->metadata().at("format"), "caldera.hessians.v1");
  EXPECT_EQ((*reader)->metadata().at("layer"), "3");
  EXPECT_EQ((*reader)->metadata().at("tokens"), "512");
  absl::StatusOr<Hessians> back = ReadHessians(**reader);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->layer, 3);
  EXPECT_EQ(back->tokens, 512);
  const Hessians want = Sample();
  for (size_t i = 0; i < want.matrices.size(); ++i) {
    EXPECT_EQ(back->matrices[i].dtype(), DType::kF64);
    EXPECT_EQ(back->matrices[i].shape(), want.matrices[i].shape());
    EXPECT_TRUE(back->matrices[i].bytes().size() == want.matrices[i].bytes().size() &&
                std::equal(back->matrices[i].bytes().begin(), back->matrices[i].bytes().end(),
                           want.matrices[i].bytes().begin()))
        << kHessianNames[i];
  }
  absl::StatusOr<Tensor> one = ReadHessian(**reader, "down_proj");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->shape(), (std::vector<int64_t>{5, 5}));
}

// HessiansSource serves SerializeHessians' bytes: whole, and in reads of every
// length from every offset (reads that start in the header and end in a matrix,
// that span two matrices, that end at the last byte); past the end OUT_OF_RANGE.
TEST(HessiansTest, SourceServesTheSerialisedBytes) {
  absl::StatusOr<std::string> bytes = SerializeHessians(Sample());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<std::unique_ptr<RandomAccessSource>> source =
      HessiansSource(Sample(), "mem://hessians");
  ASSERT_TRUE(source.ok()) << source.status();
  ASSERT_EQ((*source)->Size(), bytes->size());
  EXPECT_EQ((*source)->Name(), "mem://hessians");
  std::vector<uint8_t> all(bytes->size());
  ASSERT_TRUE((*source)->ReadAt(0, all).ok());
  EXPECT_EQ(std::string(all.begin(), all.end()), *bytes);
  const size_t n = bytes->size();
  for (size_t len : {size_t{1}, size_t{7}, size_t{33}, size_t{129}, n / 2}) {
    for (size_t off = 0; off + len <= n; off += (len > 8 ? 5 : 1)) {
      std::vector<uint8_t> part(len);
      ASSERT_TRUE((*source)->ReadAt(off, part).ok()) << off << "+" << len;
      ASSERT_EQ(std::string(part.begin(), part.end()), bytes->substr(off, len))
          << off << "+" << len;
    }
  }
  std::vector<uint8_t> past(2);
  EXPECT_EQ((*source)->ReadAt(n - 1, past).code(), absl::StatusCode::kOutOfRange);
  Hessians bad = Sample();
  bad.tokens = 0;
  EXPECT_EQ(HessiansSource(std::move(bad), "x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// What `calderactl calibrate` wrote before the format had one writer.
std::string OldCalibrateFile() {
  SafetensorsWriter w;
  for (size_t i = 0; i < kHessianNames.size(); ++i) {
    EXPECT_TRUE(w.Add(kHessianNames[i], Square(DType::kF32, 4, static_cast<double>(i))).ok());
  }
  std::vector<int64_t> count = {640};
  EXPECT_TRUE(w.Add("tokens", *Tensor::FromValues<int64_t>({1}, count)).ok());
  w.SetMetadata("format", "caldera.hessians.v1");
  w.SetMetadata("layer", "1");
  return *w.Serialize();
}

TEST(HessiansTest, OldFloat32CalibrateFilesStillLoad) {
  auto reader = OpenBytes(OldCalibrateFile());
  ASSERT_TRUE(reader.ok());
  absl::StatusOr<Hessians> h = ReadHessians(**reader);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->tokens, 640);
  EXPECT_EQ(h->layer, 1);
  EXPECT_EQ(h->matrices[2].dtype(), DType::kF64);
  EXPECT_EQ(h->matrices[2].data<double>()[5], 2.0 + 0.25 * 5);
  absl::StatusOr<Tensor> one = ReadHessian(**reader, "o_proj");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->dtype(), DType::kF64);
}

std::string FileWith(DType dtype, std::vector<int64_t> shape, bool tag = true) {
  SafetensorsWriter w;
  for (const char* name : kHessianNames) {
    EXPECT_TRUE(w.Add(name, *Tensor::Zeros(dtype, shape)).ok());
  }
  if (tag) w.SetMetadata("format", "caldera.hessians.v1");
  w.SetMetadata("layer", "0");
  w.SetMetadata("tokens", "8");
  return *w.Serialize();
}

absl::Status ReadError(const std::string& bytes) {
  auto reader = OpenBytes(bytes, "h.safetensors");
  if (!reader.ok()) return reader.status();
  return ReadHessians(**reader).status();
}

TEST(HessiansTest, WrongDtypeShapeOrTagIsAClearError) {
  absl::Status s = ReadError(FileWith(DType::kI32, {4, 4}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "h.safetensors")) << s;
  EXPECT_TRUE(Contains(s.message(), "I32")) << s;
  s = ReadError(FileWith(DType::kF64, {4, 3}));
  EXPECT_TRUE(Contains(s.message(), "[4, 3]")) << s;
  EXPECT_TRUE(Contains(s.message(), "square")) << s;
  s = ReadError(FileWith(DType::kF64, {4}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  s = ReadError(FileWith(DType::kF64, {4, 4}, /*tag=*/false));
  EXPECT_TRUE(Contains(s.message(), "\"format\"")) << s;
  EXPECT_TRUE(ReadError(FileWith(DType::kF64, {4, 4})).ok());
}

TEST(HessiansTest, MissingPartsAreClearErrors) {
  SafetensorsWriter w;
  ASSERT_TRUE(w.Add("q_proj", *Tensor::Zeros(DType::kF64, {2, 2})).ok());
  w.SetMetadata("format", "caldera.hessians.v1");
  w.SetMetadata("layer", "0");
  w.SetMetadata("tokens", "x");
  absl::Status s = ReadError(*w.Serialize());
  EXPECT_TRUE(Contains(s.message(), "metadata \"tokens\" is \"x\"")) << s;
  w.SetMetadata("tokens", "4");
  s = ReadError(*w.Serialize());
  EXPECT_TRUE(Contains(s.message(), "no tensor \"o_proj\"")) << s;
  auto reader = OpenBytes(*w.Serialize());
  ASSERT_TRUE(reader.ok());
  EXPECT_FALSE(ReadHessian(**reader, "k_proj").ok());
}

TEST(HessiansTest, TruncatedFileIsRefused) {
  std::string bytes = *SerializeHessians(Sample());
  bytes.resize(bytes.size() - 9);
  absl::Status s = ReadError(bytes);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(), "truncated")) << s;
  EXPECT_FALSE(ReadError(bytes.substr(0, 5)).ok());
}

TEST(HessiansTest, WriterRefusesWhatTheReaderWouldRefuse) {
  Hessians h = Sample();
  h.matrices[1] = Square(DType::kF32, 4, 0);
  EXPECT_FALSE(SerializeHessians(std::move(h)).ok());
  h = Sample();
  h.tokens = 0;
  EXPECT_FALSE(SerializeHessians(std::move(h)).ok());
}

}  // namespace
}  // namespace caldera::format
