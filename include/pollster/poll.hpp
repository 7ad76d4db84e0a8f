// SPDX-License-Identifier: MIT
#pragma once

// Polling: what a check says (`step`), what a run ends with (`outcome`), the one loop that combines a check with a
// schedule and a stop rule (`poller`, in the spirit of OpenStack Heat's TaskRunner) and the blocking driver over
// it (`poll_until`). The runner and the watchers drive the same `poller`: there is one loop, and thin facades.
//
// The delay before the next check is decided in this order (DESIGN.md):
//   schedule value -> jitter -> clamp to the schedule's [floor, cap]   (inside schedule.next())
//   -> the check's own direction (`poll_again_in`) replaces the schedule's value, which is then not consumed
//   -> a server hint is a floor, max(delay, hint), with the hint itself capped by `poll_options::max_hint`
//   -> clamp to the time left before the deadline; a hint that points past the deadline ends the run at once.

#include "clock.hpp"
#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"
#include "retry_after.hpp"  // parse_retry_after: a check turns the header into after(...)
#include "stop.hpp"

#include <algorithm>    // min, max
#include <chrono>       // duration_cast, time_point
#include <cstdint>      // uint8_t, uint32_t, uint64_t
#include <exception>    // exception_ptr
#include <functional>   // function (hook_functions only)
#include <new>          // nothrow
#include <optional>     // optional
#include <stdexcept>    // logic_error
#include <string>       // string
#include <type_traits>  // decay_t, enable_if_t, is_invocable_v, is_empty_v
#include <utility>      // move, forward, swap

POLLSTER_NAMESPACE_BEGIN

namespace detail {
/// One address per clock type, also across translation units: lets a time point travel through a clock-free
/// value (a hint, a deadline) and be refused by a poller that runs on another clock.
template <class Clock>
inline constexpr char clock_identity = 0;

struct no_payload {};

/// poll_until's access to the poller's blocking loop (`poller::drive`), which is not part of the poller's API.
struct blocking_driver {
  template <class Poller, class Clock>
  static void run(Poller& p, Clock& clock, const stop_token& token, bool immediate) {
    p.drive(clock, token, immediate);
  }
};
}  // namespace detail

/// A time point of some clock, remembered with the clock it belongs to. Built by `pollster::at(tp)`.
struct clock_time {
  duration since_epoch{};
  const void* clock = nullptr;  ///< which clock: a poller refuses a time point of another clock

  template <class TimePoint>
  static clock_time of(TimePoint t) noexcept {
    return {std::chrono::duration_cast<duration>(t.time_since_epoch()), &detail::clock_identity<typename TimePoint::clock>};
  }
};

/// "At this time point of the poller's clock": a hint ("come back at 12:00:05") or a deadline.
template <class TimePoint>
clock_time at(TimePoint t) noexcept {
  return clock_time::of(t);
}

/// What a server said about when to come back: nothing, "after 30 s" or "at this time point". A hint is a floor
/// under the schedule's delay, never a ceiling: the server knows when it will be ready, not that it is ready.
class retry_hint {
 public:
  enum class form : std::uint8_t { none, after, at };

  constexpr retry_hint() noexcept = default;
  /// "Come back at t" (a time point of the poller's clock, via `pollster::at`).
  retry_hint(clock_time t) noexcept : form_(form::at), value_(t.since_epoch), clock_(t.clock) {}  // NOLINT(implicit)

  /// "Come back after d"; a negative delay is a hint to come back at once.
  static retry_hint after(duration d) noexcept {
    retry_hint h;
    h.form_ = form::after;
    h.value_ = std::max(d, duration::zero());
    return h;
  }
  /// What `parse_retry_after` returns: no hint when it found none.
  /// (A template, so that `after(30s)` never has to choose between a duration and an optional one.)
  template <class Maybe, class = std::enable_if_t<std::is_same_v<Maybe, std::optional<duration>>>>
  static retry_hint after(const Maybe& d) noexcept {
    return d ? after(*d) : retry_hint{};
  }

  form kind() const noexcept { return form_; }
  explicit operator bool() const noexcept { return form_ != form::none; }
  /// The delay for `after`; the time since the clock's epoch for `at`.
  duration value() const noexcept { return value_; }
  const void* clock() const noexcept { return clock_; }

 private:
  form form_ = form::none;
  duration value_{};
  const void* clock_ = nullptr;
};

/// "Come back after d" (`Retry-After: 120` is `after(120s)`; `after(parse_retry_after(...))` is no hint when the
/// header was missing or malformed).
inline retry_hint after(duration d) noexcept { return retry_hint::after(d); }
template <class Maybe, class = std::enable_if_t<std::is_same_v<Maybe, std::optional<duration>>>>
retry_hint after(const Maybe& d) noexcept {
  return retry_hint::after(d);
}

/// What one check said.
enum class step_kind : std::uint8_t {
  pending,    ///< not yet: poll again (the step may carry the value seen so far, a hint, or a directed delay)
  done,       ///< finished, with a value
  failed,     ///< finished for good, with an error (a permanent failure: never retried)
  transient,  ///< this check failed, the operation may not have: retry on the schedule
};

constexpr const char* to_string(step_kind k) noexcept {
  switch (k) {
    case step_kind::pending: return "pending";
    case step_kind::done: return "done";
    case step_kind::failed: return "failed";
    case step_kind::transient: return "transient";
  }
  return "unknown";
}

namespace detail {
/// What the factory functions build: a step whose T and E are not known yet. It converts to any `step<T, E>`
/// whose types can hold its payload, so a check returns `pollster::done(s)` without naming types twice.
template <class V = no_payload, class Er = no_payload>
struct step_draft {
  step_kind kind = step_kind::pending;
  V value{};  // (a default member initialiser of a template is only instantiated when used)
  Er error{};
  retry_hint hint{};
  duration directed{};
  bool has_directed = false;
  bool throttled = false;
};

template <class V>
constexpr bool is_hint_like_v =
    std::is_same_v<std::decay_t<V>, retry_hint> || std::is_same_v<std::decay_t<V>, clock_time>;

template <class V>
struct is_duration_arg : std::false_type {};
template <class Rep, class Period>
struct is_duration_arg<std::chrono::duration<Rep, Period>> : std::true_type {};
}  // namespace detail

/// What one check returns. Build it with `pending`, `done`, `failed`, `transient`, `poll_again_in`, `throttled`.
template <class T, class E>
struct step {
  using value_type = T;
  using error_type = E;

  step_kind kind = step_kind::pending;
  std::optional<T> value;             ///< done: the result; pending: the state seen so far (kept as last_value)
  std::optional<E> error;             ///< failed or transient: what went wrong (kept as last_error)
  retry_hint hint;                    ///< the server's "come back after / at"
  std::optional<duration> directed;   ///< the check's own next delay (Heat's PollDelay), replacing the schedule's
  bool throttled = false;             ///< the server said "rate limited" (HTTP 429 or 413): a runner backs off

