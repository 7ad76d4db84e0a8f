// SPDX-License-Identifier: MIT
#pragma once

// Await one operation: poll a status resource until a rule says it is over, in the manner of AWS/Smithy waiters.
//
// A rule pairs a matcher with a state (success, failure, retry). Matchers look at the value the fetch returned (a
// projection compared with an expected value, "all of" / "any of" over a projected list, a predicate) or at the
// error it returned. The first matching rule wins. A value that matches no rule means "not yet": keep polling. An
// error that matches no rule ends the await with an explicit "unmatched error" — an error nobody anticipated is
// never retried silently for ever (a 403 retried until the deadline is a bug report waiting to happen).
//
// There is no loop here: the rules become the check of a `poller` (poller.hpp). `awaiting(fetch, rules)` builds that
// check; `await_operation` drives it with `poll_until` (blocking); `runner.submit(awaiting(...), ...)` runs it on a
// runner, and asio.hpp on an executor. The check keeps what it decided (the rule that matched, the transitions) and
// hands it to the outcome through `report()`: `outcome<T, E, await_report>`.

#include "detail/config.hpp"
#include "detail/text.hpp"
#include "poll.hpp"
#include "stop.hpp"

#include <cstddef>      // size_t
#include <cstdint>      // uint8_t, uint32_t, uint64_t
#include <functional>   // invoke
#include <optional>     // optional
#include <ostream>      // ostream (printing an expected value)
#include <sstream>      // ostringstream
#include <string>       // string, to_string
#include <string_view>  // string_view
#include <tuple>        // tuple, apply
#include <type_traits>  // decay_t, enable_if_t, is_invocable_v, ...
#include <utility>      // move, forward, declval
#include <variant>      // monostate (the error type of a fetch that returns plain values)

POLLSTER_NAMESPACE_BEGIN

/// What a matching rule means (Smithy's acceptor states).
enum class rule_state : std::uint8_t {
  success,  ///< the operation is done: the await ends with cause done
  failure,  ///< the operation failed for good: the await ends with cause failed
  retry,    ///< not yet (useful for an error that is expected while the resource appears, say a 404)
};

constexpr const char* to_string(rule_state s) noexcept {
  switch (s) {
    case rule_state::success: return "success";
    case rule_state::failure: return "failure";
    case rule_state::retry: return "retry";
  }
  return "unknown";
}

/// What a matcher looks at.
enum class matcher_target : std::uint8_t { value, error };

namespace detail {

template <class V>
using stored_expected_t =
    std::conditional_t<std::is_convertible_v<const std::decay_t<V>&, std::string_view> &&
                           (std::is_pointer_v<std::decay_t<V>> || std::is_array_v<std::remove_reference_t<V>>),
                       std::string, std::decay_t<V>>;

template <class V, class = void>
struct is_printable : std::false_type {};
template <class V>
struct is_printable<V, std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const V&>())>>
    : std::true_type {};

/// An expected value as text for a rule's description: strings quoted, numbers as numbers, the rest printed when
/// it can be, else a placeholder.
template <class V>
std::string value_text(const V& v) {
  if constexpr (std::is_same_v<V, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_convertible_v<const V&, std::string_view>) {
    std::string text = "\"";
    text += std::string_view(v);
    text += '"';
    return text;
  } else if constexpr (is_printable<V>::value) {
    std::ostringstream out;
    out << v;
    return out.str();
  } else {
    return "<value>";
  }
}

template <class M, class = void>
struct is_matcher : std::false_type {};
template <class M>
struct is_matcher<M, std::void_t<decltype(M::target), decltype(std::declval<const M&>().describe())>>
    : std::true_type {};

}  // namespace detail

// ---------------------------------------------------------------------------------------------------------------------
// Matchers: `static constexpr matcher_target target`, `bool matches(const X&) const`, `std::string describe() const`.

/// Compares a projection of the value with an expected value (`path(&status::state, "state") == "ACTIVE"`).
template <class Proj, class V, bool Equal>
struct path_compare {
  static constexpr matcher_target target = matcher_target::value;
  Proj projection;
  std::string name;
  V expected;

