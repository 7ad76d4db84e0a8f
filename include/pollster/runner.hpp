// SPDX-License-Identifier: MIT
#pragma once

// The runner: one thread drives very many pollers, keeps them inside shared request budgets, keeps many
// asynchronous checks in flight at once, and lets any thread nudge or cancel any of them.
//
// Each submitted poller becomes one node, allocated once at submit from the runner's slab arena
// (detail/node_arena.hpp): a 24-byte virtual base (due time, slot, budget, references, state) and a derived node
// that holds the poller and its completion callback. The runner steps the poller itself (the one loop of
// poller.hpp); it never re-implements it. Timers live in a radix heap (detail/timer_heap.hpp) keyed on 64-bit due
// times; nothing is allocated per poll.
//
// A node is armed (waiting in the timers for its next check), waiting for its budget (due, no token yet), waiting
// for a slot (granted, but the checks in flight are at their limit), in flight (its asynchronous check is out; it
// is armed at the attempt's timeout), or finished. Only asynchronous attempts hold a slot: a synchronous check
// ends before the runner goes on. A completion reaches the runner through its command queue
// (detail/command_queue.hpp) and is applied only if the node is alive (slot generation) and the attempt is still
// its current one; a late or stray completion is dropped.
//
// Threads: the runner's structures belong to the thread that drives it (run(), run_for(), poll(), or the thread of
// start()). Handles, submit() and completions may be used from any thread: they go through the command queue that
// the driving thread drains between batches, and they wake it through the clock's interruptible sleep
// (`sleep_until(time_point, cancel_token)`), on any clock. Completion callbacks run on the driving thread; they may
// submit. size(), empty() and in_flight() may be read from any thread; add_budget, stats, memory_bytes and shrink
// belong to the driving thread (or to any thread while nothing drives the runner) and refuse another thread with
// std::logic_error rather than race.
//
// Bursts: a nudge adds a timer entry only when it brings the poller forward, and a node's stale entries (left by
// nudges, cancels and answered attempts) are swept before they can overflow its 8-bit count. A handle's slot
// retires for good at its last generation, so no handle or completion of an earlier occupant reaches a newcomer.
//
// Out of memory, no poller is lost: a call that needs memory and cannot get it throws std::bad_alloc and leaves
// every poller where it was (submit: nothing submitted; a handle's nudge or cancel: not sent; a driving call while
// it applies a command, re-arms a timer or queues a poller to wait: that step is not taken, and the next driving
// call takes it; a budget's token is only taken once nothing after it can fail). A completion whose command cannot
// be queued is kept in a list that needs no memory. Memory a poller needs inside its own step (its first server
// hint, a fresh attempt record while a timed-out check still holds the old one) ends that poller with cause
// exception holding the std::bad_alloc; its callback runs and the others go on. Ending a poller never needs memory
// (tests/runner_alloc_test.cpp fails every allocation in turn).
//
// Memory: node slabs go back to the allocator once a fleet drains (node_arena::auto_trim_bytes), stale timer
// entries are dropped when no poller is left, and shrink() gives back the rest; the handle slots stay (4 bytes per
// poller at the peak, 4 more on the free list), since handles of finished pollers read them from any thread.

#include "check.hpp"
#include "clock.hpp"
#include "detail/command_queue.hpp"
#include "detail/config.hpp"
#include "detail/node_arena.hpp"
#include "detail/saturate.hpp"
#include "detail/slot_table.hpp"
#include "detail/text.hpp"
#include "detail/timer_heap.hpp"
#include "detail/wait_queue.hpp"
#include "poller.hpp"
#include "rate.hpp"
#include "schedule.hpp"

#include <atomic>       // atomic
#include <chrono>       // duration_cast
#include <cstddef>      // size_t
#include <cstdint>      // uint16_t, uint32_t, uint64_t
#include <exception>    // exception_ptr
#include <limits>       // numeric_limits
#include <memory>       // shared_ptr, unique_ptr
#include <mutex>        // mutex, lock_guard
#include <optional>     // optional
#include <stdexcept>    // logic_error
#include <string>       // string
#include <thread>       // thread
#include <type_traits>  // is_empty_v, void_t
#include <utility>      // move, forward
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN

/// Names a rate budget of one runner (returned by runner::add_budget). The default names none: unlimited.
struct budget_id {
  static constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();
  std::uint32_t value = none;
  friend bool operator==(budget_id a, budget_id b) noexcept { return a.value == b.value; }
  friend bool operator!=(budget_id a, budget_id b) noexcept { return a.value != b.value; }
};

/// Per-poller options of runner::submit.
struct submit_options {
  /// The poller's own options (wait_first, max_hint, deadline, attempt_timeout, ...). Its cancel token is for
  /// poll_until: a runner's poller is cancelled through its handle, and a token here is refused rather than ignored.
  poll_options poll{};
  budget_id budget{};  ///< the rate budget every check of this poller draws from (none: unlimited)
  /// Seed for a jittered schedule's generator (`reseed`); unset: the runner's own sequence, so copies of one
  /// prototype never jitter in lockstep.
  std::optional<std::uint64_t> seed{};
};

/// Runner-wide settings. The seed makes a fleet's jitter reproducible run to run, while every poller still gets
/// a stream of its own.
struct runner_options {
  std::uint64_t seed = 0x5eed5eed5eed5eedULL;  ///< start of the seed sequence for jittered schedules
  std::size_t max_in_flight = 0;                ///< asynchronous checks out at once, over all groups (0: no limit)
};

/// What a budget has done so far (runner::stats).
struct budget_stats {
  std::uint64_t granted = 0;    ///< checks that took a token
  std::uint64_t throttles = 0;  ///< "rate limited" answers that cut the rate
  std::size_t waiting = 0;      ///< due pollers waiting for a token now
  duration total_wait{};        ///< waiting added up over every poller
  double rate_now = 0;          ///< the sustained rate in force now (lower after a throttle)
  std::size_t in_flight = 0;    ///< asynchronous checks of the group out now
  std::size_t waiting_for_slot = 0;  ///< granted checks waiting for one of them to end
};

namespace detail {

// Keys of the timer heap: nanoseconds since the clock's epoch, with the sign bit flipped so that the order of
// signed times is the order of unsigned keys.
constexpr std::uint64_t key_bias = 1ULL << 63;
inline std::uint64_t key_of(duration since_epoch) noexcept {
  return static_cast<std::uint64_t>(since_epoch.count()) ^ key_bias;
}
inline duration duration_of(std::uint64_t key) noexcept { return duration{static_cast<std::int64_t>(key ^ key_bias)}; }
constexpr std::uint64_t finished_key = std::numeric_limits<std::uint64_t>::max();
/// The last key a timer is armed at: "never" (an attempt without a timeout). The runner never wakes for it.
constexpr std::uint64_t never_key = finished_key - 1;

enum class node_state : std::uint8_t { armed, waiting, waiting_slot, in_flight, running, finished };
constexpr std::uint16_t no_budget = std::numeric_limits<std::uint16_t>::max();

/// What one step told the runner.
struct step_report {
  std::uint64_t next_key = 0;  ///< when to step again (in flight: the attempt's timeout)
  bool finished = true;        ///< the poller is over
  bool throttled = false;      ///< the check said "rate limited": slow the whole budget down
  bool in_flight = false;      ///< an asynchronous attempt is out
};

/// The runner's view of a poller: everything it needs, type-erased behind one virtual call per poll.
class runner_node {
 public:
  runner_node() = default;
  runner_node(const runner_node&) = delete;
  runner_node& operator=(const runner_node&) = delete;
  virtual ~runner_node() = default;