  step() = default;
  template <class V, class Er>
  step(detail::step_draft<V, Er> draft)  // NOLINT(google-explicit-constructor): the point of the factories
      : kind(draft.kind), hint(draft.hint), throttled(draft.throttled) {
    if constexpr (!std::is_same_v<V, detail::no_payload>) {
      static_assert(std::is_constructible_v<T, V&&>, "pollster::step: the value does not convert to the step's T");
      value.emplace(std::move(draft.value));
    } else if (draft.kind == step_kind::done) {
      if constexpr (std::is_default_constructible_v<T>) value.emplace();  // done() for a step<monostate, E>
    }
    if constexpr (!std::is_same_v<Er, detail::no_payload>) {
      static_assert(std::is_constructible_v<E, Er&&>, "pollster::step: the error does not convert to the step's E");
      error.emplace(std::move(draft.error));
    }
    if (draft.has_directed) directed = draft.directed;
  }

  bool is_done() const noexcept { return kind == step_kind::done; }
  bool is_failed() const noexcept { return kind == step_kind::failed; }
  bool is_final() const noexcept { return kind == step_kind::done || kind == step_kind::failed; }
};

// The factories build their drafts by aggregate initialisation, so a value or an error type needs no default
// constructor and no assignment: a move (or copy) is all a step asks of it.

/// Not yet; poll again on the schedule.
inline detail::step_draft<> pending() { return {}; }
/// Not yet, and the server said when to come back.
inline detail::step_draft<> pending(retry_hint hint) { return {step_kind::pending, {}, {}, hint}; }
/// Not yet; `value` is the state seen so far ("BUILD"), kept as the outcome's last value whatever happens next.
template <class V, class = std::enable_if_t<!detail::is_hint_like_v<V>>>
detail::step_draft<std::decay_t<V>> pending(V&& value, retry_hint hint = {}) {
  static_assert(!detail::is_duration_arg<std::decay_t<V>>::value,
                "pollster::pending(delay): write pending(pollster::after(delay)) for a hint, or poll_again_in(delay)");
  return {step_kind::pending, std::forward<V>(value), {}, hint};
}
/// Finished: the value the run returns.
template <class V>
detail::step_draft<std::decay_t<V>> done(V&& value) {
  return {step_kind::done, std::forward<V>(value)};
}
/// Finished, for a step whose T carries nothing (`std::monostate`).
inline detail::step_draft<> done() { return {step_kind::done}; }
/// Failed for good: the run ends with cause `failed`. Never retried.
template <class Er>
detail::step_draft<detail::no_payload, std::decay_t<Er>> failed(Er&& error) {
  return {step_kind::failed, {}, std::forward<Er>(error)};
}
/// This check failed (a timeout, a 503) but the operation may still succeed: retry on the schedule. The error
/// is kept as the outcome's last error.
template <class Er>
detail::step_draft<detail::no_payload, std::decay_t<Er>> transient(Er&& error, retry_hint hint = {}) {
  return {step_kind::transient, {}, std::forward<Er>(error), hint};
}
/// Not yet, and the check itself knows when to look again (Heat's `PollDelay(n)`): `delay` replaces the
/// schedule's next value (the schedule is not consumed). A server hint still acts as a floor; the deadline clamps.
inline detail::step_draft<> poll_again_in(duration delay) {
  if (delay < duration::zero()) detail::throw_invalid("poll_again_in", "delay", ">= 0", detail::duration_text(delay));
  return {step_kind::pending, {}, {}, {}, delay, true};
}
/// The same, with the state seen so far.
template <class V>
detail::step_draft<std::decay_t<V>> poll_again_in(duration delay, V&& value) {
  return {step_kind::pending, std::forward<V>(value), {}, {}, poll_again_in(delay).directed, true};
}
/// The server said "rate limited" (HTTP 429 or 413), usually with a Retry-After: pending, marked throttled, so a
/// runner can back off the whole group that shares the budget.
inline detail::step_draft<> throttled(retry_hint hint = {}) {
  return {step_kind::pending, {}, {}, hint, {}, false, true};
}
/// Rate limited, with the error to keep as the last error.
template <class Er>
detail::step_draft<detail::no_payload, std::decay_t<Er>> throttled(Er&& error, retry_hint hint) {
  return {step_kind::transient, {}, std::forward<Er>(error), hint, {}, false, true};
}

/// Heat's Delay resource (heat/engine/resources/openstack/heat/delay.py, `_check_complete`, Heat 26): while at least
/// `threshold` is left it raises PollDelay(int(remaining // 2)), else returns False (poll again next step); Heat's
/// scheduler steps once per `granularity` (1 s), so every delay is a whole number of steps, at least one. For a 60 s
/// wait checked from t = 0: checks at 0, 30, 45, 52, 56, 58, 59, 60; a fractional wait is seen at the next whole
/// step, as in Heat (60.5 s: ..., 59, 60, 61). Return `poll_again_in(halve_toward(eta - now))`.
/// Test: "halve_toward reproduces Heat's Delay resource, fractional waits included".
inline duration halve_toward(duration remaining, duration granularity = std::chrono::seconds(1),
                             duration threshold = std::chrono::seconds(4)) {
  if (granularity <= duration::zero()) {
    detail::throw_invalid("halve_toward", "granularity", "> 0", detail::duration_text(granularity));
  }
  if (remaining <= duration::zero()) return duration::zero();
  // PollDelay(n) waits max(n, 1) steps (TaskRunner.step); floor(floor(r / g) / 2) is Python's int(r // 2) in steps.
  if (remaining >= threshold) return granularity * std::max<duration::rep>((remaining / granularity) / 2, 1);
  return granularity;
}

/// Why a run ended.
enum class cause : std::uint8_t {
  running,    ///< not ended yet (an outcome read from a poller still in progress)
  done,       ///< a check said done: `value()` holds the result
  failed,     ///< a check said failed: `error()` holds the error
  exhausted,  ///< the stop rule said stop (attempts, elapsed, custom): `stop` says which; nothing is invented
  deadline,   ///< the deadline was reached, or a server hint pointed past it
  cancelled,  ///< a stop token or `cancel()`; never retried
  exception,  ///< the check threw and a runner captured it into `outcome::exception` (poll_until rethrows instead)
};

/// "done", "failed", ...: for logs and formatters.
constexpr const char* to_string(cause c) noexcept {
  switch (c) {
    case cause::running: return "running";
    case cause::done: return "done";
    case cause::failed: return "failed";
    case cause::exhausted: return "exhausted";
    case cause::deadline: return "deadline";
    case cause::cancelled: return "cancelled";
    case cause::exception: return "exception";
  }
  return "unknown";
}

