// SPDX-License-Identifier: MIT
#pragma once

// Polling one operation: `poll_until`, the blocking driver over the poller (poller.hpp). It sleeps on the clock until
// the poller is due, makes the attempt, and repeats until the run ends; an asynchronous check's completion, like a
// cancellation, wakes the sleep at once through the clock's own interruptible sleep. This header also brings in the
// whole vocabulary of a poll (step.hpp, outcome.hpp, check.hpp, poller.hpp) and `parse_retry_after`.

#include "check.hpp"
#include "clock.hpp"
#include "detail/config.hpp"
#include "outcome.hpp"
#include "poller.hpp"
#include "retry_after.hpp"  // parse_retry_after: a check turns the header into retry_after(...)
#include "step.hpp"
#include "stop.hpp"

#include <algorithm>    // min, max
#include <cstdint>      // uint32_t
#include <memory>       // make_shared
#include <mutex>        // mutex, lock_guard
#include <type_traits>  // enable_if_t, is_same_v
#include <utility>      // move

POLLSTER_NAMESPACE_BEGIN

namespace detail {

/// The listener of a blocking driver: a completion wakes the sleeping thread.
struct wake_listener final : attempt_listener {
  wake_signal signal;
  void attempt_completed(attempt_base&) noexcept override {
    try {
      signal.wake();
    } catch (...) {
      // (locking a mutex cannot fail in practice; a lost wake is then caught by the attempt's timeout)
    }
  }
};

/// What another thread may ask of a blocking run while it sleeps (the watcher's nudge and cancel): requests under a
/// mutex, and the wake signal that interrupts the sleep.
class remote_control {
 public:
  remote_control() : listener_(std::make_shared<wake_listener>()) {}

  /// A nudge outside a run does nothing (there is nothing to bring forward).
  void request_nudge() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!running_) return;
      ++nudges_;
    }
    listener_->signal.wake();
  }
  void request_cancel() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      cancel_ = true;
    }
    listener_->signal.wake();
  }
  bool cancel_requested() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cancel_;
  }
  std::uint32_t take_nudges() {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::uint32_t n = nudges_;
    nudges_ = 0;
    return n;
  }
  void begin_run() {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = true;
  }
  /// The run is over: what was asked is spent.
  void end_run() {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = false;
    cancel_ = false;
    nudges_ = 0;
  }
  const std::shared_ptr<wake_listener>& listener() const noexcept { return listener_; }

 private:
  std::shared_ptr<wake_listener> listener_;
  std::mutex mutex_;
  std::uint32_t nudges_ = 0;
  bool cancel_ = false;
  bool running_ = false;
};

/// Nothing to do beside the poller (poll_until). Side work is anything with `time_point next_due() const` and
/// `run_due(time_point)` that must run between checks on the same thread: a subscriptions' redeliveries.
struct no_side_work {};

/// The blocking loop: sleep until due, attempt, until the run ends; `immediate` makes the first attempt at the
/// start, even when the token is already cancelled (Kubernetes' immediate poll). Every later attempt follows a
/// cancellation test, and a cancellation interrupts a sleep at once. A check that throws propagates unchanged.
///
/// A synchronous check without remote control sleeps on the caller's token itself: nothing else can need the
/// thread awake. Otherwise the loop sleeps on a wake signal that the token, a completion, a nudge or a cancel from
/// another thread interrupts, and looks at what woke it. With side work it also wakes when that is due, runs it,
/// and goes back to sleep without a check.
template <class Poller, class Clock, class Side = no_side_work>
void run_blocking(Poller& p, Clock& clock, const cancel_token& cancel, bool immediate, remote_control* control,
                  Side* side = nullptr) {
  using time_point = typename Poller::time_point;
  constexpr bool has_side = !std::is_same_v<Side, no_side_work>;
  time_point last = p.start_time();  // the latest reading of the clock: the end of the last check
  const auto finished = [&clock, &last] { return last = clock.now(); };
  if (!Poller::is_async && control == nullptr && !has_side) {
    if (immediate && !p.done()) p.step(last, finished);  // at once: no time has passed
    while (!p.done()) {
      // A sleep returns false at once when the token is already cancelled; the test after it also catches a
      // cancellation that arrived with the timer (or when there was nothing to sleep): no check runs after it.
      const time_point due = p.next_due();
      if (due > last && !clock.sleep_until(due, cancel)) break;
      if (cancel.cancel_requested()) break;
      p.step(clock.now(), finished);
    }
    if (!p.done()) p.cancel(clock.now());
    return;
  }
  std::shared_ptr<wake_listener> own;
  if (control == nullptr) own = std::make_shared<wake_listener>();
  const std::shared_ptr<wake_listener>& listener = control != nullptr ? control->listener() : own;
  wake_signal& signal = listener->signal;
  p.attach(listener);
  auto wake = [&signal] { signal.wake(); };
  const cancel_callback<decltype(wake)> bridge(cancel, wake);
  const auto stopped = [&] { return cancel.cancel_requested() || (control != nullptr && control->cancel_requested()); };
  // (A watcher's run cancelled before it starts makes no check at all, as a cancelled runner handle did.)
  if (immediate && !p.done() && (control == nullptr || !stopped())) p.step(last, finished);
  while (!p.done()) {
    signal.rearm();  // before looking: a wake from now on interrupts the sleep below
    if (stopped()) break;
    if (control != nullptr) {
      for (std::uint32_t n = control->take_nudges(); n != 0; --n) p.nudge(clock.now());
    }
    if (p.ready()) {
      p.complete(finished());
      continue;
    }
    time_point due = p.next_due();
    if constexpr (has_side) due = std::min(due, static_cast<time_point>(side->next_due()));
    if (due > last && !clock.sleep_until(due, signal.token())) {
      last = clock.now();
      continue;  // woken: by a completion, a nudge or a cancellation; look again
    }
    if (stopped()) break;
    const time_point now = clock.now();
    if constexpr (has_side) {
      if (side->next_due() <= now) side->run_due(now);
    }
    if (now >= p.next_due() || p.ready()) p.step(now, finished);
    last = std::max(last, now);
  }
  if (!p.done()) p.cancel(clock.now());
}

