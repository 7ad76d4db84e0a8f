// SPDX-License-Identifier: MIT
#pragma once

// Subscriptions on one watch (StackStorm rules, Event Grid event subscriptions): several handlers, each with its
// filter (filter.hpp), each delivered at least once (delivery.hpp).
//
//  * One diff, many views. The watch diffs each list once; every subscription evaluates its filter on the record
//    before and the record after each change, so a record that enters a subscription's filter is added for it, one
//    that leaves is removed (snapshot.hpp's filtered views, without a snapshot per subscription).
//  * At least once, per subscription. A handler that throws gets the same event again on its retry policy (any
//    schedule; Event Grid's by default); the other subscriptions are not held up; later events for the same key wait
//    behind the failed one (order per key is kept, other keys flow); after the policy's attempts or age the event
//    goes to the dead-letter handler with the last exception. Queues are bounded (`max_pending`): an event that
//    finds its subscription's queue full is dead-lettered at once (reason queue_full) instead of waiting.
//  * Redelivery needs no list call. `subscriptions` is a clock-explicit dispatcher: `next_due()` and
//    `run_due(now)`. `watcher::run(clock, subs)` sleeps until the earlier of its next poll and `next_due()`; on a
//    runner, a companion poller redelivers (redelivery.hpp, `submit_with_redelivery`): redelivery is polling with
//    backoff.
//  * Resume. `save_state(watcher, subs)` gives a plain value (`watch_state`: the watcher's last list, the undelivered
//    events, the change count) to persist; `resume(watcher, subs, state, now)` in a restarted process reports what
//    changed while it was down as changes, and goes on delivering what it had not delivered.
//
// Within one poll a subscription receives its events in the order of the unfiltered diff (removals, then additions
// and changes in the order of the new list); a record that leaves its filter is a removal in the second part.
//
// Not thread-safe: publish (the watch's handler), run_due and the handlers all run on the watch's driving thread,
// and a handler must not call back into its subscriptions.

#include "clock.hpp"
#include "delivery.hpp"
#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"
#include "diff.hpp"
#include "event.hpp"
#include "filter.hpp"
#include "schedule.hpp"
#include "stop.hpp"
#include "watch.hpp"

#include <chrono>       // system_clock, duration_cast
#include <cstddef>      // size_t
#include <cstdint>      // uint32_t, uint64_t
#include <deque>        // deque
#include <exception>    // exception_ptr, current_exception, make_exception_ptr
#include <functional>   // function, invoke
#include <map>          // map
#include <memory>       // shared_ptr, unique_ptr, make_shared
#include <optional>     // optional
#include <stdexcept>    // logic_error, invalid_argument
#include <string>       // string
#include <string_view>  // string_view
#include <type_traits>  // is_invocable_v, ...
#include <utility>      // move, pair
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN

/// How one subscription receives its events. A plain aggregate: `{.kinds = {pollster::event_kind::removed}}`.
struct subscription_options {
  /// The kinds it receives, as its filter decided them (a record that leaves the filter is removed for it).
  event_kinds kinds{};
  /// How it retries a handler that threw, and when it gives up: Event Grid's default.
  retry_policy retry = event_grid_retry();
  /// Events it may hold undelivered (failed ones and the ones waiting behind them); past it, dead-lettered at once.
  std::size_t max_pending = 10000;
  /// Also deliver the records of the watch's first list (as added, `initial()`): "already there when I started".
  bool initial = false;
};

/// Options of a `subscriptions`.
struct subscriptions_options {
  /// CloudEvents `source`, the type prefix and the data's content type.
  event_source source{};
  /// The wall clock events are stamped with (CloudEvents `time`); `wall_clock_of(clock, origin)` for virtual time.
  std::function<std::chrono::system_clock::time_point()> wall_clock{};
};

/// A wall clock that follows a virtual one: `origin` plus the time `clock` has moved since its epoch.
template <class Clock>
std::function<std::chrono::system_clock::time_point()> wall_clock_of(const Clock& clock,
                                                                     std::chrono::system_clock::time_point origin) {
  return [&clock, origin] {
    return origin + std::chrono::duration_cast<std::chrono::system_clock::duration>(clock.now().time_since_epoch());
  };
}

/// Names a subscription of one `subscriptions` (returned by subscribe).
struct subscription_id {
  std::size_t value = 0;
};