/// Thrown by `outcome::value()` when the run did not end done (and by `error()` when it did not end failed).
class bad_outcome_access : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// What a run ended with: a full account, in every case. Exhaustion and cancellation keep the last value and the
/// last error seen; nothing pretends to be an error the server sent.
template <class T, class E>
struct outcome {
  using value_type = T;
  using error_type = E;

  pollster::cause cause = pollster::cause::running;
  stop_reason stop = stop_reason::none;  ///< the stop rule's reason when cause is exhausted or deadline
  std::uint32_t nudges = 0;              ///< nudges received
  std::optional<T> last_value;           ///< the latest value any check reported (the result when done)
  std::optional<E> last_error;           ///< the latest error any check reported (the error when failed)
  std::exception_ptr exception;          ///< cause exception: what the check threw (runner only)
  std::uint64_t attempts = 0;            ///< checks started
  duration elapsed{};                    ///< from the start to the end of the run
  duration slept{};                      ///< idle time between checks (includes budget_wait)
  duration budget_wait{};                ///< of which: waiting for a shared rate budget (a runner adds it)

  bool ok() const noexcept { return cause == pollster::cause::done; }
  explicit operator bool() const noexcept { return ok(); }

  /// The result; throws bad_outcome_access unless the run ended done.
  const T& value() const& {
    if (cause != pollster::cause::done || !last_value) throw_access("value()", "done");
    return *last_value;
  }
  T&& value() && {
    if (cause != pollster::cause::done || !last_value) throw_access("value()", "done");
    return std::move(*last_value);
  }
  /// The permanent error; throws bad_outcome_access unless the run ended failed.
  const E& error() const& {
    if (cause != pollster::cause::failed || !last_error) throw_access("error()", "failed");
    return *last_error;
  }

 private:
  [[noreturn]] void throw_access(const char* what, const char* needed) const {
    throw bad_outcome_access(std::string("pollster::outcome: ") + what + " needs cause " + needed + ", got " +
                             to_string(cause));
  }
};

/// What the check (optionally) and the hooks see. New fields may be added; existing ones keep their meaning.
struct poll_state {
  std::uint64_t attempt = 0;  ///< the number of the current check, from 1 (0 before the first)
  duration elapsed{};         ///< since the run started
  duration last_delay{};      ///< the delay that preceded the current check (zero for an immediate one)
  duration next_delay{};      ///< before_sleep: the delay about to start
  bool nudged = false;        ///< the current check was brought forward by a nudge
};

/// Why the coming delay has the length it has (before_sleep hook).
enum class delay_reason : std::uint8_t {
  schedule,  ///< the schedule's value
  hint,      ///< a server hint (this response's or a remembered one) was longer than the schedule's value
  deadline,  ///< shortened to land on the deadline, where one final check is made
  directed,  ///< the check's own `poll_again_in`
};

constexpr const char* to_string(delay_reason r) noexcept {
  switch (r) {
    case delay_reason::schedule: return "schedule";
    case delay_reason::hint: return "hint";
    case delay_reason::deadline: return "deadline";
    case delay_reason::directed: return "directed";
  }
  return "unknown";
}

/// Named options of a run. A plain aggregate: C++20 callers write `{.wait_first = true, .max_hint = 5min}`.
struct poll_options {
  /// Sleep before the first check. Off by default: Heat switched to an immediate first poll in 2015 and its
  /// functional tests ran up to 20 % faster.
  bool wait_first = false;
  /// The longest server hint obeyed: a longer one is shortened to this. The default trusts the server.
  duration max_hint = duration::max();
  /// How long a hint stays in force after the response that carried it, for later responses that carry none.
  /// The default keeps it until a response brings a new one; zero forgets it at once.
  duration hint_lifetime = duration::max();
  /// After a nudge, restart the schedule from its first delay (something changed: look closely again).
  bool reset_on_nudge = false;
  /// An absolute deadline on the poller's clock (`pollster::at(clock.now() + 15min)`), besides any stop rule.
  std::optional<clock_time> deadline;
  /// poll_until only: stops the run, interrupting a sleep at once. (A poller is cancelled with `cancel()`.)
  stop_token token;
};

/// The hooks type for "no hooks": every call compiles to nothing.
struct no_hooks {};

/// Hooks from std::function objects, when a struct with member functions is more than you want. Each unset
/// function costs one test per call. Any type with some of these three member functions can be hooks.
template <class T, class E>
struct hook_functions {
  std::function<void(const poll_state&)> on_before_attempt;
  std::function<void(const poll_state&, const step<T, E>&)> on_after_attempt;
  std::function<void(const poll_state&, delay_reason)> on_before_sleep;

  void before_attempt(const poll_state& s) const {
    if (on_before_attempt) on_before_attempt(s);
  }
  void after_attempt(const poll_state& s, const step<T, E>& st) const {
    if (on_after_attempt) on_after_attempt(s, st);
  }
  void before_sleep(const poll_state& s, delay_reason r) const {
    if (on_before_sleep) on_before_sleep(s, r);
  }
};

namespace detail {

template <class H, class = void>
struct has_before_attempt : std::false_type {};
template <class H>
struct has_before_attempt<H, std::void_t<decltype(std::declval<H&>().before_attempt(std::declval<const poll_state&>()))>>
    : std::true_type {};
template <class H, class S, class = void>
struct has_after_attempt : std::false_type {};
template <class H, class S>
struct has_after_attempt<
    H, S, std::void_t<decltype(std::declval<H&>().after_attempt(std::declval<const poll_state&>(), std::declval<const S&>()))>>
    : std::true_type {};
template <class H, class = void>
struct has_before_sleep : std::false_type {};
template <class H>
struct has_before_sleep<
    H, std::void_t<decltype(std::declval<H&>().before_sleep(std::declval<const poll_state&>(), delay_reason{}))>>
    : std::true_type {};

/// The check's return type, whichever form it takes: `step<T, E>(const poll_state&)` or `step<T, E>()`. Empty
/// for anything else, so an overload that is handed a non-check drops out quietly.
template <class Check, class = void>
struct check_result {};
template <class Check>
struct check_result<Check, std::enable_if_t<std::is_invocable_v<Check&, const poll_state&>>> {
  using type = std::invoke_result_t<Check&, const poll_state&>;
};
template <class Check>
struct check_result<Check, std::enable_if_t<!std::is_invocable_v<Check&, const poll_state&> &&
                                            std::is_invocable_v<Check&>>> {
  using type = std::invoke_result_t<Check&>;
};

template <class S>
struct is_step : std::false_type {};
template <class T, class E>
struct is_step<step<T, E>> : std::true_type {};

/// Holds a member that may be an empty object (hooks, a captureless check, `never`) without spending a byte on
/// it: a poller derives from these, so C++17's empty-base optimisation applies. `Slot` tells apart two members
/// of the same type.
template <class X, int Slot, bool Empty = std::is_empty_v<X> && !std::is_final_v<X>>
struct compressed : private X {
  explicit compressed(X x) : X(std::move(x)) {}
  X& get() noexcept { return *this; }
  const X& get() const noexcept { return *this; }
};
template <class X, int Slot>
struct compressed<X, Slot, false> {
  explicit compressed(X x) : x_(std::move(x)) {}
  X& get() noexcept { return x_; }
  const X& get() const noexcept { return x_; }

