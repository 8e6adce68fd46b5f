#include "core/tensor/half.h"

#include <bit>
#include <cassert>

namespace caldera {

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1F) {  // Inf or NaN
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp != 0) {  // normal
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {  // signed zero
    bits = sign;
  } else {  // subnormal: normalise
    int shift = 0;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      ++shift;
    }
    mant &= 0x3FFu;
    bits = sign | (static_cast<uint32_t>(113 - shift) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t FloatToHalf(float value) {
  const uint32_t f = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((f >> 16) & 0x8000u);
  const uint32_t abs = f & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {  // Inf or NaN
    if (abs == 0x7F800000u) return sign | 0x7C00u;
    return sign | 0x7E00u | static_cast<uint16_t>((abs >> 13) & 0x3FFu);  // quiet NaN
  }
  if (abs >= 0x477FF000u) return sign | 0x7C00u;  // rounds to >= 65520 -> Inf
  if (abs < 0x38800000u) {                        // result is subnormal or zero (|x| < 2^-14)
    if (abs < 0x33000000u) return sign;           // < 2^-25 rounds to zero
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
    const uint32_t drop = 126 - exp;  // value = mant * 2^(exp-150); half ulp = 2^-24
    uint32_t result = mant >> drop;
    const uint32_t rem = mant & ((1u << drop) - 1);
    const uint32_t half = 1u << (drop - 1);
    if (rem > half || (rem == half && (result & 1u))) ++result;
    return sign | static_cast<uint16_t>(result);
  }
  // Normal: rebias exponent 127 -> 15, round mantissa 23 -> 10 bits.
  uint32_t result = ((abs >> 13) - (112u << 10));
  const uint32_t rem = abs & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (result & 1u))) ++result;  // may carry into exp
  return sign | static_cast<uint16_t>(result);
}

float BFloat16ToFloat(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

uint16_t FloatToBFloat16(float value) {
  const uint32_t f = std::bit_cast<uint32_t>(value);
  if ((f & 0x7FFFFFFFu) > 0x7F800000u) {  // NaN: keep sign, force quiet bit
    return static_cast<uint16_t>((f >> 16) | 0x0040u);
  }
  const uint32_t lsb = (f >> 16) & 1u;
  const uint32_t rounded = f + 0x7FFFu + lsb;  // round to nearest even; overflow -> Inf
  return static_cast<uint16_t>(rounded >> 16);
}

float RoundToHalf(float value) { return HalfToFloat(FloatToHalf(value)); }

void HalfToFloat(std::span<const uint16_t> in, std::span<float> out) {
  assert(in.size() == out.size());
  for (size_t i = 0; i < in.size(); ++i) out[i] = HalfToFloat(in[i]);
}
void FloatToHalf(std::span<const float> in, std::span<uint16_t> out) {
  assert(in.size() == out.size());
  for (size_t i = 0; i < in.size(); ++i) out[i] = FloatToHalf(in[i]);
}
void BFloat16ToFloat(std::span<const uint16_t> in, std::span<float> out) {
  assert(in.size() == out.size());
  for (size_t i = 0; i < in.size(); ++i) out[i] = BFloat16ToFloat(in[i]);
}
void FloatToBFloat16(std::span<const float> in, std::span<uint16_t> out) {
  assert(in.size() == out.size());
  for (size_t i = 0; i < in.size(); ++i) out[i] = FloatToBFloat16(in[i]);
}

}  // namespace caldera