  template <class T>
  bool matches(const T& value) const {
    const bool equal = static_cast<bool>(std::invoke(projection, value) == expected);
    return equal == Equal;
  }
  std::string describe() const { return name + (Equal ? " == " : " != ") + detail::value_text(expected); }
};

/// A named projection of the value (a member pointer or a callable), compared with `==` or `!=` to make a
/// matcher. The name is only for descriptions: "state == \"ACTIVE\"".
template <class Proj>
struct path_t {
  Proj projection;
  std::string name;

  template <class V>
  path_compare<Proj, detail::stored_expected_t<V>, true> operator==(V&& expected) const {
    return {projection, name, detail::stored_expected_t<V>(std::forward<V>(expected))};
  }
  template <class V>
  path_compare<Proj, detail::stored_expected_t<V>, false> operator!=(V&& expected) const {
    return {projection, name, detail::stored_expected_t<V>(std::forward<V>(expected))};
  }
};

/// `path(&status::state, "state") == "ACTIVE"`: the projection is applied with std::invoke.
template <class Proj>
path_t<Proj> path(Proj projection, std::string name = "value") {
  return {std::move(projection), std::move(name)};
}

/// Every element of a projected list matches (Smithy's `allStringEquals`). An empty list matches nothing: "all
/// attachments attached" must not be true of a server that has none yet.
template <class ListProj, class ElementMatcher, bool All>
struct elements_match {
  static constexpr matcher_target target = matcher_target::value;
  ListProj list;
  std::string name;
  ElementMatcher element;

  template <class T>
  bool matches(const T& value) const {
    const auto& items = std::invoke(list, value);
    bool any = false;
    for (const auto& item : items) {
      const bool hit = element.matches(item);
      if (All && !hit) return false;
      if (!All && hit) return true;
      any = true;
    }
    return All && any;
  }
  std::string describe() const { return std::string(All ? "all " : "any ") + name + ": " + element.describe(); }
};

/// Compares a whole element with an expected value (`all_of(&status::volume_states, "in-use")`).
template <class V>
struct equals_value {
  static constexpr matcher_target target = matcher_target::value;
  V expected;
  template <class T>
  bool matches(const T& item) const {
    return static_cast<bool>(item == expected);
  }
  std::string describe() const { return "== " + detail::value_text(expected); }
};

namespace detail {
template <class X>
auto as_element_matcher(X&& x) {
  if constexpr (is_matcher<std::decay_t<X>>::value) {
    return std::forward<X>(x);
  } else {
    return equals_value<stored_expected_t<X>>{stored_expected_t<X>(std::forward<X>(x))};
  }
}
template <class P>
struct path_parts {
  P projection;
  std::string name;
};
template <class P>
path_parts<P> list_path(P projection) {
  return {std::move(projection), "elements"};
}
template <class P>
path_parts<P> list_path(path_t<P> p) {
  return {std::move(p.projection), std::move(p.name)};
}
}  // namespace detail

/// All elements of the list `list` projects match `element` (a matcher, or a value compared with ==); `list` may be a
/// `path(...)` to name it in descriptions. False for an empty list.
template <class List, class Element>
auto all_of(List list, Element&& element) {
  auto parts = detail::list_path(std::move(list));
  auto matcher = detail::as_element_matcher(std::forward<Element>(element));
  return elements_match<decltype(parts.projection), decltype(matcher), true>{std::move(parts.projection),
                                                                            std::move(parts.name), std::move(matcher)};
}

/// At least one element of the projected list matches `element` (Smithy's `anyStringEquals`).
template <class List, class Element>
auto any_of(List list, Element&& element) {
  auto parts = detail::list_path(std::move(list));
  auto matcher = detail::as_element_matcher(std::forward<Element>(element));
  return elements_match<decltype(parts.projection), decltype(matcher), false>{std::move(parts.projection),
                                                                             std::move(parts.name), std::move(matcher)};
}