 private:
  X x_;
};

/// Owns an object that most holders never need, so that the holder pays one pointer for it until it does. Copies
/// deep, like the member it replaces.
template <class X>
class cold_box {
 public:
  cold_box() noexcept = default;
  cold_box(const cold_box& other) : x_(other.x_ != nullptr ? new X(*other.x_) : nullptr) {}
  cold_box(cold_box&& other) noexcept : x_(other.x_) { other.x_ = nullptr; }
  cold_box& operator=(cold_box other) noexcept {
    std::swap(x_, other.x_);
    return *this;
  }
  ~cold_box() { delete x_; }

  X* get() const noexcept { return x_; }
  /// Creates it on first use (may throw std::bad_alloc; nothing changes then).
  X& make() {
    if (x_ == nullptr) x_ = new X();
    return *x_;
  }
  /// The same for a noexcept caller: null when memory is exhausted.
  X* try_make() noexcept {
    if (x_ == nullptr) x_ = new (std::nothrow) X();
    return x_;
  }

 private:
  X* x_ = nullptr;
};

/// A flag that says a cold_box holds something, and moves with it: a move clears it in the source, as the box's
/// move empties the source's box.
class box_flag {
 public:
  box_flag() noexcept = default;
  box_flag(const box_flag&) noexcept = default;
  box_flag(box_flag&& other) noexcept : set_(other.set_) { other.set_ = false; }
  box_flag& operator=(const box_flag&) noexcept = default;
  box_flag& operator=(box_flag&& other) noexcept {
    const bool set = other.set_;
    other.set_ = false;
    set_ = set;
    return *this;
  }
  ~box_flag() = default;

  void set() noexcept { set_ = true; }
  explicit operator bool() const noexcept { return set_; }

 private:
  bool set_ = false;
};

/// A loop's working copy of a small, trivially copyable object (a `geometric`, a `constant`), which the compiler
/// can keep in registers, written back with `store` before other code reads the original; for any other type, the
/// original itself.
template <class X, bool Copy = std::is_trivially_copyable_v<X> && std::is_trivially_copy_assignable_v<X> &&
                               std::is_trivially_copy_constructible_v<X> && sizeof(X) <= 64>
class working_copy {
 public:
  explicit working_copy(const X& x) noexcept : copy_(x) {}
  X& get() noexcept { return copy_; }
  void store(X& original) const noexcept { original = copy_; }

 private:
  X copy_;
};
template <class X>
class working_copy<X, false> {
 public:
  explicit working_copy(X& x) noexcept : original_(x) {}
  X& get() noexcept { return original_; }
  void store(X&) const noexcept {}

 private:
  X& original_;
};

/// Whether a clock promises never to go back (`static constexpr bool is_steady = true`, as std::chrono's do).
template <class C, class = void>
struct is_steady_clock : std::false_type {};
template <class C>
struct is_steady_clock<C, std::enable_if_t<C::is_steady>> : std::true_type {};

template <class C, class = void>
struct is_clock : std::false_type {};
template <class C>
struct is_clock<C, std::void_t<typename C::time_point,
                               decltype(std::declval<C&>().sleep_until(std::declval<C&>().now(), stop_token{}))>>
    : std::true_type {};

}  // namespace detail

/// The step a check returns (`step<T, E>`), whichever form the check takes.
template <class Check>
using check_step_t = std::decay_t<typename detail::check_result<Check>::type>;

