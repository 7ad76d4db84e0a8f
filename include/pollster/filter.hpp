// SPDX-License-Identifier: MIT
#pragma once

// Which changes a subscription sees (subscription.hpp): filters on the record's fields (Event Grid's advanced
// filters, StackStorm's rule criteria), on the subject (the key as text), and on transitions of a field ("became
// ACTIVE", "left ACTIVE", "changed from BUILD to anything"), combined with &&, || and !, each with a description
// for logs ("status became \"ACTIVE\" && subject begins with \"eu-\"").
//
// A filter is evaluated on the record before and the record after a change, and says which of the two are in the
// subscription's view. A record that enters the view is added for the subscription, one that leaves it is removed,
// one in it on both sides is changed: the semantics of snapshot.hpp's filtered views, computed from one unfiltered
// diff for every subscription. A transition filter looks at both records at once: it lets the change through as it
// is, or not at all.
//
//   const auto status = pollster::field("status", &server::status);
//   subs.subscribe("provision", status.became("ACTIVE"), provision);
//   subs.subscribe("eu-big", pollster::subject_begins_with("eu-") && pollster::field("cpus", &server::cpus) > 8, log);

#include "detail/config.hpp"
#include "detail/text.hpp"

#include <cstdint>           // uint8_t
#include <functional>        // invoke
#include <initializer_list>  // initializer_list
#include <memory>            // shared_ptr, make_shared
#include <optional>          // optional
#include <ostream>           // ostream (values that print themselves)
#include <sstream>           // ostringstream
#include <string>            // string
#include <string_view>       // string_view
#include <type_traits>       // decay_t, is_base_of_v, ...
#include <utility>           // move, forward
#include <vector>            // vector

POLLSTER_NAMESPACE_BEGIN

/// How text comparisons treat letter case: exactly (C++'s ==, StackStorm's `equals`/`contains`), or ignoring ASCII
/// case (StackStorm's `iequals`/`icontains`; Event Grid compares every string that way, and its subject filters
/// unless isSubjectCaseSensitive).
enum class letter_case : std::uint8_t { exact, ignore };
inline constexpr letter_case ignore_case = letter_case::ignore;

/// "Any state" in a transition filter: any value, or no record at all (before an addition, after a removal).
struct any_state_t {};
inline constexpr any_state_t any_state{};

