// SPDX-License-Identifier: MIT
#pragma once

// Retry-After (RFC 9110, section 10.2.3): the server's "come back after 120 s" or "come back at this date".
//
//   Retry-After = HTTP-date / delay-seconds
//   delay-seconds = 1*DIGIT
//   HTTP-date = IMF-fixdate / obs-date            ; obs-date = rfc850-date / asctime-date
//   IMF-fixdate  = "Sun, 06 Nov 1994 08:49:37 GMT"
//   rfc850-date  = "Sunday, 06-Nov-94 08:49:37 GMT"
//   asctime-date = "Sun Nov  6 08:49:37 1994"
//
// The parser never throws and never guesses: anything else (a sign, a fraction, a wrong name, a day that does not
// exist, a value that overflows) is "no hint". It takes "now" as an argument, so it is deterministic and testable.

#include "detail/config.hpp"
#include "detail/saturate.hpp"

#include <chrono>       // system_clock, seconds
#include <cstddef>      // size_t
#include <cstdint>      // int64_t
#include <optional>     // optional
#include <ratio>        // ratio (a day)
#include <string_view>  // string_view

POLLSTER_NAMESPACE_BEGIN

namespace detail {

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

/// The civil year of a count of days since 1970-01-01 (the inverse's year part).
constexpr std::int64_t year_from_days(std::int64_t z) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  return static_cast<std::int64_t>(yoe) + era * 400 + (mp >= 10 ? 1 : 0);
}