/// A predicate on the value or on the error, with the description it shows in the outcome.
template <class Pred, matcher_target Target>
struct predicate_matcher {
  static constexpr matcher_target target = Target;
  Pred predicate;
  std::string description;

  template <class X>
  bool matches(const X& x) const {
    return static_cast<bool>(std::invoke(predicate, x));
  }
  std::string describe() const { return description; }
};

/// Matches a value for which `predicate(value)` is true.
template <class Pred>
predicate_matcher<Pred, matcher_target::value> value_if(Pred predicate, std::string description = "value predicate") {
  return {std::move(predicate), std::move(description)};
}

/// Matches an error for which `predicate(error)` is true (`[](const http_error& e) { return e.status == 503; }`).
template <class Pred>
predicate_matcher<Pred, matcher_target::error> error_if(Pred predicate, std::string description = "error predicate") {
  return {std::move(predicate), std::move(description)};
}

/// Matches an error equal to `expected` (an error code: Smithy's `errorType`).
template <class V>
struct error_equals {
  static constexpr matcher_target target = matcher_target::error;
  V expected;
  template <class E>
  bool matches(const E& error) const {
    return static_cast<bool>(error == expected);
  }
  std::string describe() const { return "error == " + detail::value_text(expected); }
};
template <class V>
error_equals<detail::stored_expected_t<V>> error_is(V&& expected) {
  return {detail::stored_expected_t<V>(std::forward<V>(expected))};
}

/// Matches every error: `retry_when(any_error())` is "retry every error" written out, never a default.
struct any_error_matcher {
  static constexpr matcher_target target = matcher_target::error;
  template <class E>
  bool matches(const E&) const noexcept {
    return true;
  }
  std::string describe() const { return "any error"; }
};
inline any_error_matcher any_error() { return {}; }

// ---------------------------------------------------------------------------------------------------------------------
// Rules

/// A matcher and what it means when it matches.
template <class Matcher>
struct rule {
  static_assert(detail::is_matcher<Matcher>::value,
                "pollster::rule: the matcher needs `target` and `describe()` (use path(...) == v, all_of, any_of, "
                "value_if, error_is, error_if or any_error)");
  Matcher matcher;
  rule_state state;
  std::string label;  ///< replaces the matcher's description in the outcome when set

  /// Names the rule in the outcome ("server active") instead of the matcher's own description.
  rule&& named(std::string text) && {
    label = std::move(text);
    return std::move(*this);
  }
  std::string describe() const { return label.empty() ? matcher.describe() : label; }
};

template <class M>
rule<std::decay_t<M>> succeed_when(M&& matcher) {
  return {std::forward<M>(matcher), rule_state::success, {}};
}
template <class M>
rule<std::decay_t<M>> fail_when(M&& matcher) {
  return {std::forward<M>(matcher), rule_state::failure, {}};
}
template <class M>
rule<std::decay_t<M>> retry_when(M&& matcher) {
  return {std::forward<M>(matcher), rule_state::retry, {}};
}

/// An ordered list of rules: the first that matches wins.
template <class... Matchers>
struct rule_set {
  static_assert(sizeof...(Matchers) > 0, "pollster::rules: give at least one rule");
  std::tuple<rule<Matchers>...> items;

  static constexpr std::size_t size() noexcept { return sizeof...(Matchers); }

  /// The index of the first rule aimed at `Target` that matches `x`, or size() when none does.
  template <matcher_target Target, class X, std::size_t I = 0>
  std::size_t first_match(const X& x) const {
    if constexpr (I == sizeof...(Matchers)) {
      (void)x;
      return size();
    } else {
      const auto& r = std::get<I>(items);
      if constexpr (std::decay_t<decltype(r.matcher)>::target == Target) {
        if (r.matcher.matches(x)) return I;
      }
      return first_match<Target, X, I + 1>(x);
    }
  }
  rule_state state_of(std::size_t index) const {
    rule_state s = rule_state::retry;
    visit_at(index, [&](const auto& r) { s = r.state; });
    return s;
  }
  std::string describe(std::size_t index) const {
    std::string text;
    visit_at(index, [&](const auto& r) { text = r.describe(); });
    return text;
  }

