// SPDX-License-Identifier: MIT
#pragma once

// What one check says: `step<T, E>` (pending, done, failed, transient; a server hint; the check's own next delay;
// "rate limited"; "restart the schedule"), the factories that build one without naming its types
// (`done(v)`, `pending(v)`, `failed(e)`, `transient(e)`, `poll_again_in(d)`, `throttled(...)`, `not_modified()`),
// the server hints (`retry_after(d)`, `retry_at(time_point)`), and `at(time_point)`, which names a deadline.

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"

#include <algorithm>    // min, max
#include <chrono>       // duration_cast, time_point
#include <cstdint>      // uint8_t
#include <optional>     // optional
#include <type_traits>  // decay_t, enable_if_t, is_same_v
#include <utility>      // move, forward

POLLSTER_NAMESPACE_BEGIN

namespace detail {
/// One address per clock type, also across translation units: lets a time point travel through a clock-free
/// value (a hint, a deadline) and be refused by a poller that runs on another clock.
template <class Clock>
inline constexpr char clock_identity = 0;

struct no_payload {};
}  // namespace detail

/// A time point of some clock, remembered with the clock it belongs to. Built by `pollster::at(tp)`.
struct clock_time {
  duration since_epoch{};
  const void* clock = nullptr;  ///< which clock: a poller refuses a time point of another clock

  template <class TimePoint>
  static clock_time of(TimePoint t) noexcept {
    return {std::chrono::duration_cast<duration>(t.time_since_epoch()),
            &detail::clock_identity<typename TimePoint::clock>};
  }
};

/// "At this time point of the poller's clock": a deadline (`poll_options::deadline = pollster::at(now + 15min)`).
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

  /// "Come back after d"; a negative delay is a hint to come back at once.
  static retry_hint after(duration d) noexcept {
    retry_hint h;
    h.form_ = form::after;
    h.value_ = std::max(d, duration::zero());
    return h;
  }
  /// "Come back at t" (a time point of the poller's clock).
  static retry_hint at(clock_time t) noexcept {
    retry_hint h;
    h.form_ = form::at;
    h.value_ = t.since_epoch;
    h.clock_ = t.clock;
    return h;
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

/// "Come back after d" (`Retry-After: 120` is `retry_after(120s)`).
inline retry_hint retry_after(duration d) noexcept { return retry_hint::after(d); }
/// What `parse_retry_after` returns: no hint when it found none (a missing or malformed header).
/// (A template, so that `retry_after(30s)` never has to choose between a duration and an optional one.)
template <class Maybe, class = std::enable_if_t<std::is_same_v<Maybe, std::optional<duration>>>>
retry_hint retry_after(const Maybe& d) noexcept {
  return d ? retry_hint::after(*d) : retry_hint{};
}
/// "Come back at t", a time point of the poller's clock (an ETA in a status body, say).
template <class TimePoint>
retry_hint retry_at(TimePoint t) noexcept {
  return retry_hint::at(clock_time::of(t));
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
/// whose types can hold its payload, so a check returns `pollster::done(s)` without naming types twice, and a
/// check that returns only drafts of one type (`done(v)` and `pending(v)` share one) needs no return type at all.
template <class V = no_payload, class Er = no_payload>
struct step_draft {
  using value_type = V;
  using error_type = Er;
  step_kind kind = step_kind::pending;
  V value{};  // (a default member initialiser of a template is only instantiated when used)
  Er error{};
  retry_hint hint{};
  duration directed{};
  bool has_directed = false;
  bool throttled = false;
  bool not_modified = false;
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
  std::optional<T> value;            ///< done: the result; pending: the state seen so far (kept as last_value)
  std::optional<E> error;            ///< failed or transient: what went wrong (kept as last_error)
  retry_hint hint;                   ///< the server's "come back after / at" (for this response only, by default)
  std::optional<duration> directed;  ///< the check's own next delay (Heat's PollDelay), replacing the schedule's
  bool throttled = false;            ///< the server said "rate limited" (HTTP 429 or 413): a runner backs off
  bool restart_schedule = false;     ///< something changed: start the schedule again from its first delay
  /// The server said nothing changed since the validators the check sent (HTTP 304): pending, with no value, so
  /// the last value stands and a watcher skips the diff.
  bool not_modified = false;

  step() = default;
  template <class V, class Er>
  step(detail::step_draft<V, Er> draft)  // NOLINT(google-explicit-constructor): the point of the factories
      : kind(draft.kind), hint(draft.hint), throttled(draft.throttled), not_modified(draft.not_modified) {
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
                "pollster::pending(delay): write pending(pollster::retry_after(delay)) for a hint, or "
                "poll_again_in(delay)");
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
/// Nothing changed since the last look (HTTP 304 to a conditional request): pending, without a value, so the last
/// value stands; a watcher counts it and skips the diff, reporting no events.
inline detail::step_draft<> not_modified(retry_hint hint = {}) {
  detail::step_draft<> draft{step_kind::pending, {}, {}, hint};
  draft.not_modified = true;
  return draft;
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

POLLSTER_NAMESPACE_END
