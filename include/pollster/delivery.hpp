// SPDX-License-Identifier: MIT
#pragma once

// At-least-once delivery, the vocabulary (subscription.hpp does the delivering): how a subscription retries a
// handler that threw (`retry_policy`: any pollster schedule and stop rule; Event Grid's default as a preset),
// what a handler learns about its delivery, what a dead-letter handler receives, the counts a subscription keeps,
// and the state that carries undelivered events across a restart.
//
// Redelivery is polling with backoff: the schedule says how long to wait before the next attempt, the stop rule
// (over the attempts made and the event's age) when to give up and dead-letter the event.

#include "check.hpp"  // is_schedule_v, is_stop_rule_v
#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"
#include "event.hpp"
#include "schedule.hpp"
#include "stop.hpp"

#include <algorithm>    // min, max
#include <chrono>       // seconds, minutes, hours, system_clock
#include <cstddef>      // size_t
#include <cstdint>      // uint32_t, uint64_t
#include <exception>    // exception_ptr
#include <memory>       // shared_ptr, unique_ptr, make_shared
#include <optional>     // optional
#include <stdexcept>    // length_error
#include <string>       // string
#include <string_view>  // string_view
#include <type_traits>  // void_t, is_same_v
#include <utility>      // move
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN

/// A schedule given as its list of delays, the last one repeated for ever: a table of waits such as Event Grid's
/// retry schedule (Polly's sleepDurations, Celery's countdowns).
class delay_steps : public detail::schedule_base<delay_steps> {
 public:
  explicit delay_steps(std::vector<duration> delays) : delays_(std::move(delays)) {
    if (delays_.empty()) detail::throw_invalid("delay_steps", "delays", "not empty", "no delays");
    for (const duration d : delays_) detail::require_positive("delay_steps", "delays", d);
  }
  duration next() noexcept {
    const duration d = delays_[std::min(used_, delays_.size() - 1)];
    if (used_ < delays_.size()) ++used_;
    return d;
  }
  void reset() noexcept { used_ = 0; }
  std::optional<duration> plateau() const noexcept {
    if (used_ + 1 < delays_.size()) return std::nullopt;
    return delays_.back();
  }
  const std::vector<duration>& delays() const noexcept { return delays_; }

 private:
  std::vector<duration> delays_;
  std::size_t used_ = 0;
};

inline std::string to_string(const delay_steps& s) {
  std::string text = "delay_steps(";
  for (std::size_t i = 0; i < s.delays().size(); ++i) text += (i == 0 ? "" : ", ") + to_string(s.delays()[i]);
  return text + ", then the last for ever)";
}

namespace detail {

template <class S, class = void>
struct reseedable : std::false_type {};
template <class S>
struct reseedable<S, std::void_t<decltype(std::declval<S&>().reseed(std::uint64_t{}))>> : std::true_type {};

template <class X, class = void>
struct has_text : std::false_type {};
template <class X>
struct has_text<X, std::void_t<decltype(to_string(std::declval<const X&>()))>> : std::true_type {};

/// One event's retries: its own copy of the schedule and the stop rule.
class retry_state {
 public:
  retry_state() = default;
  retry_state(const retry_state&) = delete;
  retry_state& operator=(const retry_state&) = delete;
  virtual ~retry_state() = default;
  /// After `attempts` failed attempts, the last one at `age`: why to give up, or none and the wait before the next
  /// attempt in `delay` (the schedule's, shortened to the stop rule's deadline), as a poller decides after a check.
  virtual stop_reason plan(std::uint64_t attempts, duration age, duration& delay) = 0;
  /// Moves the schedule past the waits of `attempts` earlier failures (an event restored from a saved state goes on
  /// with its schedule instead of starting it over). Stops early at the schedule's plateau, and after 4096 waits.
  virtual void skip(std::uint64_t attempts) = 0;
};

class retry_prototype {
 public:
  retry_prototype() = default;
  retry_prototype(const retry_prototype&) = delete;
  retry_prototype& operator=(const retry_prototype&) = delete;
  virtual ~retry_prototype() = default;
  virtual std::unique_ptr<retry_state> start(std::uint64_t seed) const = 0;
  virtual std::string description() const = 0;
};

template <class Schedule, class Stop>
class retry_model final : public retry_prototype {
 public:
  retry_model(Schedule schedule, Stop stop) : schedule_(std::move(schedule)), stop_(std::move(stop)) {}
  std::unique_ptr<retry_state> start(std::uint64_t seed) const override {
    auto state = std::make_unique<running>(schedule_, stop_);
    // Copies of one jittered prototype must not retry in lockstep (the runner reseeds its copies the same way).
    if constexpr (reseedable<Schedule>::value) state->schedule.reseed(seed);
    (void)seed;
    return state;
  }
  std::string description() const override {
    std::string text = has_text<Schedule>::value ? schedule_text(schedule_) : std::string("a schedule");
    return text + ", until " + (has_text<Stop>::value ? stop_text(stop_) : std::string("a stop rule"));
  }