/// The subscriptions of one watch: a dispatcher of the watch's changes to handlers, each with a filter and a retry
/// policy. `T` is the record, `K` its key, `Clock` the clock of the driver (the watcher's or the runner's).
template <class T, class K, class Clock = steady_clock>
class subscriptions {
 public:
  using record_type = T;
  using key_type = K;
  using event_type = event<T, K>;
  using clock_type = Clock;
  using time_point = typename Clock::time_point;

  /// `keys`: the watch's key projection, or `keyed(key, version)`: a version projection makes event ids
  /// "<subject>/<kind>/v<version>", the same after a restart. The subject is the key as text.
  template <class Keys>
  explicit subscriptions(Keys keys, subscriptions_options options = {})
      : subscriptions(std::move(keys), default_subject{}, std::move(options)) {
    static_assert(detail::has_plain_text<K>,
                  "pollster::subscriptions: the key has no text (an operator<<): say how to write it as the subject");
  }
  /// The same, with the subject (the key as text) written by `subject_of(key)`.
  template <class Keys, class SubjectOf, std::enable_if_t<std::is_invocable_v<const SubjectOf&, const K&>, int> = 0>
  subscriptions(Keys keys, SubjectOf subject_of, subscriptions_options options = {})
      : subject_of_(std::move(subject_of)),
        source_(std::make_shared<const event_source>(std::move(options.source))),
        wall_clock_(std::move(options.wall_clock)) {
    if (!wall_clock_) wall_clock_ = [] { return std::chrono::system_clock::now(); };
    static_assert(detail::is_ordered<K>::value, "pollster::subscriptions: the key needs operator< (queues per key)");
    set_keys(detail::as_keyed<Keys>::make(std::move(keys)));
  }
  subscriptions(const subscriptions&) = delete;
  subscriptions& operator=(const subscriptions&) = delete;

  /// Adds a subscription: `handler(const event<T, K>&)` or `handler(const event<T, K>&, const delivery&)` gets
  /// the changes `filter` lets through (a filter expression of filter.hpp; `everything` for all). A handler that
  /// throws gets the event again on `options.retry`. Names are unique: they name the subscription in logs, dead
  /// letters and saved states.
  template <class Filter, class Handler, std::enable_if_t<detail::is_filter_v<Filter>, int> = 0>
  subscription_id subscribe(std::string name, Filter which, Handler handler, subscription_options options = {}) {
    if (name.empty()) detail::throw_invalid("subscriptions", "name", "not empty", "\"\"");
    for (const auto& e : entries_) {
      if (e->name == name) detail::throw_invalid("subscriptions", "name", "unique", "\"" + name + "\" (taken)");
    }
    if (options.max_pending == 0) detail::throw_invalid("subscription_options", "max_pending", ">= 1", "0");
    auto e = std::make_unique<entry>();
    e->name = std::move(name);
    e->filter = pollster::filter<T>(std::move(which));
    e->handler = adapt(std::move(handler));
    e->options = std::move(options);
    wants_initial_ = wants_initial_ || e->options.initial;
    entries_.push_back(std::move(e));
    return subscription_id{entries_.size() - 1};
  }
  /// A subscription to every change (narrowed by `options.kinds`).
  template <class Handler, std::enable_if_t<!detail::is_filter_v<Handler>, int> = 0>
  subscription_id subscribe(std::string name, Handler handler, subscription_options options = {}) {
    return subscribe(std::move(name), everything, std::move(handler), std::move(options));
  }

  /// Where given-up events go (Event Grid's dead-letter destination), for every subscription. Without one they
  /// are dropped (counted). A dead-letter handler that throws loses the event: it is counted as dropped and its
  /// exception kept in `last_dead_letter_error()`; nothing else is disturbed.
  template <class Handler>
  void on_dead_letter(Handler handler) {
    static_assert(std::is_invocable_v<Handler&, const dead_letter<T, K>&>,
                  "pollster::subscriptions::on_dead_letter: the handler must take const dead_letter<T, K>&");
    dead_letter_ = std::move(handler);
  }

  // --- publishing: what the watch's handler calls (`handler(clock)`), at the time of the poll ---

