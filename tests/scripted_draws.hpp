// A generator for conformance tests: it returns chosen numbers in turn, so that pollster's uniform01 draws exactly
// u = k * 2^-53 for each k. The reference oracles (gRPC core with absl::Uniform, google-cloud-cpp with libstdc++'s
// uniform_real_distribution, Kubernetes in Go, tenacity in Python) were run with the same u, so a table of theirs
// is what pollster must give for these draws.
#pragma once

#include <cstddef>  // size_t
#include <cstdint>  // uint64_t
#include <initializer_list>
#include <vector>

namespace test {

/// k for u = 0.9, 0, 0.5, 0.99999 and 0.25 (u = k / 2^53, the k used by every oracle run).
constexpr std::uint64_t k_09 = 8106479329266893ULL;
constexpr std::uint64_t k_0 = 0;
constexpr std::uint64_t k_05 = 4503599627370496ULL;
constexpr std::uint64_t k_099999 = 9007109182748445ULL;
constexpr std::uint64_t k_025 = 2251799813685248ULL;

struct scripted_draws {
  using result_type = std::uint64_t;
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }
  scripted_draws(std::initializer_list<std::uint64_t> ks) : ks_(ks) {}
  result_type operator()() { return ks_[next_++ % ks_.size()] << 11; }  // uniform01 keeps the top 53 bits
  void seed(std::uint64_t) { next_ = 0; }

 private:
  std::vector<std::uint64_t> ks_;
  std::size_t next_ = 0;
};

/// The cycle every oracle used: u = 0.9, 0, 0.5, 0.99999, 0.25, 0.9, ...
inline scripted_draws oracle_cycle() { return {k_09, k_0, k_05, k_099999, k_025}; }

}  // namespace test
