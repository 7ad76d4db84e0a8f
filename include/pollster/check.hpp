// SPDX-License-Identifier: MIT
#pragma once

// The check contract: what a check is, what it sees, and how it reports.
//
// A check is synchronous when it returns its result: `bool` (true: done), `std::optional<T>` (a value: done),
// a `step<T, E>`, or a factory draft (`done(v)` and `pending(v)` share one type, so a lambda that returns only those
// needs no `-> step<...>`). It may take `const poll_state&` or nothing.
//
// A check is asynchronous when it takes a `completion<T, E>` (by value) and returns void:
// `void(const poll_state&, completion<T, E>)` or `void(completion<T, E>)`. It starts its work and returns at once;
// the completion reports the step later, exactly once, from any thread. A completion destroyed without reporting
// reports an abandoned attempt (a transient failure), never a hang. `on_abort(fn)` registers what to do when the
// attempt times out or the run is cancelled or reaches its deadline while the check is in flight.
//
// The completion holds a small refcounted attempt record, never the poller: the driver that owns the poller is the
// only one that touches it, after checking that the record is still its current attempt. So a completion that
// arrives late (after a timeout, a cancel, or the poller's end) is ignored safely.
//
// Record states: open -> completing -> completed -> taken (the driver consumed the step), or open -> closed (the
// driver timed the attempt out or aborted it; a completion that loses that race drops its step). The completer
// publishes `completed` and then notifies the driver's listener, unless the driver is still inside the call that
// started the check (it sees the step itself when the call returns): a completion that arrives inline costs no
// command and no wake.

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "outcome.hpp"
#include "step.hpp"
#include "stop.hpp"

#include <atomic>       // atomic
#include <cstdint>      // uint8_t, uint32_t, uint64_t
#include <functional>   // function
#include <memory>       // shared_ptr
#include <mutex>        // mutex, lock_guard, unique_lock
#include <optional>     // optional
#include <stdexcept>    // logic_error
#include <string>       // string
#include <type_traits>  // decay_t, enable_if_t, is_invocable_v, void_t
#include <utility>      // move, declval
#include <variant>      // monostate (the value and error types of checks that return bool or optional)

POLLSTER_NAMESPACE_BEGIN

/// What the check (optionally) and the hooks see. New fields may be added; existing ones keep their meaning.
struct poll_state {
  std::uint64_t attempt = 0;  ///< the number of the current check, from 1 (0 before the first)
  duration elapsed{};         ///< since the run started
  duration last_delay{};      ///< the delay that preceded the current check (zero for an immediate one)
  duration next_delay{};      ///< before_sleep: the delay about to start
  /// Before the run's deadline (the stop rule's and `poll_options::deadline`); duration::max() when there is none.
  duration time_left = duration::max();
  /// This attempt's own timeout (`poll_options::attempt_timeout`, never past the deadline): bound your I/O by it.
  duration timeout = duration::max();
  bool nudged = false;  ///< the current check was brought forward by a nudge
};

namespace detail {

class attempt_base;

/// The driver's end of its asynchronous attempts: told (on the completing thread) that an attempt has its step.
/// It must not block: a runner queues a command, a blocking driver wakes its sleep, asio posts.
struct attempt_listener {
  attempt_listener() = default;
  attempt_listener(const attempt_listener&) = delete;
  attempt_listener& operator=(const attempt_listener&) = delete;
  virtual ~attempt_listener() = default;
  virtual void attempt_completed(attempt_base& attempt) noexcept = 0;
};

/// The type-erased part of an attempt record: its state, references, abort action and the driver's link.
class attempt_base {
 public:
  enum state_type : std::uint8_t { open, completing, completed, taken, closed };

  attempt_base() = default;
  attempt_base(const attempt_base&) = delete;
  attempt_base& operator=(const attempt_base&) = delete;

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }
  /// Only the owner holds it: nobody else can reach it any more, so it may be reset and reused.
  bool sole_owner() const noexcept { return refs_.load(std::memory_order_acquire) == 1; }

  state_type state() const noexcept { return static_cast<state_type>(state_.load(std::memory_order_acquire)); }

