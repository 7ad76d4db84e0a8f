// SPDX-License-Identifier: MIT
#pragma once

// Watch a collection: poll a list, diff successive snapshots (snapshot.hpp), and deliver added / removed / changed
// events, the first list as `initial` additions. Three things make it more than a loop around `diff`:
//
//  * adaptive cadence: after a poll that saw changes the schedule starts again from its first delay (things are
//    moving: look closely), otherwise it goes on growing (quiet: back off towards the cap);
//  * notify-then-verify: `nudge()` when a webhook or AMQP message says something changed. The message is never
//    trusted; the nudge only makes the next list call happen now, and the diff says what really changed;
//  * a periodic resync: every N polls or every so long, the records that did not change are delivered too, on
//    their own channel (`unchanged<const T&>`), so a consumer can repair drift without ever seeing a fake change.
//
// There is no loop here either: the watch is the check of a `poller` (poller.hpp). `watching(...)` builds that check
// for any driver (`runner.submit(watching(...), ...)`: thousands of watchers on one thread under one rate budget);
// the blocking `watcher::run` drives it with the blocking loop of poll.hpp, and takes `nudge()` and `cancel()` from
// any thread. A poll that saw changes asks the poller to restart its schedule (`step::restart_schedule`), and what
// the watch has seen reaches the outcome through the check's `report()`: `outcome<std::monostate, E, watch_summary>`.

#include "await.hpp"  // await_operation and friends: the other half of "status checks" (watch.hpp includes both)
#include "clock.hpp"
#include "detail/config.hpp"
#include "detail/text.hpp"
#include "diff.hpp"
#include "snapshot.hpp"
#include "poll.hpp"
#include "schedule.hpp"
#include "stop.hpp"

#include <cstddef>      // size_t
#include <cstdint>      // uint64_t
#include <exception>    // rethrow_exception
#include <functional>   // reference_wrapper, ref
#include <memory>       // unique_ptr, make_unique
#include <mutex>        // mutex, lock_guard
#include <optional>     // optional
#include <type_traits>  // decay_t, is_invocable_v, ...
#include <utility>      // move, forward, declval
#include <variant>      // monostate
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN

/// What a watch has seen: the report of its outcome (`watch_outcome<E>::report`).
struct watch_summary {
  std::uint64_t polls = 0;               ///< lists received and diffed (failed list calls are not counted)
  std::uint64_t polls_with_changes = 0;  ///< of which: saw at least one addition, removal or change
  std::uint64_t initial = 0;             ///< records of the first list (reported as added, with `initial` set)
  std::uint64_t added = 0;               ///< additions after the first list
  std::uint64_t removed = 0;
  std::uint64_t changed = 0;
  std::uint64_t resyncs = 0;             ///< polls that were resyncs
  std::uint64_t resynced = 0;            ///< unchanged records delivered by those resyncs
  std::size_t size = 0;                  ///< records in the last list
};

/// How a watch behaves. A plain aggregate: `{.resync_every = 1h}` in C++20.
struct watch_options {
  /// Restart the schedule from its first delay after a poll that saw a change (poll faster while things change).
  bool adaptive = true;
  /// Every this many polls after the first, the poll is a resync (0: never).
  std::uint64_t resync_every_polls = 0;
  /// The first poll at least this long after the last resync (or the first poll) is a resync (0: never). A
  /// resync rides on a scheduled poll: it never adds one.
  duration resync_every = duration::zero();
  /// How to diff (duplicates, key order). `report_unchanged` is the watcher's to manage, for resyncs.
  diff_options diff{};
};

/// How a watch tells records apart: by `key`, and "changed" by `same` (a version projection such as
/// `&server::resource_version`, or an equality predicate; by default `!(a == b)`).
template <class Key, class Same = equal_elements>
struct keyed_by {
  Key key;
  Same same;
};
template <class Key>
keyed_by<Key> keyed(Key key) {
  return {std::move(key), equal_elements{}};
}
template <class Key, class Same>
keyed_by<Key, Same> keyed(Key key, Same same) {
  return {std::move(key), std::move(same)};
}

namespace detail {

template <class X>
struct as_keyed {
  using type = keyed_by<X>;
  static type make(X key) { return keyed(std::move(key)); }
};
template <class Key, class Same>
struct as_keyed<keyed_by<Key, Same>> {
  using type = keyed_by<Key, Same>;
  static type make(keyed_by<Key, Same> k) { return k; }
};

template <class X>
struct unwrap_ref {
  static X& get(X& x) noexcept { return x; }
  using type = X;
};
template <class X>
struct unwrap_ref<std::reference_wrapper<X>> {
  static X& get(std::reference_wrapper<X>& x) noexcept { return x.get(); }
  using type = X;
};
template <class X>
decltype(auto) unwrapped(X& x) noexcept {
  return unwrap_ref<X>::get(x);
}

/// The list a fetch returns, whether plainly or in a `step<List, E>`.
template <class R>
struct list_fetch_traits {
  using list_type = R;
  using error_type = std::monostate;
};
template <class L, class E>
struct list_fetch_traits<step<L, E>> {
  using list_type = L;
  using error_type = E;
};

}  // namespace detail

