// SPDX-License-Identifier: MIT
#pragma once

// The poller: the one state machine that decides what a step means and what comes next (in the spirit of OpenStack
// Heat's TaskRunner). It never reads a clock and never sleeps; every driver (poll_until, the runner, the watcher,
// asio) is a thin loop over these transitions:
//
//   step(now)       begins an attempt. A synchronous check runs and is concluded at once. An asynchronous check
//                   gets a completion and the poller is in flight until the step arrives, or until next_due(), which
//                   is then the attempt's timeout.
//   complete(now)   the in-flight attempt's step arrived (`ready()`): conclude it.
//   time_out(now)   the in-flight attempt passed its timeout: its abort action runs, and it counts as a transient
//                   failure (outcome::timeouts); at the deadline the run ends there, cause deadline.
//   cancel(now), nudge(now), capture(exception, now), restart(start).
//   progress(), resume(progress, now, since_saved): where the run stands, as a value another poller (in another
//                   process, after a restart) continues from (progress.hpp).
//
// The delay before the next check is decided in this order (DESIGN.md):
//   schedule value -> jitter -> clamp to the schedule's [floor, cap]   (inside schedule.next())
//   -> the check's own direction (`poll_again_in`) replaces the schedule's value, which is then not consumed
//   -> a server hint is a floor, max(delay, hint), capped by `max_hint` and by `delay + max_hint_extra`
//   -> clamp to the time left before the deadline; a hint that points past the deadline ends the run at once.
//
// A synchronous check pays nothing for asynchronous ones: no attempt record, no atomic, no allocation.

#include "check.hpp"
#include "clock.hpp"
#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"
#include "outcome.hpp"
#include "progress.hpp"
#include "step.hpp"
#include "stop.hpp"

#include <algorithm>    // min, max
#include <chrono>       // duration_cast, time_point
#include <cstdint>      // uint8_t, uint32_t, uint64_t
#include <exception>    // exception_ptr
#include <functional>   // function (hook_functions only)
#include <limits>       // numeric_limits
#include <memory>       // shared_ptr
#include <new>          // nothrow
#include <optional>     // optional
#include <stdexcept>    // logic_error
#include <type_traits>  // conditional_t, is_empty_v
#include <utility>      // move, forward, swap

POLLSTER_NAMESPACE_BEGIN

/// Why the coming delay has the length it has (before_sleep hook).
enum class delay_reason : std::uint8_t {
  schedule,  ///< the schedule's value
  hint,      ///< a server hint was longer than the schedule's value
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
  /// The most a hint may add to the schedule's delay (AWS clamps `x-amz-retry-after` to the delay + 5 s).
  duration max_hint_extra = duration::max();
  /// How long a hint stays in force after the response that carried it, for later responses that carry none.
  /// Zero by default: a Retry-After speaks about the next request only. duration::max() keeps it until a new one.
  duration hint_lifetime = duration::zero();
  /// After a nudge, restart the schedule from its first delay (something changed: look closely again).
  bool reset_on_nudge = false;
  /// An absolute deadline on the poller's clock (`pollster::at(clock.now() + 15min)`), besides any stop rule.
  std::optional<clock_time> deadline;
  /// How long one attempt of an asynchronous check may take; never past the deadline. The default: the time left.
  duration attempt_timeout = duration::max();
  /// poll_until and the watcher: cancels the run, interrupting a sleep at once. (A poller: `cancel()`; a runner's
  /// poller: its handle.)
  cancel_token cancel;
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

/// What only a poller of an asynchronous check keeps: its attempt record (reused from attempt to attempt while
/// nobody else holds it), where its completions report, and how its attempts ended. A synchronous check's poller
/// holds `no_async_part` instead, which takes no byte.
struct no_async_part {};

template <class T, class E, class TimePoint>
class async_part {
 public:
  async_part() noexcept = default;
  async_part(const async_part& other)
      : listener(other.listener), owner(other.owner), slot(other.slot), generation(other.generation),
        last_end(other.last_end), timeouts(other.timeouts), abandoned(other.abandoned) {
    if (other.in_flight) throw std::logic_error("pollster::poller: a poller with a check in flight cannot be copied");
  }
  async_part(async_part&& other) noexcept
      : record(other.record), listener(std::move(other.listener)), owner(other.owner), slot(other.slot),
        generation(other.generation), previous_due(other.previous_due), in_flight(other.in_flight),
        nudge_pending(other.nudge_pending), last_end(other.last_end), timeouts(other.timeouts),
        abandoned(other.abandoned) {
    other.record = nullptr;
    other.in_flight = false;
  }
  async_part& operator=(const async_part&) = delete;
  async_part& operator=(async_part&&) = delete;
  ~async_part() {
    if (record == nullptr) return;
    if (in_flight) {
      try {
        record->close_and_abort();  // a poller destroyed with a check in flight: the check is told, late steps ignored
      } catch (...) {
      }
    }
    record->release();
  }

