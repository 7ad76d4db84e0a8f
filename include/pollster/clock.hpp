// SPDX-License-Identifier: MIT
#pragma once

// Time: the clocks pollster runs on. A clock here is an object, not just a type, so that a manual_clock can be
// handed to a poller and moved by a test. Any type with these members works (`is_clock` says whether one does):
//   using duration = ...; using time_point = ...;
//   time_point now();
//   bool sleep_until(time_point, const cancel_token&);   // false when a cancellation interrupted it
// The sleep must return at once when the token is cancelled: every driver is woken that way (cancel.hpp), so a
// custom clock is woken by a nudge, a completion or a cancel exactly as the steady clock is.
// steady_clock (the default) wraps std::chrono::steady_clock; manual_clock is virtual time, with timers
// (`call_at`) that stand in for the network in tests of asynchronous checks.

#include "cancel.hpp"
#include "detail/config.hpp"
#include "detail/saturate.hpp"

#include <algorithm>    // push_heap, pop_heap
#include <atomic>       // atomic
#include <chrono>       // steady_clock, time_point
#include <cstdint>      // int64_t, uint64_t
#include <functional>   // function
#include <limits>       // numeric_limits
#include <mutex>        // mutex, lock_guard
#include <type_traits>  // true_type, void_t
#include <utility>      // move
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN

/// The default clock: std::chrono::steady_clock, which never jumps when the wall clock is set.
struct steady_clock {
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;
  static constexpr bool is_steady = true;

  time_point now() const noexcept { return std::chrono::steady_clock::now(); }
  /// Interruptible: returns false as soon as `token` is cancelled.
  bool sleep_until(time_point until, const cancel_token& token) const { return sleep_for_real(until, token); }
};

/// Virtual time. It moves only when told: `advance()`, `advance_to()`, or a sleep, which jumps straight to its
/// end. A 10-minute simulated operation runs in microseconds, and every run is reproducible. Safe to read and
/// advance from several threads; time never goes backwards.
///
/// Timers: `call_at(t, fn)` runs `fn` when virtual time reaches `t`, on the thread that moves it there (a sleep or
/// an advance stops at each timer on its way, in time order, ties in the order they were set). A test completes
/// asynchronous checks at chosen virtual times with them: the network, deterministically. A sleep whose token is
/// cancelled by a timer (a completion waking the runner) returns false at the timer's time.
class manual_clock {
 public:
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<manual_clock, duration>;
  static constexpr bool is_steady = true;

  manual_clock() noexcept = default;
  explicit manual_clock(time_point start) noexcept : now_ns_(start.time_since_epoch().count()) {}
  manual_clock(const manual_clock&) = delete;  // pollers hold a reference; a copy would split time in two
  manual_clock& operator=(const manual_clock&) = delete;

  time_point now() const noexcept { return time_point{duration{now_ns_.load(std::memory_order_acquire)}}; }

  /// Moves time forward by `d` (saturating; a negative `d` is ignored, time never goes backwards), running the
  /// timers on the way.
  void advance(duration d) {
    if (d <= duration::zero()) return;
    advance_to(time_point{detail::sat_add(duration{now_ns_.load(std::memory_order_acquire)}, d)});
  }
  /// Moves time forward to `t` if it is later than now, running the timers on the way.
  void advance_to(time_point t) {
    const std::int64_t target = t.time_since_epoch().count();
    for (std::int64_t at = next_timer_ns_.load(std::memory_order_acquire); at != no_timer && at <= target;
         at = next_timer_ns_.load(std::memory_order_acquire)) {
      move_to(at);
      run_due_timers(nullptr);
    }
    move_to(target);
  }

  /// A virtual sleep: unless the token is already cancelled, time jumps to `until` (stopping at each timer on the
  /// way) and the call returns true; false if the token was cancelled before or by a timer. A sleep until
  /// time_point::max() ("until woken": a runner with only checks in flight) with no timer left waits for the token
  /// on the real clock instead of jumping to the end of time. Counts sleeps and time slept so tests can assert on
  /// them.
  bool sleep_until(time_point until, const cancel_token& token) {
    if (token.cancel_requested()) return false;
    const std::int64_t target = until.time_since_epoch().count();
    if (next_timer_ns_.load(std::memory_order_acquire) > target) {
      // The common case, kept as cheap as a sleep was before timers existed: no timer on the way.
      const std::int64_t before = now_ns_.load(std::memory_order_relaxed);
      sleeps_.fetch_add(1, std::memory_order_relaxed);
      if (target > before) {
        slept_ns_.fetch_add(target - before, std::memory_order_relaxed);
        move_to(target);
      }
      return !token.cancel_requested();
    }
    return sleep_through_timers(target, token);
  }