constexpr bool is_leap(std::int64_t y) noexcept { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

constexpr unsigned days_in_month(std::int64_t y, unsigned m) noexcept {
  constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/// A cursor over the field value: every reader either consumes exactly what it expects or reports failure.
class http_date_reader {
 public:
  explicit constexpr http_date_reader(std::string_view text) noexcept : text_(text) {}

  constexpr bool literal(std::string_view expected) noexcept {
    if (text_.substr(pos_, expected.size()) != expected) return false;
    pos_ += expected.size();
    return true;
  }
  /// Exactly `count` digits.
  constexpr bool digits(std::size_t count, unsigned& value) noexcept {
    value = 0;
    for (std::size_t i = 0; i < count; ++i) {
      if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') return false;
      value = value * 10 + static_cast<unsigned>(text_[pos_++] - '0');
    }
    return true;
  }
  /// One of `names` (case-sensitive, as RFC 9110 says), giving its index.
  template <std::size_t N>
  constexpr bool one_of(const std::string_view (&names)[N], unsigned& index) noexcept {
    for (std::size_t i = 0; i < N; ++i) {
      if (literal(names[i])) {
        index = static_cast<unsigned>(i);
        return true;
      }
    }
    return false;
  }
  /// "08:49:37"; a leap second (60) is allowed, as in RFC 5322.
  constexpr bool time_of_day(unsigned& h, unsigned& m, unsigned& s) noexcept {
    return digits(2, h) && literal(":") && digits(2, m) && literal(":") && digits(2, s) && h <= 23 && m <= 59 &&
           s <= 60;
  }
  constexpr bool at_end() const noexcept { return pos_ == text_.size(); }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

inline constexpr std::string_view short_days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
inline constexpr std::string_view long_days[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                                 "Friday", "Saturday", "Sunday"};
inline constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

}  // namespace detail

/// A time on the system clock, to the second: what an HTTP-date denotes (C++20's std::chrono::sys_seconds).
using http_time = std::chrono::time_point<std::chrono::system_clock, std::chrono::seconds>;

/// Seconds since 1970-01-01 00:00:00 UTC of an HTTP-date in any of its three forms, or nothing. `now` decides the
/// century of the obsolete two-digit year (RFC 9110: a year more than 50 years in the future is in the past).
/// The day name must be a valid one for the form; whether it matches the date is not checked, as browsers and
/// curl do not.
inline std::optional<http_time> parse_http_date(std::string_view text,
                                                               std::chrono::system_clock::time_point now) noexcept {
  using detail::http_date_reader;
  unsigned weekday = 0, day = 0, month = 0, year = 0, hour = 0, minute = 0, second = 0;
  std::int64_t full_year = 0;
  bool ok = false;
  if (http_date_reader r{text}; r.one_of(detail::short_days, weekday) && r.literal(", ")) {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    ok = r.digits(2, day) && r.literal(" ") && r.one_of(detail::months, month) && r.literal(" ") &&
         r.digits(4, year) && r.literal(" ") && r.time_of_day(hour, minute, second) && r.literal(" GMT") &&
         r.at_end();
    full_year = year;
  } else if (http_date_reader l{text}; l.one_of(detail::long_days, weekday) && l.literal(", ")) {
    // rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT"
    ok = l.digits(2, day) && l.literal("-") && l.one_of(detail::months, month) && l.literal("-") &&
         l.digits(2, year) && l.literal(" ") && l.time_of_day(hour, minute, second) && l.literal(" GMT") &&
         l.at_end();
    if (ok) {
      using days_t = std::chrono::duration<std::int64_t, std::ratio<86400>>;
      const std::int64_t this_year =
          detail::year_from_days(std::chrono::floor<days_t>(now).time_since_epoch().count());
      full_year = this_year - ((this_year % 100) + 100) % 100 + year;
      if (full_year > this_year + 50) full_year -= 100;
      if (full_year <= this_year - 50) full_year += 100;
    }
  } else if (http_date_reader a{text}; a.one_of(detail::short_days, weekday) && a.literal(" ")) {
    // asctime-date: "Sun Nov  6 08:49:37 1994" (a one-digit day is padded with a space)
    ok = a.one_of(detail::months, month) && a.literal(" ") && (a.literal(" ") ? a.digits(1, day) : a.digits(2, day)) &&
         a.literal(" ") && a.time_of_day(hour, minute, second) && a.literal(" ") && a.digits(4, year) && a.at_end();
    full_year = year;
  }
  ++month;  // one_of gave an index
  if (!ok || day < 1 || day > detail::days_in_month(full_year, month)) return std::nullopt;
  const std::int64_t days = detail::days_from_civil(full_year, month, day);
  return http_time{std::chrono::seconds{days * 86400 + hour * 3600 + minute * 60 + second}};
}

/// The delay a `Retry-After` field value asks for, measured from `now`; nothing for an absent, malformed,
/// negative or overflowing value. A date in the past asks for no delay at all (zero). Never throws.
///   parse_retry_after("120", now)                             -> 120 s
///   parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now)   -> that date - now (zero if it has passed)
///   parse_retry_after("soon", now)                            -> nullopt
inline std::optional<duration> parse_retry_after(std::string_view value,
                                                 std::chrono::system_clock::time_point now) noexcept {
  while (!value.empty() && detail::is_ows(value.front())) value.remove_prefix(1);
  while (!value.empty() && detail::is_ows(value.back())) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (value.front() >= '0' && value.front() <= '9') {
    constexpr std::int64_t max_seconds = duration::max().count() / 1000000000;  // what a duration can hold
    std::int64_t seconds = 0;
    for (const char c : value) {
      if (c < '0' || c > '9') return std::nullopt;
      seconds = seconds * 10 + (c - '0');
      if (seconds > max_seconds) return std::nullopt;
    }
    return std::chrono::seconds{seconds};
  }
  const auto date = parse_http_date(value, now);
  if (!date) return std::nullopt;
  // In seconds first: a far date must not overflow the nanosecond difference.
  const auto now_seconds = std::chrono::floor<std::chrono::seconds>(now);
  const std::int64_t ahead = (date->time_since_epoch() - now_seconds.time_since_epoch()).count();
  if (ahead <= 0) return duration::zero();
  if (ahead > duration::max().count() / 1000000000 - 1) return std::nullopt;
  return std::chrono::duration_cast<duration>(*date - now);
}

POLLSTER_NAMESPACE_END
