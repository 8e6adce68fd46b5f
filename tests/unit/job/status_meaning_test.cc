#include "job/status_meaning.h"

#include "gtest/gtest.h"

namespace caldera::job {
namespace {

using C = absl::StatusCode;

TEST(StatusMeaningTest, TheTable) {
  struct Row {
    C code;
    int exit_code;
    bool retryable;
  };
  const Row rows[] = {
      {C::kInvalidArgument, kExitInvalidInput, false},
      {C::kNotFound, kExitInvalidInput, false},
      {C::kOutOfRange, kExitInvalidInput, false},
      {C::kFailedPrecondition, kExitInvalidInput, false},
      {C::kAlreadyExists, kExitInvalidInput, false},
      {C::kPermissionDenied, kExitInvalidInput, false},
      {C::kUnauthenticated, kExitInvalidInput, false},
      {C::kUnimplemented, kExitInvalidInput, false},
      {C::kUnavailable, kExitUnavailable, true},
      {C::kDeadlineExceeded, kExitUnavailable, true},
      {C::kResourceExhausted, kExitUnavailable, true},
      {C::kAborted, kExitUnavailable, true},
      {C::kCancelled, kExitCancelled, true},
      {C::kInternal, kExitInternal, true},
      {C::kUnknown, kExitInternal, true},
      {C::kDataLoss, kExitInternal, true},
  };
  for (const Row& r : rows) {
    const StatusMeaning m = MeaningOf(r.code);
    EXPECT_EQ(m.exit_code, r.exit_code) << absl::StatusCodeToString(r.code);
    EXPECT_EQ(m.retryable, r.retryable) << absl::StatusCodeToString(r.code);
    EXPECT_EQ(IsRetryable(r.code), r.retryable);
    EXPECT_EQ(ExitCodeFor(absl::Status(r.code, "x")), r.exit_code);
  }
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), kExitOk);
  EXPECT_EQ(kExitUnavailable, 75);  // EX_TEMPFAIL, documented in README.md
}

// A pipeline and a worker agree: an error is worth retrying exactly when its
// exit code does not say "the input is wrong".
TEST(StatusMeaningTest, ExitCodeAndRetryAgree) {
  for (int c = 1; c <= 16; ++c) {
    const StatusMeaning m = MeaningOf(static_cast<C>(c));
    EXPECT_EQ(m.retryable, m.exit_code != kExitInvalidInput) << c;
  }
}

}  // namespace
}  // namespace caldera::job