  /// Begins an attempt at `now` (a synchronous one is concluded); a check that throws is captured into the
  /// poller's outcome (never propagates).
  virtual step_report step(std::uint64_t now_key) noexcept = 0;
  /// The attempt `attempt` reported: concludes it if it is the node's current attempt (else `stale` is set).
  virtual step_report complete(attempt_base& attempt, std::uint64_t now_key, bool& stale) noexcept = 0;
  /// The in-flight attempt passed its timeout.
  virtual step_report time_out(std::uint64_t now_key) noexcept = 0;
  /// A nudge arrived: returns the key to arm the node at (unchanged while in flight). (Its first nudge may allocate
  /// the poller's cold part: std::bad_alloc leaves it unchanged.)
  virtual std::uint64_t nudge(std::uint64_t now_key) = 0;
  /// Makes room for add_budget_wait (the poller's cold part), before the runner takes what it cannot give back (a
  /// budget's token). May throw std::bad_alloc, changing nothing.
  virtual void prepare_wait() = 0;
  /// Cancels the poller (aborting an attempt in flight); its outcome says cancelled and keeps the last value.
  virtual void cancel(std::uint64_t now_key) noexcept = 0;
  /// Adds time spent waiting for a rate budget or a slot to the outcome (after prepare_wait(): cannot fail).
  virtual void add_budget_wait(duration waited) = 0;
  /// The key of the first check (or finished_key when the poller is over before it starts).
  virtual std::uint64_t first_key() noexcept = 0;
  /// Whether the poller's check is asynchronous (asked only when an in-flight limit exists).
  virtual bool is_async() const noexcept = 0;
  /// Tells an asynchronous poller where its completions report.
  virtual void attach(const std::shared_ptr<attempt_listener>& listener, std::uint32_t generation) = 0;
  /// Hands the outcome to the completion callback (which may throw; the runner stays consistent).
  virtual void complete_run() = 0;
  /// Destroys the node and gives its block back to the arena it came from.
  virtual void destroy(node_arena& arena) noexcept = 0;

  // 24 bytes with the vtable pointer: every byte here is paid a million times over.
  std::uint64_t due_key = 0;  // the key of the one live heap entry when armed or in flight; the due time otherwise
  std::uint32_t slot = 0;     // the handle's slot
  std::uint16_t budget = no_budget;
  std::uint8_t refs = 0;  // heap entries + wait-list membership that still point here (at most max_refs + 1)
  node_state state_ = node_state::armed;

  node_state state() const noexcept { return state_; }
  void set_state(node_state s) noexcept { state_ = s; }
};

/// What a runner shares with its handles and with the completions of its asynchronous checks: the command queue,
/// the handle slots, and the wake signal the driving thread sleeps on. It outlives the runner while a handle or a
/// completion holds it.
struct runner_shared final : command_queue, attempt_listener {
  std::atomic<bool> stopping{false};
  slot_table slots;
  wake_signal wake;  // the driving thread sleeps on the clock with wake.token()
  /// Attempts whose step arrived when the command queue could not grow, linked through their own records (guarded
  /// by the mutex, newest first): a step is never lost for want of memory.
  attempt_base* reported = nullptr;

  /// Queues a command and wakes the driving thread. False when the runner is gone (the command is dropped).
  bool push(const command& c) {
    if (!enqueue(c)) return false;
    wake.wake();
    return true;
  }

  /// A completion arrived (any thread): queue it for the driving thread, which checks that the attempt is still its
  /// node's current one before it touches anything. Needs no memory when the queue cannot grow.
  void attempt_completed(attempt_base& attempt) noexcept override {
    attempt.retain();  // the command's reference, released once the driving thread applied (or dropped) it
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (closed) {
        attempt.release();
        return;
      }
      try {
        commands.push_back(command{command::complete, attempt.slot(), attempt.generation(),
                                   static_cast<runner_node*>(attempt.owner()), &attempt});
      } catch (...) {
        attempt.next_reported = reported;
        reported = &attempt;
      }
      has_commands.store(true, std::memory_order_release);
    }
    wake.wake();  // (a lock and a notify: nothing that allocates)
  }

  /// Driving thread: takes the attempts kept for want of memory, oldest first. Caller holds the mutex.
  attempt_base* take_reported() noexcept {
    attempt_base* oldest_first = nullptr;
    while (reported != nullptr) {
      attempt_base* next = reported->next_reported;
      reported->next_reported = oldest_first;
      oldest_first = reported;
      reported = next;
    }
    return oldest_first;
  }
};

/// A node's stale heap entries come from nudges that brought it forward (a nudge of a node already due adds none),
/// from cancels and from answered attempts (their timeout entries); before they could overflow its 8-bit count, a
/// sweep leaves one entry per armed node.
constexpr std::uint8_t max_refs = 250;

/// Holds the completion callback; as a base of the node, an empty one (a captureless lambda) costs no byte.
template <class F, bool Empty = std::is_empty_v<F> && !std::is_final_v<F>>
struct callback_holder : private F {
  explicit callback_holder(F f) : F(std::move(f)) {}
  F& get() noexcept { return *this; }
};
template <class F>
struct callback_holder<F, false> {
  explicit callback_holder(F f) : f_(std::move(f)) {}
  F& get() noexcept { return f_; }

 private:
  F f_;
};

template <class T, class = void>
struct has_reseed : std::false_type {};
template <class T>
struct has_reseed<T, std::void_t<decltype(std::declval<T&>().reseed(std::uint64_t{}))>> : std::true_type {};

struct handle_test_access;  // defined by tests only: reaches a handle's slot without 2^29 real reuses

}  // namespace detail

/// Refers to one submitted poller. Copyable, cheap, usable from any thread; every operation on a finished poller
/// (or an empty handle, or after the runner is gone) does nothing.
class handle {
 public:
  handle() noexcept = default;

  /// Check now: a callback or event said something changed (notify, then verify through the real API). During an
  /// attempt in flight: the next check follows as soon as it ends. May throw std::bad_alloc (the command queue is
  /// full and cannot grow): then nothing was sent.
  void nudge() const { send(detail::command::nudge); }
  /// Stop polling (aborting a check in flight); the completion callback gets an outcome that says cancelled, with
  /// the last value seen. May throw std::bad_alloc as nudge() does.
  void cancel() const { send(detail::command::cancel); }
  /// Where the poller is. Commands are asynchronous: right after cancel(), this may still say scheduled.
  poll_status status() const noexcept {
    if (!shared_) return poll_status::finished;
    const std::uint32_t word = shared_->slots[slot_].load(std::memory_order_acquire);
    if (detail::generation_of(word) != generation_) return poll_status::finished;  // the slot has moved on
    return detail::status_of(word);
  }
  bool finished() const noexcept { return status() == poll_status::finished; }