namespace detail {

/// Tags filter expressions, so that &&, || and ! never capture unrelated types.
template <class Derived>
struct filter_expression {};

template <class X>
inline constexpr bool is_filter_v = std::is_base_of_v<filter_expression<X>, X>;

/// Which of the two records of a change are in a filter's view.
struct filter_sides {
  bool before = false;
  bool after = false;
};

template <class X>
struct is_std_optional : std::false_type {};
template <class X>
struct is_std_optional<std::optional<X>> : std::true_type {};

/// The value a filter compares: a string literal is kept as a std::string.
template <class V>
using stored_value_t = std::conditional_t<std::is_convertible_v<std::decay_t<V>, std::string_view> &&
                                              !std::is_same_v<std::decay_t<V>, std::string_view>,
                                          std::string, std::decay_t<V>>;

/// A value in a description: text quoted, numbers as numbers.
template <class V>
std::string describe_value(const V& v) {
  if constexpr (std::is_convertible_v<const V&, std::string_view>) {
    return "\"" + std::string(std::string_view(v)) + "\"";
  } else if constexpr (std::is_same_v<V, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_integral_v<V>) {
    return std::to_string(v);
  } else if constexpr (std::is_floating_point_v<V>) {
    return number_text(static_cast<double>(v));
  } else if constexpr (std::is_enum_v<V>) {
    return std::to_string(static_cast<std::underlying_type_t<V>>(v));
  } else if constexpr (is_ostreamable<V>::value) {
    std::ostringstream out;
    out << v;
    return out.str();
  } else {
    return "(a value)";
  }
}

inline char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
inline bool text_equal(std::string_view a, std::string_view b, letter_case how) noexcept {
  if (how == letter_case::exact) return a == b;
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}
inline bool text_contains(std::string_view text, std::string_view part, letter_case how) noexcept {
  if (how == letter_case::exact) return text.find(part) != std::string_view::npos;
  if (part.size() > text.size()) return false;
  for (std::size_t at = 0; at + part.size() <= text.size(); ++at) {
    if (text_equal(text.substr(at, part.size()), part, how)) return true;
  }
  return false;
}
inline bool text_begins(std::string_view text, std::string_view prefix, letter_case how) noexcept {
  return text.size() >= prefix.size() && text_equal(text.substr(0, prefix.size()), prefix, how);
}
inline bool text_ends(std::string_view text, std::string_view suffix, letter_case how) noexcept {
  return text.size() >= suffix.size() && text_equal(text.substr(text.size() - suffix.size()), suffix, how);
}

enum class text_test : std::uint8_t { contains, begins_with, ends_with };
inline bool test_text(text_test test, std::string_view text, std::string_view operand, letter_case how) noexcept {
  switch (test) {
    case text_test::contains: return text_contains(text, operand, how);
    case text_test::begins_with: return text_begins(text, operand, how);
    case text_test::ends_with: return text_ends(text, operand, how);
  }
  return false;
}
inline const char* text_test_name(text_test test) noexcept {
  switch (test) {
    case text_test::contains: return "contains";
    case text_test::begins_with: return "begins with";
    case text_test::ends_with: return "ends with";
  }
  return "?";
}
inline std::string case_suffix(letter_case how) { return how == letter_case::ignore ? " (ignoring case)" : ""; }

/// Projects `record` and hands the value to `test`; a projection to an empty std::optional matches nothing (Event
/// Grid: a missing key is "not matched"), so `!` of it matches.
template <class Projection, class T, class Test>
bool test_projected(const Projection& projection, const T& record, const Test& test) {
  decltype(auto) value = std::invoke(projection, record);
  using value_type = std::decay_t<decltype(value)>;
  if constexpr (is_std_optional<value_type>::value) {
    return value.has_value() && test(*value);
  } else {
    return test(value);
  }
}

/// A condition on one record at a time: each side of a change is in the view when it satisfies it.
template <class Predicate>
class record_condition : public filter_expression<record_condition<Predicate>> {
 public:
  static constexpr int precedence = 3;
  record_condition(std::string text, Predicate predicate) : text_(std::move(text)), predicate_(std::move(predicate)) {}
  template <class T>
  filter_sides match(const T* before, const T* after, std::string_view) const {
    return {before != nullptr && predicate_(*before), after != nullptr && predicate_(*after)};
  }
  const std::string& description() const noexcept { return text_; }

 private:
  std::string text_;
  Predicate predicate_;
};

template <class Projection, class Value, class Compare>
struct compare_field {
  Projection projection;
  Value value;
  template <class T>
  bool operator()(const T& record) const {
    return test_projected(projection, record, [this](const auto& x) { return static_cast<bool>(Compare{}(x, value)); });
  }
};

template <class Projection, class Value>
struct field_in {
  Projection projection;
  std::vector<Value> values;
  letter_case how;
  template <class T>
  bool operator()(const T& record) const {
    return test_projected(projection, record, [this](const auto& x) {
      for (const Value& v : values) {
        if constexpr (std::is_same_v<Value, std::string>) {
          if (text_equal(std::string_view(x), v, how)) return true;
        } else {
          if (static_cast<bool>(x == v)) return true;
        }
      }
      return false;
    });
  }
};

template <class Projection>
struct field_text {
  Projection projection;
  std::string operand;
  text_test test;
  letter_case how;
  template <class T>
  bool operator()(const T& record) const {
    return test_projected(projection, record,
                          [this](const auto& x) { return test_text(test, std::string_view(x), operand, how); });
  }
};

/// A condition on the subject (the key as text), the same on both sides of a change.
class subject_condition : public filter_expression<subject_condition> {
 public:
  static constexpr int precedence = 3;
  subject_condition(text_test test, std::string operand, letter_case how)
      : operand_(std::move(operand)), test_(test), how_(how),
        text_(std::string("subject ") + text_test_name(test) + " " + describe_value(operand_) + case_suffix(how)) {}
  template <class T>
  filter_sides match(const T* before, const T* after, std::string_view subject) const {
    const bool yes = test_text(test_, subject, operand_, how_);
    return {before != nullptr && yes, after != nullptr && yes};
  }
  const std::string& description() const noexcept { return text_; }