 private:
  template <class F>
  void visit_at(std::size_t index, F&& f) const {
    std::size_t at = 0;
    std::apply([&](const auto&... r) { ((at++ == index ? f(r) : void()), ...); }, items);
  }
};

/// `rules(succeed_when(...), fail_when(...), retry_when(...))`, in the order they are tried.
template <class... Matchers>
rule_set<Matchers...> rules(rule<Matchers>... items) {
  return {std::tuple<rule<Matchers>...>(std::move(items)...)};
}

// ---------------------------------------------------------------------------------------------------------------------
// Transitions

/// A change of the observed state: `from` is empty for the first observation.
template <class S>
struct transition {
  const std::optional<S>& from;
  const S& to;
  std::uint64_t attempt;  ///< the check that saw it (from 1)
  duration elapsed;       ///< since the await started
};

/// No transition tracking.
struct no_transitions {};

/// Calls `callback(transition<S>)` each time the projected state differs from the last one seen, including the
/// first observation (PENDING, then BUILDING, then ACTIVE: three calls, however many polls saw each).
template <class Proj, class Callback>
struct transitions {
  Proj projection;
  Callback callback;
};

namespace detail {
/// What an await keeps to tell transitions apart: nothing, or the last state seen (its type known only once the
/// value type is).
template <class Spec, class T>
struct transition_tracker {
  explicit transition_tracker(Spec) noexcept {}
  void observe(const T&, const poll_state&) noexcept {}
  std::uint32_t count() const noexcept { return 0; }
};
template <class Proj, class Callback, class T>
class transition_tracker<transitions<Proj, Callback>, T> {
 public:
  using state_type = std::decay_t<std::invoke_result_t<const Proj&, const T&>>;
  explicit transition_tracker(transitions<Proj, Callback> spec) : spec_(std::move(spec)) {}

  void observe(const T& value, const poll_state& state) {
    const state_type& now = std::invoke(spec_.projection, value);
    if (last_ && static_cast<bool>(*last_ == now)) return;
    ++count_;
    spec_.callback(transition<state_type>{last_, now, state.attempt, state.elapsed});
    last_ = now;
  }
  std::uint32_t count() const noexcept { return count_; }

 private:
  transitions<Proj, Callback> spec_;
  std::optional<state_type> last_;
  std::uint32_t count_ = 0;
};
}  // namespace detail

/// Tracks the state `projection` picks out of each value (`&status::state`) and reports each change.
template <class Proj, class Callback>
transitions<Proj, Callback> on_transition(Proj projection, Callback callback) {
  return {std::move(projection), std::move(callback)};
}

// ---------------------------------------------------------------------------------------------------------------------
// The check and the outcome

/// The rule that ended an await.
struct rule_match {
  std::size_t index = 0;        ///< its position in the rule set, from 0
  rule_state state = rule_state::retry;
  std::string description;      ///< its label, or its matcher's description: `state == "ACTIVE"`
  bool on_error = false;        ///< it matched an error, not a value (a delete waiter's "not found" is success)
};

/// What an await decided: the report of its outcome (`outcome<T, E, await_report>::report`).
struct await_report {
  std::optional<rule_match> matched;  ///< set when a success or failure rule ended the run
  bool unmatched_error = false;       ///< cause failed because an error matched no rule (last_error holds it)
  std::uint32_t transitions = 0;      ///< state changes seen (the first observation counts)
  std::string why;                    ///< one line: `rule 0 (success) matched the value: state == "ACTIVE", after 12 checks`
};

/// What an await ends with: the poller's full account (cause, last value and error, attempts, elapsed) and, in
/// `report`, the rule that matched and why it ended, in words.
template <class T, class E>
using await_outcome = outcome<T, E, await_report>;

namespace detail {

/// A fetch that returns a plain value has no error channel (its exceptions propagate, as any check's do).
template <class R>
struct fetch_traits {
  using value_type = R;
  using error_type = std::monostate;
};
template <class T, class E>
struct fetch_traits<step<T, E>> {
  using value_type = T;
  using error_type = E;
};

}  // namespace detail