 private:
  struct running final : retry_state {
    running(const Schedule& s, const Stop& r) : schedule(s), stop(r) {
      schedule.reset();
      stop.reset();
    }
    stop_reason plan(std::uint64_t attempts, duration age, duration& delay) override {
      const stop_context context{attempts, age};
      const stop_reason reason = stop.check(context);
      if (reason != stop_reason::none) return reason;
      delay = std::max(duration::zero(), duration{schedule.next()});
      delay = std::min(delay, std::max(duration::zero(), duration{stop.time_left(age)}));
      if constexpr (sees_next_delay<Stop>::value) return stop.check_next_delay(context, delay);  // before_elapsed
      return stop_reason::none;
    }
    void skip(std::uint64_t attempts) override {
      // A schedule without a plateau (a jittered one) would otherwise take a restored count of 4e9 literally.
      for (std::uint64_t i = 0; i < std::min<std::uint64_t>(attempts, 4096) && !schedule.plateau(); ++i) {
        (void)schedule.next();
      }
    }
    Schedule schedule;
    Stop stop;
  };
  template <class X>
  static std::string schedule_text(const X& x) {
    if constexpr (has_text<X>::value) {
      return to_string(x);
    } else {
      return {};
    }
  }
  template <class X>
  static std::string stop_text(const X& x) {
    return schedule_text(x);
  }

  Schedule schedule_;
  Stop stop_;
};

}  // namespace detail

/// How a subscription retries a handler that threw: waits from `schedule` between attempts (any pollster schedule),
/// until `stop` (any stop rule, over the attempts made and the event's age) says to give up and dead-letter the
/// event. A hard deadline (`before_deadline`) moves the last retry onto it. Each failing event gets fresh copies.
class retry_policy {
 public:
  template <class Schedule, class Stop>
  retry_policy(Schedule schedule, Stop stop) {
    static_assert(!(is_stop_rule_v<Schedule> && is_schedule_v<Stop>),
                  "pollster::retry_policy: the schedule and the stop rule are swapped: the schedule comes first");
    static_assert(is_schedule_v<Schedule>, "pollster::retry_policy: the first argument must be a schedule");
    static_assert(is_stop_rule_v<Stop>, "pollster::retry_policy: the second argument must be a stop rule");
    prototype_ = std::make_shared<detail::retry_model<Schedule, Stop>>(std::move(schedule), std::move(stop));
  }

  /// (Used by subscriptions: the retries of one event.)
  std::unique_ptr<detail::retry_state> start(std::uint64_t seed) const { return prototype_->start(seed); }
  /// "delay_steps(10s, 30s, ...), until ..." when the schedule and the stop rule have a to_string.
  std::string description() const { return prototype_->description(); }

 private:
  std::shared_ptr<const detail::retry_prototype> prototype_;
};

/// Event Grid's retry schedule (learn.microsoft.com/azure/event-grid/delivery-and-retry, "Retry schedule"): after
/// 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h and 6 h, then every 12 h. Event Grid adds a small
/// randomisation to each step and may skip retries to an unhealthy endpoint; this schedule does neither.
/// Test: "Event Grid's schedule: 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h, then every 12 h".
inline delay_steps event_grid_schedule() {
  using namespace std::chrono;
  return delay_steps({seconds(10), seconds(30), minutes(1), minutes(5), minutes(10), minutes(30), hours(1), hours(3),
                      hours(6), hours(12)});
}

/// Event Grid's default retry policy (the same page, "Retry policy"): its schedule, for at most 30 delivery attempts
/// (maxDeliveryAttempts) and 1440 minutes (eventTimeToLiveInMinutes), whichever comes first. The time to live is a
/// hard deadline here: the retry that would pass it is moved onto it, and the event is dead-lettered after that
/// attempt (with the defaults: the 12th attempt, at 24 h). Both limits may be lowered, as Event Grid allows.
/// Tests: "Event Grid's policy: 12 attempts in 24 hours, the last moved onto the time to live" (delivery_test) and
/// "Event Grid's default retries after 10 s, 30 s, 1 min ... and dead-letters at 24 h, after 12 attempts".
inline retry_policy event_grid_retry(std::uint64_t max_delivery_attempts = 30,
                                     duration time_to_live = std::chrono::hours(24)) {
  return retry_policy(event_grid_schedule(), after_attempts(max_delivery_attempts) | before_deadline(time_to_live));
}

