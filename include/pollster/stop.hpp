// SPDX-License-Identifier: MIT
#pragma once

// Stop rules: whether to go on after an attempt. Kept apart from schedules (how long to wait), as
// google-cloud-cpp keeps retry policies apart from backoff policies, so either can change alone. The attempt
// limit is always a stop rule, never a side effect of a schedule's cap.
//
// Every stop rule has
//   stop_reason check(const stop_context&) const;  // after an attempt: none, or why to stop
//   duration time_left(duration elapsed) const;     // until a hard deadline (duration::max() when none)
//   void reset();                                   // fresh state for a new run
// and combines with `|` (stop when either says so) and `&` (stop when both do). A rule that must see the next
// delay (tenacity's stop_before_delay) also has
//   stop_reason check_next_delay(const stop_context&, duration next_delay) const;
// which the poller calls once it has planned the delay after an attempt (schedule, hint and deadline applied),
// before it sleeps; a reason other than none ends the run there instead of sleeping.

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"

#include <algorithm>    // max, min
#include <cstdint>      // uint64_t
#include <string>       // to_string
#include <type_traits>  // enable_if_t, false_type, is_invocable_r_v, void_t
#include <utility>      // move

POLLSTER_NAMESPACE_BEGIN

/// What a stop rule sees after each attempt.
struct stop_context {
  std::uint64_t attempts = 0;  ///< checks made so far, including the one that just returned
  duration elapsed{};          ///< since the run started
};

/// Why a rule says stop. `deadline` is kept apart from the others because callers act on it differently (a
/// deadline is the caller's budget; attempts and elapsed are the poll's own patience).
enum class stop_reason {
  none,      ///< go on
  attempts,  ///< the attempt limit was reached
  elapsed,   ///< the time limit was reached
  deadline,  ///< the hard deadline was reached
  custom,    ///< a user predicate said so
};

namespace detail {
template <class Rule>
struct stop_rule_base {};  // tags the rules so `|` and `&` never capture unrelated types

/// Whether a rule looks at the next delay (has check_next_delay); the poller calls it only then.
template <class Rule, class = void>
struct sees_next_delay : std::false_type {};
template <class Rule>
struct sees_next_delay<Rule, std::void_t<decltype(std::declval<const Rule&>().check_next_delay(
                                 std::declval<const stop_context&>(), duration{}))>> : std::true_type {};

/// A rule's verdict once the next delay is known: its check_next_delay, or else its ordinary check.
template <class Rule>
stop_reason verdict_with_delay(const Rule& rule, const stop_context& c, duration next_delay) {
  if constexpr (sees_next_delay<Rule>::value) {
    return rule.check_next_delay(c, next_delay);
  } else {
    return rule.check(c);
  }
}
}  // namespace detail

/// Never stops: for an operation that must be seen through, bounded only by cancellation.
struct never : detail::stop_rule_base<never> {
  stop_reason check(const stop_context&) const noexcept { return stop_reason::none; }
  duration time_left(duration) const noexcept { return duration::max(); }
  void reset() noexcept {}
};

/// Stops once `limit` checks were made (tenacity's stop_after_attempt).
class after_attempts : public detail::stop_rule_base<after_attempts> {
 public:
  explicit after_attempts(std::uint64_t limit) : limit_(limit) {
    if (limit == 0) detail::throw_invalid("after_attempts", "limit", ">= 1", "0");
  }
  stop_reason check(const stop_context& c) const noexcept {
    return c.attempts >= limit_ ? stop_reason::attempts : stop_reason::none;
  }
  duration time_left(duration) const noexcept { return duration::max(); }
  void reset() noexcept {}
  std::uint64_t limit() const noexcept { return limit_; }

 private:
  std::uint64_t limit_;
};

