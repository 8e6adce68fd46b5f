// model_io::TextWindowLength: the window of --calibration-text and eval --text.
#include "gtest/gtest.h"
#include "model_io/text_tokens.h"

namespace caldera::model_io {
namespace {

TEST(TextWindowLengthTest, AskedWinsElseFallbackCappedByTheModel) {
  EXPECT_EQ(TextWindowLength(300, 512, 256), 300);  // asked: checked elsewhere
  EXPECT_EQ(TextWindowLength(0, 512, 256), 256);    // capped by max_position_embeddings
  EXPECT_EQ(TextWindowLength(0, 512, 4096), 512);
  EXPECT_EQ(TextWindowLength(0, 2048, 0), 2048);  // the config does not say
}

}  // namespace
}  // namespace caldera::model_io