template <class Check, class Schedule, class Stop>
inline constexpr bool arguments_ok =
    is_check_v<Check> && is_schedule_v<Schedule> && is_stop_rule_v<Stop>;

/// The outcome type of a run, or a stand-in when the arguments are wrong (so that the static_assert that names the
/// mistake is the only error).
template <class Check, bool Valid = is_check_v<Check>>
struct outcome_for {
  using type = outcome<std::monostate, std::monostate>;
};
template <class Check>
struct outcome_for<Check, true> {
  using type = check_outcome_t<Check>;
};
template <class Check>
using outcome_for_t = typename outcome_for<Check>::type;

}  // namespace detail

/// Polls `check` on `clock` until it is done, fails for good, the stop rule or the deadline ends the run, or
/// `options.cancel` cancels it. The first check happens at once (unless `wait_first`), even when the token is
/// already cancelled, as Kubernetes' immediate poll does; every later check is preceded by a cancellation test, and
/// a cancellation interrupts a sleep at once. An asynchronous check's completion wakes the sleep at once; its
/// attempt times out at `options.attempt_timeout` (by default: the time left before the deadline). A check that
/// throws propagates out unchanged.
template <class Clock, class Check, class Schedule, class Stop = never, class Hooks = no_hooks,
          class = std::enable_if_t<is_clock_v<Clock>>>
detail::outcome_for_t<Check> poll_until(Clock& clock, Check check, Schedule schedule, Stop stop = Stop{},
                                        const poll_options& options = {}, Hooks hooks = Hooks{}) {
  POLLSTER_CHECK_ARGUMENTS("pollster::poll_until", Check, Schedule, Stop);
  if constexpr (detail::arguments_ok<Check, Schedule, Stop>) {
    using time_point = typename Clock::time_point;
    poller<Check, Schedule, Stop, time_point, Hooks> run(std::move(check), std::move(schedule), std::move(stop),
                                                         clock.now(), options, std::move(hooks));
    detail::run_blocking(run, clock, options.cancel, !options.wait_first, nullptr);
    return run.take_outcome();
  } else {
    return {};
  }
}

/// The same, on the real steady clock.
template <class Check, class Schedule, class Stop = never, class Hooks = no_hooks,
          class = std::enable_if_t<!is_clock_v<Check>>>
detail::outcome_for_t<Check> poll_until(Check check, Schedule schedule, Stop stop = Stop{},
                                        const poll_options& options = {}, Hooks hooks = Hooks{}) {
  steady_clock clock;
  return poll_until(clock, std::move(check), std::move(schedule), std::move(stop), options, std::move(hooks));
}

#if POLLSTER_HAS_STD_STOP_TOKEN
/// C++20: cancelled by a std::stop_token (a std::jthread's, say) instead of `options.cancel`.
template <class Clock, class Check, class Schedule, class Stop = never, class Hooks = no_hooks,
          class = std::enable_if_t<is_clock_v<Clock>>>
detail::outcome_for_t<Check> poll_until(std::stop_token token, Clock& clock, Check check, Schedule schedule,
                                        Stop stop = Stop{}, poll_options options = {}, Hooks hooks = Hooks{}) {
  const bridge_cancel_token bridge{std::move(token)};
  options.cancel = bridge.get_token();
  return poll_until(clock, std::move(check), std::move(schedule), std::move(stop), options, std::move(hooks));
}

/// C++20: the same on the real steady clock.
template <class Check, class Schedule, class Stop = never, class Hooks = no_hooks,
          class = std::enable_if_t<!is_clock_v<Check>>>
detail::outcome_for_t<Check> poll_until(std::stop_token token, Check check, Schedule schedule, Stop stop = Stop{},
                                        poll_options options = {}, Hooks hooks = Hooks{}) {
  steady_clock clock;
  return poll_until(std::move(token), clock, std::move(check), std::move(schedule), std::move(stop),
                    std::move(options), std::move(hooks));
}
#endif

POLLSTER_NAMESPACE_END