/// Stops after an attempt that ends at or after `limit` of elapsed time. Sleeps are not shortened: use
/// before_deadline when the time is a hard budget.
class after_elapsed : public detail::stop_rule_base<after_elapsed> {
 public:
  explicit after_elapsed(duration limit) : limit_(limit) {
    if (limit <= duration::zero()) detail::throw_invalid("after_elapsed", "limit", "> 0", detail::duration_text(limit));
  }
  stop_reason check(const stop_context& c) const noexcept {
    return c.elapsed >= limit_ ? stop_reason::elapsed : stop_reason::none;
  }
  duration time_left(duration) const noexcept { return duration::max(); }
  void reset() noexcept {}
  duration limit() const noexcept { return limit_; }

 private:
  duration limit_;
};

/// A hard deadline `budget` after the run starts. The poller never starts a sleep that would overshoot it: the
/// last sleep is shortened to land on the deadline, where one final check is made, and a server hint that
/// points past it ends the run at once. The outcome says `deadline`.
class before_deadline : public detail::stop_rule_base<before_deadline> {
 public:
  explicit before_deadline(duration budget) : budget_(budget) {
    if (budget < duration::zero()) {
      detail::throw_invalid("before_deadline", "budget", ">= 0", detail::duration_text(budget));
    }
  }
  stop_reason check(const stop_context& c) const noexcept {
    return c.elapsed >= budget_ ? stop_reason::deadline : stop_reason::none;
  }
  duration time_left(duration elapsed) const noexcept {
    // Called after every check: with budget_ >= 0 and 0 <= elapsed < budget_ the difference cannot overflow, so
    // only a negative elapsed time (a clock that went back) pays for the saturating subtraction.
    if (elapsed >= budget_) return duration::zero();
    if (elapsed >= duration::zero()) return budget_ - elapsed;
    return detail::sat_sub(budget_, elapsed);
  }
  void reset() noexcept {}
  duration budget() const noexcept { return budget_; }

 private:
  duration budget_;
};

/// tenacity's stop_before_delay: stops instead of starting a sleep that would end at or after `limit` of elapsed
/// time, so the run never passes the limit and makes no check at it. Compare before_deadline, which shortens the
/// last sleep to land on the deadline and checks once more there. The outcome says exhausted, reason elapsed (as
/// tenacity raises RetryError). With `wait_first`, a first sleep that would pass the limit ends the run unchecked.
class before_elapsed : public detail::stop_rule_base<before_elapsed> {
 public:
  explicit before_elapsed(duration limit) : limit_(limit) {
    if (limit <= duration::zero()) {
      detail::throw_invalid("before_elapsed", "limit", "> 0", detail::duration_text(limit));
    }
  }
  stop_reason check(const stop_context&) const noexcept { return stop_reason::none; }
  /// tenacity: `seconds_since_start + upcoming_sleep >= max_delay`.
  stop_reason check_next_delay(const stop_context& c, duration next_delay) const noexcept {
    return detail::sat_add(c.elapsed, next_delay) >= limit_ ? stop_reason::elapsed : stop_reason::none;
  }
  duration time_left(duration) const noexcept { return duration::max(); }
  void reset() noexcept {}
  duration limit() const noexcept { return limit_; }

 private:
  duration limit_;
};

/// Stops when a predicate over the stop_context says so: for rules the library does not name.
template <class Predicate>
class stop_when : public detail::stop_rule_base<stop_when<Predicate>> {
 public:
  explicit stop_when(Predicate predicate) : predicate_(std::move(predicate)) {}
  stop_reason check(const stop_context& c) const {
    return predicate_(c) ? stop_reason::custom : stop_reason::none;
  }
  duration time_left(duration) const noexcept { return duration::max(); }
  void reset() noexcept {}

 private:
  Predicate predicate_;
};