/// The check of a watch: fetch the list, diff it against the last one, deliver events to `handler`, count them.
/// `fetch` returns the list (any range of records, by value or by reference), or a `step<List, E>` to pass an error
/// (`transient(e)`: retried on the schedule, the last list kept; `failed(e)`: the watch ends) or a server hint
/// (`pending(list, retry_after(30s))`); it may take the `const poll_state&`. `handler` takes `const added<const T&>&`,
/// `const removed<const T&, K>&`, `const changed<const T&>&` and, to receive resyncs, `const unchanged<const T&>&`
/// (a struct with overloads, or a generic lambda). `Fetch` and `Handler` may be `std::reference_wrapper`s.
template <class Fetch, class Keyed, class Handler>
class watch_check;

template <class Fetch, class Key, class Same, class Handler>
class watch_check<Fetch, keyed_by<Key, Same>, Handler> {
  using fetch_type = typename detail::unwrap_ref<Fetch>::type;
  using fetched = typename detail::sync_result<fetch_type>::type;
  using traits = detail::list_fetch_traits<fetched>;
  using list_type = typename traits::list_type;

 public:
  using element_type = detail::range_element_t<list_type>;
  using key_type = detail::key_type_t<Key, element_type>;
  using error_type = typename traits::error_type;
  using step_type = step<std::monostate, error_type>;

  watch_check(Fetch fetch, keyed_by<Key, Same> keys, Handler handler, const watch_options& options)
      : fetch_(std::move(fetch)),
        handler_(std::move(handler)),
        state_(std::make_unique<state>(std::move(keys), options)) {
    if (options.resync_every < duration::zero()) {
      detail::throw_invalid("watch_options", "resync_every", ">= 0 (zero: never)",
                            detail::duration_text(options.resync_every));
    }
  }

  /// What the watch has seen: the poller calls it when the run ends.
  watch_summary report(const run_summary&) const { return state_->summary; }

  /// Takes `records` as the last list, reporting nothing: the first poll then reports what changed since, as
  /// changes, not as an initial list (a watch resuming from a saved state). Call it before the watch starts.
  void restore(std::vector<element_type> records) { state_->snapshot.restore(std::move(records)); }
  /// The list the last poll left (what the next one is diffed against); empty before the first.
  const std::vector<element_type>& last_list() const noexcept { return state_->snapshot.elements(); }
  /// False until the first list arrived (or `restore`).
  bool has_baseline() const noexcept { return state_->snapshot.has_baseline(); }

  step_type operator()(const poll_state& poll) {
    step_type out;
    const std::uint64_t changes_before = state_->summary.polls_with_changes;
    if constexpr (detail::is_step<fetched>::value) {
      fetched result = call_fetch(poll);
      out.kind = result.kind;
      out.hint = result.hint;
      out.directed = result.directed;
      out.throttled = result.throttled;
      if (result.error) out.error.emplace(std::move(*result.error));
      if (result.value) diff(std::move(*result.value), poll);
    } else {
      // A list returned by reference is diffed where it is: the snapshot copies it once, into storage it reuses.
      decltype(auto) result = call_fetch(poll);
      diff(std::forward<decltype(result)>(result), poll);
    }
    // A poll that saw changes restarts the schedule (things are moving: look closely); a quiet one lets it grow.
    out.restart_schedule = state_->options.adaptive && state_->summary.polls_with_changes != changes_before;
    return out;
  }

 private:
  struct state {
    state(keyed_by<Key, Same> keys, const watch_options& given)
        : snapshot(std::move(keys.key), std::move(keys.same), with_unchanged(given.diff)), options(given) {}
    static diff_options with_unchanged(diff_options d) {
      d.report_unchanged = true;  // delivered only to the resync visitor, which is the only one that takes them
      return d;
    }
    pollster::snapshot<element_type, Key, Same> snapshot;
    watch_options options;
    watch_summary summary;
    duration last_resync{};
  };

