// SPDX-License-Identifier: MIT
#pragma once

// Optional fmt integration: `fmt::print("{}", plan)`. Never included by pollster.hpp; link pollster::fmt.
//
// Every pollster type that has a `pollster::to_string` overload formats through it, so the text is the same
// with or without fmt, and a new type needs only its to_string. Format specs apply to the whole text
// (`{:>40}` pads, as for a string).

#include "pollster.hpp"

#include <fmt/format.h>  // formatter, format_to, memory_buffer

#include <chrono>       // duration
#include <exception>    // exception, rethrow_exception
#include <iterator>     // back_inserter
#include <string>       // string
#include <type_traits>  // enable_if_t, void_t
#include <utility>      // declval

POLLSTER_NAMESPACE_BEGIN
namespace detail {
template <class T>
struct is_chrono_duration : std::false_type {};
template <class Rep, class Period>
struct is_chrono_duration<std::chrono::duration<Rep, Period>> : std::true_type {};

// Durations keep fmt's own chrono formatting; everything else pollster names formats through to_string.
template <class T, class = void>
struct has_pollster_to_string : std::false_type {};
template <class T>
struct has_pollster_to_string<T, std::void_t<decltype(::pollster::to_string(std::declval<const T&>()))>>
    : std::true_type {};
}  // namespace detail
POLLSTER_NAMESPACE_END

template <class T, class Char>
struct fmt::formatter<T, Char,
                      std::enable_if_t<::pollster::detail::has_pollster_to_string<T>::value &&
                                       !::pollster::detail::is_chrono_duration<T>::value>>
    : fmt::formatter<fmt::basic_string_view<Char>, Char> {
  template <class FormatContext>
  auto format(const T& value, FormatContext& ctx) const -> decltype(ctx.out()) {
    const std::string text = ::pollster::to_string(value);
    return fmt::formatter<fmt::basic_string_view<Char>, Char>::format(
        fmt::basic_string_view<Char>(text.data(), text.size()), ctx);
  }
};

// Diff events format as one line built from their elements (which must be formattable themselves):
//   added server-1 (initial) | added server-1 | removed 42 (last known server-1) | changed a -> b | unchanged a
// They work for the owning events of diff() and for the views a visitor receives (added<const server&>).
POLLSTER_NAMESPACE_BEGIN
namespace detail {
// Formats `format_string` with `args` into a buffer, then lets fmt's string formatter apply the spec to the text.
template <class FormatContext, class... Args>
auto format_event(const fmt::formatter<fmt::string_view>& text_formatter, FormatContext& ctx,
                  fmt::format_string<const Args&...> format_string, const Args&... args) -> decltype(ctx.out()) {
  fmt::memory_buffer text;
  fmt::format_to(std::back_inserter(text), format_string, args...);
  return text_formatter.format(fmt::string_view(text.data(), text.size()), ctx);
}
}  // namespace detail
POLLSTER_NAMESPACE_END

template <class T>
struct fmt::formatter<::pollster::added<T>> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(const ::pollster::added<T>& event, FormatContext& ctx) const -> decltype(ctx.out()) {
    if (event.initial) return ::pollster::detail::format_event(*this, ctx, "added {} (initial)", event.element);
    return ::pollster::detail::format_event(*this, ctx, "added {}", event.element);
  }
};

template <class T, class K>
struct fmt::formatter<::pollster::removed<T, K>> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(const ::pollster::removed<T, K>& event, FormatContext& ctx) const -> decltype(ctx.out()) {
    return ::pollster::detail::format_event(*this, ctx, "removed {} (last known {})", event.key, event.last_known);
  }
};

template <class T>
struct fmt::formatter<::pollster::changed<T>> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(const ::pollster::changed<T>& event, FormatContext& ctx) const -> decltype(ctx.out()) {
    return ::pollster::detail::format_event(*this, ctx, "changed {} -> {}", event.before, event.after);
  }
};

template <class T>
struct fmt::formatter<::pollster::unchanged<T>> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(const ::pollster::unchanged<T>& event, FormatContext& ctx) const -> decltype(ctx.out()) {
    return ::pollster::detail::format_event(*this, ctx, "unchanged {}", event.element);
  }
};