  explicit operator bool() const noexcept { return static_cast<bool>(shared_); }

 private:
  template <class Clock>
  friend class runner;
  friend struct detail::handle_test_access;
  handle(std::shared_ptr<detail::runner_shared> shared, detail::runner_node* node, std::uint32_t slot,
         std::uint32_t generation) noexcept
      : shared_(std::move(shared)), node_(node), slot_(slot), generation_(generation) {}

  void send(detail::command::kind_type kind) const {
    if (!shared_) return;
    shared_->push(detail::command{kind, slot_, generation_, node_, nullptr});
  }

  std::shared_ptr<detail::runner_shared> shared_;
  detail::runner_node* node_ = nullptr;  // never dereferenced here: the driving thread checks the generation first
  std::uint32_t slot_ = 0;
  std::uint32_t generation_ = 0;
};

/// Drives many pollers on one thread. Holds a reference to the clock: with a manual_clock, run() moves virtual
/// time itself and a whole simulated fleet runs deterministically, in microseconds.
template <class Clock = steady_clock>
class runner {
 public:
  static_assert(is_clock_v<Clock>, "pollster::runner: Clock must be a pollster clock (time_point, now(), "
                                   "bool sleep_until(time_point, const cancel_token&))");
  using clock_type = Clock;
  using time_point = typename Clock::time_point;

  explicit runner(Clock& clock, const runner_options& options = {})
      : clock_(clock), shared_(std::make_shared<detail::runner_shared>()), seed_base_(options.seed),
        max_in_flight_(options.max_in_flight), slots_limited_(options.max_in_flight != 0) {}
  runner(const runner&) = delete;
  runner& operator=(const runner&) = delete;

