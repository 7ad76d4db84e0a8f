// SPDX-License-Identifier: MIT
#pragma once

// Rate budgets: a token bucket that many pollers share, so a fleet of them stays inside an API's request limit.
//
// The bucket is a GCRA (the "generic cell rate algorithm" of ATM networks, equivalent to a token bucket): it keeps
// one time point, the theoretical arrival time, in integer nanoseconds. That makes it exact and reproducible in
// virtual time, and it guarantees that in any window of length W at most `rate * W + burst` requests are granted.
//
// When the API answers "rate limited" (HTTP 429/413) the group slows down, as AWS's adaptive retry mode does:
// the rate is cut by `throttle_factor` (never below `min_rate`) and then climbs back linearly to `rate` over
// `recovery`. Every further throttle signal cuts again from wherever the rate is at that moment, and a cut also
// empties the bucket, so no burst follows a 429.
//
// A runner's budget group is an extension point (`budget_group`): the runner asks it for a token before each check
// of its pollers, tells it when a check said "rate limited", and asks how many of its checks may be in flight at
// once. `local_budget` (a token bucket and an in-flight limit) is the default; a budget shared by many processes (a
// GCRA in Redis: redis_budget.hpp) implements the same interface, and uses `on_wake` to wake the runner when tokens
// it fetched in the background arrive.

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"

#include <algorithm>   // max, min
#include <chrono>      // seconds
#include <cmath>       // isfinite
#include <cstdint>     // uint64_t
#include <functional>  // function
#include <string>      // to_string

POLLSTER_NAMESPACE_BEGIN

/// Named parameters of a request budget (C++20: `{.rate = 10, .burst = 10}`).
struct budget_options {
  double rate = 10.0;                            ///< requests per second, sustained
  std::uint64_t burst = 1;                       ///< requests that may go at once after a quiet spell
  double throttle_factor = 0.5;                  ///< a 429 multiplies the rate by this, in (0, 1]
  double min_rate = 0.0;                         ///< cuts never go below this (0: rate / 100)
  duration recovery = std::chrono::seconds(30);  ///< time to climb back to `rate` after the last cut
  std::size_t max_in_flight = 0;                 ///< asynchronous checks of the group out at once (0: no limit)
};

/// A token bucket in integer nanoseconds. Clock-free: every call takes the current time as a duration since any
/// fixed epoch, so the same bucket works on the steady clock and on the manual clock.
class token_bucket {
 public:
  explicit token_bucket(const budget_options& o) : options_(o) {
    if (!std::isfinite(o.rate) || !(o.rate > 0.0) || o.rate > 1e9) {
      detail::throw_invalid("token_bucket", "rate", "finite and in (0, 1e9] per second", detail::number_text(o.rate));
    }
    if (o.burst == 0) detail::throw_invalid("token_bucket", "burst", ">= 1", "0");
    if (!(o.throttle_factor > 0.0 && o.throttle_factor <= 1.0)) {
      detail::throw_invalid("token_bucket", "throttle_factor", "in (0, 1]", detail::number_text(o.throttle_factor));
    }
    if (!std::isfinite(o.min_rate) || o.min_rate < 0.0 || o.min_rate > o.rate) {
      detail::throw_invalid("token_bucket", "min_rate", "in [0, rate]", detail::number_text(o.min_rate));
    }
    if (o.recovery < duration::zero()) {
      detail::throw_invalid("token_bucket", "recovery", ">= 0", detail::duration_text(o.recovery));
    }
    if (options_.min_rate == 0.0) options_.min_rate = o.rate / 100.0;
    cut_rate_ = options_.rate;
  }

  /// Takes one token if there is one at `now`.
  bool try_acquire(duration now) noexcept {
    const duration interval = interval_at(now);
    const duration tolerance = detail::sat_mul(interval, options_.burst - 1);
    if (now < detail::sat_sub(theoretical_arrival_, tolerance)) return false;
    theoretical_arrival_ = detail::sat_add(std::max(theoretical_arrival_, now), interval);
    ++granted_;
    return true;
  }

  /// The earliest time at or after `now` when try_acquire would succeed (at the rate in force at `now`).
  duration next_available(duration now) const noexcept {
    const duration tolerance = detail::sat_mul(interval_at(now), options_.burst - 1);
    return std::max(now, detail::sat_sub(theoretical_arrival_, tolerance));
  }