 private:
  std::string operand_;
  text_test test_;
  letter_case how_;
  std::string text_;
};

/// One end of a transition: a value, or (with `any_state_t`) any state.
template <class Value>
struct state_match {
  std::optional<Value> value;
};

/// A change of one field from one state to another: both records together decide; the change passes as it is.
template <class Projection, class From, class To>
class state_transition : public filter_expression<state_transition<Projection, From, To>> {
 public:
  static constexpr int precedence = 3;
  state_transition(std::string text, Projection projection, state_match<From> from, state_match<To> to)
      : text_(std::move(text)), projection_(std::move(projection)), from_(std::move(from)), to_(std::move(to)) {}
  template <class T>
  filter_sides match(const T* before, const T* after, std::string_view) const {
    // The states must differ: a missing record (before an addition, after a removal) differs from every value.
    if (before != nullptr && after != nullptr &&
        static_cast<bool>(std::invoke(projection_, *before) == std::invoke(projection_, *after))) {
      return {};
    }
    if constexpr (!std::is_same_v<From, any_state_t>) {
      if (before == nullptr || !static_cast<bool>(std::invoke(projection_, *before) == *from_.value)) return {};
    }
    if constexpr (!std::is_same_v<To, any_state_t>) {
      if (after == nullptr || !static_cast<bool>(std::invoke(projection_, *after) == *to_.value)) return {};
    }
    return {before != nullptr, after != nullptr};
  }
  const std::string& description() const noexcept { return text_; }

 private:
  std::string text_;
  Projection projection_;
  state_match<From> from_;
  state_match<To> to_;
};

template <class A, class B>
class filter_and : public filter_expression<filter_and<A, B>> {
 public:
  static constexpr int precedence = 2;
  filter_and(A a, B b) : a_(std::move(a)), b_(std::move(b)) {}
  template <class T>
  filter_sides match(const T* before, const T* after, std::string_view subject) const {
    const filter_sides x = a_.match(before, after, subject);
    if (!x.before && !x.after) return {};
    const filter_sides y = b_.match(before, after, subject);
    return {x.before && y.before, x.after && y.after};
  }
  std::string description() const { return operand(a_) + " && " + operand(b_); }

 private:
  template <class X>
  static std::string operand(const X& x) {
    return X::precedence < precedence ? "(" + std::string(x.description()) + ")" : std::string(x.description());
  }
  A a_;
  B b_;
};

template <class A, class B>
class filter_or : public filter_expression<filter_or<A, B>> {
 public:
  static constexpr int precedence = 1;
  filter_or(A a, B b) : a_(std::move(a)), b_(std::move(b)) {}
  template <class T>
  filter_sides match(const T* before, const T* after, std::string_view subject) const {
    const filter_sides x = a_.match(before, after, subject);
    const filter_sides y = b_.match(before, after, subject);
    return {x.before || y.before, x.after || y.after};
  }
  std::string description() const { return std::string(a_.description()) + " || " + std::string(b_.description()); }

 private:
  A a_;
  B b_;
};

template <class A>
class filter_not : public filter_expression<filter_not<A>> {
 public:
  static constexpr int precedence = 3;
  explicit filter_not(A a) : a_(std::move(a)) {}
  template <class T>
  filter_sides match(const T* before, const T* after, std::string_view subject) const {
    const filter_sides x = a_.match(before, after, subject);
    return {before != nullptr && !x.before, after != nullptr && !x.after};
  }
  std::string description() const { return "!(" + std::string(a_.description()) + ")"; }

 private:
  A a_;
};

}  // namespace detail

/// Lets every change through: a subscription to everything (narrowed by its kinds, if you like).
struct everything_t : detail::filter_expression<everything_t> {
  static constexpr int precedence = 3;
  template <class T>
  detail::filter_sides match(const T* before, const T* after, std::string_view) const noexcept {
    return {before != nullptr, after != nullptr};
  }
  std::string description() const { return "everything"; }
};
inline constexpr everything_t everything{};

/// A named field of the record (a member pointer or any projection), for conditions and transitions. The name is
/// only for descriptions. A projection to `std::optional<V>` works: an empty one matches no condition.
template <class Projection>
class field_ref {
 public:
  field_ref(std::string name, Projection projection) : name_(std::move(name)), projection_(std::move(projection)) {}