  /// Stops the thread of start(), then destroys every poller left without calling its callback (as asio
  /// destroys pending handlers); their handles read finished, and their checks in flight are aborted.
  ~runner() {
    (void)stop_thread();
    std::vector<detail::command> orphans;
    detail::attempt_base* reported = nullptr;
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->closed = true;
      orphans.swap(shared_->commands);
      reported = shared_->take_reported();
    }
    // (Nothing here allocates: a destructor must not throw std::bad_alloc.)
    const auto drop = [this](const detail::command& c) noexcept {
      if (c.kind == detail::command::insert) {
        retire_slot(c.node->slot);
        c.node->destroy(arena_);
      } else if (c.kind == detail::command::complete) {
        c.attempt->release();
      }
    };
    for (std::size_t i = drain_next_; i < pending_commands_.size(); ++i) drop(pending_commands_[i]);
    for (const detail::command& c : orphans) drop(c);
    for (detail::attempt_base* list : {reported_, reported}) {
      while (list != nullptr) {
        detail::attempt_base* next = list->next_reported;
        list->release();
        list = next;
      }
    }
    timers_.drain([this](const auto& entry) { release_ref(entry.item, true); });
    for (budget_group_entry& group : budgets_) {
      while (detail::runner_node* node = group.waiting.take_front()) release_ref(node, true);
      while (detail::runner_node* node = group.slot_waiting.take_front()) release_ref(node, true);
    }
    while (detail::runner_node* node = free_slot_waiting_.take_front()) release_ref(node, true);
  }

  /// A named request budget that pollers join through submit_options::budget (one per API endpoint, say): a token
  /// bucket and a limit on the checks in flight. Add budgets before pollers are submitted from other threads (at
  /// most 65535 per runner).
  ///
  /// add_budget, stats, memory_bytes and shrink touch what belongs to the driving thread: call them from it (a
  /// completion callback), or from any thread while nothing drives the runner (before start(), after stop(),
  /// between poll() calls). From another thread while it is driven they throw std::logic_error, never race.
  budget_id add_budget(std::string name, const budget_options& options) {
    return add_budget(std::move(name), std::make_unique<local_budget>(options));
  }
  /// The same with a budget group of your own (a budget shared through Redis, say): see `budget_group`.
  budget_id add_budget(std::string name, std::unique_ptr<budget_group> group) {
    const exclusive_access access(*this, "add_budget");
    if (!group) detail::throw_invalid("runner", "budget group", "not null", "null");
    if (budgets_.size() >= detail::no_budget) {
      detail::throw_invalid("runner", "budget count", "< 65535", std::to_string(budgets_.size()));
    }
    const bool limited = group->in_flight_limit() != 0;
    // The group may wake the driving thread (tokens fetched in the background); the shared state outlives the runner
    // for as long as the group keeps this function.
    group->on_wake([shared = shared_] { shared->wake.wake(); });
    budgets_.push_back(budget_group_entry{std::move(name), std::move(group), {}, {}, duration::zero(), 0});
    if (limited) slots_limited_ = true;
    budget_count_.store(budgets_.size(), std::memory_order_release);
    return budget_id{static_cast<std::uint32_t>(budgets_.size() - 1)};
  }
  /// What a budget has done so far (driving thread, or while not driven: see add_budget).
  budget_stats stats(budget_id id) const {
    const exclusive_access access(*this, "stats");
    const budget_group_entry& group = budget_at(id);
    const duration now = since_epoch(clock_.now());
    return budget_stats{group.group->granted(), group.group->throttles(), group.waiting.size(), group.total_wait,
                        group.group->rate_at(now), group.in_flight, group.slot_waiting.size()};
  }

  /// Starts polling `check` on `schedule` until `stop` (or the check) ends it; `on_complete(outcome)` runs on the
  /// driving thread at the end. Callable from any thread, also from a completion callback. The first check is
  /// due at once (unless options.poll.wait_first). A jittered schedule (one with `reseed`) gets its own seed. An
  /// asynchronous check (one that takes a `completion<T, E>`) is started when due and granted, and the runner goes
  /// on with other pollers while it is in flight. Throws std::bad_alloc with nothing submitted when memory is out.
  template <class Check, class Schedule, class Stop, class OnComplete>
  handle submit(Check check, Schedule schedule, Stop stop, OnComplete on_complete, const submit_options& options = {}) {
    POLLSTER_CHECK_ARGUMENTS("pollster::runner::submit", Check, Schedule, Stop);
    if constexpr (is_check_v<Check> && is_schedule_v<Schedule> && is_stop_rule_v<Stop>) {
      static_assert(std::is_invocable_v<OnComplete&, check_outcome_t<Check>&&>,
                    "pollster::runner::submit: on_complete must take the check's outcome (check_outcome_t<Check>)");
      if (options.poll.cancel.cancel_possible()) {
        detail::throw_invalid("runner", "poll.cancel", "empty (cancel a runner's poller through its handle)",
                              "a cancel token");
      }
      if constexpr (detail::has_reseed<Schedule>::value) schedule.reseed(options.seed ? *options.seed : next_seed());
      using poller_type = pollster::poller<Check, Schedule, Stop, time_point>;
      return submit_poller(
          poller_type{std::move(check), std::move(schedule), std::move(stop), clock_.now(), options.poll},
          std::move(on_complete), options);
    } else {
      return handle{};
    }
  }

  /// Submits a poller built elsewhere (with hooks, say); it must run on this runner's clock.
  template <class Check, class Schedule, class Stop, class Hooks, class OnComplete>
  handle submit_poller(pollster::poller<Check, Schedule, Stop, time_point, Hooks> poller, OnComplete on_complete,
                       const submit_options& options = {}) {
    if (options.budget != budget_id{} && options.budget.value >= budget_count_.load(std::memory_order_acquire)) {
      detail::throw_invalid("runner", "budget", "an id returned by add_budget", std::to_string(options.budget.value));
    }
    using poller_type = pollster::poller<Check, Schedule, Stop, time_point, Hooks>;
    using node_type = poller_node<poller_type, OnComplete>;
    node_owner node{arena_, make_node<node_type>(std::move(poller), std::move(on_complete))};
    node->budget = options.budget == budget_id{} ? detail::no_budget : static_cast<std::uint16_t>(options.budget.value);
    return enqueue(node);
  }

  /// Runs until no poller is left (sleeping on the clock between checks). Returns the checks made.
  std::size_t run() { return drive(std::nullopt, true, unlimited, true); }
  /// Runs until `until` (with a manual clock, time ends exactly there), or until no poller is left.
  std::size_t run_until(time_point until) { return drive(until, false, unlimited, true); }
  std::size_t run_for(duration d) { return run_until(detail::sat_add(clock_.now(), d)); }
  /// Waits for the next due poller and makes one check (0 if no poller is left).
  std::size_t run_one() { return drive(std::nullopt, true, 1, true); }
  /// Makes every check that is due now, without waiting.
  std::size_t poll() { return drive(std::nullopt, true, unlimited, false); }

  /// Drives the runner on its own thread until stop(); it sleeps until the next due check or until a command (a
  /// submit, nudge, cancel or completion) wakes it.
  void start() {
    if (thread_.joinable()) throw std::logic_error("pollster::runner: start() while already started");
    shared_->stopping.store(false);
    thread_ = std::thread([this] {
      try {
        drive(std::nullopt, false, unlimited, true);
      } catch (...) {
        thread_error_ = std::current_exception();  // a completion callback threw: stop() hands it over
      }
    });
  }
  /// Stops the thread of start() after the check in progress, waking it at once; pending pollers stay pending.
  /// Idempotent. If a completion callback threw on that thread (which then stopped), stop() rethrows it.
  void stop() {
    if (std::exception_ptr error = stop_thread()) std::rethrow_exception(error);
  }

  /// Pollers submitted and not finished (any thread; commands not yet drained are not counted).
  std::size_t size() const noexcept { return live_.load(std::memory_order_relaxed); }
  bool empty() const noexcept { return size() == 0; }
  /// Asynchronous checks out now (any thread).
  std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_relaxed); }
  /// Bytes the runner holds for its pollers' nodes (their slabs), timers, wait lists and slots: for memory
  /// accounting (driving thread, or while not driven: see add_budget).
  std::size_t memory_bytes() const {
    const exclusive_access access(*this, "memory_bytes");
    return held_bytes();
  }

  /// Gives back what a drained fleet left behind: the timer entries of finished pollers (a nudge's, a cancel's or an
  /// answered attempt's, which keep their node until their time), the spare timer chunks, the empty node slabs, the
  /// command and wait-list buffers. Returns the bytes freed. Kept: what live pollers use, one partly carved slab per
  /// node size, and the handle slots (4 bytes per poller at the peak, and 4 more on the free list once it is over),
  /// which handles of finished pollers may read at any time from any thread. The runner already gives empty slabs
  /// back on its own (node_arena::auto_trim_bytes), and drops stale timer entries whenever no poller is left;
  /// shrink() is for the rest, and for right now. Attempt records that late completions still hold are theirs, not
  /// the runner's (each is freed with the last completion or queued step that holds it).
  std::size_t shrink() {
    const exclusive_access access(*this, "shrink");
    const std::size_t before = held_bytes();
    if (stale_ != 0) sweep_stale();
    drop_finished_waiters();
    (void)timers_.shrink();
    (void)arena_.trim();
    if (drain_next_ >= pending_commands_.size()) {
      pending_commands_.clear();
      drain_next_ = 0;
      pending_commands_.shrink_to_fit();
    }
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->commands.shrink_to_fit();
      shared_->slots.shrink();
    }
    for (budget_group_entry& group : budgets_) {
      group.waiting.shrink_to_fit();
      group.slot_waiting.shrink_to_fit();
    }
    free_slot_waiting_.shrink_to_fit();
    const std::size_t after = held_bytes();
    return before > after ? before - after : 0;
  }
  Clock& clock() const noexcept { return clock_; }

 private:
  static constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();
  using wait_list = detail::wait_queue<detail::runner_node*>;

  // Holds the driving thread's structures for one call from a thread that does not drive the runner (and lets the
  // driving thread itself through): see add_budget.
  class exclusive_access {
   public:
    exclusive_access(const runner& r, const char* what) : runner_(r) {
      if (r.driver_.load(std::memory_order_relaxed) == std::this_thread::get_id()) return;  // a callback
      for (;;) {
        int expected = idle;
        if (r.access_.compare_exchange_weak(expected, accessor, std::memory_order_acquire)) break;
        if (expected == driven) {
          throw std::logic_error(std::string("pollster::runner: ") + what +
                                 "() from another thread while the runner is driven (call it from a completion "
                                 "callback, or while nothing drives the runner)");
        }
        std::this_thread::yield();  // another accessor: a moment
      }
      owned_ = true;
    }
    exclusive_access(const exclusive_access&) = delete;
    exclusive_access& operator=(const exclusive_access&) = delete;
    ~exclusive_access() {
      if (owned_) runner_.access_.store(idle, std::memory_order_release);
    }

   private:
    const runner& runner_;
    bool owned_ = false;
  };

  std::size_t held_bytes() const {
    std::size_t slots = 0;
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);  // submit() grows the slot table from any thread
      slots = shared_->slots.memory_bytes();
    }
    std::size_t waits = free_slot_waiting_.memory_bytes();
    for (const budget_group_entry& group : budgets_) {
      waits += group.waiting.memory_bytes() + group.slot_waiting.memory_bytes();
    }
    return arena_.memory_bytes() + timers_.memory_bytes() + slots + waits;
  }

  struct budget_group_entry {
    std::string name;
    std::unique_ptr<budget_group> group;
    wait_list waiting;       // due pollers waiting for a token, in due-time order
    wait_list slot_waiting;  // granted pollers waiting for a slot, in order
    duration total_wait{};
    std::size_t in_flight = 0;
  };

  // One submitted poller: the poller.hpp poller (the one loop) and its completion callback.
  // The callback is a base, not a member: an empty one (a captureless lambda) then takes no byte at all, where an
  // empty member would take one and, padded, eight (sixteen more from malloc).
  template <class Poller, class OnComplete>
  class poller_node final : public detail::runner_node, private detail::callback_holder<OnComplete> {
    using callback = detail::callback_holder<OnComplete>;

   public:
    poller_node(Poller poller, OnComplete on_complete) : callback(std::move(on_complete)), poller_(std::move(poller)) {}

    // Flattened: the poller's step (and its saturating time arithmetic) is inlined here whatever g++'s inliner
    // estimates (callgrind, runner_bench: 241 instructions per dispatch without, 221 with; main 219).
    POLLSTER_FLATTEN detail::step_report step(std::uint64_t now_key) noexcept override {
      const time_point now = point_of(now_key);
      try {
        poller_.step(now);
      } catch (...) {
        poller_.capture(std::current_exception(), now);  // this poller ends; every other one goes on
      }
      return report();
    }
    detail::step_report complete(detail::attempt_base& attempt, std::uint64_t now_key, bool& stale) noexcept override {
      stale = !poller_.ready() || !poller_.is_current(attempt);
      if (!stale) run_guarded([&] { poller_.complete(point_of(now_key)); }, now_key);
      return report();
    }
    detail::step_report time_out(std::uint64_t now_key) noexcept override {
      run_guarded([&] { poller_.time_out(point_of(now_key)); }, now_key);
      return report();
    }
    std::uint64_t nudge(std::uint64_t now_key) override {
      poller_.nudge(point_of(now_key));
      return std::min(key_of(poller_.next_due()), detail::never_key);
    }
    void prepare_wait() override { poller_.prepare_budget_wait(); }
    void cancel(std::uint64_t now_key) noexcept override { poller_.cancel(point_of(now_key)); }
    void add_budget_wait(duration waited) override { poller_.add_budget_wait(waited); }
    std::uint64_t first_key() noexcept override {
      // (Clamped to the "never" key: a poller first due at time_point::max() must not read as finished.)
      return poller_.done() ? detail::finished_key : std::min(key_of(poller_.next_due()), detail::never_key);
    }
    bool is_async() const noexcept override { return Poller::is_async; }
    void attach(const std::shared_ptr<detail::attempt_listener>& listener, std::uint32_t generation) override {
      poller_.attach(listener, static_cast<detail::runner_node*>(this), slot, generation);
    }
    void complete_run() override { callback::get()(poller_.take_outcome()); }
    void destroy(detail::node_arena& arena) noexcept override {
      this->~poller_node();
      arena.deallocate(this, sizeof(poller_node), alignof(poller_node));
    }

   private:
    template <class F>
    void run_guarded(F&& f, std::uint64_t now_key) noexcept {
      try {
        f();
      } catch (...) {
        poller_.capture(std::current_exception(), point_of(now_key));
      }
    }
    detail::step_report report() const noexcept {
      detail::step_report r;
      r.throttled = poller_.last_throttled();
      r.finished = poller_.done();
      r.in_flight = poller_.in_flight();
      if (!r.finished) r.next_key = std::min(key_of(poller_.next_due()), detail::never_key);
      return r;
    }

    Poller poller_;
  };

  static std::uint64_t key_of(time_point t) noexcept { return detail::key_of(since_epoch(t)); }

  std::uint64_t next_seed() noexcept {
    const std::uint64_t n = seeds_used_.fetch_add(1, std::memory_order_relaxed);
    splitmix64 mix{seed_base_ + n * 0xd1b54a32d192ed03ULL};
    return mix();
  }

  static duration since_epoch(time_point t) noexcept {
    return std::chrono::duration_cast<duration>(t.time_since_epoch());
  }
  static time_point point_of(std::uint64_t key) noexcept {
    return time_point{std::chrono::duration_cast<typename time_point::duration>(detail::duration_of(key))};
  }
  const budget_group_entry& budget_at(budget_id id) const {
    if (id.value >= budgets_.size()) {
      detail::throw_invalid("runner", "budget", "an id returned by add_budget", std::to_string(id.value));
    }
    return budgets_[id.value];
  }

  template <class Node, class... Args>
  Node* make_node(Args&&... args) {
    void* block = arena_.allocate(sizeof(Node), alignof(Node));
    try {
      return ::new (block) Node(std::forward<Args>(args)...);
    } catch (...) {
      arena_.deallocate(block, sizeof(Node), alignof(Node));
      throw;
    }
  }

  // Owns a node until the insert command takes it over.
  struct node_owner {
    detail::node_arena& arena;
    detail::runner_node* node;
    node_owner(detail::node_arena& a, detail::runner_node* n) noexcept : arena(a), node(n) {}
    node_owner(const node_owner&) = delete;
    node_owner& operator=(const node_owner&) = delete;
    ~node_owner() {
      if (node != nullptr) node->destroy(arena);
    }
    detail::runner_node* operator->() const noexcept { return node; }
    detail::runner_node* get() const noexcept { return node; }
    void release() noexcept { node = nullptr; }
  };

  handle enqueue(node_owner& node) {
    detail::runner_node* const node_address = node.get();
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      if (shared_->closed) throw std::logic_error("pollster::runner: submit() after the runner was destroyed");
      slot = shared_->slots.allocate();  // (std::bad_alloc: nothing taken)
      detail::slot_entry& entry = shared_->slots[slot];
      generation = detail::generation_of(entry.load(std::memory_order_relaxed));
      entry.store(detail::slot_word(generation, poll_status::scheduled), std::memory_order_release);
      node->slot = slot;
      try {
        // An asynchronous poller links its attempts to the queue (and makes its attempt record); others ignore it.
        node->attach(shared_, generation);
        shared_->commands.push_back(detail::command{detail::command::insert, slot, generation, node.get(), nullptr});
      } catch (...) {  // std::bad_alloc: the slot goes back, the node with node_owner; nothing was submitted
        shared_->slots.retire(slot);
        throw;
      }
      shared_->has_commands.store(true, std::memory_order_release);
      node.release();
    }
    shared_->wake.wake();
    return handle{shared_, node_address, slot, generation};
  }

  std::exception_ptr stop_thread() noexcept {
    shared_->stopping.store(true);
    try {
      shared_->wake.wake();
    } catch (...) {
    }
    if (thread_.joinable()) thread_.join();
    std::exception_ptr error = std::move(thread_error_);
    thread_error_ = nullptr;
    return error;
  }

  // The driving loop. `until`: stop there (time moved to it); `until_empty`: stop when no poller is left;
  // `wait`: sleep for the next due check (else only what is due now).
  std::size_t drive(std::optional<time_point> until, bool until_empty, std::size_t max_checks, bool wait) {
    for (;;) {
      int expected = idle;
      if (access_.compare_exchange_weak(expected, driven, std::memory_order_acquire)) break;
      if (expected == driven) throw std::logic_error("pollster::runner: driven from two places at once");
      std::this_thread::yield();  // another thread is in add_budget, stats, ...: a moment
    }
    driver_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    struct release_flag {
      runner* self;
      ~release_flag() {
        self->driver_.store(std::thread::id{}, std::memory_order_relaxed);
        self->access_.store(idle, std::memory_order_release);
      }
    } guard{this};
    const bool own_thread = !until_empty && !until;
    std::size_t checks = 0;
    for (;;) {
      shared_->wake.rearm();  // before looking for work: a wake from now on interrupts the sleep below
      drain_commands();
      if (own_thread && shared_->stopping.load(std::memory_order_acquire)) break;
      const std::uint64_t now_key = detail::key_of(since_epoch(clock_.now()));
      const bool at_end = until && now_key >= detail::key_of(since_epoch(*until));
      checks += dispatch_due(now_key, max_checks - checks);
      if (checks >= max_checks || at_end) break;
      if (shared_->has_commands.load(std::memory_order_acquire)) continue;
      const bool none_left = live_.load(std::memory_order_relaxed) == 0;
      if (none_left) {
        // What is left in the timers and the wait lists only holds finished nodes (and their slabs): let it go.
        if (stale_ != 0) sweep_stale();
        drop_finished_waiters();
        // No poller left: stop now, not at the time of a stale timer entry.
        if (until_empty) break;
      }
      const std::optional<std::uint64_t> next = next_wake(now_key);
      if (!wait) break;
      std::optional<time_point> wake_at;
      if (next) wake_at = point_of(*next);
      if (until && (!wake_at || *wake_at > *until)) wake_at = until;
      // One way to wait, on every clock: the clock's own interruptible sleep, which a command interrupts. Without
      // anything due (only checks in flight, or nothing at all on the runner's own thread) it waits for a command.
      clock_.sleep_until(wake_at ? *wake_at : time_point::max(), shared_->wake.token());
    }
    return checks;
  }

  void drain_commands() {
    if (drain_next_ >= pending_commands_.size() && reported_ == nullptr) {
      if (!shared_->has_commands.load(std::memory_order_acquire)) return;
      pending_commands_.clear();
      drain_next_ = 0;
      std::lock_guard<std::mutex> lock(shared_->mutex);
      pending_commands_.swap(shared_->commands);
      reported_ = shared_->take_reported();
      shared_->has_commands.store(false, std::memory_order_relaxed);
    }
    const std::uint64_t now_key = detail::key_of(since_epoch(clock_.now()));
    // A command is taken (consumed) only once what may throw std::bad_alloc has been done: a command that could not
    // get memory stays, and the next drive applies it. A completion callback may throw after that.
    while (drain_next_ < pending_commands_.size()) {
      apply(pending_commands_[drain_next_], now_key, [this]() noexcept { ++drain_next_; });
    }
    while (reported_ != nullptr) {  // steps kept for want of memory for the queue
      detail::attempt_base* attempt = reported_;
      const detail::command c{detail::command::complete, attempt->slot(), attempt->generation(),
                              static_cast<detail::runner_node*>(attempt->owner()), attempt};
      apply(c, now_key, [this, attempt]() noexcept { reported_ = attempt->next_reported; });
    }
    pending_commands_.clear();
    drain_next_ = 0;
    // A burst of submissions leaves a large buffer behind; give it back rather than hold it for ever.
    if (pending_commands_.capacity() > 4096) pending_commands_.shrink_to_fit();
  }

  // Applies one command; `consume()` takes it off its list once nothing that may throw std::bad_alloc is left.
  template <class Consume>
  void apply(const detail::command& c, std::uint64_t now_key, Consume consume) {
    if (c.kind == detail::command::insert) {
      timers_.reserve_push();
      consume();
      insert(c.node, now_key);
      return;
    }
    // A completion's command holds its attempt until it is consumed (then released, whatever follows).
    struct release_attempt {
      detail::attempt_base* attempt;
      ~release_attempt() {
        if (attempt != nullptr) attempt->release();
      }
    };
    const std::uint32_t word = shared_->slots[c.slot].load(std::memory_order_relaxed);
    // Finished long ago (the generation moved on), or just now, in a slot retired for good (it did not).
    if (detail::generation_of(word) != c.generation || detail::status_of(word) == poll_status::finished) {
      consume();
      const release_attempt hold{c.attempt};
      return;
    }
    detail::runner_node* node = c.node;
    const detail::node_state state = node->state();
    if (c.kind == detail::command::nudge) {
      if (state == detail::node_state::armed) {
        timers_.reserve_push();
        std::uint64_t key = node->nudge(now_key);  // counts the nudge even when it changes no time
        consume();
        if (key < timers_.last_key()) key = timers_.last_key();
        // A node already due by then keeps its entry: a burst of nudges adds one entry at most.
        if (key < node->due_key) {
          ++stale_;  // the entry it had stays behind, stale
          arm(node, key);
        }
      } else if (state == detail::node_state::in_flight) {
        (void)node->nudge(now_key);  // remembered: the next check follows the attempt at once (no timer entry)
        consume();
      } else {
        consume();  // due already (waiting for a token or a slot), or running
      }
      return;
    }
    if (c.kind == detail::command::complete) {
      if (state != detail::node_state::in_flight) {
        consume();
        const release_attempt hold{c.attempt};
        return;
      }
      timers_.reserve_push();  // for the next check's entry
      consume();
      const release_attempt hold{c.attempt};
      bool stale = false;
      const detail::step_report report = node->complete(*c.attempt, now_key, stale);
      if (stale) return;
      ++stale_;  // the timeout entry stays behind
      end_flight(node);
      after_step(node, report, now_key);
      return;
    }
    consume();  // cancel
    if (state == detail::node_state::armed || state == detail::node_state::waiting ||
        state == detail::node_state::waiting_slot || state == detail::node_state::in_flight) {
      if (state == detail::node_state::armed || state == detail::node_state::in_flight) ++stale_;
      if (state == detail::node_state::in_flight) end_flight(node);
      node->cancel(now_key);
      finish(node);
    }
  }

  // Precondition: timers_.reserve_push().
  void insert(detail::runner_node* node, std::uint64_t now_key) {
    (void)now_key;
    live_.store(live_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    const std::uint64_t first = node->first_key();
    if (first == detail::finished_key) {
      finish(node);  // e.g. a deadline already past at submit
    } else {
      arm(node, first);
    }
  }

  // Cannot fail: every caller made room for a timer entry first (timers_.reserve_push()). A node whose stale entries
  // approach the limit of its 8-bit count has them swept first (rare: a storm of nudges, or of answered attempts
  // whose timeouts lie far ahead).
  POLLSTER_ALWAYS_INLINE void arm(detail::runner_node* node, std::uint64_t key) noexcept {
    if (key < timers_.last_key()) key = timers_.last_key();
    if (node->refs >= detail::max_refs) sweep_stale();
    node->set_state(detail::node_state::armed);
    node->due_key = key;
    ++node->refs;
    timers_.push(key, node);
  }

  // Makes the checks due at `now_key`: first those waiting for a slot or their budget (in due-time order), then the
  // timers.
  std::size_t dispatch_due(std::uint64_t now_key, std::size_t max_checks) {
    std::size_t checks = 0;
    if (slot_waiting_total_ != 0) checks += serve_slots(now_key, max_checks);
    if (waiting_total_ != 0) checks += serve_budgets(now_key, max_checks - checks);
    while (checks < max_checks && !timers_.empty() && timers_.min_key() <= now_key) {
      timers_.reserve_push();  // the re-arm below cannot fail then: std::bad_alloc leaves here, nothing changed
      if (const auto* ahead = timers_.peek_ahead(8)) {
        detail::prefetch(ahead->item);  // the node's first two cache lines: the header and the poller's start
        detail::prefetch(reinterpret_cast<const char*>(ahead->item) + 64);
      }
      const auto entry = timers_.pop();
      detail::runner_node* node = entry.item;
      --node->refs;
      const detail::node_state state = node->state();
      if (node->due_key != entry.key ||
          (state != detail::node_state::armed && state != detail::node_state::in_flight)) {
        --stale_;
        release_ref(node, false);
        continue;
      }
      if (state == detail::node_state::in_flight) {  // the attempt's timeout
        end_flight(node);
        after_step(node, node->time_out(now_key), now_key);
        continue;
      }
      if (node->budget != detail::no_budget || slots_limited_) {
        if (!admit(node, entry, now_key)) continue;  // it waits (for a token or a slot)
      }
      ++checks;
      check(node, now_key);
    }
    if (stale_ > 1024 && stale_ > timers_.size() / 2) sweep_stale();
    return checks;
  }

  // A due node with a budget or under an in-flight limit: takes its token and its slot, or makes it wait. Everything
  // that may throw std::bad_alloc (room in the queues it may join, its wait account) comes before the token, which
  // cannot be given back; on std::bad_alloc the timer entry goes back where it was. True: start the check now.
  bool admit(detail::runner_node* node, const typename detail::radix_heap<detail::runner_node*>::entry& entry,
             std::uint64_t now_key) {
    // (No check starts before this one: a slot free now is still free once the token is taken.)
    const bool may_wait_for_slot = slots_limited_ && node->is_async() && !slot_free(node);
    bool granted = true;
    try {
      if (may_wait_for_slot) {
        slot_queue(node).reserve_one();
        node->prepare_wait();
      }
      if (node->budget != detail::no_budget) {
        budget_group_entry& group = budgets_[node->budget];
        group.waiting.reserve_one();
        granted = group.waiting.empty() && group.group->try_acquire(detail::duration_of(now_key));
        if (!granted) node->prepare_wait();  // no token taken: it waits for one
      }
    } catch (...) {
      ++node->refs;
      timers_.unpop(entry);
      throw;
    }
    if (!granted) {
      push_waiting(budgets_[node->budget].waiting, node, detail::node_state::waiting, poll_status::waiting_for_budget);
      ++waiting_total_;
      return false;
    }
    if (may_wait_for_slot) {
      push_waiting(slot_queue(node), node, detail::node_state::waiting_slot, poll_status::waiting_for_slot);
      node->due_key = now_key;  // the time it started to wait
      ++slot_waiting_total_;
      return false;
    }
    return true;
  }

  std::size_t serve_budgets(std::uint64_t now_key, std::size_t max_checks) {
    std::size_t checks = 0;
    const duration now = detail::duration_of(now_key);
    // By index, and no reference to a budget kept across check(): a completion callback may add a budget and move
    // them all.
    for (std::size_t i = 0; i < budgets_.size(); ++i) {
      while (checks < max_checks && !budgets_[i].waiting.empty()) {
        budget_group_entry& group = budgets_[i];
        detail::runner_node* node = group.waiting.front();
        if (node->state() != detail::node_state::waiting) {  // cancelled while it waited
          group.waiting.pop_front();
          --waiting_total_;
          --node->refs;
          release_ref(node, false);
          continue;
        }
        // What may throw first (its wait account was made when it joined the queue): then the token.
        timers_.reserve_push();
        const bool may_wait_for_slot = slots_limited_ && node->is_async() && !slot_free(node);
        if (may_wait_for_slot) slot_queue(node).reserve_one();
        if (!group.group->try_acquire(now)) break;
        const duration waited = detail::sat_sub(now, detail::duration_of(node->due_key));
        node->add_budget_wait(waited);
        group.waiting.pop_front();
        --waiting_total_;
        --node->refs;
        group.total_wait = detail::sat_add(group.total_wait, waited);
        if (may_wait_for_slot) {
          push_waiting(slot_queue(node), node, detail::node_state::waiting_slot, poll_status::waiting_for_slot);
          node->due_key = now_key;
          ++slot_waiting_total_;
          continue;
        }
        set_status(node, poll_status::scheduled);
        ++checks;
        check(node, now_key);
      }
    }
    return checks;
  }

  // Starts granted checks that waited for a slot, while slots are free: each group's queue in order. (By index, as
  // serve_budgets: a callback may add budgets.)
  std::size_t serve_slots(std::uint64_t now_key, std::size_t max_checks) {
    std::size_t checks = 0;
    const auto serve = [&](auto queue_of) {
      while (checks < max_checks && !queue_of().empty()) {
        wait_list& queue = queue_of();
        detail::runner_node* node = queue.front();
        if (node->state() != detail::node_state::waiting_slot) {  // cancelled while it waited
          queue.pop_front();
          --slot_waiting_total_;
          --node->refs;
          release_ref(node, false);
          continue;
        }
        if (!slot_free(node)) return;
        timers_.reserve_push();
        const duration waited = detail::sat_sub(detail::duration_of(now_key), detail::duration_of(node->due_key));
        node->add_budget_wait(waited);  // (its wait account was made when it joined the queue)
        queue.pop_front();
        --slot_waiting_total_;
        --node->refs;
        set_status(node, poll_status::scheduled);
        ++checks;
        check(node, now_key);
      }
    };
    for (std::size_t i = 0; i < budgets_.size(); ++i) serve([this, i]() -> wait_list& { return budgets_[i].slot_waiting; });
    serve([this]() -> wait_list& { return free_slot_waiting_; });
    return checks;
  }

  bool slot_free(const detail::runner_node* node) const noexcept {
    if (max_in_flight_ != 0 && in_flight() >= max_in_flight_) return false;
    if (node->budget == detail::no_budget) return true;
    const budget_group_entry& group = budgets_[node->budget];
    const std::size_t limit = group.group->in_flight_limit();
    return limit == 0 || group.in_flight < limit;
  }
  wait_list& slot_queue(const detail::runner_node* node) {
    return node->budget == detail::no_budget ? free_slot_waiting_ : budgets_[node->budget].slot_waiting;
  }

  // (Forced inline, as poller::conclude is: a call and a report passed through memory on every poll cost 40
  // instructions per dispatch when g++ chose to keep them out of line.)
  POLLSTER_ALWAYS_INLINE void check(detail::runner_node* node, std::uint64_t now_key) {
    node->set_state(detail::node_state::running);
    after_step(node, node->step(now_key), now_key);
  }

  // What follows a step, a completion or a timeout: the throttle signal, then the end of the run, the attempt in
  // flight, or the next check. Precondition: timers_.reserve_push().
  POLLSTER_ALWAYS_INLINE void after_step(detail::runner_node* node, const detail::step_report& report,
                                         std::uint64_t now_key) {
    if (report.throttled && node->budget != detail::no_budget) {
      budgets_[node->budget].group->throttled(detail::duration_of(now_key));
    }
    if (report.finished) {
      finish(node);
    } else if (report.in_flight) {
      begin_flight(node, report.next_key);
    } else {
      arm(node, report.next_key);
    }
  }

  void begin_flight(detail::runner_node* node, std::uint64_t timeout_key) noexcept {
    arm(node, timeout_key);
    node->set_state(detail::node_state::in_flight);
    in_flight_.store(in_flight_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (node->budget != detail::no_budget) ++budgets_[node->budget].in_flight;
    set_status(node, poll_status::in_flight);
  }
  void end_flight(detail::runner_node* node) noexcept {
    in_flight_.store(in_flight_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    if (node->budget != detail::no_budget) --budgets_[node->budget].in_flight;
    node->set_state(detail::node_state::running);
    set_status(node, poll_status::scheduled);
  }

  // The caller made room in `queue` (reserve_one), or accepts that this may throw std::bad_alloc with nothing
  // changed.
  void push_waiting(wait_list& queue, detail::runner_node* node, detail::node_state state, poll_status status) {
    queue.push_back(node);  // first: it may throw, with nothing changed
    node->set_state(state);
    ++node->refs;
    set_status(node, status);
  }

  // Wait-list entries of finished pollers (cancelled while they waited) keep their nodes until they are reached;
  // once no poller is left, or on shrink(), they go at once.
  void drop_finished_waiters() noexcept {
    const auto drop = [this](wait_list& queue, detail::node_state waiting_state, std::size_t& total) {
      queue.remove_if([&](detail::runner_node* node) noexcept {
        if (node->state() == waiting_state) return false;
        --total;
        --node->refs;
        release_ref(node, false);
        return true;
      });
    };
    for (budget_group_entry& group : budgets_) {
      drop(group.waiting, detail::node_state::waiting, waiting_total_);
      drop(group.slot_waiting, detail::node_state::waiting_slot, slot_waiting_total_);
    }
    drop(free_slot_waiting_, detail::node_state::waiting_slot, slot_waiting_total_);
  }

  // The earliest key at which something can happen: a timer, or a token for a waiting poller. A timer at never_key
  // (an attempt without a timeout) is no reason to wake.
  std::optional<std::uint64_t> next_wake(std::uint64_t now_key) {
    std::optional<std::uint64_t> next;
    if (!timers_.empty() && timers_.min_key() < detail::never_key) next = timers_.min_key();
    if (waiting_total_ != 0) {
      const duration now = detail::duration_of(now_key);
      for (const budget_group_entry& group : budgets_) {
        if (group.waiting.empty()) continue;
        const std::uint64_t key = detail::key_of(group.group->next_available(now));
        if (!next || key < *next) next = key;
      }
    }
    return next;
  }

  // The poller is over: retire its slot (handles now read finished), call back, free it when nothing points here.
  // Nothing before the callback allocates.
  void finish(detail::runner_node* node) {
    node->set_state(detail::node_state::finished);
    live_.store(live_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    retire_slot(node->slot);
    struct release_after {
      runner* self;
      detail::runner_node* node;
      ~release_after() { self->release_ref(node, false); }
    } guard{this, node};
    node->complete_run();
  }

  // Only the driving thread writes a live slot (submit writes it before the insert command is sent).
  void set_status(const detail::runner_node* node, poll_status status) noexcept {
    detail::slot_entry& entry = shared_->slots[node->slot];
    entry.store(detail::slot_word(detail::generation_of(entry.load(std::memory_order_relaxed)), status),
                std::memory_order_release);
  }

  void retire_slot(std::uint32_t slot) noexcept {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->slots.retire(slot);
  }

  // Frees a node nothing points to any more. `dropping`: the runner is being destroyed (no callbacks).
  void release_ref(detail::runner_node* node, bool dropping) noexcept {
    if (dropping) {
      --node->refs;
      if (node->state() != detail::node_state::finished) {
        node->set_state(detail::node_state::finished);
        live_.store(live_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
        retire_slot(node->slot);
      }
    }
    if (node->refs == 0 && node->state() == detail::node_state::finished) node->destroy(arena_);
  }

  // Drops every stale entry. An entry is live when it is the first of an armed or in-flight node's entries at the
  // node's due key: a node re-armed at the key of an entry that a nudge or an answered attempt left behind (a
  // "retry at" hint, say) has several there, the same in time, and the first stands for them all. Allocates nothing.
  void sweep_stale() noexcept {
    const std::size_t removed = timers_.remove_if([this](const auto& entry) noexcept {
      detail::runner_node* node = entry.item;
      const detail::node_state state = node->state();
      if ((state == detail::node_state::armed || state == detail::node_state::in_flight) && node->due_key == entry.key) {
        node->due_key = detail::finished_key;  // kept: its later entries are stale, whatever their key (no live
        return false;                          // entry has this key: armed keys stop at never_key)
      }
      --node->refs;
      release_ref(node, false);
      return true;
    });
    // Every entry left is the one live entry of its node: it gives the node its due key back.
    timers_.for_each([](const auto& entry) noexcept { entry.item->due_key = entry.key; });
    stale_ -= removed;
  }

  detail::node_arena arena_;  // first: destroyed last, after every node has gone back to it
  Clock& clock_;
  std::shared_ptr<detail::runner_shared> shared_;
  const std::uint64_t seed_base_;
  const std::size_t max_in_flight_;
  bool slots_limited_;  // an in-flight limit exists (overall or in a group): only then is a node asked is_async()
  std::atomic<std::uint64_t> seeds_used_{0};
  std::atomic<std::size_t> budget_count_{0};
  std::size_t drain_next_ = 0;  // commands of pending_commands_ already applied (a callback may throw midway)
  detail::radix_heap<detail::runner_node*> timers_;
  std::vector<budget_group_entry> budgets_;
  wait_list free_slot_waiting_;  // pollers without a budget waiting for a slot
  std::vector<detail::command> pending_commands_;
  detail::attempt_base* reported_ = nullptr;  // steps kept for want of queue memory, taken from shared_, oldest first
  std::atomic<std::size_t> live_{0};       // written by the driving thread only; size() reads it from anywhere
  std::atomic<std::size_t> in_flight_{0};  // the same, for in_flight()
  std::size_t stale_ = 0;
  std::size_t waiting_total_ = 0;
  std::size_t slot_waiting_total_ = 0;
  // Who may touch the driving thread's structures: nobody (idle), the driving call (driven, on driver_'s thread),
  // or one call of add_budget, stats, memory_bytes or shrink from a thread that does not drive (accessor).
  static constexpr int idle = 0;
  static constexpr int driven = 1;
  static constexpr int accessor = 2;
  mutable std::atomic<int> access_{idle};
  std::atomic<std::thread::id> driver_{};
  std::thread thread_;
  std::exception_ptr thread_error_;
};

POLLSTER_NAMESPACE_END
