// SPDX-License-Identifier: MIT
#pragma once

// Time: the clocks pollster runs on, a C++17 stop token, and a sleep that a stop request interrupts at once.
//
// A clock here is an object, not just a type, so that a manual_clock can be handed to a poller and moved by a
// test. Any type with these members works:
//   using duration = ...; using time_point = ...;
//   time_point now();
//   bool sleep_until(time_point, const stop_token&);   // false when a stop was requested
// steady_clock (the default) wraps std::chrono::steady_clock; manual_clock is virtual time.

#include "detail/config.hpp"
#include "detail/saturate.hpp"

#include <atomic>              // atomic
#include <chrono>              // steady_clock, time_point
#include <condition_variable>  // condition_variable
#include <cstdint>             // int64_t
#include <functional>          // function
#include <memory>              // shared_ptr
#include <mutex>               // mutex, unique_lock
#include <thread>              // this_thread::sleep_until
#include <utility>             // move
#if POLLSTER_HAS_STD_STOP_TOKEN
#include <stop_token>  // std::stop_token, std::stop_callback
#endif

POLLSTER_NAMESPACE_BEGIN

namespace detail {

/// Shared state of one stop_source and its tokens. Sleepers wait on `wake`; callbacks are a small list that
/// runs once, on the thread that requests the stop.
struct stop_state {
  std::atomic<bool> stopped{false};
  std::mutex mutex;
  std::condition_variable wake;
  struct callback_node {
    std::function<void()> fn;
    callback_node* next = nullptr;
    callback_node* prev = nullptr;
  };
  callback_node* callbacks = nullptr;

  bool request() {
    callback_node* list = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (stopped.exchange(true, std::memory_order_acq_rel)) return false;
      list = callbacks;
      callbacks = nullptr;
      // Invoke under the lock, so that a stop_callback destroyed on another thread waits for its own call to end.
      for (callback_node* node = list; node != nullptr; node = node->next) node->fn();
    }
    wake.notify_all();
    return true;
  }
};

}  // namespace detail

class stop_source;

/// A read-only view of a stop request, copyable and cheap; a default-constructed token can never be stopped.
/// Usable under C++17; under C++20 see `bridge_stop_token` for std::stop_token.
class stop_token {
 public:
  stop_token() noexcept = default;

  /// True once the owning stop_source asked to stop.
  bool stop_requested() const noexcept { return state_ && state_->stopped.load(std::memory_order_acquire); }
  /// False for a token that no source can ever stop (so a sleep need not prepare to be interrupted).
  bool stop_possible() const noexcept { return static_cast<bool>(state_); }

  friend bool operator==(const stop_token& a, const stop_token& b) noexcept { return a.state_ == b.state_; }
  friend bool operator!=(const stop_token& a, const stop_token& b) noexcept { return a.state_ != b.state_; }

 private:
  friend class stop_source;
  template <class F>
  friend class stop_callback;
  friend bool sleep_for_real(std::chrono::steady_clock::time_point, const stop_token&);
  explicit stop_token(std::shared_ptr<detail::stop_state> state) noexcept : state_(std::move(state)) {}
  std::shared_ptr<detail::stop_state> state_;
};

/// The side that asks to stop: a cancel button for one or many pollers.
class stop_source {
 public:
  stop_source() : state_(std::make_shared<detail::stop_state>()) {}

  stop_token get_token() const noexcept { return stop_token{state_}; }
  /// Asks to stop; wakes every sleeper at once. Returns false if a stop was already requested.
  bool request_stop() { return state_->request(); }
  bool stop_requested() const noexcept { return state_->stopped.load(std::memory_order_acquire); }

 private:
  std::shared_ptr<detail::stop_state> state_;
};

/// Runs `fn` once when the token is stopped (at once, on this thread, if it already is). Destroying the
/// callback unregisters it; if it is running on another thread, the destructor waits for it to finish. `fn` runs
/// under the source's lock, so keep it short (wake a thread, post a job), and never let it request a stop on, or
/// register a callback with, the same source: that would deadlock.
template <class F>
class stop_callback {
 public:
  stop_callback(const stop_token& token, F fn) : state_(token.state_) {
    node_.fn = std::move(fn);
    if (!state_) return;
    std::unique_lock<std::mutex> lock(state_->mutex);
    if (state_->stopped.load(std::memory_order_acquire)) {
      lock.unlock();
      node_.fn();
      state_.reset();
      return;
    }
    node_.next = state_->callbacks;
    if (node_.next != nullptr) node_.next->prev = &node_;
    state_->callbacks = &node_;
  }
  ~stop_callback() {
    if (!state_) return;
    std::lock_guard<std::mutex> lock(state_->mutex);  // waits for a request() that is calling us right now
    if (state_->stopped.load(std::memory_order_acquire)) return;  // already detached by request()
    if (node_.prev != nullptr) node_.prev->next = node_.next;
    else state_->callbacks = node_.next;
    if (node_.next != nullptr) node_.next->prev = node_.prev;
  }
  stop_callback(const stop_callback&) = delete;
  stop_callback& operator=(const stop_callback&) = delete;