  // Event Grid's NumberIn/StringIn, NumberGreaterThan, NumberLessThan, BoolEquals...; StackStorm's equals,
  // nequals, lessthan, greaterthan.
  template <class V>
  auto operator==(V&& v) const {
    return compare<std::equal_to<>>(" == ", std::forward<V>(v));
  }
  template <class V>
  auto operator!=(V&& v) const {
    return compare<std::not_equal_to<>>(" != ", std::forward<V>(v));
  }
  template <class V>
  auto operator<(V&& v) const {
    return compare<std::less<>>(" < ", std::forward<V>(v));
  }
  template <class V>
  auto operator<=(V&& v) const {
    return compare<std::less_equal<>>(" <= ", std::forward<V>(v));
  }
  template <class V>
  auto operator>(V&& v) const {
    return compare<std::greater<>>(" > ", std::forward<V>(v));
  }
  template <class V>
  auto operator>=(V&& v) const {
    return compare<std::greater_equal<>>(" >= ", std::forward<V>(v));
  }

  /// One of these values (strings compared exactly unless `ignore_case`).
  template <class V>
  auto in(std::initializer_list<V> values, letter_case how = letter_case::exact) const {
    return in(std::vector<detail::stored_value_t<V>>(values.begin(), values.end()), how);
  }
  template <class V>
  auto in(std::vector<V> values, letter_case how = letter_case::exact) const {
    std::string text = name_ + " in {";
    for (std::size_t i = 0; i < values.size(); ++i) text += (i == 0 ? "" : ", ") + detail::describe_value(values[i]);
    text += "}" + detail::case_suffix(how);
    using predicate = detail::field_in<Projection, V>;
    return detail::record_condition<predicate>(std::move(text), predicate{projection_, std::move(values), how});
  }
  /// Text conditions (Event Grid's StringContains, StringBeginsWith, StringEndsWith; StackStorm's contains,
  /// startswith, endswith and their case-insensitive `i` forms).
  auto contains(std::string text, letter_case how = letter_case::exact) const {
    return text_condition(detail::text_test::contains, std::move(text), how);
  }
  auto begins_with(std::string text, letter_case how = letter_case::exact) const {
    return text_condition(detail::text_test::begins_with, std::move(text), how);
  }
  auto ends_with(std::string text, letter_case how = letter_case::exact) const {
    return text_condition(detail::text_test::ends_with, std::move(text), how);
  }

  /// The field changed from `from` to `to` (each a value or `any_state`); the two states must differ. A record that
  /// appears has no state before it (only `any_state` matches there), one that goes away none after it.
  template <class From, class To>
  auto changed_from_to(From&& from, To&& to) const {
    using from_type = state_type<From>;
    using to_type = state_type<To>;
    std::string text = name_ + " changed from " + state_text(from) + " to " + state_text(to);
    return detail::state_transition<Projection, from_type, to_type>(std::move(text), projection_,
                                                              state<from_type>(std::forward<From>(from)),
                                                              state<to_type>(std::forward<To>(to)));
  }
  /// Became `v`: changed to it from anything else, or appeared with it ("the server became ACTIVE").
  template <class V>
  auto became(V&& v) const {
    std::string text = name_ + " became " + detail::describe_value(v);
    return detail::state_transition<Projection, any_state_t, detail::stored_value_t<V>>(
        std::move(text), projection_, {}, state<detail::stored_value_t<V>>(std::forward<V>(v)));
  }
  /// Left `v`: changed from it to anything else, or went away with it ("the server left ACTIVE").
  template <class V>
  auto left(V&& v) const {
    std::string text = name_ + " left " + detail::describe_value(v);
    return detail::state_transition<Projection, detail::stored_value_t<V>, any_state_t>(
        std::move(text), projection_, state<detail::stored_value_t<V>>(std::forward<V>(v)), {});
  }
  /// The field has a new value (or the record appeared or went away).
  auto changed() const {
    return detail::state_transition<Projection, any_state_t, any_state_t>(name_ + " changed", projection_, {}, {});
  }

  const std::string& name() const noexcept { return name_; }
  const Projection& projection() const noexcept { return projection_; }

 private:
  template <class V>
  using state_type = std::conditional_t<std::is_same_v<std::decay_t<V>, any_state_t>, any_state_t,
                                        detail::stored_value_t<V>>;
  template <class S, class V>
  static detail::state_match<S> state(V&& v) {
    if constexpr (std::is_same_v<S, any_state_t>) {
      return {};
    } else {
      return {S(std::forward<V>(v))};
    }
  }
  template <class V>
  static std::string state_text(const V& v) {
    if constexpr (std::is_same_v<std::decay_t<V>, any_state_t>) {
      return "any state";
    } else {
      return detail::describe_value(v);
    }
  }