  void publish(const added<const T&>& e, time_point now) {
    publish_change(event_kind::added, nullptr, &e.element, e.initial, nullptr, now);
  }
  void publish(const removed<const T&, K>& e, time_point now) {
    publish_change(event_kind::removed, &e.last_known, nullptr, false, &e.key, now);
  }
  void publish(const changed<const T&>& e, time_point now) {
    publish_change(event_kind::changed, &e.before, &e.after, false, nullptr, now);
  }

  /// The handler to give the watch (`watcher`, or `watching` on a runner): it publishes each change at the time
  /// `clock` says.
  class watch_handler {
   public:
    void operator()(const added<const T&>& e) const { subs_->publish(e, clock_->now()); }
    void operator()(const removed<const T&, K>& e) const { subs_->publish(e, clock_->now()); }
    void operator()(const changed<const T&>& e) const { subs_->publish(e, clock_->now()); }

   private:
    friend class subscriptions;
    watch_handler(subscriptions* subs, Clock* clock) noexcept : subs_(subs), clock_(clock) {}
    subscriptions* subs_;
    Clock* clock_;
  };
  watch_handler handler(Clock& clock) noexcept { return watch_handler(this, &clock); }

  // --- redelivery: the side work of a watch driver ---

  /// When the next retry is due (time_point::max() when none is waiting).
  time_point next_due() const noexcept { return timeline_.empty() ? time_point::max() : timeline_.begin()->first.first; }
  /// Retries every event due at `now` (and delivers, in order, the events that waited behind one that now got
  /// through). Returns the retries made. Retries scheduled by this call for `now` itself wait for the next call.
  std::size_t run_due(time_point now) {
    const reentry_guard guard(this);
    std::vector<std::pair<std::size_t, K>> due;
    for (auto it = timeline_.begin(); it != timeline_.end() && it->first.first <= now;) {
      due.push_back(std::move(it->second));
      it = timeline_.erase(it);
    }
    std::size_t retries = 0;
    for (auto& [index, key] : due) {
      entry& s = *entries_[index];
      const auto queue = s.queues.find(key);
      if (queue == s.queues.end()) continue;
      ++retries;
      work_through(index, queue, now, false);
    }
    return retries;
  }
  /// Sleeps on `clock` from one due retry to the next until nothing is pending (or `token` is cancelled): after a
  /// watch ends, to see its undelivered events through. Bounded by the retry policies' stop rules.
  template <class DriverClock>
  std::size_t drain(DriverClock& clock, const cancel_token& token = {}) {
    static_assert(std::is_same_v<typename DriverClock::time_point, time_point>,
                  "pollster::subscriptions::drain: the clock must be the subscriptions' clock");
    std::size_t retries = 0;
    while (!timeline_.empty()) {
      if (!clock.sleep_until(next_due(), token)) break;
      retries += run_due(clock.now());
    }
    return retries;
  }

  /// Called (on the publishing thread) when a publish makes a retry due earlier than before, and on close():
  /// a runner's companion poller is nudged this way (`submit_redelivery`).
  void set_waker(std::function<void()> waker) { waker_ = std::move(waker); }
  /// The watch is over: a companion poller ends once nothing is pending. Publishing goes on working.
  void close() {
    closed_ = true;
    if (waker_) waker_();
  }
  bool closed() const noexcept { return closed_; }

  // --- state ---