 private:
  std::shared_ptr<detail::stop_state> state_;
  detail::stop_state::callback_node node_;
};

/// Sleeps on the real steady clock until `until`, or returns false at once when the token is stopped.
inline bool sleep_for_real(std::chrono::steady_clock::time_point until, const stop_token& token) {
  if (!token.stop_possible()) {
    std::this_thread::sleep_until(until);  // nothing can interrupt this sleep
    return true;
  }
  detail::stop_state& state = *token.state_;
  std::unique_lock<std::mutex> lock(state.mutex);
  state.wake.wait_until(lock, until, [&] { return state.stopped.load(std::memory_order_acquire); });
  return !state.stopped.load(std::memory_order_acquire);
}

/// The default clock: std::chrono::steady_clock, which never jumps when the wall clock is set.
struct steady_clock {
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;
  static constexpr bool is_steady = true;

  time_point now() const noexcept { return std::chrono::steady_clock::now(); }
  /// Interruptible: returns false as soon as `token` is stopped.
  bool sleep_until(time_point until, const stop_token& token) const { return sleep_for_real(until, token); }
};

/// Virtual time. It moves only when told: `advance()`, `set()`, or a sleep, which jumps straight to its end.
/// A 10-minute simulated operation runs in microseconds, and every run is reproducible. Safe to read and
/// advance from several threads; time never goes backwards.
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

  /// Moves time forward by `d` (saturating; a negative `d` is ignored, time never goes backwards).
  void advance(duration d) noexcept {
    if (d <= duration::zero()) return;
    std::int64_t current = now_ns_.load(std::memory_order_relaxed);
    while (!now_ns_.compare_exchange_weak(current, detail::sat_add(duration{current}, d).count(),
                                          std::memory_order_acq_rel)) {
    }
  }
  /// Moves time forward to `t` if it is later than now.
  void advance_to(time_point t) noexcept {
    std::int64_t current = now_ns_.load(std::memory_order_relaxed);
    const std::int64_t target = t.time_since_epoch().count();
    while (current < target &&
           !now_ns_.compare_exchange_weak(current, target, std::memory_order_acq_rel)) {
    }
  }

  /// A virtual sleep: unless the token is already stopped, time jumps to `until` and the call returns true.
  /// Counts sleeps and time slept so tests can assert on them.
  bool sleep_until(time_point until, const stop_token& token) noexcept {
    if (token.stop_requested()) return false;
    const time_point before = now();
    sleeps_.fetch_add(1, std::memory_order_relaxed);
    if (until > before) {
      slept_ns_.fetch_add((until - before).count(), std::memory_order_relaxed);
      advance_to(until);
    }
    return !token.stop_requested();
  }

  /// How many sleeps were made on this clock, and how much virtual time they covered.
  std::int64_t sleep_count() const noexcept { return sleeps_.load(std::memory_order_relaxed); }
  duration time_slept() const noexcept { return duration{slept_ns_.load(std::memory_order_relaxed)}; }

 private:
  std::atomic<std::int64_t> now_ns_{0};
  std::atomic<std::int64_t> sleeps_{0};
  std::atomic<std::int64_t> slept_ns_{0};
};

/// Sleeps on any pollster clock for `d` (saturating); false if the token stopped the sleep.
template <class Clock>
bool sleep_for(Clock& clock, duration d, const stop_token& token = {}) {
  return clock.sleep_until(detail::sat_add(clock.now(), d), token);
}

#if POLLSTER_HAS_STD_STOP_TOKEN
/// C++20: lets a std::stop_token (from a std::jthread, say) stop pollster. Keep the bridge alive while the
/// pollster token is in use; a std stop request is forwarded at once, waking pollster's sleepers.
class bridge_stop_token {
 public:
  explicit bridge_stop_token(std::stop_token std_token)
      : forward_(std::move(std_token), forwarder{source_}) {}
  stop_token get_token() const noexcept { return source_.get_token(); }

 private:
  struct forwarder {
    stop_source source;
    void operator()() { source.request_stop(); }
  };
  stop_source source_;
  std::stop_callback<forwarder> forward_;
};
#endif

POLLSTER_NAMESPACE_END