  // --- the completer's side (any thread) ---
  /// Claims the right to report; false when the attempt was closed (timed out, aborted) or already reported.
  bool try_claim() noexcept {
    std::uint8_t expected = open;
    return state_.compare_exchange_strong(expected, completing, std::memory_order_acq_rel);
  }
  /// After try_claim() and storing the step: makes it visible and tells the driver, unless the driver is still in
  /// the call that started the check (it looks when the call returns). Both sides use sequentially consistent
  /// operations, so at least one of them sees the other: the step is never missed (it may be seen twice; the
  /// driver's `take` makes the second sighting harmless).
  void publish() noexcept {
    state_.store(completed, std::memory_order_seq_cst);
    if (driver_inside_.load(std::memory_order_seq_cst)) return;
    if (listener_) listener_->attempt_completed(*this);
  }

  // --- the driver's side (its own thread) ---
  void enter_check() noexcept { driver_inside_.store(true, std::memory_order_relaxed); }
  /// Returns whether the step arrived during the call.
  bool leave_check() noexcept {
    driver_inside_.store(false, std::memory_order_seq_cst);
    return state_.load(std::memory_order_seq_cst) == completed;
  }
  /// Consumes a completed step: true once per attempt.
  bool take() noexcept {
    std::uint8_t expected = completed;
    return state_.compare_exchange_strong(expected, taken, std::memory_order_acq_rel);
  }
  /// Closes an open attempt (timeout, cancel, deadline) and runs its abort action. False if the completer won.
  bool close_and_abort() {
    std::uint8_t expected = open;
    if (!state_.compare_exchange_strong(expected, closed, std::memory_order_acq_rel)) return false;
    std::function<void()> action;
    {
      std::lock_guard<std::mutex> lock(abort_mutex_);
      aborted_ = true;
      action = std::move(abort_action_);
    }
    if (action) action();
    return true;
  }
  /// Re-opens a record the driver holds alone, for the next attempt.
  void reopen(const poll_state& s) noexcept {
    state_.store(open, std::memory_order_relaxed);
    abandoned_ = false;
    aborted_ = false;
    abort_action_ = nullptr;
    snapshot_ = s;
  }
  void link(std::shared_ptr<attempt_listener> listener, void* owner, std::uint32_t slot,
            std::uint32_t generation) noexcept {
    listener_ = std::move(listener);
    owner_ = owner;
    slot_ = slot;
    generation_ = generation;
  }

  // --- either side ---
  /// Registers what to do when the attempt is closed before it reports; runs at once if it already was.
  void on_abort(std::function<void()> action) {
    std::unique_lock<std::mutex> lock(abort_mutex_);
    if (aborted_) {
      lock.unlock();
      if (action) action();
      return;
    }
    abort_action_ = std::move(action);
  }
  bool aborted() const {
    std::lock_guard<std::mutex> lock(abort_mutex_);
    return aborted_;
  }

  const poll_state& snapshot() const noexcept { return snapshot_; }
  bool abandoned() const noexcept { return abandoned_; }
  void set_abandoned() noexcept { abandoned_ = true; }
  /// The driver's own cookies (a runner's node, slot and generation): read only by the driver, after it checked.
  void* owner() const noexcept { return owner_; }
  std::uint32_t slot() const noexcept { return slot_; }
  std::uint32_t generation() const noexcept { return generation_; }

  /// The listener's own link, for a list of reported attempts that needs no memory (a runner out of memory for its
  /// command queue keeps them there rather than lose a step).
  attempt_base* next_reported = nullptr;

 protected:
  virtual ~attempt_base() = default;
  virtual void destroy() noexcept { delete this; }

 private:
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<std::uint8_t> state_{open};
  std::atomic<bool> driver_inside_{false};
  bool abandoned_ = false;  // written by the completer before publish(), read by the driver after take()
  bool aborted_ = false;    // guarded by abort_mutex_
  mutable std::mutex abort_mutex_;
  std::function<void()> abort_action_;
  std::shared_ptr<attempt_listener> listener_;
  void* owner_ = nullptr;
  std::uint32_t slot_ = 0;
  std::uint32_t generation_ = 0;
  poll_state snapshot_;
};

/// An attempt record that carries the step of a `step<T, E>` check.
template <class T, class E>
class attempt final : public attempt_base {
 public:
  std::optional<step<T, E>> result;  // written by the completer between try_claim() and publish()
};

}  // namespace detail