/// The one polling loop, as a step-able object (Heat's TaskRunner): it knows when it is next due and does one
/// check per `step(now)`. It never reads a clock and never sleeps, so the blocking driver, the runner and the
/// watchers all drive it the same way. It allocates nothing per step and is not thread-safe: its driver owns it.
/// What few runs use (options that are not the default, a remembered server hint, nudges, budget wait, a captured
/// exception) lives in a cold part that the poller allocates once, when it first needs it, so that a fleet of a
/// million pending pollers stays small.
///
/// Driving it: call `step(now)` when `now >= next_due()` until `done()`, then read `outcome()`. A check that
/// throws propagates out of `step`, and the poller stays consistent: the attempt is counted, nothing else
/// changed, and it is still due (step again, or `capture(std::current_exception(), now)` to end it).
template <class Check, class Schedule, class Stop, class TimePoint, class Hooks = no_hooks>
class poller : private detail::compressed<Check, 0>,
               private detail::compressed<Stop, 1>,
               private detail::compressed<Hooks, 2> {
  using check_holder = detail::compressed<Check, 0>;
  using stop_holder = detail::compressed<Stop, 1>;
  using hooks_holder = detail::compressed<Hooks, 2>;

 public:
  using step_type = check_step_t<Check>;
  static_assert(detail::is_step<step_type>::value,
                "pollster::poller: the check must return pollster::step<T, E> (declare the lambda's return type)");
  using value_type = typename step_type::value_type;
  using error_type = typename step_type::error_type;
  using outcome_type = pollster::outcome<value_type, error_type>;
  using time_point = TimePoint;

  /// Starts a run at `start`: the first check is due at once, or after the schedule's first delay with
  /// `wait_first`. The schedule and the stop rule are reset, so a configured one works as a prototype.
  poller(Check check, Schedule schedule, Stop stop, time_point start, const poll_options& options = {},
         Hooks hooks = Hooks{})
      : check_holder(std::move(check)),
        stop_holder(std::move(stop)),
        hooks_holder(std::move(hooks)),
        schedule_(std::move(schedule)) {
    if (options.max_hint < duration::zero()) {
      detail::throw_invalid("poll_options", "max_hint", ">= 0", detail::duration_text(options.max_hint));
    }
    if (options.hint_lifetime < duration::zero()) {
      detail::throw_invalid("poll_options", "hint_lifetime", ">= 0", detail::duration_text(options.hint_lifetime));
    }
    // The defaults need no storage; any other option is kept in the cold part, created here once.
    if (options.deadline || options.wait_first || options.reset_on_nudge || options.max_hint != duration::max() ||
        options.hint_lifetime != duration::max()) {
      cold_state& c = cold_.make();
      c.max_hint = options.max_hint;
      c.hint_lifetime = options.hint_lifetime;
      c.reset_on_nudge = options.reset_on_nudge;
      c.wait_first = options.wait_first;
      if (options.deadline) {
        c.deadline = to_time_point(*options.deadline, "deadline");
        has_deadline_.set();
      }
    }
    restart(start);
  }

  /// Begins a fresh run at `start` with the same check, schedule (reset), stop rule (reset) and options.
  void restart(time_point start) {
    schedule_.reset();
    stop_rule_mutable().reset();
    // Field by field rather than `outcome_ = {}`: the value and error types need not be assignable.
    cause_ = pollster::cause::running;
    stop_ = 0;
    outcome_.last_value.reset();
    outcome_.last_error.reset();
    outcome_.attempts = 0;
    outcome_.elapsed = outcome_.slept = duration::zero();
    if (cold_state* c = cold_.get()) {
      c->nudges = 0;
      c->exception = nullptr;
      c->budget_wait = duration::zero();
      c->remembered = retry_hint::form::none;
    }
    start_ = next_due_ = start;
    last_delay_ = duration::zero();
    last_kind_ = step_kind::pending;
    last_reason_ = delay_reason::schedule;
    done_ = false;
    last_throttled_ = false;
    nudged_ = false;
    if (has_deadline_ && cold_.get()->deadline <= start) {
      finish(pollster::cause::deadline, stop_reason::deadline, start);  // nothing to do: already past it
      return;
    }
    if (cold_.get() != nullptr && cold_.get()->wait_first) plan_next(start, duration::zero(), step_type{});
  }

  /// When the next check is due; `time_point::max()` once done.
  time_point next_due() const noexcept { return done_ ? time_point::max() : next_due_; }
  bool done() const noexcept { return done_; }

  /// Makes one check at `now` (treated as instant: its end is `now` too) and decides what comes next.
  void step(time_point now) {
    step(now, [now]() noexcept { return now; });
  }
  /// Makes one check starting at `now`; `finished()` gives the time it ended (a driver with a real clock passes
  /// `[&] { return clock.now(); }`, so the next delay counts from the end of the check, as Heat sleeps after a
  /// step).
  template <class Finished>
  void step(time_point now, Finished&& finished) {
    if (done_) return;
    // Idle time before this check, and the run's time so far. The attempt is counted before the check runs, so a
    // throw leaves it counted, with the account up to the check's start.
    const time_point last_end = last_end_time();
    if (now > last_end) {
      // Idle intervals never overlap and all lie within [start, now], so their sum cannot overflow.
      outcome_.slept = detail::sat_add(outcome_.slept, between(last_end, now));
      outcome_.elapsed = between(start_, now);
    }
    ++outcome_.attempts;
    if constexpr (detail::has_before_attempt<Hooks>::value) hooks().before_attempt(state_at(now));
    step_type result = invoke_check(now);
    conclude(result, std::max(now, static_cast<time_point>(finished())));
  }

 private:
  /// Everything after a check that ended at `end`: the account, the hooks, and whether and when to check again.
  POLLSTER_ALWAYS_INLINE void conclude(step_type& result, time_point end) {
    nudged_ = false;
    outcome_.elapsed = between(start_, end);
    last_kind_ = result.kind;
    last_throttled_ = result.throttled;
    if (result.hint.kind() == retry_hint::form::at && result.hint.clock() != my_clock()) {
      detail::throw_invalid("poller", "hint", "a time point of the poller's clock", "a time point of another clock");
    }
    if constexpr (detail::has_after_attempt<Hooks, step_type>::value) hooks().after_attempt(state_at(end), result);
    // emplace, not assignment: a value type need only be movable.
    if (result.value) outcome_.last_value.emplace(std::move(*result.value));
    if (result.error) outcome_.last_error.emplace(std::move(*result.error));
    switch (result.kind) {
      case step_kind::done: finish(pollster::cause::done, stop_reason::none, end); return;
      case step_kind::failed: finish(pollster::cause::failed, stop_reason::none, end); return;
      case step_kind::pending:
      case step_kind::transient: break;
    }
    const stop_reason reason = stop_rule().check(stop_context{outcome_.attempts, outcome_.elapsed});
    if (reason != stop_reason::none) {
      finish(reason == stop_reason::deadline ? pollster::cause::deadline : pollster::cause::exhausted, reason, end);
      return;
    }
    if (has_deadline_ && end >= cold_.get()->deadline) {
      finish(pollster::cause::deadline, stop_reason::deadline, end);
      return;
    }
    plan_next(end, outcome_.elapsed, result);
  }

  friend struct detail::blocking_driver;

  /// poll_until's loop. Runs without hooks go through a loop of their own, kept out of line so that its cost per
  /// attempt does not depend on how the caller happens to be inlined, and which keeps what changes on every check
  /// in locals (the schedule and the stop rule too, when small and trivially copyable) that stay in registers
  /// across the clock's atomics. That loop decides only the common step: pending or transient, with no hint and
  /// no directed delay. At the first other step it writes its locals back, lets `conclude` decide, and hands the
  /// rest of the run to `drive_steps`, the plain loop over `step()` that runs with hooks: one set of rules.
  template <class Clock>
  void drive(Clock& clock, const stop_token& token, bool immediate) {
    constexpr bool has_hooks = detail::has_before_attempt<Hooks>::value ||
                               detail::has_after_attempt<Hooks, step_type>::value ||
                               detail::has_before_sleep<Hooks>::value;
    if (done_) return;
    if constexpr (has_hooks) {
      time_point last = start_;  // the latest reading of the clock: the end of the last check
      if (immediate) step(start_, [&clock, &last] { return last = clock.now(); });  // at once: no time has passed
      drive_steps(clock, token, last);
    } else if (has_deadline_) {
      drive_fast<true>(clock, token, immediate);
    } else {
      drive_fast<false>(clock, token, immediate);
    }
  }

  /// The plain loop: sleep until due, check, until done; `last` is the latest reading of the clock.
  template <class Clock>
  void drive_steps(Clock& clock, const stop_token& token, time_point last) {
    const auto finished = [&clock, &last] { return last = clock.now(); };
    while (!done_) {
      // A sleep returns false at once when the token is already stopped; the test after it also catches a stop
      // that arrived with the timer (or when there was nothing to sleep): no check runs after a stop request.
      const time_point due = next_due_;
      if (due > last && !clock.sleep_until(due, token)) break;
      if (token.stop_requested()) break;
      step(clock.now(), finished);
    }
    if (!done_) cancel(clock.now());
  }

  /// drive_fast's way out at a step it does not decide. The step is passed by value, so that the fast loop's own
  /// never has its address taken and can stay in registers.
  template <class Clock>
  POLLSTER_NOINLINE void hand_over(step_type result, time_point end, Clock& clock, const stop_token& token,
                                   time_point last) {
    conclude(result, end);
    drive_steps(clock, token, last);
  }

  /// The loop without hooks, compiled once with and once without a `poll_options::deadline` to test.
  template <bool HasDeadline, class Clock>
  POLLSTER_NOINLINE void drive_fast(Clock& clock, const stop_token& token, bool immediate) {
    const time_point start = start_;
    const time_point deadline = HasDeadline ? cold_.get()->deadline : time_point{};
    detail::working_copy<Schedule> working_schedule(schedule_);
    detail::working_copy<Stop> working_stop(stop_rule_mutable());
    std::uint64_t attempts = outcome_.attempts;
    duration elapsed = outcome_.elapsed;
    duration slept = outcome_.slept;
    time_point due = next_due_;
    time_point last_end = last_end_time();  // the end of the last check (or the start): idle time counts from here
    time_point last = start;                // the latest reading of the clock
    time_point now = start;
    for (bool sleep_first = !immediate;; sleep_first = true) {
      if (sleep_first) {
        // As drive_steps.
        if (due > last && !clock.sleep_until(due, token)) break;
        if (token.stop_requested()) break;
        now = clock.now();
      }
      // As step(now): idle time before this check, then the attempt. (A check that throws leaves the account
      // unwritten: the exception leaves poll_until, and this poller with it.)
      // A steady clock's readings never go back, so the tests that guard against it are only for the others.
      constexpr bool steady = detail::is_steady_clock<Clock>::value;
      if (!steady && now > last_end) slept = detail::sat_add(slept, between(last_end, now));
      ++attempts;
      step_type result = invoke_check_at(now, attempts, last_delay_);
      last = clock.now();
      const time_point end = steady || last > now ? last : now;
      if constexpr (steady) {
        // start <= last_end <= now <= end: when end - start fits in a duration, so do this idle time and the
        // sum of all of them (one overflow test per attempt instead of three).
        if (detail::checked_sub(since_epoch(end), since_epoch(start), elapsed)) {
          slept += since_epoch(now) - since_epoch(last_end);
        } else {
          elapsed = duration::max();
          slept = detail::sat_add(slept, between(last_end, now));
        }
      } else {
        elapsed = between(start, end);
      }
      last_end = end;
      if (result.hint || result.directed || result.throttled) {
        write_back(working_schedule, working_stop, attempts, elapsed, slept, due);
        hand_over(std::move(result), end, clock, token, last);
        return;
      }
      // What conclude() does with such a step.
      last_kind_ = result.kind;
      if (result.value) outcome_.last_value.emplace(std::move(*result.value));
      if (result.error) outcome_.last_error.emplace(std::move(*result.error));
      if (result.kind == step_kind::done || result.kind == step_kind::failed) {
        write_back(working_schedule, working_stop, attempts, elapsed, slept, due);
        finish(result.kind == step_kind::done ? pollster::cause::done : pollster::cause::failed, stop_reason::none,
               end);
        return;
      }
      const stop_reason reason = working_stop.get().check(stop_context{attempts, elapsed});
      if (reason != stop_reason::none) {
        write_back(working_schedule, working_stop, attempts, elapsed, slept, due);
        finish(reason == stop_reason::deadline ? pollster::cause::deadline : pollster::cause::exhausted, reason, end);
        return;
      }
      if (HasDeadline && end >= deadline) {
        write_back(working_schedule, working_stop, attempts, elapsed, slept, due);
        finish(pollster::cause::deadline, stop_reason::deadline, end);
        return;
      }
      // What plan_next() does without a hint: the schedule's value, clamped to the time left before the deadline.
      duration delay = working_schedule.get().next();
      duration left = working_stop.get().time_left(elapsed);
      if constexpr (HasDeadline) {
        const duration to_deadline = between(end, deadline);
        if (to_deadline < left) left = to_deadline;
      }
      last_reason_ = delay_reason::schedule;
      if (delay < duration::zero() || delay > left) {
        if (delay < duration::zero()) delay = duration::zero();  // a custom schedule may go below zero
        if (delay > left) {
          delay = left;
          last_reason_ = delay_reason::deadline;
        }
      }
      if constexpr (detail::sees_next_delay<Stop>::value) {
        // As plan_next(): the rule sees the sleep about to start.
        const stop_reason why = working_stop.get().check_next_delay(stop_context{attempts, elapsed}, delay);
        if (why != stop_reason::none) {
          write_back(working_schedule, working_stop, attempts, elapsed, slept, due);
          finish(why == stop_reason::deadline ? pollster::cause::deadline : pollster::cause::exhausted, why, end);
          return;
        }
      }
      last_delay_ = delay;
      due = later(end, delay);
    }
    write_back(working_schedule, working_stop, attempts, elapsed, slept, due);
    cancel(clock.now());
  }

 public:
  /// Makes the poller due at `now` (notify-then-verify: a callback said something changed, so check through the
  /// real API at once). The schedule then resumes, from its start with `reset_on_nudge`. The first nudge of a run
  /// may allocate (the count lives in the poller's cold part): std::bad_alloc then leaves the poller unchanged.
  void nudge(time_point now) {
    if (done_) return;
    cold_state& c = cold_.make();
    ++c.nudges;
    nudged_ = true;
    if (now < next_due_) next_due_ = now;
    if (c.reset_on_nudge) schedule_.reset();
  }

  /// Ends the run with cause cancelled, keeping the last value and error. No further check runs.
  void cancel(time_point now) noexcept {
    if (done_) return;
    time_point end = last_end_time();
    if (now > end) {
      outcome_.slept = detail::sat_add(outcome_.slept, between(end, now));
      end = now;
    }
    finish(pollster::cause::cancelled, stop_reason::none, end);
  }

  /// Ends the run with cause exception, for a driver that catches what a check threw (the runner). The
  /// attempt that threw stays counted; the time is that of the last check's start or end, whichever is later.
  /// (The exception is kept in the poller's cold part; should even that allocation fail, the cause still says
  /// exception, without the pointer.)
  void capture(std::exception_ptr error, time_point now) noexcept {
    if (done_) return;
    if (cold_state* c = cold_.try_make()) c->exception = std::move(error);
    finish(pollster::cause::exception, stop_reason::none, std::max(now, last_end_time()));
  }

  /// For a driver that held a due check back while waiting for a shared rate budget. The first wait of a run may
  /// allocate (it lives in the poller's cold part): std::bad_alloc then leaves the poller unchanged.
  void add_budget_wait(duration waited) {
    if (waited > duration::zero()) {
      cold_state& c = cold_.make();
      c.budget_wait = detail::sat_add(c.budget_wait, waited);
    }
  }

  /// The account so far (complete once done()), as a copy: the poller keeps it in a more compact form.
  outcome_type outcome() const { return make_outcome(outcome_.last_value, outcome_.last_error); }
  /// Moves the account out (once done): the poller is spent until `restart`.
  outcome_type take_outcome() noexcept(std::is_nothrow_move_constructible_v<outcome_type>) {
    return make_outcome(std::move(outcome_.last_value), std::move(outcome_.last_error));
  }

  /// What the last check said, for a driver: its kind, whether it reported "rate limited", and the delay chosen
  /// after it with the reason.
  step_kind last_kind() const noexcept { return last_kind_; }
  bool last_throttled() const noexcept { return last_throttled_; }
  duration last_delay() const noexcept { return last_delay_; }
  delay_reason last_reason() const noexcept { return last_reason_; }
  time_point start_time() const noexcept { return start_; }
  const Schedule& schedule() const noexcept { return schedule_; }
  const Stop& stop_rule() const noexcept { return static_cast<const stop_holder&>(*this).get(); }

 private:
  static duration to_duration(typename time_point::duration d) noexcept {
    return std::chrono::duration_cast<duration>(d);
  }
  /// `to - from`, clamped: a deadline, a hint or a manual clock may stand anywhere in the clock's range.
  static duration between(time_point from, time_point to) noexcept { return detail::sat_between(from, to); }
  static duration since_epoch(time_point t) noexcept { return to_duration(t.time_since_epoch()); }
  static const void* my_clock() noexcept { return &detail::clock_identity<typename time_point::clock>; }

  static time_point to_time_point(const clock_time& t, const char* what) {
    if (t.clock != my_clock()) {
      detail::throw_invalid("poll_options", what, "a time point of the poller's clock", "a time point of another clock");
    }
    return detail::sat_add(time_point{}, t.since_epoch);
  }

  /// t + d for d >= 0, saturating at time_point::max(); the general detail::sat_add costs more on this hot path.
  static time_point later(time_point t, duration d) noexcept {
    if constexpr (std::is_same_v<typename time_point::duration, duration>) {
#if defined(__GNUC__) || defined(__clang__)
      duration::rep sum = 0;  // an add and a jump on overflow, where the comparison costs four instructions more
      return __builtin_add_overflow(t.time_since_epoch().count(), d.count(), &sum) ? time_point::max()
                                                                                  : time_point{duration{sum}};
#else
      return t.time_since_epoch() > duration::max() - d ? time_point::max() : t + d;
#endif
    } else {
      return detail::sat_add(t, d);
    }
  }

  /// The end of the last check (or the start): idle time counts from here.
  time_point last_end_time() const noexcept {
    return detail::sat_add(start_, outcome_.elapsed);
  }

  Stop& stop_rule_mutable() noexcept { return static_cast<stop_holder&>(*this).get(); }
  Hooks& hooks() noexcept { return static_cast<hooks_holder&>(*this).get(); }

  /// What the check and the hooks see; built on demand so the poller stores none of it twice.
  poll_state state_at(time_point t) const noexcept {
    return state_of(outcome_.attempts, between(start_, t), last_delay_);
  }
  poll_state state_of(std::uint64_t attempt, duration elapsed, duration last_delay) const noexcept {
    poll_state s;
    s.attempt = attempt;
    s.elapsed = elapsed;
    s.last_delay = last_delay;
    s.nudged = nudged_;
    return s;
  }

  step_type invoke_check(time_point now) { return invoke_check_at(now, outcome_.attempts, last_delay_); }
  step_type invoke_check_at(time_point now, std::uint64_t attempt, duration last_delay) {
    Check& check = static_cast<check_holder&>(*this).get();
    if constexpr (std::is_invocable_v<Check&, const poll_state&>) {
      return check(static_cast<const poll_state&>(state_of(attempt, between(start_, now), last_delay)));
    } else {
      (void)now;
      (void)attempt;
      (void)last_delay;
      return check();
    }
  }

  /// The hint in force after a check that ended at `end`, as a delay: this response's, else the remembered one
  /// while it lives (`hint_lifetime` after the response that carried it). The first hint of a poller creates its
  /// cold part (one allocation per poller at most, never one per check).
  duration hint_delay(const retry_hint& fresh, time_point end) {
    const cold_state* c = cold_.get();
    if (!fresh && (c == nullptr || c->remembered == retry_hint::form::none)) {
      return duration::zero();  // the common case: no hint now, none remembered
    }
    return hint_delay_slow(fresh, end);
  }
  /// The rest of hint_delay, out of line: the check's step stays in registers when there is no hint (the hint is
  /// passed by value so that its address is never taken).
  POLLSTER_NOINLINE duration hint_delay_slow(retry_hint fresh, time_point end) {
    cold_state* c = cold_.get();
    if (fresh) {
      c = &cold_.make();
      c->remembered = fresh.kind();
      c->remembered_value = fresh.value();
      c->remembered_at = end;
    } else if (between(c->remembered_at, end) >= c->hint_lifetime) {
      c->remembered = retry_hint::form::none;
      return duration::zero();
    }
    duration d = c->remembered_value;
    if (c->remembered == retry_hint::form::at) {
      d = std::max(duration::zero(), detail::sat_sub(c->remembered_value, since_epoch(end)));
    }
    return std::min(d, c->max_hint);
  }

  void plan_next(time_point end, duration elapsed, const step_type& result) {
    duration delay;
    delay_reason reason;
    if (result.directed) {
      delay = *result.directed;
      reason = delay_reason::directed;
    } else {
      delay = std::max(duration::zero(), duration{schedule_.next()});  // a custom schedule may go below zero
      reason = delay_reason::schedule;
    }
    const duration hint = hint_delay(result.hint, end);
    if (hint > delay) {
      delay = hint;
      reason = delay_reason::hint;
    }
    const duration left = time_left(end, elapsed);
    if (delay > left) {
      if (reason == delay_reason::hint) {
        // The server will not be ready before the deadline: polling again before then is pointless.
        finish(pollster::cause::deadline, stop_reason::deadline, end);
        return;
      }
      delay = left;
      reason = delay_reason::deadline;
    }
    if constexpr (detail::sees_next_delay<Stop>::value) {
      // A rule that looks at the sleep about to start (before_elapsed) may end the run instead.
      const stop_reason why = stop_rule().check_next_delay(stop_context{outcome_.attempts, elapsed}, delay);
      if (why != stop_reason::none) {
        finish(why == stop_reason::deadline ? pollster::cause::deadline : pollster::cause::exhausted, why, end);
        return;
      }
    }
    last_delay_ = delay;
    last_reason_ = reason;
    next_due_ = later(end, delay);
    if constexpr (detail::has_before_sleep<Hooks>::value) {
      poll_state s = state_at(end);
      s.next_delay = delay;
      hooks().before_sleep(static_cast<const poll_state&>(s), reason);
    }
  }

  /// drive_fast()'s locals back into the members, before code that reads them.
  void write_back(const detail::working_copy<Schedule>& working_schedule,
                  const detail::working_copy<Stop>& working_stop, std::uint64_t attempts, duration elapsed,
                  duration slept, time_point due) noexcept {
    working_schedule.store(schedule_);
    working_stop.store(stop_rule_mutable());
    outcome_.attempts = attempts;
    outcome_.elapsed = elapsed;
    outcome_.slept = slept;
    last_throttled_ = false;
    nudged_ = false;
    next_due_ = due;
  }

  /// How long the next sleep may last after a check that ended at `end`: the stop rule's and the option's deadline.
  duration time_left(time_point end, duration elapsed) const {
    const duration left = stop_rule().time_left(elapsed);
    return has_deadline_ ? std::min(left, between(end, cold_.get()->deadline)) : left;
  }

  void finish(pollster::cause why, stop_reason reason, time_point end) noexcept {
    done_ = true;
    cause_ = why;
    stop_ = static_cast<std::uint8_t>(reason);  // (stop_reason is an int-sized enum: one byte suffices)
    outcome_.elapsed = between(start_, end);
  }

  // What most runs never use, out of line, so that a poller pays one pointer for it until it does: the options
  // that differ from their defaults (set at construction), the remembered server hint (from the first hint), the
  // nudge count (from the first nudge), the budget wait (from the first wait) and a captured exception.
  struct cold_state {
    time_point deadline{};  // valid when has_deadline_
    duration max_hint = duration::max();
    duration hint_lifetime = duration::max();
    time_point remembered_at{};  // when the remembered hint arrived
    duration remembered_value{};
    std::exception_ptr exception;
    duration budget_wait{};
    std::uint32_t nudges = 0;
    retry_hint::form remembered = retry_hint::form::none;
    bool reset_on_nudge = false;
    bool wait_first = false;
  };


  // The part of the outcome that every run needs, updated on every check; outcome() adds the rest.
  struct account {
    std::optional<value_type> last_value;
    std::optional<error_type> last_error;
    std::uint64_t attempts = 0;
    duration elapsed{};  // also says where the last check ended: idle time counts from there
    duration slept{};
  };

  template <class Value, class Error>
  outcome_type make_outcome(Value&& value, Error&& error) const {
    const cold_state* c = cold_.get();
    return outcome_type{cause_,
                        static_cast<stop_reason>(stop_),
                        c != nullptr ? c->nudges : 0,
                        std::forward<Value>(value),
                        std::forward<Error>(error),
                        c != nullptr ? c->exception : nullptr,
                        outcome_.attempts,
                        outcome_.elapsed,
                        outcome_.slept,
                        c != nullptr ? c->budget_wait : duration::zero()};
  }

  Schedule schedule_;
  account outcome_;
  time_point start_{};
  time_point next_due_{};
  duration last_delay_{};
  detail::cold_box<cold_state> cold_;
  // Eight bytes of state, each a whole byte: the flags read on every step would cost a read-modify-write as bits.
  pollster::cause cause_ = pollster::cause::running;
  std::uint8_t stop_ = 0;  // a stop_reason
  step_kind last_kind_ = step_kind::pending;
  delay_reason last_reason_ = delay_reason::schedule;
  detail::box_flag has_deadline_;  // then cold_ holds the deadline (a move clears both in the source)
  bool done_ = false;
  bool last_throttled_ = false;
  bool nudged_ = false;
};

