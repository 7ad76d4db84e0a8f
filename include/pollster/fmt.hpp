// SPDX-License-Identifier: MIT
#pragma once

// Optional fmt integration: `fmt::print("{}", plan)`. Never included by pollster.hpp; link pollster::fmt.
//
// Every pollster type that has a `pollster::to_string` overload formats through it, so the text is the same
// with or without fmt, and a new type needs only its to_string. Format specs apply to the whole text
// (`{:>40}` pads, as for a string).

#include "pollster.hpp"

#include <fmt/format.h>  // formatter, format_to

#include <chrono>       // duration
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