  /// The undelivered events and the change count, to restore after a restart (with the watcher's last list).
  delivery_state<T, K> save() const {
    delivery_state<T, K> state;
    state.sequence = sequence_;
    for (const auto& e : entries_) {
      for (const auto& [key, queue] : e->queues) {
        for (const held& h : queue.events) {
          undelivered_event<T, K> u;
          // The retry's wall time: the change's wall time plus how long after its publication it is due.
          if (&h == &queue.events.front()) u.due = detail::sat_add(h.change->time, gap(queue.due, h.published));
          u.subscription = e->name;
          u.kind = h.event.kind();
          u.filtered = h.filtered;
          u.key = key;
          u.before = h.change->before;
          u.after = h.change->after;
          u.initial = h.change->initial;
          u.sequence = h.change->sequence;
          u.time = h.change->time;
          u.attempts = h.attempts;
          state.undelivered.push_back(std::move(u));
        }
      }
    }
    return state;
  }
  /// Takes back a saved state: its events wait again, each key's first for the retry it was waiting for (due at
  /// the same wall time, or at `now` if that passed while down), its retry schedule going on where it was, its
  /// attempts and age too (the age counts the time spent down, by the wall clock). An event of a subscription that
  /// no longer exists is dead-lettered (reason unsubscribed). Subscribe first.
  void restore(const delivery_state<T, K>& state, time_point now) {
    const reentry_guard guard(this);
    const time_point before = next_due();
    if (state.sequence > sequence_) sequence_ = state.sequence;
    const auto wall_now = wall_clock_();
    for (const undelivered_event<T, K>& u : state.undelivered) {
      auto c = std::make_shared<detail::change<T, K>>();
      c->key = u.key;
      c->subject = subject_of_(u.key);
      c->before = u.before;
      c->after = u.after;
      set_versions(*c);
      c->initial = u.initial;
      c->kind = u.kind;
      c->sequence = u.sequence;
      c->time = u.time;
      c->source = source_;
      const duration down = std::max(duration::zero(), gap(wall_now, u.time));
      held h{event_type(u.kind, c), c, u.filtered, detail::sat_add(now, duration{} - down), u.attempts, nullptr};
      std::size_t index = 0;
      while (index < entries_.size() && entries_[index]->name != u.subscription) ++index;
      if (index == entries_.size()) {
        ++unsubscribed_;
        give_up(nullptr, u.subscription, h, dead_letter_reason::unsubscribed, now);
        continue;
      }
      entry& s = *entries_[index];
      const auto queue = s.queues.find(u.key);
      if (queue != s.queues.end()) {
        hold_behind(s, queue->second, std::move(h), now);
      } else if (s.stats.pending >= s.options.max_pending) {
        give_up(&s, s.name, h, dead_letter_reason::queue_full, now);
      } else {
        key_queue& q = s.queues[u.key];
        q.events.push_back(std::move(h));
        count_held(s);
        // Due when it was due (by the wall clock), or at once if that passed while the process was down.
        q.due = u.due ? detail::sat_add(now, std::max(duration::zero(), gap(*u.due, wall_now))) : now;
        timeline_.emplace(std::make_pair(q.due, order_++), std::make_pair(index, u.key));
      }
    }
    if (next_due() < before && waker_) waker_();
  }

  // --- counts ---

  const subscription_stats& stats(subscription_id id) const { return entry_at(id).stats; }
  const subscription_stats& stats(std::string_view name) const {
    for (const auto& e : entries_) {
      if (e->name == name) return e->stats;
    }
    detail::throw_invalid("subscriptions", "name", "a subscribed name", "\"" + std::string(name) + "\"");
  }
  const std::string& name_of(subscription_id id) const { return entry_at(id).name; }
  const pollster::filter<T>& filter_of(subscription_id id) const { return entry_at(id).filter; }
  std::size_t size() const noexcept { return entries_.size(); }
  /// Events held undelivered over every subscription.
  std::size_t pending() const noexcept { return pending_; }
  /// Changes published so far (every change of the diff, delivered to someone or not).
  std::uint64_t sequence() const noexcept { return sequence_; }
  /// Dead-lettered events lost: no dead-letter handler, or it threw.
  std::uint64_t dropped() const noexcept { return dropped_; }
  std::exception_ptr last_dead_letter_error() const noexcept { return last_dead_letter_error_; }

 private:
  using handler_type = std::function<void(const event_type&, const delivery&)>;

  struct default_subject {
    std::string operator()(const K& key) const { return detail::plain_text(key); }
  };

  struct held {
    event_type event;  // as the subscription sees it (the diff's kind while not `filtered`)
    std::shared_ptr<const detail::change<T, K>> change;
    bool filtered = true;
    time_point published{};
    std::uint32_t attempts = 0;
    std::exception_ptr error;
  };
  struct key_queue {
    std::deque<held> events;  // the first failed and waits for its retry; the others wait behind it
    std::unique_ptr<detail::retry_state> retry;
    time_point due{};  // when the first one's retry is due (its entry in timeline_)
  };
  struct entry {
    std::string name;
    pollster::filter<T> filter;
    handler_type handler;
    subscription_options options;
    std::map<K, key_queue> queues;
    subscription_stats stats;
  };
  using queue_iterator = typename std::map<K, key_queue>::iterator;

