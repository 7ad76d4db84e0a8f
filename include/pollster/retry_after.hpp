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
//
// Limits: the wait is a pollster::duration (64-bit nanoseconds), so every value whose wait fits in one is accepted,
// and nothing longer: delay-seconds up to 9223372036 (292 years), and any date from year 0000 to 9999 up to
// duration::max() (9223372036.854775807 s) after `now`, to the nanosecond. A date past 2262 is fine as long as the
// wait fits: the arithmetic is done in seconds and only the wait is converted.

#include "detail/config.hpp"
#include "detail/saturate.hpp"

#include <chrono>       // system_clock, seconds
#include <cstddef>      // size_t
#include <cstdint>      // int64_t
#include <optional>     // optional
#include <ratio>        // ratio_less_equal_v
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

struct civil_date {
  std::int64_t year;
  unsigned month;  ///< 1 to 12
  unsigned day;    ///< 1 to 31
};

/// The proleptic Gregorian date of a count of days since 1970-01-01 (Howard Hinnant's civil_from_days).
constexpr civil_date civil_from_days(std::int64_t z) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

/// `now` as whole seconds since the epoch and the nanoseconds past them (in [0, 1 s)), computed in now's own
/// units: converting a time point near the ends of the clock's range to nanoseconds would overflow.
struct split_time {
  std::int64_t seconds;
  std::int64_t nanoseconds;
};
inline split_time split_seconds(std::chrono::system_clock::time_point now) noexcept {
  using clock_duration = std::chrono::system_clock::duration;
  const std::int64_t ticks = static_cast<std::int64_t>(now.time_since_epoch().count());
  if constexpr (std::ratio_less_equal_v<std::ratio<1>, clock_duration::period>) {
    return {std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count(), 0};
  } else {
    constexpr auto per_second = static_cast<std::int64_t>(clock_duration::period::den / clock_duration::period::num);
    std::int64_t seconds = ticks / per_second;  // quotient and remainder: `ticks - rest` could overflow
    std::int64_t rest = ticks % per_second;
    if (rest < 0) {
      rest += per_second;
      --seconds;
    }
    return {seconds, std::chrono::duration_cast<std::chrono::nanoseconds>(clock_duration{rest}).count()};
  }
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

/// The full year of an rfc850-date's two-digit year, read at `now` (RFC 9110, section 5.6.7): the year of now's
/// century, unless that instant is more than 50 years after now; then the same two digits a century earlier.
/// Instants are compared, not years: read on 2026-06-01, "01-Jan-76" is 2076 and "01-Dec-76" is 1976.
inline std::int64_t rfc850_year(unsigned two_digits, unsigned month, unsigned day, std::int64_t second_of_day,
                                std::chrono::system_clock::time_point now) noexcept {
  const std::int64_t now_seconds = split_seconds(now).seconds;
  const std::int64_t now_days = now_seconds >= 0 ? now_seconds / 86400 : -((86399 - now_seconds) / 86400);
  const civil_date today = civil_from_days(now_days);
  const std::int64_t year = today.year - ((today.year % 100) + 100) % 100 + two_digits;
  if (year - today.year != 50) return year - today.year > 50 ? year - 100 : year;
  // Exactly 50 calendar years apart: the candidate is more than 50 years ahead when it is later in its year than
  // now is in now's. Whole seconds suffice: a candidate in now's very second is not after now + 50 years.
  const std::int64_t now_second_of_day = now_seconds - now_days * 86400;
  const bool later = month != today.month ? month > today.month
                     : day != today.day   ? day > today.day
                                          : second_of_day > now_second_of_day;
  return later ? year - 100 : year;
}

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
    if (ok) full_year = detail::rfc850_year(year, month + 1, day, hour * 3600 + minute * 60 + second, now);
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
/// negative or overflowing value (a wait longer than duration::max(), see the limits above). A date in the past
/// asks for no delay at all (zero). Never throws.
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
  // In whole seconds first, and only the wait in nanoseconds: neither a date past 2262 nor `now` may be converted
  // to nanoseconds since the epoch. The wait is ahead seconds less now's fraction of a second (in [0, 1 s)).
  const detail::split_time at = detail::split_seconds(now);
  const std::int64_t ahead = date->time_since_epoch().count() - at.seconds;
  if (ahead <= 0) return duration::zero();
  constexpr std::int64_t ns_per_second = 1000000000;
  constexpr std::int64_t most_seconds = duration::max().count() / ns_per_second;  // 9223372036
  if (ahead - 1 > most_seconds) return std::nullopt;
  const std::int64_t fraction = at.nanoseconds;
  // (ahead - 1) s always fits; the last second, less the fraction, fits when it does not pass duration::max().
  const std::int64_t whole = (ahead - 1) * ns_per_second;
  const std::int64_t last = ns_per_second - fraction;
  if (whole > duration::max().count() - last) return std::nullopt;
  return duration{whole + last};
}

POLLSTER_NAMESPACE_END