// A subscription's event reads as one line, led by its id (records must be formattable themselves):
//   web-2/changed/v2: changed web-2 BUILD -> web-2 ACTIVE | web-1/removed/v1: removed web-1, last known web-1 ACTIVE
template <class T, class K>
struct fmt::formatter<::pollster::event<T, K>> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(const ::pollster::event<T, K>& e, FormatContext& ctx) const -> decltype(ctx.out()) {
    using ::pollster::event_kind;
    switch (e.kind()) {
      case event_kind::added:
        return ::pollster::detail::format_event(*this, ctx, "{}: added {}", e.id(), e.record());
      case event_kind::removed:
        return ::pollster::detail::format_event(*this, ctx, "{}: removed {}, last known {}", e.id(), e.subject(),
                                                e.record());
      case event_kind::changed: break;
    }
    return ::pollster::detail::format_event(*this, ctx, "{}: changed {} -> {}", e.id(), *e.before(), *e.after());
  }
};

// A dead letter: "provision gave up on web-2/changed/v2 after 12 attempts in 24h (deadline): <what()>".
template <class T, class K>
struct fmt::formatter<::pollster::dead_letter<T, K>> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(const ::pollster::dead_letter<T, K>& d, FormatContext& ctx) const -> decltype(ctx.out()) {
    std::string what;
    if (d.error) {
      try {
        std::rethrow_exception(d.error);
      } catch (const std::exception& e) {
        what = std::string(": ") + e.what();
      } catch (...) {
        what = ": (not a std::exception)";
      }
    }
    return ::pollster::detail::format_event(*this, ctx, "{} gave up on {} after {} attempt{} in {} ({}){}",
                                            d.subscription, d.event.id(), d.attempts, d.attempts == 1 ? "" : "s",
                                            ::pollster::detail::duration_text(d.age), ::pollster::to_string(d.reason),
                                            what);
  }
};

// An outcome reads as one line; the value and error appear when fmt can format their types:
//   done: ACTIVE after 53 attempts in 601.14s
//   exhausted (attempts) after 4 attempts in 6s; last value BUILD; last error 503 Service Unavailable
//   cancelled after 1 attempt in 0s, 2 nudges; last value BUILD
// (There is deliberately no to_string(outcome): the generic formatter above and this one would be ambiguous.)
template <class T, class E>
struct fmt::formatter<::pollster::outcome<T, E>, char> {
  constexpr auto parse(fmt::format_parse_context& ctx) -> decltype(ctx.begin()) {
    auto it = ctx.begin();
    if (it != ctx.end() && *it != '}') throw fmt::format_error("pollster::outcome takes no format spec");
    return it;
  }

  template <class FormatContext>
  auto format(const ::pollster::outcome<T, E>& o, FormatContext& ctx) const -> decltype(ctx.out()) {
    using ::pollster::cause;
    auto out = fmt::format_to(ctx.out(), "{}", ::pollster::to_string(o.cause));
    if ((o.cause == cause::exhausted || o.cause == cause::deadline) && o.stop != ::pollster::stop_reason::none &&
        o.stop != ::pollster::stop_reason::deadline) {
      out = fmt::format_to(out, " ({})", ::pollster::to_string(o.stop));
    }
    if constexpr (fmt::is_formattable<T>::value) {
      if (o.cause == cause::done && o.last_value) out = fmt::format_to(out, ": {}", *o.last_value);
    }
    if constexpr (fmt::is_formattable<E>::value) {
      if (o.cause == cause::failed && o.last_error) out = fmt::format_to(out, ": {}", *o.last_error);
    }
    out = fmt::format_to(out, " after {} attempt{} in {}", o.attempts, o.attempts == 1 ? "" : "s",
                         ::pollster::detail::duration_text(o.elapsed, 2));
    if (o.budget_wait > ::pollster::duration::zero()) {
      out = fmt::format_to(out, ", {} waiting for the rate budget", ::pollster::detail::duration_text(o.budget_wait, 2));
    }
    if (o.nudges != 0) out = fmt::format_to(out, ", {} nudge{}", o.nudges, o.nudges == 1 ? "" : "s");
    // The last value and error of a run that did not end with them: what was seen before it ended.
    if constexpr (fmt::is_formattable<T>::value) {
      if (o.cause != cause::done && o.last_value) out = fmt::format_to(out, "; last value {}", *o.last_value);
    }
    if constexpr (fmt::is_formattable<E>::value) {
      if (o.cause != cause::failed && o.last_error) out = fmt::format_to(out, "; last error {}", *o.last_error);
    }
    if (o.exception) {
      try {
        std::rethrow_exception(o.exception);
      } catch (const std::exception& e) {
        out = fmt::format_to(out, "; the check threw: {}", e.what());
      } catch (...) {
        out = fmt::format_to(out, "; the check threw");
      }
    }
    return out;
  }
};
