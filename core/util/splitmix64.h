// SplitMix64: a tiny, portable pseudo-random generator (Steele, Lea, Flood
// 2014). Every platform produces the same sequence for a seed, which is what
// stored seeds (Hadamard signs, adapter cores, test models) rely on; the
// standard <random> distributions are not portable and must not be used there.
#ifndef CALDERA_CORE_UTIL_SPLITMIX64_H_
#define CALDERA_CORE_UTIL_SPLITMIX64_H_

#include <cmath>
#include <cstdint>

namespace caldera {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1).
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }
  // Uniform in [-1, 1).
  double Symmetric() { return static_cast<double>(Next() >> 11) * 0x1.0p-52 - 1.0; }
  // Standard normal (Box-Muller, one value per two draws).
  double Normal() { return std::sqrt(-2 * std::log(Uniform())) * std::cos(2 * M_PI * Uniform()); }

 private:
  uint64_t state_;
};

}  // namespace caldera

#endif  // CALDERA_CORE_UTIL_SPLITMIX64_H_
