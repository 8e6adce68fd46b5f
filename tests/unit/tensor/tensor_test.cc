#include "core/tensor/tensor.h"

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace caldera {
namespace {

TEST(TensorTest, ZerosHasShapeSizeAndAlignment) {
  absl::StatusOr<Tensor> t = Tensor::Zeros(DType::kBF16, {3, 5});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->numel(), 15);
  EXPECT_EQ(t->nbytes(), 30u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->bytes().data()) % 64, 0u);
  for (uint8_t b : t->bytes()) EXPECT_EQ(b, 0);
  EXPECT_EQ(t->DebugString(), "BF16[3, 5]");
}

TEST(TensorTest, RejectsNegativeAndHugeShapes) {
  EXPECT_EQ(Tensor::Zeros(DType::kF32, {2, -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Tensor::Zeros(DType::kF32, {int64_t{1} << 40, 1 << 20}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Tensor::Zeros(DType::kF32, {INT64_MAX, 2}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TensorTest, FromBytesChecksLength) {
  std::vector<uint8_t> bytes(7);
  EXPECT_EQ(Tensor::FromBytes(DType::kI32, {2}, bytes).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TensorTest, ConvertF32ToHalfAndBackRoundsToNearestEven) {
  std::vector<float> v = {1.0f, 0.1f, -3.5f, 65504.0f, 1e-8f};
  absl::StatusOr<Tensor> t = Tensor::FromValues<float>({5}, v);
  ASSERT_TRUE(t.ok());
  absl::StatusOr<Tensor> h = t->ConvertTo(DType::kF16);
  ASSERT_TRUE(h.ok());
  absl::StatusOr<Tensor> back = h->ConvertTo(DType::kF32);
  ASSERT_TRUE(back.ok());
  std::span<const float> out = back->data<float>();
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 0.0999755859375f);
  EXPECT_EQ(out[2], -3.5f);
  EXPECT_EQ(out[3], 65504.0f);
  EXPECT_EQ(out[4], 0.0f);
  absl::StatusOr<Tensor> bf = t->ConvertTo(DType::kBF16);
  ASSERT_TRUE(bf.ok());
  EXPECT_EQ(bf->raw16()[0], 0x3F80);
}

TEST(TensorTest, ConvertIntsAndRejectFloatToInt) {
  std::vector<int32_t> v = {-1, 7, 300};
  absl::StatusOr<Tensor> t = Tensor::FromValues<int32_t>({3}, v);
  ASSERT_TRUE(t.ok());
  absl::StatusOr<Tensor> i64 = t->ConvertTo(DType::kI64);
  ASSERT_TRUE(i64.ok());
  EXPECT_EQ(i64->data<int64_t>()[0], -1);
  EXPECT_EQ(i64->data<int64_t>()[2], 300);
  absl::StatusOr<Tensor> f = t->ConvertTo(DType::kF64);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->data<double>()[1], 7.0);
  EXPECT_EQ(f->ConvertTo(DType::kI32).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorTest, CloneIsDeepAndReshapeChecksCount) {
  std::vector<float> v = {1, 2, 3, 4, 5, 6};
  absl::StatusOr<Tensor> t = Tensor::FromValues<float>({2, 3}, v);
  ASSERT_TRUE(t.ok());
  Tensor c = t->Clone();
  c.mutable_data<float>()[0] = 42;
  EXPECT_EQ(t->data<float>()[0], 1);
  EXPECT_TRUE(c.Reshape({3, 2}).ok());
  EXPECT_EQ(c.dim(0), 3);
  EXPECT_FALSE(c.Reshape({4, 2}).ok());
}

TEST(TensorDeathTest, TypedAccessWithWrongTypeAborts) {
  absl::StatusOr<Tensor> t = Tensor::Zeros(DType::kF32, {2});
  ASSERT_TRUE(t.ok());
  EXPECT_DEATH(t->data<double>(), "accessed F32 tensor as F64");
}

}  // namespace
}  // namespace caldera
