// SPDX-License-Identifier: MIT
#pragma once

// Watch a collection: poll a list, diff successive snapshots (diff.hpp), and deliver added / removed / changed
// events, the first list as `initial` additions. Three things make it more than a loop around `diff`:
//
//  * adaptive cadence: after a poll that saw changes the schedule starts again from its first delay (things are
//    moving: look closely), otherwise it goes on growing (quiet: back off towards the cap);
//  * notify-then-verify: `nudge()` when a webhook or AMQP message says something changed. The message is never
//    trusted; the nudge only makes the next list call happen now, and the diff says what really changed;
//  * a periodic resync: every N polls or every so long, the records that did not change are delivered too, on
//    their own channel (`unchanged<const T&>`), so a consumer can repair drift without ever seeing a fake change.
//
// There is no loop here either: the watch is the check of a `poller` (poll.hpp) whose schedule is wrapped to
// restart after a change. `submit_watch` hands it to a runner (thousands of watchers on one thread under one
// rate budget); the blocking `watcher::run` drives it on a private runner, which is what gives it a thread-safe
// `nudge()` and `cancel()`.

#include "await.hpp"  // await_operation and friends: the other half of "status checks" (watch.hpp includes both)
#include "clock.hpp"
#include "detail/config.hpp"
#include "detail/text.hpp"
#include "diff.hpp"
#include "poll.hpp"
#include "runner.hpp"
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

POLLSTER_NAMESPACE_BEGIN

/// What a watch has seen: the value of its outcome (`outcome<watch_summary, E>::last_value`).
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

/// The count of polls that saw a change, shared by a watch's check and its schedule (one heap block per watch,
/// so it stays put while the poller that holds both moves).
struct change_counter {
  std::uint64_t polls_with_changes = 0;
};

}  // namespace detail

/// Wraps a schedule so that it starts again from its first delay after a poll that saw changes. It reads the
/// count of such polls from the watch it belongs to; a copy (a preview) keeps its own idea of what it has seen.
template <class Schedule>
class adaptive_schedule : public detail::schedule_base<adaptive_schedule<Schedule>> {
 public:
  adaptive_schedule(Schedule inner, const detail::change_counter* changes, bool adaptive)
      : inner_(std::move(inner)), changes_(changes), seen_(changes->polls_with_changes), adaptive_(adaptive) {}

  duration next() {
    if (adaptive_ && changes_->polls_with_changes != seen_) {
      seen_ = changes_->polls_with_changes;
      inner_.reset();
    }
    return inner_.next();
  }
  void reset() { inner_.reset(); }
  /// None: a change can always bring the first delay back.
  std::optional<duration> plateau() const noexcept { return adaptive_ ? std::nullopt : inner_.plateau(); }
  /// For a runner, which seeds each jittered schedule on its own.
  template <class S = Schedule, class = decltype(std::declval<S&>().reseed(std::uint64_t{}))>
  void reseed(std::uint64_t seed) {
    inner_.reseed(seed);
  }
  const Schedule& inner() const noexcept { return inner_; }

 private:
  Schedule inner_;
  const detail::change_counter* changes_;
  std::uint64_t seen_;
  bool adaptive_;
};

/// The check of a watch: fetch the list, diff it against the last one, deliver events to `handler`, count them.
/// `fetch` returns the list (any range of records, by value or by reference), or a `step<List, E>` to pass an error
/// (`transient(e)`: retried on the schedule, the last list kept; `failed(e)`: the watch ends) or a server hint
/// (`pending(list, after(30s))`); it may take the `const poll_state&`. `handler` takes `const added<const T&>&`,
/// `const removed<K, const T&>&`, `const changed<const T&>&` and, to receive resyncs, `const unchanged<const T&>&`
/// (a struct with overloads, or a generic lambda). `Fetch` and `Handler` may be `std::reference_wrapper`s.
template <class Fetch, class Keyed, class Handler>
class watch_check;

template <class Fetch, class Key, class Same, class Handler>
class watch_check<Fetch, keyed_by<Key, Same>, Handler> {
  using fetch_type = typename detail::unwrap_ref<Fetch>::type;
  using fetched = std::decay_t<typename detail::check_result<fetch_type>::type>;
  using traits = detail::list_fetch_traits<fetched>;
  using list_type = typename traits::list_type;

 public:
  using element_type = detail::range_element_t<list_type>;
  using key_type = detail::key_type_t<Key, element_type>;
  using error_type = typename traits::error_type;
  using step_type = step<watch_summary, error_type>;

  watch_check(Fetch fetch, keyed_by<Key, Same> keys, Handler handler, const watch_options& options)
      : fetch_(std::move(fetch)),
        handler_(std::move(handler)),
        state_(std::make_unique<state>(std::move(keys), options)) {
    if (options.resync_every < duration::zero()) {
      detail::throw_invalid("watch_options", "resync_every", ">= 0 (zero: never)",
                            detail::duration_text(options.resync_every));
    }
  }

  /// What the schedule reads to restart after a change.
  const detail::change_counter* changes() const noexcept { return &state_->changes; }

