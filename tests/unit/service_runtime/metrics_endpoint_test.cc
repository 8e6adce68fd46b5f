#include "service_runtime/metrics_endpoint.h"

#include <prometheus/registry.h>

#include "gtest/gtest.h"

namespace caldera::service_runtime {
namespace {

TEST(MetricsEndpointTest, ServesOnAFreePortOrSaysWhyNot) {
  auto registry = std::make_shared<prometheus::Registry>();
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> e =
      MetricsEndpoint::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_GT((*e)->port(), 0);
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> bad =
      MetricsEndpoint::Start("not-an-address:x", registry);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("--metrics-listen not-an-address:x"), std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace caldera::service_runtime