/// How an asynchronous check reports: once, from any thread, with a step (`c(pollster::done(v))`,
/// `c.complete(step)`). Move-only. Destroyed without reporting, it reports an abandoned attempt (a transient
/// failure), so a check that loses its completion never hangs the poller. It is also an asio completion handler for
/// `void(step<T, E>)`, so an asynchronous operation can complete straight into it.
template <class T, class E>
class completion {
 public:
  using value_type = T;
  using error_type = E;
  using step_type = step<T, E>;

  completion() noexcept = default;
  completion(const completion&) = delete;
  completion& operator=(const completion&) = delete;
  completion(completion&& other) noexcept : record_(other.record_) { other.record_ = nullptr; }
  completion& operator=(completion&& other) noexcept {
    if (this != &other) {
      drop();
      record_ = other.record_;
      other.record_ = nullptr;
    }
    return *this;
  }
  ~completion() { drop(); }

  /// Reports the step (any thread). After a timeout or a cancel it is ignored; a second report is a logic error.
  void complete(step_type result) {
    if (record_ == nullptr) throw std::logic_error("pollster::completion: reported twice (or moved from)");
    detail::attempt<T, E>* record = record_;
    record_ = nullptr;
    if (record->try_claim()) {
      record->result.emplace(std::move(result));
      record->publish();
    }
    record->release();
  }
  void operator()(step_type result) { complete(std::move(result)); }
  template <class V, class Er>
  void operator()(detail::step_draft<V, Er> draft) {
    complete(step_type(std::move(draft)));
  }

  /// What to do if the attempt is closed before it reports (its timeout passed, the run was cancelled or reached its
  /// deadline): cancel the request, close the socket. Runs on the driver's thread, or at once here if the attempt
  /// is already closed. One action per attempt; a later call replaces it.
  template <class F>
  void on_abort(F action) {
    if (record_ != nullptr) record_->on_abort(std::function<void()>(std::move(action)));
  }
  /// True once the attempt was closed: a check doing long work may stop early.
  bool aborted() const { return record_ != nullptr && record_->aborted(); }
  /// The poll state of this attempt (attempt number, time left, timeout).
  const poll_state& state() const {
    if (record_ == nullptr) throw std::logic_error("pollster::completion: state() after reporting (or moved from)");
    return record_->snapshot();
  }
  /// False once it reported (or was moved from).
  explicit operator bool() const noexcept { return record_ != nullptr; }

 private:
  template <class, class, class, class, class>
  friend class poller;
  explicit completion(detail::attempt<T, E>* record) noexcept : record_(record) { record_->retain(); }

  void drop() noexcept {
    if (record_ == nullptr) return;
    detail::attempt<T, E>* record = record_;
    record_ = nullptr;
    if (record->try_claim()) {
      record->set_abandoned();
      record->result.emplace();  // transient, without an error: counted in outcome::abandoned
      record->result->kind = step_kind::transient;
      record->publish();
    }
    record->release();
  }

  detail::attempt<T, E>* record_ = nullptr;
};

// ---------------------------------------------------------------------------------------------------------------------
// Traits: what a check, a schedule and a stop rule are.