/// Stops when either rule does; the first to say stop names the reason. The tighter deadline wins.
template <class A, class B>
class stop_any : public detail::stop_rule_base<stop_any<A, B>> {
 public:
  stop_any(A a, B b) : a_(std::move(a)), b_(std::move(b)) {}
  stop_reason check(const stop_context& c) const {
    const stop_reason first = a_.check(c);
    return first != stop_reason::none ? first : b_.check(c);
  }
  /// Present when either rule sees the next delay: each rule's verdict with it, the first to say stop names it.
  template <class Self = stop_any, class = std::enable_if_t<
                                       detail::sees_next_delay<A>::value || detail::sees_next_delay<B>::value, Self>>
  stop_reason check_next_delay(const stop_context& c, duration next_delay) const {
    // A rule without it already spoke in check(); only the rules that see the delay have more to say.
    if constexpr (detail::sees_next_delay<A>::value) {
      const stop_reason first = a_.check_next_delay(c, next_delay);
      if (first != stop_reason::none) return first;
    }
    if constexpr (detail::sees_next_delay<B>::value) return b_.check_next_delay(c, next_delay);
    return stop_reason::none;
  }
  duration time_left(duration elapsed) const { return std::min(a_.time_left(elapsed), b_.time_left(elapsed)); }
  void reset() {
    a_.reset();
    b_.reset();
  }

 private:
  A a_;
  B b_;
};

/// Stops only when both rules do (the left one names the reason). The later deadline is the one that binds.
template <class A, class B>
class stop_all : public detail::stop_rule_base<stop_all<A, B>> {
 public:
  stop_all(A a, B b) : a_(std::move(a)), b_(std::move(b)) {}
  stop_reason check(const stop_context& c) const {
    const stop_reason first = a_.check(c);
    if (first == stop_reason::none) return stop_reason::none;
    return b_.check(c) == stop_reason::none ? stop_reason::none : first;
  }
  /// Present when either rule sees the next delay: both must say stop, each with the delay if it sees it, else
  /// by its ordinary check (called again here: a stop_when predicate inside `&` runs twice per attempt).
  template <class Self = stop_all, class = std::enable_if_t<
                                       detail::sees_next_delay<A>::value || detail::sees_next_delay<B>::value, Self>>
  stop_reason check_next_delay(const stop_context& c, duration next_delay) const {
    const stop_reason first = detail::verdict_with_delay(a_, c, next_delay);
    if (first == stop_reason::none) return stop_reason::none;
    return detail::verdict_with_delay(b_, c, next_delay) == stop_reason::none ? stop_reason::none : first;
  }
  duration time_left(duration elapsed) const { return std::max(a_.time_left(elapsed), b_.time_left(elapsed)); }
  void reset() {
    a_.reset();
    b_.reset();
  }

 private:
  A a_;
  B b_;
};

template <class A, class B>
stop_any<A, B> operator|(const detail::stop_rule_base<A>& a, const detail::stop_rule_base<B>& b) {
  return {static_cast<const A&>(a), static_cast<const B&>(b)};
}
template <class A, class B>
stop_all<A, B> operator&(const detail::stop_rule_base<A>& a, const detail::stop_rule_base<B>& b) {
  return {static_cast<const A&>(a), static_cast<const B&>(b)};
}

/// Readable text for logs and the fmt integration (`fmt.hpp` formats stop rules and reasons through these).
inline std::string to_string(stop_reason reason) {
  switch (reason) {
    case stop_reason::none: return "none";
    case stop_reason::attempts: return "attempts";
    case stop_reason::elapsed: return "elapsed";
    case stop_reason::deadline: return "deadline";
    case stop_reason::custom: return "custom";
  }
  return "stop_reason(" + std::to_string(static_cast<int>(reason)) + ")";
}
inline std::string to_string(const never&) { return "never"; }
inline std::string to_string(const after_attempts& r) { return "after " + std::to_string(r.limit()) + " attempts"; }
inline std::string to_string(const after_elapsed& r) { return "after " + detail::duration_text(r.limit()); }
inline std::string to_string(const before_deadline& r) {
  return "before a deadline " + detail::duration_text(r.budget()) + " away";
}
inline std::string to_string(const before_elapsed& r) {
  return "before a sleep past " + detail::duration_text(r.limit());
}

POLLSTER_NAMESPACE_END
