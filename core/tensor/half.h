// IEEE binary16 (F16) and bfloat16 (BF16) conversions to and from float.
// float -> 16-bit rounds to nearest, ties to even; NaN stays NaN (quiet),
// infinities and signed zeros are preserved, overflow goes to infinity.
#ifndef CALDERA_CORE_TENSOR_HALF_H_
#define CALDERA_CORE_TENSOR_HALF_H_

#include <cstddef>
#include <cstdint>
#include <span>

namespace caldera {

float HalfToFloat(uint16_t bits);
uint16_t FloatToHalf(float value);
float BFloat16ToFloat(uint16_t bits);
uint16_t FloatToBFloat16(float value);
// `value` rounded to the nearest fp16 value (FloatToHalf, then HalfToFloat).
float RoundToHalf(float value);

// Bulk versions; `in` and `out` must have the same size.
void HalfToFloat(std::span<const uint16_t> in, std::span<float> out);
void FloatToHalf(std::span<const float> in, std::span<uint16_t> out);
void BFloat16ToFloat(std::span<const uint16_t> in, std::span<float> out);
void FloatToBFloat16(std::span<const float> in, std::span<uint16_t> out);

}  // namespace caldera

#endif  // CALDERA_CORE_TENSOR_HALF_H_