/// What a handler learns about the delivery it is called for.
struct delivery {
  std::string_view subscription;  ///< the subscription's name
  std::uint32_t attempt = 1;      ///< 1 for the first delivery, 2 for the first redelivery, ...
  duration age{};                 ///< since the poll that saw the change
};

/// Why an event was given up on.
enum class dead_letter_reason : std::uint8_t {
  attempts,      ///< the retry policy's attempt limit
  elapsed,       ///< the retry policy's time limit (after_elapsed)
  deadline,      ///< the retry policy's hard deadline (before_deadline: Event Grid's time to live)
  custom,        ///< the retry policy's own rule (stop_when)
  queue_full,    ///< the subscription already held `max_pending` undelivered events
  unsubscribed,  ///< restored for a subscription that no longer exists
};

constexpr const char* to_string(dead_letter_reason r) noexcept {
  switch (r) {
    case dead_letter_reason::attempts: return "attempts";
    case dead_letter_reason::elapsed: return "elapsed";
    case dead_letter_reason::deadline: return "deadline";
    case dead_letter_reason::custom: return "custom";
    case dead_letter_reason::queue_full: return "queue full";
    case dead_letter_reason::unsubscribed: return "unsubscribed";
  }
  return "unknown";
}

namespace detail {
constexpr dead_letter_reason dead_letter_reason_of(stop_reason r) noexcept {
  switch (r) {
    case stop_reason::attempts: return dead_letter_reason::attempts;
    case stop_reason::elapsed: return dead_letter_reason::elapsed;
    case stop_reason::deadline: return dead_letter_reason::deadline;
    case stop_reason::none:
    case stop_reason::custom: break;
  }
  return dead_letter_reason::custom;
}
}  // namespace detail

/// The error of an event that could not even wait for a retry: its subscription's queue was full.
class delivery_overflow : public std::length_error {
 public:
  using std::length_error::length_error;
};

/// What the dead-letter handler receives: the event, whose subscription gave up on it, why, after how many attempts,
/// and the last exception (the handler's, the filter's, or a `delivery_overflow`; null for an event restored from
/// a saved state and given up before a new attempt).
template <class T, class K>
struct dead_letter {
  pollster::event<T, K> event;
  std::string subscription;
  std::exception_ptr error;
  std::uint32_t attempts = 0;  ///< delivery attempts made (0: it never got one, its queue was full)
  duration age{};
  dead_letter_reason reason = dead_letter_reason::attempts;
};

/// The counts of one subscription.
struct subscription_stats {
  std::uint64_t matched = 0;          ///< changes its filter and kinds let through
  std::uint64_t delivered = 0;        ///< handler calls that returned
  std::uint64_t failed_attempts = 0;  ///< handler calls (and filter evaluations) that threw
  std::uint64_t redeliveries = 0;     ///< attempts after an event's first
  std::uint64_t dead_lettered = 0;    ///< events given up on
  std::uint64_t filter_errors = 0;    ///< filter evaluations that threw
  std::size_t pending = 0;            ///< events held now: failed ones waiting for a retry and the ones behind them
  std::size_t most_pending = 0;       ///< the most held at once
};

/// One undelivered event in a saved state: the change, as its subscription sees it, and the attempts made.
template <class T, class K>
struct undelivered_event {
  std::string subscription;
  event_kind kind = event_kind::added;  ///< as the subscription sees it (the diff's kind when not `filtered`)
  bool filtered = true;                 ///< false: its filter threw; it is asked again before the next attempt
  K key{};
  std::optional<T> before;  ///< the record before (changed), the last known one (removed)
  std::optional<T> after;   ///< the record now (added, changed)
  bool initial = false;
  std::uint64_t sequence = 0;                      ///< the change's number (ids without a version)
  std::chrono::system_clock::time_point time{};    ///< when it was seen: its age counts the time spent down
  std::uint32_t attempts = 0;
  /// When its next attempt was due, by the wall clock: set for the first event of its key (the one waiting for a
  /// retry), none for the ones behind it. A restore keeps it (at once if it passed while down).
  std::optional<std::chrono::system_clock::time_point> due;
};

/// What a restarted process needs to go on delivering: the number of changes so far (ids without a version keep
/// counting from it) and every undelivered event, per subscription and per key in delivery order, each with its
/// attempts and when its retry is due (its retry schedule goes on where it was). A plain value: serialise it as you
/// serialise your records. `subscriptions::save()` / `restore()`.
template <class T, class K>
struct delivery_state {
  std::uint64_t sequence = 0;
  std::vector<undelivered_event<T, K>> undelivered;
};

POLLSTER_NAMESPACE_END