  struct reentry_guard {
    explicit reentry_guard(subscriptions* s) : subs(s) {
      if (subs->busy_) {
        throw std::logic_error("pollster::subscriptions: called from one of its own handlers (publish, run_due and "
                               "restore are not re-entrant)");
      }
      subs->busy_ = true;
    }
    reentry_guard(const reentry_guard&) = delete;
    reentry_guard& operator=(const reentry_guard&) = delete;
    ~reentry_guard() { subs->busy_ = false; }
    subscriptions* subs;
  };

  template <class Key, class Same>
  void set_keys(keyed_by<Key, Same> keys) {
    static_assert(std::is_same_v<detail::key_type_t<Key, T>, K>,
                  "pollster::subscriptions: the key projection must give the subscriptions' key type K");
    key_of_ = [key = std::move(keys.key)](const T& record) -> K { return std::invoke(key, record); };
    if constexpr (std::is_invocable_v<const Same&, const T&> && !std::is_invocable_v<const Same&, const T&, const T&>) {
      using version_type = detail::remove_cvref_t<std::invoke_result_t<const Same&, const T&>>;
      if constexpr (detail::has_plain_text<version_type>) {
        version_of_ = [same = std::move(keys.same)](const T& record) {
          return detail::plain_text(std::invoke(same, record));
        };
      }
    }
  }

  template <class Handler>
  static handler_type adapt(Handler handler) {
    if constexpr (std::is_invocable_v<Handler&, const event_type&, const delivery&>) {
      return handler_type(std::move(handler));
    } else {
      static_assert(std::is_invocable_v<Handler&, const event_type&>,
                    "pollster::subscriptions::subscribe: the handler must take const event<T, K>& (and optionally "
                    "const delivery&)");
      return [h = std::move(handler)](const event_type& e, const delivery&) mutable { h(e); };
    }
  }

  entry& entry_at(subscription_id id) const {
    if (id.value >= entries_.size()) {
      detail::throw_invalid("subscriptions", "id", "returned by subscribe", std::to_string(id.value));
    }
    return *entries_[id.value];
  }

  void set_versions(detail::change<T, K>& c) const {
    if (!version_of_) return;
    c.has_version = true;
    if (c.before) c.version_before = version_of_(*c.before);
    if (c.after) c.version_after = version_of_(*c.after);
  }

  /// `later - earlier`, saturated (a saved state may hold any time).
  template <class TimePoint>
  static duration gap(TimePoint later, TimePoint earlier) noexcept {
    return detail::sat_sub(std::chrono::duration_cast<duration>(later.time_since_epoch()),
                           std::chrono::duration_cast<duration>(earlier.time_since_epoch()));
  }
  static duration age_at(const held& h, time_point now) noexcept { return gap(now, h.published); }

  /// What a filter's two sides make of a change for its subscription: nothing, added, removed or changed.
  static std::optional<event_kind> kind_of(detail::filter_sides sides) noexcept {
    if (sides.before && sides.after) return event_kind::changed;
    if (sides.after) return event_kind::added;
    if (sides.before) return event_kind::removed;
    return std::nullopt;
  }

