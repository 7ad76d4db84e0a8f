// SPDX-License-Identifier: MIT
#pragma once

// Redelivery on a runner: a companion poller. A watch on a runner (`watching(...)`) has no loop of its own to wake
// for a due redelivery, and must not poll its list for it; so a second poller, whose check runs the subscriptions'
// due retries and asks to be checked again when the next one is due, redelivers beside it. Redelivery is polling
// with backoff. A publish that schedules an earlier retry nudges it; it ends once the watch is over (the
// subscriptions closed) and nothing is pending.

#include "detail/config.hpp"
#include "runner.hpp"
#include "schedule.hpp"
#include "step.hpp"
#include "stop.hpp"
#include "subscription.hpp"

#include <chrono>      // duration_cast, hours
#include <functional>  // reference_wrapper
#include <utility>     // move, forward
#include <variant>     // monostate

POLLSTER_NAMESPACE_BEGIN

/// The check of a runner's companion poller: runs the due retries, then asks to be checked again when the next one
/// is due (`poll_again_in`), or never while none is waiting (a publish that schedules one nudges it). It ends once
/// the subscriptions are closed and nothing is pending.
template <class T, class K, class Clock>
class redelivery_check {
 public:
  redelivery_check(subscriptions<T, K, Clock>& subs, Clock& clock) noexcept : subs_(&subs), clock_(&clock) {}
  step<std::monostate, std::monostate> operator()() {
    const auto now = clock_->now();
    subs_->run_due(now);
    if (subs_->closed() && subs_->pending() == 0) return done();
    const auto next = subs_->next_due();
    if (next == Clock::time_point::max()) return poll_again_in(duration::max());
    return poll_again_in(next <= now ? duration::zero() : std::chrono::duration_cast<duration>(next - now));
  }

 private:
  subscriptions<T, K, Clock>* subs_;
  Clock* clock_;
};

/// Submits the companion poller of `subs` to `runner` (outside any budget: it makes no list call) and has `subs`
/// nudge it. It ends once `subs.close()` was called and nothing is pending.
template <class Clock, class T, class K>
handle submit_redelivery(runner<Clock>& r, subscriptions<T, K, Clock>& subs) {
  const handle companion = r.submit(redelivery_check<T, K, Clock>(subs, r.clock()), constant(std::chrono::hours(1)),
                                    never{}, [](const auto&) {});
  subs.set_waker([companion] { companion.nudge(); });
  return companion;
}

namespace detail {

/// A watch check the caller keeps (submitted as `std::ref(watch)`): the runner calls it and its report through this.
template <class Check>
class watch_by_reference {
 public:
  explicit watch_by_reference(Check& check) noexcept : check_(&check) {}
  typename Check::step_type operator()(const poll_state& poll) { return (*check_)(poll); }
  auto report(const run_summary& run) const { return check_->report(run); }

 private:
  Check* check_;
};

template <class Check>
Check&& submittable(Check&& check) noexcept {
  return std::forward<Check>(check);
}
template <class Check>
watch_by_reference<Check> submittable(std::reference_wrapper<Check> check) noexcept {
  return watch_by_reference<Check>(check.get());
}

}  // namespace detail

/// The handles of a watch submitted with its companion.
struct subscribed_handles {
  handle watch;       ///< nudge (a callback said something changed) or cancel the watch
  handle redelivery;  ///< the companion: it ends by itself after the watch, once nothing is pending
};

/// Submits a watch whose handler is `subs.handler(runner.clock())` (build it with `watching(fetch, keys,
/// subs.handler(runner.clock()))`) and its companion poller; when the watch ends, `subs` is closed, so the companion
/// ends once its last event is delivered or dead-lettered. `subs` must outlive the runner's run. Pass the watch as
/// `std::ref(watch)` to keep it: `save_state(watch, subs)` then works on the runner's thread (in `on_complete`, a
/// handler, or after the run), and `resume(watch, subs, state, now)` before submitting.
template <class Clock, class T, class K, class Check, class Schedule, class Stop, class OnComplete>
subscribed_handles submit_with_redelivery(runner<Clock>& r, subscriptions<T, K, Clock>& subs, Check watch,
                                          Schedule schedule, Stop stop, OnComplete on_complete,
                                          const submit_options& options = {}) {
  subscribed_handles handles;
  handles.redelivery = submit_redelivery(r, subs);
  handles.watch = r.submit(
      detail::submittable(std::move(watch)), std::move(schedule), std::move(stop),
      [&subs, on_complete = std::move(on_complete)](auto&& outcome) mutable {
        subs.close();
        on_complete(std::forward<decltype(outcome)>(outcome));
      },
      options);
  return handles;
}

POLLSTER_NAMESPACE_END