  template <class Compare, class V>
  auto compare(const char* op, V&& v) const {
    using value_type = detail::stored_value_t<V>;
    std::string text = name_ + op + detail::describe_value(v);
    using predicate = detail::compare_field<Projection, value_type, Compare>;
    return detail::record_condition<predicate>(std::move(text),
                                               predicate{projection_, value_type(std::forward<V>(v))});
  }
  auto text_condition(detail::text_test test, std::string operand, letter_case how) const {
    std::string text =
        name_ + " " + detail::text_test_name(test) + " " + detail::describe_value(operand) + detail::case_suffix(how);
    using predicate = detail::field_text<Projection>;
    return detail::record_condition<predicate>(std::move(text), predicate{projection_, std::move(operand), test, how});
  }

  std::string name_;
  Projection projection_;
};

/// Names a field for filters: `field("status", &server::status)`, or any projection `field("cpus", cpus_of)`.
template <class Projection>
field_ref<Projection> field(std::string name, Projection projection) {
  return {std::move(name), std::move(projection)};
}

/// Any condition on the record, with its description: `where("has a public IP", [](const server& s) {...})`.
template <class Predicate>
detail::record_condition<Predicate> where(std::string description, Predicate predicate) {
  return {std::move(description), std::move(predicate)};
}

/// Event Grid's subjectBeginsWith / subjectEndsWith on the key as text (exact unless `ignore_case`; Event Grid
/// ignores case by default), and contains.
inline detail::subject_condition subject_begins_with(std::string prefix, letter_case how = letter_case::exact) {
  return {detail::text_test::begins_with, std::move(prefix), how};
}
inline detail::subject_condition subject_ends_with(std::string suffix, letter_case how = letter_case::exact) {
  return {detail::text_test::ends_with, std::move(suffix), how};
}
inline detail::subject_condition subject_contains(std::string part, letter_case how = letter_case::exact) {
  return {detail::text_test::contains, std::move(part), how};
}

namespace detail {
// In detail, beside filter_expression: argument-dependent lookup finds them for every filter (their base is here).
template <class A, class B, std::enable_if_t<is_filter_v<A> && is_filter_v<B>, int> = 0>
filter_and<A, B> operator&&(A a, B b) {
  return {std::move(a), std::move(b)};
}
template <class A, class B, std::enable_if_t<is_filter_v<A> && is_filter_v<B>, int> = 0>
filter_or<A, B> operator||(A a, B b) {
  return {std::move(a), std::move(b)};
}
template <class A, std::enable_if_t<is_filter_v<A>, int> = 0>
filter_not<A> operator!(A a) {
  return filter_not<A>(std::move(a));
}
}  // namespace detail

/// Any filter expression over records of `T`, type-erased: what a subscription keeps. Itself a filter expression.
template <class T>
class filter : public detail::filter_expression<filter<T>> {
 public:
  static constexpr int precedence = 1;  // (parenthesised wherever it appears inside another expression)

  filter() : filter(everything) {}
  template <class Expression, std::enable_if_t<detail::is_filter_v<Expression> &&
                                                   !std::is_same_v<Expression, filter>, int> = 0>
  filter(Expression expression)  // NOLINT(google-explicit-constructor): any expression is a filter
      : node_(std::make_shared<model<Expression>>(std::move(expression))) {}

  /// Which of the records before and after a change are in the view (either pointer may be null).
  detail::filter_sides match(const T* before, const T* after, std::string_view subject) const {
    return node_->match(before, after, subject);
  }
  const std::string& description() const noexcept { return node_->text; }

 private:
  struct concept_type {
    explicit concept_type(std::string t) : text(std::move(t)) {}
    concept_type(const concept_type&) = delete;
    concept_type& operator=(const concept_type&) = delete;
    virtual ~concept_type() = default;
    virtual detail::filter_sides match(const T*, const T*, std::string_view) const = 0;
    std::string text;
  };
  template <class Expression>
  struct model final : concept_type {
    explicit model(Expression e) : concept_type(std::string(e.description())), expression(std::move(e)) {}
    detail::filter_sides match(const T* before, const T* after, std::string_view subject) const override {
      return expression.template match<T>(before, after, subject);
    }
    Expression expression;
  };
  std::shared_ptr<const concept_type> node_;
};

template <class T>
std::string to_string(const filter<T>& f) {
  return f.description();
}

POLLSTER_NAMESPACE_END