  // Counts events and hands them on. `Resync` decides whether it takes `unchanged` events at all: the differ
  // asks at compile time, so an ordinary poll never even visits them.
  template <bool Resync>
  struct visitor {
    watch_check* self;
    std::uint64_t events = 0;
    void operator()(const added<const element_type&>& e) {
      ++events;
      ++(e.initial ? self->state_->summary.initial : self->state_->summary.added);
      detail::unwrapped(self->handler_)(e);
    }
    void operator()(const removed<const element_type&, key_type>& e) {
      ++events;
      ++self->state_->summary.removed;
      detail::unwrapped(self->handler_)(e);
    }
    void operator()(const changed<const element_type&>& e) {
      ++events;
      ++self->state_->summary.changed;
      detail::unwrapped(self->handler_)(e);
    }
    template <bool R = Resync, std::enable_if_t<R, int> = 0>
    void operator()(const unchanged<const element_type&>& e) {
      ++self->state_->summary.resynced;
      using handler_type = typename detail::unwrap_ref<Handler>::type;
      if constexpr (std::is_invocable_v<handler_type&, const unchanged<const element_type&>&>) {
        detail::unwrapped(self->handler_)(e);
      } else {
        (void)e;
      }
    }
  };

  decltype(auto) call_fetch(const poll_state& poll) {
    auto& fetch = detail::unwrapped(fetch_);
    if constexpr (std::is_invocable_v<fetch_type&, const poll_state&>) {
      return fetch(poll);
    } else {
      (void)poll;
      return fetch();
    }
  }

  bool resync_due(const poll_state& poll) const {
    const state& s = *state_;
    // The first list is initial, not a resync; nor is the first poll after a restored list.
    if (!s.snapshot.has_baseline() || s.summary.polls == 0) return false;
    const std::uint64_t after_first = s.summary.polls;  // polls before this one, the first included
    if (s.options.resync_every_polls != 0 && after_first % s.options.resync_every_polls == 0) return true;
    return s.options.resync_every > duration::zero() && poll.elapsed - s.last_resync >= s.options.resync_every;
  }

  template <class List>
  void diff(List&& list, const poll_state& poll) {
    state& s = *state_;
    const bool resync = resync_due(poll);
    std::uint64_t events = 0;
    if (resync) {
      visitor<true> visit{this};
      s.snapshot.update(std::forward<List>(list), visit);
      events = visit.events;
      ++s.summary.resyncs;
      s.last_resync = poll.elapsed;
    } else {
      visitor<false> visit{this};
      s.snapshot.update(std::forward<List>(list), visit);
      events = visit.events;
    }
    ++s.summary.polls;
    s.summary.size = s.snapshot.elements().size();
    if (events != 0) {
      ++s.summary.polls_with_changes;
    }
  }

  Fetch fetch_;
  Handler handler_;
  std::unique_ptr<state> state_;
};

namespace detail {
template <class Fetch, class Keys, class Handler>
using watch_check_for = watch_check<Fetch, typename as_keyed<Keys>::type, Handler>;
}  // namespace detail

/// What a watch ends with (`E` is the fetch's error type, `std::monostate` for a fetch that returns plain lists):
/// the poller's account and, in `report`, the watch_summary.
template <class E>
using watch_outcome = outcome<std::monostate, E, watch_summary>;

/// The check of a watch, for any driver: `runner.submit(pollster::watching(fetch, keys, handler, options), schedule,
/// stop, on_complete)` polls `fetch` on `schedule` (restarted after each poll that saw changes) and delivers every
/// event to `handler` on the runner's thread; the handle's `nudge()` verifies now. `keys` is a key projection, or
/// `keyed(key, same)`.
template <class Fetch, class Keys, class Handler>
detail::watch_check_for<Fetch, Keys, Handler> watching(Fetch fetch, Keys keys, Handler handler,
                                                       const watch_options& options = {}) {
  return {std::move(fetch), detail::as_keyed<Keys>::make(std::move(keys)), std::move(handler), options};
}

/// A blocking watch: `run(clock)` polls until the stop rule, a failed fetch or `cancel()` ends it, delivering
/// events to the handler on the calling thread. `nudge()` and `cancel()` may be called from any thread (and from
/// the handler or the fetch) and wake the run at once, on any clock. The fetch and the handler stay in the watcher,
/// so state they keep survives the run (`handler()` reads it); the schedule and the stop rule are prototypes, fresh
/// for every run. So does the last list: a second run reports what changed since the first one ended, as changes
/// (and a handler that threw sees its change again, not an initial list); `resume_from()` gives a saved list to
/// start from instead.
template <class Fetch, class Keys, class Handler, class Schedule, class Stop = never>
class watcher {
  // (std::ref of a std::reference_wrapper is the wrapper itself: a watcher of std::ref(api) holds one level.)
  using check_type = detail::watch_check_for<decltype(std::ref(std::declval<Fetch&>())), Keys,
                                             decltype(std::ref(std::declval<Handler&>()))>;
  POLLSTER_CHECK_ARGUMENTS("pollster::watcher", check_type, Schedule, Stop);

 public:
  using error_type = typename check_type::error_type;
  using outcome_type = watch_outcome<error_type>;
  using element_type = typename check_type::element_type;