  attempt<T, E>* record = nullptr;  // one reference, the poller's
  std::shared_ptr<attempt_listener> listener;
  void* owner = nullptr;
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  TimePoint previous_due{};  // next_due before the attempt began (restored if the check throws as it starts)
  bool in_flight = false;
  bool nudge_pending = false;  // a nudge arrived while in flight: the next check is due as soon as this one ends
  attempt_end last_end = attempt_end::none;
  std::uint32_t timeouts = 0;
  std::uint32_t abandoned = 0;
};

template <class Check, class TimePoint, bool Async = check_traits<Check>::is_async>
struct async_part_of {
  using type = no_async_part;
};
template <class Check, class TimePoint>
struct async_part_of<Check, TimePoint, true> {
  using step_type = check_step_t<Check>;
  using type = async_part<typename step_type::value_type, typename step_type::error_type, TimePoint>;
};

}  // namespace detail

/// The one polling loop, as a step-able object: it knows when it is next due and makes one attempt per `step(now)`.
/// It allocates nothing per step and is not thread-safe: its driver owns it (completions reach it only through
/// the driver). What few runs use (options that are not the default, a remembered server hint, nudges, budget wait,
/// a captured exception) lives in a cold part that the poller allocates once, when it first needs it, so that a
/// fleet of a million pending pollers stays small.
///
/// Driving it: call `step(now)` when `now >= next_due()` until `done()`, then read `outcome()`. With an asynchronous
/// check, `in_flight()` says an attempt is out: call `complete(now)` once `ready()`, or `step(now)` at `next_due()`
/// (the attempt's timeout) to time it out. A check that throws propagates out of `step`, and the poller stays
/// consistent: the attempt is counted, nothing else changed, and it is still due (step again, or
/// `capture(std::current_exception(), now)` to end it).
template <class Check, class Schedule, class Stop, class TimePoint, class Hooks = no_hooks>
class poller : private detail::compressed<Check, 0>,
               private detail::compressed<Stop, 1>,
               private detail::compressed<Hooks, 2>,
               private detail::compressed<typename detail::async_part_of<Check, TimePoint>::type, 3> {
  using check_holder = detail::compressed<Check, 0>;
  using stop_holder = detail::compressed<Stop, 1>;
  using hooks_holder = detail::compressed<Hooks, 2>;
  using async_type = typename detail::async_part_of<Check, TimePoint>::type;
  using async_holder = detail::compressed<async_type, 3>;

 public:
  POLLSTER_CHECK_ARGUMENTS("pollster::poller", Check, Schedule, Stop);
  // (A stand-in step type for a non-check, so that the assertion above is the error a user reads.)
  using step_type =
      std::conditional_t<is_check_v<Check>, check_step_t<Check>, pollster::step<std::monostate, std::monostate>>;
  using value_type = typename step_type::value_type;
  using error_type = typename step_type::error_type;
  using report_type = check_report_t<Check>;
  using outcome_type = pollster::outcome<value_type, error_type, report_type>;
  using time_point = TimePoint;
  /// Whether the check is asynchronous (takes a completion): then attempts may be in flight.
  static constexpr bool is_async = check_traits<Check>::is_async;

  /// Starts a run at `start`: the first check is due at once, or after the schedule's first delay with
  /// `wait_first`. The schedule and the stop rule are reset, so a configured one works as a prototype.
  poller(Check check, Schedule schedule, Stop stop, time_point start, const poll_options& options = {},
         Hooks hooks = Hooks{})
      : check_holder(std::move(check)),
        stop_holder(std::move(stop)),
        hooks_holder(std::move(hooks)),
        async_holder(async_type{}),
        schedule_(std::move(schedule)) {
    const auto require_non_negative = [](const char* name, duration d) {
      if (d < duration::zero()) detail::throw_invalid("poll_options", name, ">= 0", detail::duration_text(d));
    };
    require_non_negative("max_hint", options.max_hint);
    require_non_negative("max_hint_extra", options.max_hint_extra);
    require_non_negative("hint_lifetime", options.hint_lifetime);
    if (options.attempt_timeout <= duration::zero()) {
      detail::throw_invalid("poll_options", "attempt_timeout", "> 0", detail::duration_text(options.attempt_timeout));
    }
    // The defaults need no storage; any other option is kept in the cold part, created here once.
    if (options.deadline || options.wait_first || options.reset_on_nudge || options.max_hint != duration::max() ||
        options.max_hint_extra != duration::max() || options.hint_lifetime != duration::zero() ||
        options.attempt_timeout != duration::max()) {
      cold_state& c = cold_.make();
      c.max_hint = options.max_hint;
      c.max_hint_extra = options.max_hint_extra;
      c.hint_lifetime = options.hint_lifetime;
      c.attempt_timeout = options.attempt_timeout;
      c.reset_on_nudge = options.reset_on_nudge;
      c.wait_first = options.wait_first;
      if (options.deadline) {
        c.deadline = to_time_point(*options.deadline, "deadline");
        has_deadline_.set();
      }
    }
    restart(start);
  }

  /// Begins a fresh run at `start` with the same check, schedule (reset), stop rule (reset) and options. An attempt
  /// still in flight is aborted.
  void restart(time_point start) {
    begin_run(start);
    if (done_) return;
    if (cold_.get() != nullptr && cold_.get()->wait_first) plan_next(start, duration::zero(), step_type{});
  }

  /// Where the run stands, as of the end of its last concluded attempt (progress.hpp): a value another poller built
  /// the same way continues from with `resume`. An attempt in flight is left out (whoever resumes makes it again).
  /// Needs a schedule that says where it stands: `resumable{...}` gives any schedule that.
  poll_progress<value_type, error_type> progress() const {
    static_assert(detail::has_position<Schedule>::value,
                  "pollster::poller::progress: the schedule must say where it stands (position() and seek()): "
                  "wrap it in pollster::resumable{...}");
    poll_progress<value_type, error_type> p;
    time_point due = next_due_;
    p.attempts = outcome_.attempts;
    if constexpr (is_async) {
      if (async().in_flight) {
        --p.attempts;
        due = async().previous_due;
      }
      p.timeouts = async().timeouts;
      p.abandoned = async().abandoned;
    }
    const time_point last_end = last_end_time();
    p.elapsed = outcome_.elapsed;
    p.slept = outcome_.slept;
    p.next_wait = due > last_end ? to_duration(due - last_end) : duration::zero();
    p.last_delay = last_delay_;
    p.schedule = schedule_.position();
    if (const cold_state* c = cold_.get()) p.nudges = c->nudges;
    p.last_value = outcome_.last_value;
    p.last_error = outcome_.last_error;
    if constexpr (detail::saves_state<Check>::value) p.check_state = check().save_state();
    return p;
  }

  /// Continues a run from `p` (taken elsewhere, `since_saved` ago: the time nobody polled, which counts as elapsed
  /// and idle): the attempt count, elapsed time, last value and error, the schedule's position and the check's state
  /// go on, and the next check is due when the first owner's was, or at `now` if that has passed (never past the
  /// time the stop rule or the deadline leaves). An attempt in flight is aborted first. A position the schedule
  /// refuses, or a state the check refuses, throws with the poller unchanged.
  void resume(const poll_progress<value_type, error_type>& p, time_point now, duration since_saved = duration::zero()) {
    static_assert(detail::has_position<Schedule>::value,
                  "pollster::poller::resume: the schedule must say where it stands (position() and seek()): "
                  "wrap it in pollster::resumable{...}");
    const auto require_non_negative = [](const char* name, duration d) {
      if (d < duration::zero()) detail::throw_invalid("poller::resume", name, ">= 0", detail::duration_text(d));
    };
    require_non_negative("since_saved", since_saved);
    require_non_negative("progress.elapsed", p.elapsed);
    require_non_negative("progress.slept", p.slept);
    require_non_negative("progress.next_wait", p.next_wait);
    // What may throw comes first, with nothing changed yet: the position (on a copy) and the check's state.
    Schedule sought = schedule_;
    sought.seek(p.schedule);
    if constexpr (detail::saves_state<Check>::value) check_mutable().restore_state(p.check_state);
    const duration last_end = detail::sat_sub(to_duration(now.time_since_epoch()), since_saved);
    const duration start = detail::sat_sub(last_end, p.elapsed);
    begin_run(time_point{std::chrono::duration_cast<typename time_point::duration>(start)});
    schedule_ = std::move(sought);
    if (done_) return;  // a deadline already past
    outcome_.attempts = p.attempts;
    outcome_.elapsed = p.elapsed;
    outcome_.slept = p.slept;
    outcome_.last_value = p.last_value;
    outcome_.last_error = p.last_error;
    last_delay_ = p.last_delay;
    if (p.nudges != 0) cold_.make().nudges = p.nudges;
    if constexpr (is_async) {
      async().timeouts = p.timeouts;
      async().abandoned = p.abandoned;
      if (p.attempts != 0) async().last_end = attempt_end::reported;
    }
    const time_point end = last_end_time();
    const duration wait = std::min(p.next_wait, time_left(end, outcome_.elapsed));
    next_due_ = std::max(now, later(end, wait));
    if (has_deadline_ && cold_.get()->deadline < now) finish(pollster::cause::deadline, stop_reason::deadline, now);
  }

 private:
  /// A fresh run at `start`: everything back to its first state, the first check due at `start`.
  void begin_run(time_point start) {
    if constexpr (is_async) {
      abort_in_flight();
      async().last_end = attempt_end::none;
      async().timeouts = async().abandoned = 0;
      async().nudge_pending = false;
    }
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
    }
  }

 public:
  /// When the next check is due (while an attempt is in flight: its timeout); `time_point::max()` once done.
  time_point next_due() const noexcept { return done_ ? time_point::max() : next_due_; }
  bool done() const noexcept { return done_; }
  /// An asynchronous attempt is out, waiting for its step (always false for a synchronous check).
  bool in_flight() const noexcept {
    if constexpr (is_async) {
      return async().in_flight;
    } else {
      return false;
    }
  }
  /// The in-flight attempt's step has arrived: `complete(now)` concludes it.
  bool ready() const noexcept {
    if constexpr (is_async) {
      return async().in_flight && async().record->state() == detail::attempt_base::completed;
    } else {
      return false;
    }
  }

  /// Whether `attempt` is the record of the attempt in flight (a driver's check before it applies a completion).
  bool is_current(const detail::attempt_base& attempt) const noexcept {
    if constexpr (is_async) {
      return async().in_flight && async().record == &attempt;
    } else {
      (void)attempt;
      return false;
    }
  }

  /// Tells the poller where the completions of its asynchronous attempts report (a driver's listener), with the
  /// driver's own cookies (a runner's node, slot and generation), which come back to it with each completion.
  /// An asynchronous poller makes its attempt record here if it has none (std::bad_alloc leaves it unchanged), so
  /// that its attempts allocate nothing while the record can be reused.
  void attach(std::shared_ptr<detail::attempt_listener> listener, void* owner = nullptr, std::uint32_t slot = 0,
              std::uint32_t generation = 0) {
    if constexpr (is_async) {
      if (async().record == nullptr) async().record = new detail::attempt<value_type, error_type>();
      async().listener = std::move(listener);
      async().owner = owner;
      async().slot = slot;
      async().generation = generation;
      if (async().record != nullptr) async().record->link(async().listener, owner, slot, generation);
    } else {
      (void)listener;
      (void)owner;
      (void)slot;
      (void)generation;
    }
  }

  /// Makes one attempt at `now` (a synchronous check is treated as instant: its end is `now` too).
  void step(time_point now) {
    step(now, [now]() noexcept { return now; });
  }
  /// Makes one attempt starting at `now`; `finished()` gives the time a synchronous check ended (a driver with a
  /// real clock passes `[&] { return clock.now(); }`, so the next delay counts from the end of the check, as Heat
  /// sleeps after a step). While an attempt is in flight: concludes it if its step arrived, times it out if `now`
  /// is at its timeout, and otherwise does nothing.
  template <class Finished>
  void step(time_point now, Finished&& finished) {
    if (done_) return;
    if constexpr (is_async) {
      if (async().in_flight) {
        if (ready()) {
          complete(now);
        } else if (now >= next_due_) {
          time_out(now);
        }
        return;
      }
    }
    // The attempt record first: without memory for it (std::bad_alloc) nothing has changed.
    if constexpr (is_async) ready_record();
    // Idle time before this check, and the run's time so far. The attempt is counted before the check runs, so a
    // throw leaves it counted, with the account up to the check's start. (Saturating: a manual clock may stand
    // anywhere in its range, and a custom one may jump.)
    const time_point last_end = last_end_time();
    if (now > last_end) {
      duration since_start;
      if (detail::checked_sub(to_duration(now.time_since_epoch()), to_duration(start_.time_since_epoch()),
                              since_start)) {
        // start <= last_end < now, and now - start fits: so do this idle time (now - start less the time so far)
        // and the sum of the idle times, which all lie within it (one overflow test instead of three).
        outcome_.slept += since_start - outcome_.elapsed;
        outcome_.elapsed = since_start;
      } else {
        outcome_.slept = detail::sat_add(outcome_.slept, between(last_end, now));
        outcome_.elapsed = between(start_, now);
      }
    }
    ++outcome_.attempts;
    if constexpr (detail::has_before_attempt<Hooks>::value) hooks().before_attempt(state_at(now));
    if constexpr (is_async) {
      begin_async(now, finished);
    } else {
      step_type result = invoke_check(now);
      conclude(result, std::max(now, static_cast<time_point>(finished())));
    }
  }

  /// Concludes the in-flight attempt whose step has arrived (`ready()`), at `now`. Nothing otherwise.
  void complete(time_point now) {
    if constexpr (is_async) {
      if (done_ || !async().in_flight || !async().record->take()) return;
      detail::attempt<value_type, error_type>& record = *async().record;
      async().in_flight = false;
      if (record.abandoned()) {
        ++async().abandoned;
        async().last_end = attempt_end::abandoned;
      } else {
        async().last_end = attempt_end::reported;
      }
      const time_point end = std::max(now, last_end_time());
      conclude(*record.result, end);
      record.result.reset();
    } else {
      (void)now;
    }
  }

  /// The in-flight attempt passed its timeout at `now`: its abort action runs and it counts as a transient failure
  /// (the schedule goes on); at the deadline the run ends, cause deadline. A step that arrived first wins.
  void time_out(time_point now) {
    if constexpr (is_async) {
      if (done_ || !async().in_flight) return;
      if (!async().record->close_and_abort()) {
        complete(now);  // the step arrived first (or is arriving: then its listener brings it)
        return;
      }
      async().in_flight = false;
      const time_point end = std::max(now, last_end_time());
      if (time_left(end, between(start_, end)) <= duration::zero()) {
        async().last_end = attempt_end::aborted;
        finish(pollster::cause::deadline, stop_reason::deadline, end);
        return;
      }
      ++async().timeouts;
      async().last_end = attempt_end::timed_out;
      step_type timed_out;
      timed_out.kind = step_kind::transient;
      conclude(timed_out, end);
    } else {
      (void)now;
    }
  }

 private:
  /// Everything after a check that ended at `end`: the account, the hooks, and whether and when to check again. A
  /// hooks type with `on_progress(const poller&)` hears of every concluded attempt (to save the progress as it goes).
  POLLSTER_ALWAYS_INLINE void conclude(step_type& result, time_point end) {
    conclude_attempt(result, end);
    if constexpr (detail::has_on_progress<Hooks, poller>::value) hooks().on_progress(static_cast<const poller&>(*this));
  }
  POLLSTER_ALWAYS_INLINE void conclude_attempt(step_type& result, time_point end) {
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
    if (result.restart_schedule) schedule_.reset();
    plan_next(end, outcome_.elapsed, result);
    if constexpr (is_async) {
      if (async().nudge_pending && !done_) {
        async().nudge_pending = false;  // a nudge during the attempt: its answer may predate the change
        nudged_ = true;
        if (end < next_due_) next_due_ = end;
      }
    }
  }

  template <class Finished>
  void begin_async(time_point now, Finished& finished) {
    if constexpr (is_async) {
      auto& part = async();
      poll_state s = full_state_at(now);
      part.record->reopen(s);
      part.previous_due = next_due_;
      part.in_flight = true;
      next_due_ = later(now, s.timeout);
      part.record->enter_check();
      try {
        Check& check = static_cast<check_holder&>(*this).get();
        completion<value_type, error_type> c(part.record);
        if constexpr (check_traits<Check>::takes_state) {
          check(static_cast<const poll_state&>(s), std::move(c));
        } else {
          check(std::move(c));
        }
      } catch (...) {
        // The check threw as it started: the attempt stays counted and the poller is due again, as for a
        // synchronous check; whatever it may have reported is ignored.
        part.record->leave_check();
        part.record->close_and_abort();
        part.in_flight = false;
        next_due_ = part.previous_due;
        throw;
      }
      if (part.record->leave_check()) complete(std::max(now, static_cast<time_point>(finished())));
    } else {
      (void)now;
      (void)finished;
    }
  }

  /// Makes sure the attempt record can serve the next attempt: a record that a late completion (or its queued step)
  /// still holds is left to it, and a fresh one is made. May throw std::bad_alloc, changing nothing.
  void ready_record() {
    if constexpr (is_async) {
      auto& part = async();
      if (part.record != nullptr && part.record->sole_owner()) return;
      auto* fresh = new detail::attempt<value_type, error_type>();
      fresh->link(part.listener, part.owner, part.slot, part.generation);
      if (part.record != nullptr) part.record->release();
      part.record = fresh;
    }
  }

  void abort_in_flight() noexcept {
    if constexpr (is_async) {
      if (!async().in_flight) return;
      async().in_flight = false;
      async().last_end = attempt_end::aborted;
      try {
        async().record->close_and_abort();
      } catch (...) {
        // An abort action that throws cannot stop a cancellation.
      }
    }
  }

 public:
  /// Makes the poller due at `now` (notify-then-verify: a callback said something changed, so check through the
  /// real API at once). The schedule then resumes, from its start with `reset_on_nudge`. A nudge during an
  /// in-flight attempt makes the next check due as soon as that attempt ends. The first nudge of a run may allocate
  /// (the count lives in the poller's cold part): std::bad_alloc then leaves the poller unchanged.
  void nudge(time_point now) {
    if (done_) return;
    cold_state& c = cold_.make();
    if (c.nudges != std::numeric_limits<std::uint32_t>::max()) ++c.nudges;  // a webhook storm saturates it
    if constexpr (is_async) {
      if (async().in_flight) {
        async().nudge_pending = true;
        if (c.reset_on_nudge) schedule_.reset();
        return;
      }
    }
    nudged_ = true;
    if (now < next_due_) next_due_ = now;
    if (c.reset_on_nudge) schedule_.reset();
  }

  /// Ends the run with cause cancelled, keeping the last value and error. An attempt in flight is aborted (its abort
  /// action runs; its step, should it still arrive, is ignored). No further check runs.
  void cancel(time_point now) noexcept {
    if (done_) return;
    abort_in_flight();
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
    abort_in_flight();
    if (cold_state* c = cold_.try_make()) c->exception = std::move(error);
    finish(pollster::cause::exception, stop_reason::none, std::max(now, last_end_time()));
  }

  /// For a driver that held a due check back while waiting for a shared rate budget or a free slot. The first wait
  /// of a run may allocate (it lives in the poller's cold part): std::bad_alloc then leaves the poller unchanged.
  void add_budget_wait(duration waited) {
    if (waited > duration::zero()) {
      cold_state& c = cold_.make();
      c.budget_wait = detail::sat_add(c.budget_wait, waited);
    }
  }
  /// Makes room for add_budget_wait, which then cannot fail: a driver calls it before it takes what it cannot give
  /// back (a budget's token) for a check that may then have to wait. May throw std::bad_alloc, changing nothing.
  void prepare_budget_wait() { (void)cold_.make(); }

  /// The account so far (complete once done()), as a copy: the poller keeps it in a more compact form. A check with
  /// a `report(const run_summary&) const` member contributes `report`.
  outcome_type outcome() const { return make_outcome(outcome_.last_value, outcome_.last_error); }
  /// Moves the account out (once done): the poller is spent until `restart`.
  outcome_type take_outcome() { return make_outcome(std::move(outcome_.last_value), std::move(outcome_.last_error)); }

  /// What the last check said, for a driver: its kind, whether it reported "rate limited", and the delay chosen
  /// after it with the reason.
  step_kind last_kind() const noexcept { return last_kind_; }
  bool last_throttled() const noexcept { return last_throttled_; }
  duration last_delay() const noexcept { return last_delay_; }
  delay_reason last_reason() const noexcept { return last_reason_; }
  time_point start_time() const noexcept { return start_; }
  const Schedule& schedule() const noexcept { return schedule_; }
  const Stop& stop_rule() const noexcept { return static_cast<const stop_holder&>(*this).get(); }
  const Check& check() const noexcept { return static_cast<const check_holder&>(*this).get(); }
  /// The poll state a check starting at `now` would see (attempt number, elapsed, time left, timeout).
  poll_state state_for(time_point now) const { return full_state_at(now); }

 private:
  static duration to_duration(typename time_point::duration d) noexcept {
    return std::chrono::duration_cast<duration>(d);
  }
  /// `to - from`, saturating: a deadline, a hint or a manual clock may stand anywhere in the clock's range.
  static duration between(time_point from, time_point to) noexcept {
    return detail::sat_sub(to_duration(to.time_since_epoch()), to_duration(from.time_since_epoch()));
  }
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
  time_point last_end_time() const noexcept { return detail::sat_add(start_, outcome_.elapsed); }

  Stop& stop_rule_mutable() noexcept { return static_cast<stop_holder&>(*this).get(); }
  Check& check_mutable() noexcept { return static_cast<check_holder&>(*this).get(); }
  Hooks& hooks() noexcept { return static_cast<hooks_holder&>(*this).get(); }
  async_type& async() noexcept { return static_cast<async_holder&>(*this).get(); }
  const async_type& async() const noexcept { return static_cast<const async_holder&>(*this).get(); }

  /// What the check and the hooks see; built on demand so the poller stores none of it twice.
  poll_state state_at(time_point t) const noexcept {
    poll_state s;
    s.attempt = outcome_.attempts;
    s.elapsed = between(start_, t);
    s.last_delay = last_delay_;
    s.nudged = nudged_;
    return s;
  }
  /// The same with the time left before the deadline and the attempt's timeout (what a check sees).
  poll_state full_state_at(time_point t) const {
    poll_state s = state_at(t);
    s.time_left = time_left(t, s.elapsed);
    s.timeout = s.time_left;
    if (const cold_state* c = cold_.get()) s.timeout = std::min(s.timeout, c->attempt_timeout);
    return s;
  }

  step_type invoke_check(time_point now) {
    Check& check = static_cast<check_holder&>(*this).get();
    using result = typename detail::sync_result<Check>::type;
    if constexpr (check_traits<Check>::takes_state) {
      if constexpr (std::is_same_v<result, step_type>) {
        return check(static_cast<const poll_state&>(full_state_at(now)));  // no conversion: no move either
      } else {
        return detail::to_step<step_type>(check(static_cast<const poll_state&>(full_state_at(now))));
      }
    } else {
      (void)now;
      if constexpr (std::is_same_v<result, step_type>) {
        return check();
      } else {
        return detail::to_step<step_type>(check());
      }
    }
  }

  /// The hint in force after a check that ended at `end`, as a delay: this response's, else the remembered one
  /// while it lives (`hint_lifetime` after the response that carried it; zero by default). Remembering a hint
  /// creates the cold part (one allocation per poller at most, never one per check).
  POLLSTER_ALWAYS_INLINE duration hint_delay(const retry_hint& fresh, time_point end) {
    cold_state* c = cold_.get();
    if (!fresh) {
      if (c == nullptr || c->remembered == retry_hint::form::none) return duration::zero();  // the common case
      if (between(c->remembered_at, end) >= c->hint_lifetime) {
        c->remembered = retry_hint::form::none;
        return duration::zero();
      }
      return std::min(wait_for(c->remembered, c->remembered_value, end), c->max_hint);
    }
    if (c == nullptr) return wait_for(fresh.kind(), fresh.value(), end);
    if (c->hint_lifetime > duration::zero()) {
      c->remembered = fresh.kind();
      c->remembered_value = fresh.value();
      c->remembered_at = end;
    }
    return std::min(wait_for(fresh.kind(), fresh.value(), end), c->max_hint);
  }
  /// A hint as a wait from `end`: a delay as it is; a time point as the time until it, saturating (a hint at
  /// time_point::min() is a wait of zero).
  static duration wait_for(retry_hint::form form, duration value, time_point end) noexcept {
    if (form != retry_hint::form::at) return value;
    return std::max(duration::zero(), detail::sat_sub(value, to_duration(end.time_since_epoch())));
  }

  POLLSTER_ALWAYS_INLINE void plan_next(time_point end, duration elapsed, const step_type& result) {
    duration delay;
    delay_reason reason;
    if (result.directed) {
      delay = *result.directed;
      reason = delay_reason::directed;
    } else {
      delay = std::max(duration::zero(), duration{schedule_.next()});  // a custom schedule may go below zero
      reason = delay_reason::schedule;
    }
    duration hint = hint_delay(result.hint, end);
    if (hint > delay) {
      if (const cold_state* c = cold_.get(); c != nullptr && c->max_hint_extra != duration::max()) {
        hint = std::min(hint, detail::sat_add(delay, c->max_hint_extra));
      }
      if (hint > delay) {
        delay = hint;
        reason = delay_reason::hint;
      }
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

  /// How long the next sleep may last after a check that ended at `end`: the stop rule's and the option's deadline.
  POLLSTER_ALWAYS_INLINE duration time_left(time_point end, duration elapsed) const {
    const duration left = stop_rule().time_left(elapsed);
    if (!has_deadline_) return left;
    const time_point deadline = cold_.get()->deadline;
    return std::min(left, deadline <= end ? duration::zero() : detail::sat_sub(to_duration(deadline.time_since_epoch()),
                                                                               to_duration(end.time_since_epoch())));
  }

  void finish(pollster::cause why, stop_reason reason, time_point end) noexcept {
    done_ = true;
    cause_ = why;
    stop_ = static_cast<std::uint8_t>(reason);  // (stop_reason is an int-sized enum: one byte suffices)
    outcome_.elapsed = between(start_, end);
  }

  // What most runs never use, out of line, so that a poller pays one pointer for it until it does: the options
  // that differ from their defaults (set at construction), the remembered server hint, the nudge count (from the
  // first nudge), the budget wait (from the first wait) and a captured exception.
  struct cold_state {
    time_point deadline{};  // valid when has_deadline_
    duration max_hint = duration::max();
    duration max_hint_extra = duration::max();
    duration hint_lifetime = duration::zero();
    duration attempt_timeout = duration::max();
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
    outcome_type o{cause_,
                   static_cast<stop_reason>(stop_),
                   c != nullptr ? c->nudges : 0,
                   std::forward<Value>(value),
                   std::forward<Error>(error),
                   c != nullptr ? c->exception : nullptr,
                   outcome_.attempts,
                   outcome_.elapsed,
                   outcome_.slept,
                   c != nullptr ? c->budget_wait : duration::zero()};
    if constexpr (is_async) {
      o.timeouts = async().timeouts;
      o.abandoned = async().abandoned;
      o.last_attempt = async().last_end;
    } else {
      o.last_attempt = outcome_.attempts == 0 ? attempt_end::none : attempt_end::reported;
    }
    if constexpr (detail::report_of<Check>::present) {
      o.report = check().report(run_summary{o.cause, o.stop, o.attempts, o.elapsed, o.timeouts});
    }
    return o;
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

POLLSTER_NAMESPACE_END