  /// The API said "rate limited": cut the rate multiplicatively; it recovers linearly over `recovery`.
  void throttled(duration now) noexcept {
    cut_rate_ = std::max(options_.min_rate, rate_at(now) * options_.throttle_factor);
    cut_at_ = now;
    cut_ = true;
    ++throttles_;
    // The server is overloaded now: spend the burst, so the next request goes one (longer) interval from now.
    const duration interval = interval_at(now);
    theoretical_arrival_ =
        std::max(theoretical_arrival_, detail::sat_add(now, detail::sat_mul(interval, options_.burst)));
  }

  /// The sustained rate in force at `now`, in requests per second.
  double rate_at(duration now) const noexcept {
    if (!cut_ || now >= detail::sat_add(cut_at_, options_.recovery)) return options_.rate;
    const double progress =
        now <= cut_at_ ? 0.0 : detail::to_double_ns(now - cut_at_) / detail::to_double_ns(options_.recovery);
    return std::min(options_.rate, cut_rate_ + (options_.rate - cut_rate_) * progress);
  }

  const budget_options& options() const noexcept { return options_; }
  std::uint64_t granted() const noexcept { return granted_; }
  std::uint64_t throttles() const noexcept { return throttles_; }

 private:
  duration interval_at(duration now) const noexcept { return detail::from_double_ns(1e9 / rate_at(now)); }

  budget_options options_;
  duration theoretical_arrival_ = duration::min();
  duration cut_at_{};
  double cut_rate_ = 0.0;
  bool cut_ = false;
  std::uint64_t granted_ = 0;
  std::uint64_t throttles_ = 0;
};

/// A runner's budget group: what the runner asks before every check of a poller that joined it, always on the
/// runner's own thread (so an implementation needs no lock of its own, and must not block for long: a group backed
/// by a remote store should reserve tokens ahead and answer from what it holds).
///
///   try_acquire(now)      take one token for a check due at `now`, or say no (the poller then waits its turn, in
///                         due-time order, and the runner asks again at next_available(now));
///   next_available(now)   the earliest time at or after `now` when try_acquire may succeed;
///   throttled(now)        a check of the group said "rate limited" (HTTP 429): slow the group down;
///   in_flight_limit()     how many asynchronous checks of the group may be out at once (0: no limit); the runner
///                         counts them and queues the rest, granted, until one ends;
///   on_wake(wake)         called once, when the group is added to a runner: `wake()` (from any thread, at any time
///                         while the runner lives) makes the runner ask the group again at once. A group whose tokens
///                         arrive from elsewhere (a lease from Redis) calls it when they arrive, and meanwhile answers
///                         next_available(now) with duration::max() ("not before I wake you"); a group that only
///                         counts time needs none of it.
/// Times are durations since the runner's clock's epoch.
class budget_group {
 public:
  budget_group() = default;
  budget_group(const budget_group&) = delete;
  budget_group& operator=(const budget_group&) = delete;
  virtual ~budget_group() = default;

  virtual bool try_acquire(duration now) = 0;
  virtual duration next_available(duration now) const = 0;
  virtual void throttled(duration now) = 0;
  virtual std::size_t in_flight_limit() const noexcept { return 0; }
  virtual void on_wake(std::function<void()> wake) { (void)wake; }
  /// For budget_stats: tokens granted, throttle signals received, and the rate in force (requests per second).
  virtual std::uint64_t granted() const noexcept = 0;
  virtual std::uint64_t throttles() const noexcept = 0;
  virtual double rate_at(duration now) const = 0;
};

/// The default budget group: a token bucket (above) and a limit on the checks in flight.
class local_budget final : public budget_group {
 public:
  explicit local_budget(const budget_options& options) : bucket_(options) {}

  bool try_acquire(duration now) override { return bucket_.try_acquire(now); }
  duration next_available(duration now) const override { return bucket_.next_available(now); }
  void throttled(duration now) override { bucket_.throttled(now); }
  std::size_t in_flight_limit() const noexcept override { return bucket_.options().max_in_flight; }
  std::uint64_t granted() const noexcept override { return bucket_.granted(); }
  std::uint64_t throttles() const noexcept override { return bucket_.throttles(); }
  double rate_at(duration now) const override { return bucket_.rate_at(now); }
  const token_bucket& bucket() const noexcept { return bucket_; }

 private:
  token_bucket bucket_;
};

POLLSTER_NAMESPACE_END