/// The check of an await: calls `fetch`, tracks transitions, applies the rules and tells the poller what to do.
/// `fetch` returns the status resource (a plain `T`), or a `step<T, E>` to pass an error (`transient(e)`,
/// `failed(e)`: the rules decide either way) or a server hint (`pending(value, retry_after(30s))`); it may take the
/// `const poll_state&`. The step's kind is not consulted: the rules are the only judge of what a value or an
/// error means. A step with neither (`pending()`, `throttled(hint)`) just keeps polling. What it decided reaches
/// the outcome through `report()`, whichever driver runs it.
template <class Fetch, class Rules, class Transitions = no_transitions>
class await_check {
  using fetched = typename detail::sync_result<Fetch>::type;

 public:
  static_assert(!std::is_void_v<fetched>, "pollster::await_check: the fetch must return the status (a value or a "
                                          "pollster::step<T, E>), taking a const poll_state& or nothing");
  using value_type = typename detail::fetch_traits<fetched>::value_type;
  using error_type = typename detail::fetch_traits<fetched>::error_type;
  using step_type = step<value_type, error_type>;

  await_check(Fetch fetch, Rules rules, Transitions transitions = Transitions{})
      : fetch_(std::move(fetch)), rules_(std::move(rules)), transitions_(std::move(transitions)) {}

  step_type operator()(const poll_state& state) {
    step_type result = normalise(call_fetch(state));
    if (result.value) {
      transitions_.observe(*result.value, state);
      record_.transitions = transitions_.count();
      const std::size_t index = rules_.template first_match<matcher_target::value>(*result.value);
      if (index != rules_.size()) apply(result, index, false);
      // A value that matches no rule: not yet.
      if (result.kind != step_kind::done && result.kind != step_kind::failed) result.kind = step_kind::pending;
      return result;
    }
    if (result.error) {
      const std::size_t index = rules_.template first_match<matcher_target::error>(*result.error);
      if (index == rules_.size()) {
        record_.unmatched_error = true;
        if constexpr (detail::is_printable<error_type>::value ||
                      std::is_convertible_v<const error_type&, std::string_view>) {
          unmatched_text_ = detail::value_text(*result.error);
        }
        result.kind = step_kind::failed;
        return result;
      }
      apply(result, index, true);
      if (result.kind == step_kind::pending) result.kind = step_kind::transient;
      return result;
    }
    result.kind = step_kind::pending;
    return result;
  }

  /// What the await decided, with `why` in words: the poller calls it when the run ends.
  await_report report(const run_summary& run) const {
    await_report r = record_;
    const std::string checks = std::to_string(run.attempts) + (run.attempts == 1 ? " check" : " checks");
    if (r.matched) {
      r.why = "rule " + std::to_string(r.matched->index) + " (" + to_string(r.matched->state) + ") matched " +
              (r.matched->on_error ? "an error" : "the value") + ": " + r.matched->description + ", after " + checks;
    } else if (r.unmatched_error) {
      r.why = "an error matched no rule, after " + checks;
      if (!unmatched_text_.empty()) r.why += ": " + unmatched_text_;
    } else {
      switch (run.cause) {
        case cause::exhausted:
          r.why = std::string("the stop rule ended the wait (") + to_string(run.stop) + ") after " + checks;
          break;
        case cause::deadline: r.why = "the deadline was reached after " + checks; break;
        case cause::cancelled: r.why = "cancelled after " + checks; break;
        case cause::exception: r.why = "the fetch threw, at check " + std::to_string(run.attempts); break;
        default: r.why = std::string(to_string(run.cause)) + " after " + checks; break;
      }
    }
    return r;
  }