namespace detail {

template <class X>
struct is_step : std::false_type {};
template <class T, class E>
struct is_step<step<T, E>> : std::true_type {};
template <class X>
struct is_draft : std::false_type {};
template <class V, class Er>
struct is_draft<step_draft<V, Er>> : std::true_type {};
template <class X>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class X>
struct is_completion : std::false_type {};
template <class T, class E>
struct is_completion<completion<T, E>> : std::true_type {};

/// A draft's value type as a step's T: none is std::monostate, and a string literal is a std::string.
template <class V>
struct deduced_value {
  using type = V;
};
template <>
struct deduced_value<no_payload> {
  using type = std::monostate;
};
template <>
struct deduced_value<const char*> {
  using type = std::string;
};
template <>
struct deduced_value<char*> {
  using type = std::string;
};

/// The step type a synchronous check's result stands for (void for anything else).
template <class R>
struct result_step {
  using type = void;
};
template <>
struct result_step<bool> {
  using type = step<std::monostate, std::monostate>;
};
template <class T>
struct result_step<std::optional<T>> {
  using type = step<T, std::monostate>;
};
template <class T, class E>
struct result_step<step<T, E>> {
  using type = step<T, E>;
};
template <class V, class Er>
struct result_step<step_draft<V, Er>> {
  using type = step<typename deduced_value<V>::type, typename deduced_value<Er>::type>;
};

/// The parameter list of a callable with one call operator (a lambda, a function object) or of a function.
template <class... Args>
struct arg_list {};
template <class F, class = void>
struct call_args {
  using type = void;
};
template <class R, class... Args>
struct call_args<R (*)(Args...), void> {
  using type = arg_list<Args...>;
};
template <class R, class... Args>
struct call_args<R (*)(Args...) noexcept, void> {
  using type = arg_list<Args...>;
};
#define POLLSTER_MEMBER_CALL_ARGS(QUALIFIERS)                 \
  template <class R, class C, class... Args>                  \
  struct call_args<R (C::*)(Args...) QUALIFIERS, void> {      \
    using type = arg_list<Args...>;                           \
  };
POLLSTER_MEMBER_CALL_ARGS()
POLLSTER_MEMBER_CALL_ARGS(const)
POLLSTER_MEMBER_CALL_ARGS(noexcept)
POLLSTER_MEMBER_CALL_ARGS(const noexcept)
POLLSTER_MEMBER_CALL_ARGS(&)
POLLSTER_MEMBER_CALL_ARGS(const&)
#undef POLLSTER_MEMBER_CALL_ARGS
template <class F>
struct call_args<F, std::void_t<decltype(&F::operator())>> : call_args<decltype(&F::operator())> {};

/// The completion an asynchronous check takes (void when it takes none): its last parameter.
template <class Args>
struct completion_of {
  using type = void;
};
template <class Last>
struct completion_of<arg_list<Last>> {
  using type = std::conditional_t<is_completion<std::decay_t<Last>>::value, std::decay_t<Last>, void>;
};
template <class First, class Last>
struct completion_of<arg_list<First, Last>> {
  using type = std::conditional_t<is_completion<std::decay_t<Last>>::value, std::decay_t<Last>, void>;
};

template <class Check>
using completion_arg_t = typename completion_of<typename call_args<std::decay_t<Check>>::type>::type;

template <class Check, class = void>
struct sync_result {
  using type = void;
};
template <class Check>
struct sync_result<Check, std::enable_if_t<std::is_invocable_v<Check&, const poll_state&>>> {
  using type = std::decay_t<std::invoke_result_t<Check&, const poll_state&>>;
};
template <class Check>
struct sync_result<Check,
                   std::enable_if_t<!std::is_invocable_v<Check&, const poll_state&> && std::is_invocable_v<Check&>>> {
  using type = std::decay_t<std::invoke_result_t<Check&>>;
};

template <class Check, class Completion = completion_arg_t<Check>>
struct check_kind {
  // Synchronous: the result decides.
  using step_type = typename result_step<typename sync_result<Check>::type>::type;
  static constexpr bool is_async = false;
  static constexpr bool takes_state = std::is_invocable_v<Check&, const poll_state&>;
};
template <class Check, class T, class E>
struct check_kind<Check, completion<T, E>> {
  static constexpr bool takes_state = std::is_invocable_v<Check&, const poll_state&, completion<T, E>>;
  static constexpr bool callable = takes_state || std::is_invocable_v<Check&, completion<T, E>>;
  using step_type = std::conditional_t<callable, step<T, E>, void>;
  static constexpr bool is_async = callable;
};

}  // namespace detail

/// What a check is: `is_check` (it takes nothing, a `const poll_state&`, a `completion<T, E>` or both, and a
/// synchronous one returns bool, optional, step or a factory draft), its step type, and whether it is asynchronous.
template <class Check>
struct check_traits {
  using step_type = typename detail::check_kind<std::decay_t<Check>>::step_type;
  static constexpr bool is_check = !std::is_void_v<step_type>;
  static constexpr bool is_async = detail::check_kind<std::decay_t<Check>>::is_async;
  static constexpr bool takes_state = detail::check_kind<std::decay_t<Check>>::takes_state;
};
template <class Check>
struct is_check : std::bool_constant<check_traits<Check>::is_check> {};
template <class Check>
inline constexpr bool is_check_v = is_check<Check>::value;

/// The step a check reports (`step<T, E>`), whichever form the check takes.
template <class Check>
using check_step_t = typename check_traits<Check>::step_type;

