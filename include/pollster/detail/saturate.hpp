// SPDX-License-Identifier: MIT
#pragma once

// Saturating duration arithmetic: no factor, count or duration (including duration::max()) may wrap.

#include "config.hpp"

#include <chrono>   // nanoseconds
#include <cmath>    // isnan
#include <cstdint>  // int64_t, uint64_t
#include <limits>   // numeric_limits

POLLSTER_NAMESPACE_BEGIN

/// The one duration type pollster computes in: 64-bit nanoseconds span ±292 years, and saturate at the ends.
using duration = std::chrono::nanoseconds;

namespace detail {

constexpr std::int64_t max_ns = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t min_ns = std::numeric_limits<std::int64_t>::min();

/// a + b, clamped to [duration::min(), duration::max()].
constexpr duration sat_add(duration a, duration b) noexcept {
  const std::int64_t x = a.count();
  const std::int64_t y = b.count();
#if defined(__GNUC__) || defined(__clang__)
  std::int64_t sum = 0;  // an add and a jump on overflow (usable in constant expressions on both compilers)
  if (__builtin_add_overflow(x, y, &sum)) return y > 0 ? duration::max() : duration::min();
  return duration{sum};
#else
  if (y > 0 && x > max_ns - y) return duration::max();
  if (y < 0 && x < min_ns - y) return duration::min();
  return duration{x + y};
#endif
}

/// a - b, clamped.
constexpr duration sat_sub(duration a, duration b) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  std::int64_t difference = 0;
  if (__builtin_sub_overflow(a.count(), b.count(), &difference)) {
    return b.count() < 0 ? duration::max() : duration::min();
  }
  return duration{difference};
#else
  const std::int64_t y = b.count();
  if (y == min_ns) return a.count() >= 0 ? duration::max() : sat_add(a + duration{1}, duration::max());
  return sat_add(a, duration{-y});
#endif
}

/// a - b into `difference`, unless it overflows: then false, and `difference` is unspecified.
constexpr bool checked_sub(duration a, duration b, duration& difference) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  std::int64_t d = 0;
  const bool overflow = __builtin_sub_overflow(a.count(), b.count(), &d);
  difference = duration{d};
  return !overflow;
#else
  const std::int64_t x = a.count();
  const std::int64_t y = b.count();
  if ((y < 0 && x > max_ns + y) || (y > 0 && x < min_ns + y)) return false;
  difference = duration{x - y};
  return true;
#endif
}

/// a * n for a non-negative count, clamped.
constexpr duration sat_mul(duration a, std::uint64_t n) noexcept {
  const std::int64_t x = a.count();
  if (x == 0 || n == 0) return duration::zero();
  const std::uint64_t limit = x > 0 ? static_cast<std::uint64_t>(max_ns) / static_cast<std::uint64_t>(x)
                                    : static_cast<std::uint64_t>(max_ns) / (0 - static_cast<std::uint64_t>(x));
  if (n > limit) return x > 0 ? duration::max() : duration::min();
  return duration{x * static_cast<std::int64_t>(n)};
}

/// Nanoseconds held in a double (where growth is computed) back to a duration, clamped; NaN becomes zero.
/// 2^63 is exactly representable as a double, so anything at or above it saturates without undefined behaviour.
inline duration from_double_ns(double ns) noexcept {
  if (std::isnan(ns)) return duration::zero();
  constexpr double two63 = 9223372036854775808.0;
  if (ns >= two63) return duration::max();
  if (ns <= -two63) return duration::min();
  // Round half away from zero without a libm call: this sits on every schedule's hot path.
  return duration{ns >= 0 ? static_cast<std::int64_t>(ns + 0.5) : -static_cast<std::int64_t>(-ns + 0.5)};
}

inline double to_double_ns(duration d) noexcept { return static_cast<double>(d.count()); }

/// `to - from` for two time points of one clock, clamped: a deadline or a server hint may be any time point, and a
/// manual clock may stand anywhere.
template <class TimePoint>
constexpr duration sat_between(TimePoint from, TimePoint to) noexcept {
  return sat_sub(std::chrono::duration_cast<duration>(to.time_since_epoch()),
                 std::chrono::duration_cast<duration>(from.time_since_epoch()));
}

/// Adds a duration to any clock's time point without wrapping, whatever the clock's own representation.
template <class TimePoint>
constexpr TimePoint sat_add(TimePoint t, duration d) noexcept {
  using tp_duration = typename TimePoint::duration;
  const auto since = std::chrono::duration_cast<duration>(t.time_since_epoch());
  const duration sum = sat_add(since, d);
  if (sum == duration::max() || sum == duration::min()) {
    return sum == duration::max() ? TimePoint::max() : TimePoint::min();
  }
  return TimePoint{std::chrono::duration_cast<tp_duration>(sum)};
}

}  // namespace detail

POLLSTER_NAMESPACE_END
