// Rng: a small, fast, deterministic random generator (xoshiro256**, seeded through splitmix64),
// identical on every platform, so a seed fully determines initialisation and data order.
#pragma once

#include <cmath>
#include <cstdint>

namespace vit {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }

  // Derives an independent stream, e.g. one per parameter tensor or per sample.
  Rng(uint64_t seed, uint64_t stream) { reseed(seed ^ (0x9E3779B97F4A7C15ull * (stream + 1))); }

  void reseed(uint64_t seed) {
    for (uint64_t& s : s_) s = splitmix64(seed);
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return (next() >> 11) * 0x1.0p-53; }

  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; the tiny bias is irrelevant here).
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((__uint128_t)next() * n >> 64); }

  // Standard normal (Box-Muller, one value per call for simplicity and reproducibility).
  double normal() {
    double u1 = uniform();
    double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  // Normal(0, std) redrawn until within [-2 std, 2 std] (the truncated normal of JAX and timm's
  // trunc_normal_ when its bounds are given in std units).
  double trunc_normal(double std) {
    for (;;) {
      double z = normal();
      if (z >= -2.0 && z <= 2.0) return z * std;
    }
  }

  struct State {
    uint64_t s[4];
  };
  State state() const { return {{s_[0], s_[1], s_[2], s_[3]}}; }
  void set_state(const State& st) {
    for (int i = 0; i < 4; ++i) s_[i] = st.s[i];
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  uint64_t s_[4];
};

}  // namespace vit
