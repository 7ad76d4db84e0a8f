// SPDX-License-Identifier: MIT
#pragma once

// Cancellation: a C++17 cancel token (in the manner of std::stop_token, named apart from the stop rules of
// stop.hpp), callbacks on a cancel request, a real-time sleep that a request interrupts at once, and the one
// mechanism every driver is woken by (`detail::wake_signal`): a re-armable cancel state handed to the clock's own
// interruptible `sleep_until(time_point, const cancel_token&)`, so a custom clock is woken exactly like the
// steady one.

#include "detail/config.hpp"

#include <atomic>              // atomic
#include <chrono>              // steady_clock
#include <condition_variable>  // condition_variable
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

/// Shared state of one cancel_source and its tokens. Sleepers wait on `wake`; callbacks are a small list that
/// runs once, on the thread that requests the cancellation.
struct cancel_state {
  std::atomic<bool> cancelled{false};
  std::mutex mutex;
  std::condition_variable wake;
  struct callback_node {
    std::function<void()> fn;
    callback_node* next = nullptr;
    callback_node* prev = nullptr;
  };
  callback_node* callbacks = nullptr;

  bool request() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (cancelled.exchange(true, std::memory_order_acq_rel)) return false;
      callback_node* list = callbacks;
      callbacks = nullptr;
      // Invoke under the lock, so that a cancel_callback destroyed on another thread waits for its own call to end.
      for (callback_node* node = list; node != nullptr; node = node->next) node->fn();
    }
    wake.notify_all();
    return true;
  }
};

class wake_signal;

}  // namespace detail

class cancel_source;

/// A read-only view of a cancel request, copyable and cheap; a default-constructed token can never be cancelled.
/// Usable under C++17; under C++20 see `bridge_cancel_token` for std::stop_token.
class cancel_token {
 public:
  cancel_token() noexcept = default;

  /// True once the owning cancel_source asked to cancel.
  bool cancel_requested() const noexcept {
    return state_ && state_->cancelled.load(std::memory_order_acquire);
  }
  /// False for a token that no source can ever cancel (so a sleep need not prepare to be interrupted).
  bool cancel_possible() const noexcept { return static_cast<bool>(state_); }

  friend bool operator==(const cancel_token& a, const cancel_token& b) noexcept { return a.state_ == b.state_; }
  friend bool operator!=(const cancel_token& a, const cancel_token& b) noexcept { return a.state_ != b.state_; }

 private:
  friend class cancel_source;
  friend class detail::wake_signal;
  template <class F>
  friend class cancel_callback;
  friend bool sleep_for_real(std::chrono::steady_clock::time_point, const cancel_token&);
  explicit cancel_token(std::shared_ptr<detail::cancel_state> state) noexcept : state_(std::move(state)) {}
  std::shared_ptr<detail::cancel_state> state_;
};

/// The side that asks to cancel: a cancel button for one or many pollers.
class cancel_source {
 public:
  cancel_source() : state_(std::make_shared<detail::cancel_state>()) {}

  cancel_token get_token() const noexcept { return cancel_token{state_}; }
  /// Asks to cancel; wakes every sleeper at once. Returns false if a cancellation was already requested.
  bool request_cancel() { return state_->request(); }
  bool cancel_requested() const noexcept { return state_->cancelled.load(std::memory_order_acquire); }

 private:
  std::shared_ptr<detail::cancel_state> state_;
};

/// Runs `fn` once when the token is cancelled (at once, on this thread, if it already is). Destroying the
/// callback unregisters it; if it is running on another thread, the destructor waits for it to finish. `fn` runs
/// under the source's lock, so keep it short (wake a thread, post a job), and never let it request a
/// cancellation on, or register a callback with, the same source: that would deadlock.
template <class F>
class cancel_callback {
 public:
  cancel_callback(const cancel_token& token, F fn) : state_(token.state_) {
    node_.fn = std::move(fn);
    if (!state_) return;
    std::unique_lock<std::mutex> lock(state_->mutex);
    if (state_->cancelled.load(std::memory_order_acquire)) {
      lock.unlock();
      node_.fn();
      state_.reset();
      return;
    }
    node_.next = state_->callbacks;
    if (node_.next != nullptr) node_.next->prev = &node_;
    state_->callbacks = &node_;
  }
  ~cancel_callback() {
    if (!state_) return;
    std::lock_guard<std::mutex> lock(state_->mutex);  // waits for a request() that is calling us right now
    if (state_->cancelled.load(std::memory_order_acquire)) return;  // already detached by request()
    if (node_.prev != nullptr) {
      node_.prev->next = node_.next;
    } else {
      state_->callbacks = node_.next;
    }
    if (node_.next != nullptr) node_.next->prev = node_.prev;
  }
  cancel_callback(const cancel_callback&) = delete;
  cancel_callback& operator=(const cancel_callback&) = delete;

 private:
  std::shared_ptr<detail::cancel_state> state_;
  detail::cancel_state::callback_node node_;
};

/// Sleeps on the real steady clock until `until`, or returns false at once when the token is cancelled.
inline bool sleep_for_real(std::chrono::steady_clock::time_point until, const cancel_token& token) {
  if (!token.cancel_possible()) {
    std::this_thread::sleep_until(until);  // nothing can interrupt this sleep
    return true;
  }
  detail::cancel_state& state = *token.state_;
  std::unique_lock<std::mutex> lock(state.mutex);
  if (until == std::chrono::steady_clock::time_point::max()) {
    // (wait_until would add max() to the system clock's offset and overflow: wait without a time instead.)
    state.wake.wait(lock, [&] { return state.cancelled.load(std::memory_order_acquire); });
  } else {
    state.wake.wait_until(lock, until, [&] { return state.cancelled.load(std::memory_order_acquire); });
  }
  return !state.cancelled.load(std::memory_order_acquire);
}

namespace detail {

/// What wakes a driver: a cancel state that can be re-armed. The driver sleeps on the clock with `token()`;
/// anything that needs it awake (a command, a completion, a nudge, a cancel, stop()) calls `wake()` from any
/// thread, and the clock's interruptible sleep returns at once. The driver calls `rearm()` before it looks for
/// work, so a wake that arrives after the look interrupts the sleep that follows it (and is never lost).
class wake_signal {
 public:
  wake_signal() : state_(std::make_shared<cancel_state>()) {}

  cancel_token token() const noexcept { return cancel_token{state_}; }
  /// Any thread: interrupts the driver's sleep, or the next one.
  void wake() { state_->request(); }
  /// Driver thread, before it looks for work.
  void rearm() noexcept {
    if (!state_->cancelled.load(std::memory_order_acquire)) return;
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->cancelled.store(false, std::memory_order_release);
  }
  bool woken() const noexcept { return state_->cancelled.load(std::memory_order_acquire); }

 private:
  std::shared_ptr<cancel_state> state_;
};

}  // namespace detail

#if POLLSTER_HAS_STD_STOP_TOKEN
/// C++20: lets a std::stop_token (from a std::jthread, say) cancel pollster. Keep the bridge alive while the
/// pollster token is in use; a std stop request is forwarded at once, waking pollster's sleepers.
class bridge_cancel_token {
 public:
  explicit bridge_cancel_token(std::stop_token std_token) : forward_(std::move(std_token), forwarder{source_}) {}
  cancel_token get_token() const noexcept { return source_.get_token(); }

 private:
  struct forwarder {
    cancel_source source;
    void operator()() { source.request_cancel(); }
  };
  cancel_source source_;
  std::stop_callback<forwarder> forward_;
};
#endif

POLLSTER_NAMESPACE_END