  /// Runs `fn` when virtual time reaches `t` (at once, on the next advance or sleep, if `t` is not later than now).
  void call_at(time_point t, std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(timers_mutex_);
    timers_.push_back(timer{t.time_since_epoch().count(), timer_sequence_++, std::move(fn)});
    std::push_heap(timers_.begin(), timers_.end(), later_first{});
    next_timer_ns_.store(timers_.front().at, std::memory_order_release);
  }
  /// The same, `d` from now.
  void call_after(duration d, std::function<void()> fn) {
    call_at(time_point{detail::sat_add(duration{now_ns_.load(std::memory_order_acquire)}, d)}, std::move(fn));
  }
  /// Timers set and not run yet.
  std::size_t pending_timers() const {
    std::lock_guard<std::mutex> lock(timers_mutex_);
    return timers_.size();
  }
  /// Runs the timers due now (for a driver that does not sleep: `poll()`, say).
  void run_due_timers() { run_due_timers(nullptr); }

  /// How many sleeps were made on this clock, and how much virtual time they covered.
  std::int64_t sleep_count() const noexcept { return sleeps_.load(std::memory_order_relaxed); }
  duration time_slept() const noexcept { return duration{slept_ns_.load(std::memory_order_relaxed)}; }

 private:
  static constexpr std::int64_t no_timer = std::numeric_limits<std::int64_t>::max();
  struct timer {
    std::int64_t at;
    std::uint64_t sequence;
    std::function<void()> fn;
  };
  struct later_first {
    bool operator()(const timer& a, const timer& b) const noexcept {
      return a.at != b.at ? a.at > b.at : a.sequence > b.sequence;
    }
  };

  // A sleep with timers on its way: stop at each, run it, and return early if one of them woke the sleeper.
  bool sleep_through_timers(std::int64_t target, const cancel_token& token) {
    const std::int64_t before = now_ns_.load(std::memory_order_acquire);
    sleeps_.fetch_add(1, std::memory_order_relaxed);
    bool woken = false;
    for (std::int64_t at = next_timer_ns_.load(std::memory_order_acquire); at != no_timer && at <= target;
         at = next_timer_ns_.load(std::memory_order_acquire)) {
      move_to(at);
      run_due_timers(nullptr);
      if (token.cancel_requested()) {
        woken = true;
        break;
      }
    }
    if (!woken && target == no_timer && token.cancel_possible()) {
      return sleep_for_real(std::chrono::steady_clock::time_point::max(), token);  // false: woken
    }
    if (!woken) move_to(target);
    const std::int64_t after = now_ns_.load(std::memory_order_acquire);
    if (after > before) slept_ns_.fetch_add(after - before, std::memory_order_relaxed);
    return !token.cancel_requested();
  }

  void move_to(std::int64_t target) noexcept {
    std::int64_t current = now_ns_.load(std::memory_order_relaxed);
    while (current < target && !now_ns_.compare_exchange_weak(current, target, std::memory_order_acq_rel)) {
    }
  }
  // Runs every timer due at the current time, one at a time and outside the lock (a timer may set timers).
  void run_due_timers(std::nullptr_t) {
    for (;;) {
      std::function<void()> fn;
      {
        std::lock_guard<std::mutex> lock(timers_mutex_);
        if (timers_.empty() || timers_.front().at > now_ns_.load(std::memory_order_acquire)) return;
        std::pop_heap(timers_.begin(), timers_.end(), later_first{});
        fn = std::move(timers_.back().fn);
        timers_.pop_back();
        next_timer_ns_.store(timers_.empty() ? no_timer : timers_.front().at, std::memory_order_release);
      }
      fn();
    }
  }

  std::atomic<std::int64_t> now_ns_{0};
  std::atomic<std::int64_t> sleeps_{0};
  std::atomic<std::int64_t> slept_ns_{0};
  std::atomic<std::int64_t> next_timer_ns_{no_timer};  // read without the lock on every sleep
  mutable std::mutex timers_mutex_;
  std::vector<timer> timers_;  // a heap, earliest first
  std::uint64_t timer_sequence_ = 0;
};

/// Sleeps on any pollster clock for `d` (saturating); false if the token interrupted the sleep.
template <class Clock>
bool sleep_for(Clock& clock, duration d, const cancel_token& token = {}) {
  return clock.sleep_until(detail::sat_add(clock.now(), d), token);
}

namespace detail {
template <class C, class = void>
struct is_clock_impl : std::false_type {};
template <class C>
struct is_clock_impl<C, std::void_t<typename C::time_point, decltype(std::declval<C&>().now()),
                                    decltype(static_cast<bool>(std::declval<C&>().sleep_until(
                                        std::declval<C&>().now(), std::declval<const cancel_token&>())))>>
    : std::true_type {};
}  // namespace detail

/// Whether `C` is a pollster clock: `time_point`, `now()`, and `bool sleep_until(time_point, const cancel_token&)`.
template <class C>
struct is_clock : detail::is_clock_impl<C> {};
template <class C>
inline constexpr bool is_clock_v = is_clock<C>::value;

POLLSTER_NAMESPACE_END