  void publish_change(event_kind kind, const T* before, const T* after, bool initial, const K* given_key,
                      time_point now) {
    const reentry_guard guard(this);
    if (sequence_ != ~std::uint64_t{0}) ++sequence_;
    if (initial && !wants_initial_) return;
    const time_point due_before = next_due();
    const K key = given_key != nullptr ? *given_key : key_of_(*after);
    const std::string subject = subject_of_(key);
    std::shared_ptr<const detail::change<T, K>> shared;  // made once, when the first subscription needs it
    const auto change = [&]() -> const std::shared_ptr<const detail::change<T, K>>& {
      if (!shared) {
        auto c = std::make_shared<detail::change<T, K>>();
        c->key = key;
        c->subject = subject;
        if (before != nullptr) c->before = *before;
        if (after != nullptr) c->after = *after;
        set_versions(*c);
        c->initial = initial;
        c->kind = kind;
        c->sequence = sequence_;
        c->time = wall_clock_();
        c->source = source_;
        shared = std::move(c);
      }
      return shared;
    };
    for (std::size_t index = 0; index < entries_.size(); ++index) {
      entry& s = *entries_[index];
      if (initial && !s.options.initial) continue;
      std::optional<event_kind> seen;
      std::exception_ptr filter_error;
      try {
        seen = kind_of(s.filter.match(before, after, subject));
      } catch (...) {
        filter_error = std::current_exception();  // the change stays undecided for this subscription: retried
        ++s.stats.filter_errors;
      }
      if (!filter_error) {
        if (!seen || !s.options.kinds.contains(*seen)) continue;
        ++s.stats.matched;
      }
      held h{event_type(filter_error ? kind : *seen, change()), change(), filter_error == nullptr, now, 0,
             filter_error};
      const auto queue = s.queues.find(key);
      if (queue != s.queues.end()) {
        hold_behind(s, queue->second, std::move(h), now);  // order per key: behind the one that failed
        continue;
      }
      if (filter_error) {
        h.attempts = 1;
        ++s.stats.failed_attempts;
      } else if (attempt(s, h, now)) {
        continue;
      }
      // The first attempt failed: the event waits for a retry in its key's queue (if the queue has room).
      if (s.stats.pending >= s.options.max_pending) {
        give_up(&s, s.name, h, dead_letter_reason::queue_full, now);
        continue;
      }
      const auto inserted = s.queues.emplace(key, key_queue{}).first;
      inserted->second.events.push_back(std::move(h));
      count_held(s);
      work_through(index, inserted, now, true);
    }
    if (waker_ && next_due() < due_before) waker_();
  }

  /// Tries to deliver `h` now (re-evaluating its filter first if that threw before). True when it is done with:
  /// delivered, or no longer for this subscription.
  bool attempt(entry& s, held& h, time_point now) {
    if (h.attempts != ~std::uint32_t{0}) ++h.attempts;
    if (h.attempts > 1) ++s.stats.redeliveries;
    if (!h.filtered) {
      std::optional<event_kind> seen;
      try {
        seen = kind_of(s.filter.match(h.change->before ? &*h.change->before : nullptr,
                                      h.change->after ? &*h.change->after : nullptr, h.change->subject));
      } catch (...) {
        h.error = std::current_exception();
        ++s.stats.filter_errors;
        ++s.stats.failed_attempts;
        return false;
      }
      h.filtered = true;
      if (!seen || !s.options.kinds.contains(*seen)) return true;
      ++s.stats.matched;
      h.event = event_type(*seen, h.change);
    }
    const delivery d{s.name, h.attempts, age_at(h, now)};
    try {
      s.handler(h.event, d);
    } catch (...) {
      h.error = std::current_exception();
      ++s.stats.failed_attempts;
      return false;
    }
    ++s.stats.delivered;
    return true;
  }

  /// Goes through a key's queue at `now`: delivers in order what gets through; the first event that fails waits for
  /// its next retry, or is given up on (and the next one tried). `head_failed`: its first event just failed.
  void work_through(std::size_t index, queue_iterator queue, time_point now, bool head_failed) {
    entry& s = *entries_[index];
    key_queue& q = queue->second;
    while (!q.events.empty()) {
      held& head = q.events.front();
      if (!head_failed && attempt(s, head, now)) {
        release_head(s, q);
        continue;
      }
      head_failed = false;
      if (!q.retry) {
        q.retry = s.options.retry.start(next_seed());
        if (head.attempts > 1) q.retry->skip(head.attempts - 1U);  // restored: its schedule goes on where it was
      }
      duration delay{};
      const stop_reason stop = q.retry->plan(head.attempts, age_at(head, now), delay);
      if (stop == stop_reason::none) {
        q.due = detail::sat_add(now, delay);
        timeline_.emplace(std::make_pair(q.due, order_++), std::make_pair(index, queue->first));
        return;
      }
      held given_up = std::move(head);
      release_head(s, q);
      give_up(&s, s.name, given_up, detail::dead_letter_reason_of(stop), now);
    }
    s.queues.erase(queue);
  }

  void release_head(entry& s, key_queue& q) {
    q.events.pop_front();
    q.retry.reset();  // the next event gets its own schedule
    --s.stats.pending;
    --pending_;
  }
  void count_held(entry& s) {
    ++s.stats.pending;
    ++pending_;
    if (s.stats.pending > s.stats.most_pending) s.stats.most_pending = s.stats.pending;
  }