  watcher(Fetch fetch, Keys keys, Handler handler, Schedule schedule, Stop stop = Stop{},
          const watch_options& options = {}, const poll_options& poll = {})
      : fetch_(std::move(fetch)),
        keys_(std::move(keys)),
        handler_(std::move(handler)),
        schedule_(std::move(schedule)),
        stop_(std::move(stop)),
        options_(options),
        poll_(poll) {}
  watcher(const watcher&) = delete;
  watcher& operator=(const watcher&) = delete;

  /// Watches on `clock` (a manual_clock runs a simulated day in microseconds). A fetch or handler that throws ends
  /// the run and the exception propagates unchanged. `poll.cancel` cancels the run like `cancel()`. A `cancel()`
  /// made while no run is in progress cancels the next run at once; either way it is spent when that run ends.
  template <class Clock>
  outcome_type run(Clock& clock) {
    return run_with<Clock, detail::no_side_work>(clock, nullptr);
  }
  /// The same, and `side`'s due work runs between polls, on this thread: `side` is a `subscriptions`
  /// (subscription.hpp), or anything with `time_point next_due() const` and `run_due(time_point)`. The run sleeps
  /// until the earlier of its next poll and `side.next_due()`, so a due redelivery costs no list call. Work still
  /// pending when the run ends stays in `side`.
  template <class Clock, class Side>
  outcome_type run(Clock& clock, Side& side) {
    static_assert(std::is_convertible_v<decltype(side.next_due()), typename Clock::time_point>,
                  "pollster::watcher::run: side.next_due() must give a time point of the clock");
    return run_with(clock, &side);
  }

  /// The next run diffs its first list against `records` (a list saved from an earlier process) and reports the
  /// differences as changes instead of an initial list.
  void resume_from(std::vector<element_type> records) { baseline_ = std::move(records); }
  /// The list the watch last saw, to save for `resume_from` (a copy; from the run's own thread during a run, the
  /// list of its last completed poll). Empty until a list arrived.
  std::vector<element_type> last_list() const {
    if (live_ != nullptr) return live_->last_list();
    return baseline_ ? *baseline_ : std::vector<element_type>{};
  }

  /// Check now (a webhook or message said something changed); the list call, not the message, says what. Any
  /// thread; wakes the run at once. Before or after a run it does nothing.
  void nudge() { control_.request_nudge(); }
  /// Ends the run with cause cancelled (or the next run at once, when none is in progress). Any thread.
  void cancel() { control_.request_cancel(); }

  Handler& handler() noexcept { return handler_; }
  const Handler& handler() const noexcept { return handler_; }

 private:
  template <class Clock, class Side>
  outcome_type run_with(Clock& clock, Side* side) {
    static_assert(is_clock_v<Clock>, "pollster::watcher::run: the argument must be a pollster clock");
    using time_point = typename Clock::time_point;
    check_type check(std::ref(fetch_), detail::as_keyed<Keys>::make(keys_), std::ref(handler_), options_);
    if (baseline_) check.restore(std::move(*baseline_));
    baseline_.reset();
    poller<check_type, Schedule, Stop, time_point> p(std::move(check), schedule_, stop_, clock.now(), poll_);
    control_.begin_run();
    // However the run ends (a handler that threw included), the last list is kept for the next run.
    struct end_of_run {
      watcher& self;
      const check_type& check;
      ~end_of_run() {
        self.live_ = nullptr;
        self.control_.end_run();
        if (!check.has_baseline()) return;
        try {
          self.baseline_ = check.last_list();
        } catch (...) {  // out of memory: the next run starts from scratch
        }
      }
    } keep{*this, p.check()};
    live_ = &p.check();
    detail::run_blocking(p, clock, poll_.cancel, !poll_.wait_first, &control_, side);
    return p.take_outcome();
  }

  Fetch fetch_;
  Keys keys_;
  Handler handler_;
  Schedule schedule_;
  Stop stop_;
  watch_options options_;
  poll_options poll_;
  detail::remote_control control_;
  std::optional<std::vector<element_type>> baseline_;  // what the next run's first list is diffed against
  const check_type* live_ = nullptr;                    // the check of the run in progress
};

/// Builds a blocking watcher, deducing its types (C++17 class template argument deduction works too).
template <class Fetch, class Keys, class Handler, class Schedule, class Stop = never>
watcher<Fetch, Keys, Handler, Schedule, Stop> make_watcher(Fetch fetch, Keys keys, Handler handler, Schedule schedule,
                                                           Stop stop = Stop{}, const watch_options& options = {},
                                                           const poll_options& poll = {}) {
  return {std::move(fetch), std::move(keys), std::move(handler), std::move(schedule), std::move(stop), options, poll};
}

POLLSTER_NAMESPACE_END