  step_type operator()(const poll_state& poll) {
    step_type out;
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
    out.value = state_->summary;
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
    detail::change_counter changes;
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
    void operator()(const removed<key_type, const element_type&>& e) {
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
    if (!s.snapshot.has_baseline()) return false;  // the first list is initial, not a resync
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
      ++s.changes.polls_with_changes;
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

/// What a watch ends with (`E` is the fetch's error type, `std::monostate` for a fetch that returns plain lists).
template <class E>
using watch_outcome = outcome<watch_summary, E>;

/// Submits a watch to `runner`: `fetch` is polled on `schedule` (restarted after each poll that saw changes) until
/// `stop` ends it, the fetch fails for good, or the handle cancels it; every event goes to `handler` on the runner's
/// thread. The handle's `nudge()` verifies now (notify, then verify through the list call). `on_complete` receives
/// the `watch_outcome`. `keys` is a key projection, or `keyed(key, same)`.
template <class Clock, class Fetch, class Keys, class Handler, class Schedule, class Stop, class OnComplete>
handle submit_watch(runner<Clock>& on, Fetch fetch, Keys keys, Handler handler, Schedule schedule, Stop stop,
                    OnComplete on_complete, const watch_options& options = {}, const submit_options& submit = {}) {
  using check_type = detail::watch_check_for<Fetch, Keys, Handler>;
  check_type check(std::move(fetch), detail::as_keyed<Keys>::make(std::move(keys)), std::move(handler), options);
  adaptive_schedule<Schedule> adaptive(std::move(schedule), check.changes(), options.adaptive);
  return on.submit(std::move(check), std::move(adaptive), std::move(stop), std::move(on_complete), submit);
}

/// A blocking watch: `run(clock)` polls until the stop rule, a failed fetch or `cancel()` ends it, delivering
/// events to the handler on the calling thread. `nudge()` and `cancel()` may be called from any thread (and from
/// the handler or the fetch). The fetch and the handler stay in the watcher, so state they keep survives the run
/// (`handler()` reads it); the schedule and the stop rule are prototypes, fresh for every run.
template <class Fetch, class Keys, class Handler, class Schedule, class Stop = never>
class watcher {
  using check_type =
      detail::watch_check_for<std::reference_wrapper<Fetch>, Keys, std::reference_wrapper<Handler>>;

 public:
  using error_type = typename check_type::error_type;
  using outcome_type = watch_outcome<error_type>;

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
  /// the run and the exception propagates unchanged. `poll.token` stops the run like `cancel()`.
  template <class Clock>
  outcome_type run(Clock& clock) {
    runner<Clock> driver(clock);
    submit_options submit;
    submit.poll = poll_;
    submit.poll.token = stop_token{};  // the runner refuses tokens; ours is bridged to cancel() below
    std::optional<outcome_type> result;
    handle h = submit_watch(driver, std::ref(fetch_), keys_, std::ref(handler_), schedule_, stop_,
                            [&result](outcome_type&& o) { result.emplace(std::move(o)); }, options_, submit);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      current_ = h;
      if (cancel_next_) h.cancel();  // a cancel() that came between runs is this run's
      cancel_next_ = false;
    }
    struct unpublish {
      watcher* self;
      ~unpublish() {
        std::lock_guard<std::mutex> lock(self->mutex_);
        self->current_ = handle{};
        self->cancel_next_ = false;  // a run that ended owes nothing to the next one
      }
    } guard{this};
    auto cancel_on_stop = [h] { h.cancel(); };
    stop_callback<decltype(cancel_on_stop)> bridge(poll_.token, cancel_on_stop);
    driver.run();
    if (result->exception) std::rethrow_exception(result->exception);
    return std::move(*result);
  }

  /// Check now (a webhook or message said something changed); the list call, not the message, says what. Any
  /// thread. Before or after a run it does nothing.
  void nudge() {
    std::lock_guard<std::mutex> lock(mutex_);
    current_.nudge();
  }
  /// Ends the run in progress with cause cancelled, or, when none is in progress, the next run to start (before
  /// its first list call), once: the run after that goes on. Any thread.
  void cancel() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (current_) {
      current_.cancel();
    } else {
      cancel_next_ = true;
    }
  }

  Handler& handler() noexcept { return handler_; }
  const Handler& handler() const noexcept { return handler_; }

 private:
  Fetch fetch_;
  Keys keys_;
  Handler handler_;
  Schedule schedule_;
  Stop stop_;
  watch_options options_;
  poll_options poll_;
  std::mutex mutex_;
  handle current_;
  bool cancel_next_ = false;  // cancel() found no run in progress: the next run starts cancelled
};

/// Builds a blocking watcher, deducing its types (C++17 class template argument deduction works too).
template <class Fetch, class Keys, class Handler, class Schedule, class Stop = never>
watcher<Fetch, Keys, Handler, Schedule, Stop> make_watcher(Fetch fetch, Keys keys, Handler handler, Schedule schedule,
                                                           Stop stop = Stop{}, const watch_options& options = {},
                                                           const poll_options& poll = {}) {
  return {std::move(fetch), std::move(keys), std::move(handler), std::move(schedule), std::move(stop), options, poll};
}

POLLSTER_NAMESPACE_END