namespace detail {
/// A synchronous check's result as its step.
template <class Step, class R>
Step to_step(R&& result) {
  using raw = std::decay_t<R>;
  if constexpr (std::is_same_v<raw, bool>) {
    return result ? Step(pollster::done()) : Step(pollster::pending());
  } else if constexpr (is_optional<raw>::value) {
    if (result) return Step(pollster::done(std::move(*result)));
    return Step(pollster::pending());
  } else {
    return Step(std::forward<R>(result));
  }
}

template <class Check, class = void>
struct report_of {
  using type = no_report;
  static constexpr bool present = false;
};
template <class Check>
struct report_of<Check,
                 std::void_t<decltype(std::declval<const Check&>().report(std::declval<const run_summary&>()))>> {
  using type = std::decay_t<decltype(std::declval<const Check&>().report(std::declval<const run_summary&>()))>;
  static constexpr bool present = true;
};
}  // namespace detail

/// What a check contributes to its outcome: the type its `report(const run_summary&)` returns, or no_report.
template <class Check>
using check_report_t = typename detail::report_of<std::decay_t<Check>>::type;

/// The outcome a run of `Check` ends with.
template <class Check>
using check_outcome_t = outcome<typename check_step_t<Check>::value_type, typename check_step_t<Check>::error_type,
                                check_report_t<Check>>;

namespace detail {
template <class S, class = void>
struct is_schedule_impl : std::false_type {};
template <class S>
struct is_schedule_impl<S, std::void_t<decltype(duration(std::declval<S&>().next())), decltype(std::declval<S&>().reset())>>
    : std::true_type {};
template <class R, class = void>
struct is_stop_rule_impl : std::false_type {};
template <class R>
struct is_stop_rule_impl<
    R, std::enable_if_t<std::is_convertible_v<decltype(std::declval<const R&>().check(std::declval<const stop_context&>())),
                                              stop_reason> &&
                        std::is_convertible_v<decltype(std::declval<const R&>().time_left(duration{})), duration>,
                        std::void_t<decltype(std::declval<R&>().reset())>>> : std::true_type {};
}  // namespace detail

/// Whether `S` is a schedule: `next()` gives a duration, `reset()` starts over.
template <class S>
struct is_schedule : detail::is_schedule_impl<std::decay_t<S>> {};
template <class S>
inline constexpr bool is_schedule_v = is_schedule<S>::value;
/// Whether `R` is a stop rule: `check(stop_context)` gives a stop_reason, `time_left(elapsed)` a duration, `reset()`.
template <class R>
struct is_stop_rule : detail::is_stop_rule_impl<std::decay_t<R>> {};
template <class R>
inline constexpr bool is_stop_rule_v = is_stop_rule<R>::value;

#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
/// C++20 concepts over the same traits.
template <class C>
concept check = is_check_v<C>;
template <class S>
concept schedule = is_schedule_v<S>;
template <class R>
concept stop_rule = is_stop_rule_v<R>;
#endif

namespace detail {
/// The one-line diagnostics every public entry gives (static_assert messages must be literals, hence a macro).
#define POLLSTER_CHECK_ARGUMENTS(ENTRY, Check, Schedule, Stop)                                                       \
  static_assert(!(::pollster::is_stop_rule_v<Schedule> && ::pollster::is_schedule_v<Stop>),                        \
                ENTRY ": the schedule and the stop rule are swapped: the schedule (how long to wait) comes first, " \
                      "then the stop rule (when to give up)");                                                     \
  static_assert(::pollster::is_schedule_v<Schedule> || (::pollster::is_stop_rule_v<Schedule> &&                    \
                                                        ::pollster::is_schedule_v<Stop>),                          \
                ENTRY ": the schedule argument is not a schedule (it needs next() and reset())");                  \
  static_assert(::pollster::is_stop_rule_v<Stop> || (::pollster::is_stop_rule_v<Schedule> &&                       \
                                                    ::pollster::is_schedule_v<Stop>),                              \
                ENTRY ": the stop rule argument is not a stop rule (it needs check(stop_context), "               \
                      "time_left(duration) and reset())");                                                         \
  static_assert(::pollster::is_check_v<Check>,                                                                     \
                ENTRY ": the check must return bool, std::optional<T>, pollster::step<T, E> or a step factory's "  \
                      "result (done(v), pending(v), ...), or take a pollster::completion<T, E> and return void")
}  // namespace detail

POLLSTER_NAMESPACE_END