 private:
  fetched call_fetch(const poll_state& state) {
    if constexpr (std::is_invocable_v<Fetch&, const poll_state&>) {
      return fetch_(state);
    } else {
      (void)state;
      return fetch_();
    }
  }
  static step_type normalise(fetched&& r) {
    if constexpr (detail::is_step<fetched>::value) {
      return std::move(r);
    } else {
      step_type s;
      s.value.emplace(std::move(r));
      return s;
    }
  }
  void apply(step_type& result, std::size_t index, bool on_error) {
    const rule_state state = rules_.state_of(index);
    switch (state) {
      case rule_state::success: result.kind = step_kind::done; break;
      case rule_state::failure: result.kind = step_kind::failed; break;
      case rule_state::retry: result.kind = step_kind::pending; return;
    }
    record_.matched = rule_match{index, state, rules_.describe(index), on_error};
  }

  Fetch fetch_;
  Rules rules_;
  detail::transition_tracker<Transitions, value_type> transitions_;
  await_report record_;
  std::string unmatched_text_;
};

namespace detail {
template <class Matcher>
rule_set<Matcher> as_rule_set(rule<Matcher> r) {
  return rules(std::move(r));
}
template <class... M>
rule_set<M...> as_rule_set(rule_set<M...> r) {
  return r;
}
template <class Rules>
using rule_set_t = decltype(as_rule_set(std::declval<Rules>()));
}  // namespace detail

/// The check of an await, for any driver: `runner.submit(pollster::awaiting(fetch, rules), schedule, stop,
/// on_complete)`, `poll_until(clock, awaiting(...), ...)`, or asio's `async_poll`. `rules` is one rule or
/// `rules(...)`; `transitions` (from `on_transition`) reports each change of state.
template <class Fetch, class Rules, class Transitions = no_transitions>
await_check<Fetch, detail::rule_set_t<Rules>, Transitions> awaiting(Fetch fetch, Rules rules,
                                                                   Transitions transitions = Transitions{}) {
  return {std::move(fetch), detail::as_rule_set(std::move(rules)), std::move(transitions)};
}

/// The outcome type of awaiting with `Fetch`.
template <class Fetch, class Rules, class Transitions = no_transitions>
using await_outcome_t = await_outcome<typename await_check<Fetch, detail::rule_set_t<Rules>, Transitions>::value_type,
                                      typename await_check<Fetch, detail::rule_set_t<Rules>, Transitions>::error_type>;

/// Polls `fetch` on `clock` until a success or failure rule matches (or an error matches none), the stop rule or
/// the deadline ends the run, or `options.cancel` cancels it; `transitions` (from `on_transition`) reports each
/// change of state. Blocking; the first check happens at once, as with `poll_until`, whose contracts apply (a
/// throwing fetch propagates; hints are floors, capped by `options.max_hint`).
template <class Clock, class Fetch, class Rules, class Schedule, class Stop = never, class Transitions = no_transitions,
          class = std::enable_if_t<is_clock_v<Clock>>>
await_outcome_t<Fetch, Rules, Transitions> await_operation(Clock& clock, Fetch fetch, Rules rules, Schedule schedule,
                                                           Stop stop = Stop{}, const poll_options& options = {},
                                                           Transitions transitions = Transitions{}) {
  static_assert(!(is_stop_rule_v<Schedule> && is_schedule_v<Stop>),
                "pollster::await_operation: the schedule and the stop rule are swapped: the schedule (how long to "
                "wait) comes first, then the stop rule (when to give up)");
  return poll_until(clock, awaiting(std::move(fetch), std::move(rules), std::move(transitions)), std::move(schedule),
                    std::move(stop), options);
}

/// The same on the real steady clock.
template <class Fetch, class Rules, class Schedule, class Stop = never, class Transitions = no_transitions,
          class = std::enable_if_t<!is_clock_v<Fetch>>>
await_outcome_t<Fetch, Rules, Transitions> await_operation(Fetch fetch, Rules rules, Schedule schedule,
                                                           Stop stop = Stop{}, const poll_options& options = {},
                                                           Transitions transitions = Transitions{}) {
  steady_clock clock;
  return await_operation(clock, std::move(fetch), std::move(rules), std::move(schedule), std::move(stop), options,
                         std::move(transitions));
}

POLLSTER_NAMESPACE_END