/// Builds a poller, deducing its types from the arguments (the time point decides the clock).
template <class Check, class Schedule, class Stop, class TimePoint, class Hooks = no_hooks>
poller<Check, Schedule, Stop, TimePoint, Hooks> make_poller(Check check, Schedule schedule, Stop stop,
                                                             TimePoint start, const poll_options& options = {},
                                                             Hooks hooks = Hooks{}) {
  return {std::move(check), std::move(schedule), std::move(stop), start, options, std::move(hooks)};
}

/// Polls `check` on `clock` until it is done, fails for good, the stop rule or the deadline ends the run, or
/// `options.token` cancels it. The first check happens at once (unless `wait_first`), even when the token is
/// already stopped, as Kubernetes' immediate poll does; every later check is preceded by a cancellation test, and
/// a stop request interrupts a sleep at once. A check that throws propagates out unchanged.
template <class Clock, class Check, class Schedule, class Stop = never, class Hooks = no_hooks,
          class = std::enable_if_t<detail::is_clock<Clock>::value>>
outcome<typename check_step_t<Check>::value_type, typename check_step_t<Check>::error_type> poll_until(
    Clock& clock, Check check, Schedule schedule, Stop stop = Stop{}, const poll_options& options = {},
    Hooks hooks = Hooks{}) {
  using time_point = typename Clock::time_point;
  const time_point start = clock.now();
  poller<Check, Schedule, Stop, time_point, Hooks> run(std::move(check), std::move(schedule), std::move(stop), start,
                                                       options, std::move(hooks));
  detail::blocking_driver::run(run, clock, options.token, !options.wait_first);
  return run.take_outcome();
}