  void hold_behind(entry& s, key_queue& q, held h, time_point now) {
    if (s.stats.pending >= s.options.max_pending) {
      give_up(&s, s.name, h, dead_letter_reason::queue_full, now);
      return;
    }
    q.events.push_back(std::move(h));
    count_held(s);
  }

  void give_up(entry* s, const std::string& name, const held& h, dead_letter_reason reason, time_point now) {
    if (s != nullptr) ++s->stats.dead_lettered;
    if (!dead_letter_) {
      ++dropped_;
      return;
    }
    dead_letter<T, K> letter{h.event, name, h.error, h.attempts, age_at(h, now), reason};
    if (!letter.error && reason == dead_letter_reason::queue_full) {
      letter.error = std::make_exception_ptr(delivery_overflow(
          "pollster::subscriptions: subscription \"" + name + "\" already holds its max_pending (" +
          std::to_string(s != nullptr ? s->options.max_pending : 0) + ") undelivered events"));
    }
    try {
      dead_letter_(letter);
    } catch (...) {
      ++dropped_;
      last_dead_letter_error_ = std::current_exception();
    }
  }

  std::uint64_t next_seed() noexcept {
    splitmix64 mix{0x5eed5eed5eed5eedULL + seeds_++ * 0xd1b54a32d192ed03ULL};
    return mix();
  }

  std::function<K(const T&)> key_of_;
  std::function<std::string(const T&)> version_of_;  // empty: no version projection (ids count changes)
  std::function<std::string(const K&)> subject_of_;
  std::shared_ptr<const event_source> source_;
  std::function<std::chrono::system_clock::time_point()> wall_clock_;
  std::function<void(const dead_letter<T, K>&)> dead_letter_;
  std::function<void()> waker_;
  std::vector<std::unique_ptr<entry>> entries_;
  // The waiting retries, earliest first (ties in the order they were scheduled): one per queue.
  std::map<std::pair<time_point, std::uint64_t>, std::pair<std::size_t, K>> timeline_;
  std::uint64_t order_ = 0;
  std::uint64_t sequence_ = 0;
  std::uint64_t seeds_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint64_t unsubscribed_ = 0;
  std::exception_ptr last_dead_letter_error_;
  std::size_t pending_ = 0;
  bool wants_initial_ = false;
  bool closed_ = false;
  bool busy_ = false;
};

// ---------------------------------------------------------------------------------------------------------------------
// Resume: what a restarted process needs.

/// Everything a restarted watch needs to go on: the last list its diff compares with, and its subscriptions'
/// undelivered events and change count. A plain value; it costs the records themselves (no index, no key copies),
/// plus, per undelivered event, its subscription's name, its key and the records of its change. Keys and versions
/// alone would not do: a filter decides "became ACTIVE" and a removal carries its last record from the old record.
template <class T, class K>
struct watch_state {
  std::vector<T> records;
  delivery_state<T, K> delivery;
};

namespace detail {
template <class W, class = void>
struct has_resume_from : std::false_type {};
template <class W>
struct has_resume_from<W, std::void_t<decltype(&W::resume_from)>> : std::true_type {};
}  // namespace detail

/// Takes the state of a watch and its subscriptions: a blocking `watcher` (between runs, or from the run's own
/// thread), or the `watching(...)` check of a runner watch submitted as `std::ref(watch)` (on the runner's thread).
template <class Watcher, class T, class K, class Clock>
watch_state<T, K> save_state(const Watcher& w, const subscriptions<T, K, Clock>& subs) {
  return {w.last_list(), subs.save()};
}

/// Gives a new watch (a `watcher`, or a `watching(...)` check before it is submitted) and its subscriptions
/// (subscribed already) a saved state: the watch's next poll reports what changed since as changes, and each
/// undelivered event comes at the retry it was waiting for (`subscriptions::restore`).
template <class Watcher, class T, class K, class Clock>
void resume(Watcher& w, subscriptions<T, K, Clock>& subs, watch_state<T, K> state,
            typename subscriptions<T, K, Clock>::time_point now) {
  subs.restore(state.delivery, now);
  if constexpr (detail::has_resume_from<Watcher>::value) {
    w.resume_from(std::move(state.records));
  } else {
    w.restore(std::move(state.records));
  }
}

POLLSTER_NAMESPACE_END