/// The same, on the real steady clock.
template <class Check, class Schedule, class Stop = never, class Hooks = no_hooks,
          class = std::enable_if_t<!detail::is_clock<Check>::value>>
outcome<typename check_step_t<Check>::value_type, typename check_step_t<Check>::error_type> poll_until(
    Check check, Schedule schedule, Stop stop = Stop{}, const poll_options& options = {}, Hooks hooks = Hooks{}) {
  steady_clock clock;
  return poll_until(clock, std::move(check), std::move(schedule), std::move(stop), options, std::move(hooks));
}

#if POLLSTER_HAS_STD_STOP_TOKEN
/// C++20: cancelled by a std::stop_token (a std::jthread's, say) instead of `options.token`.
template <class Clock, class Check, class Schedule, class Stop = never, class Hooks = no_hooks,
          class = std::enable_if_t<detail::is_clock<Clock>::value>>
outcome<typename check_step_t<Check>::value_type, typename check_step_t<Check>::error_type> poll_until(
    std::stop_token token, Clock& clock, Check check, Schedule schedule, Stop stop = Stop{},
    poll_options options = {}, Hooks hooks = Hooks{}) {
  const bridge_stop_token bridge{std::move(token)};
  options.token = bridge.get_token();
  return poll_until(clock, std::move(check), std::move(schedule), std::move(stop), options, std::move(hooks));
}

/// C++20: the same on the real steady clock.
template <class Check, class Schedule, class Stop = never, class Hooks = no_hooks,
          class = std::enable_if_t<!detail::is_clock<Check>::value>>
outcome<typename check_step_t<Check>::value_type, typename check_step_t<Check>::error_type> poll_until(
    std::stop_token token, Check check, Schedule schedule, Stop stop = Stop{}, poll_options options = {},
    Hooks hooks = Hooks{}) {
  steady_clock clock;
  return poll_until(std::move(token), clock, std::move(check), std::move(schedule), std::move(stop),
                    std::move(options), std::move(hooks));
}
#endif

POLLSTER_NAMESPACE_END
