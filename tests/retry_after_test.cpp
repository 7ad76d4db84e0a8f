#include "pollster_catch.hpp"

#include <pollster/retry_after.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <type_traits>

using namespace std::chrono_literals;
using pollster::duration;
using pollster::parse_retry_after;
using sys = std::chrono::system_clock;

namespace {
// RFC 9110's example date, Sun, 06 Nov 1994 08:49:37 GMT, is 784111777 s after the epoch.
constexpr std::int64_t rfc_example = 784111777;
// Two minutes before it, and half a second more, so sub-second arithmetic is exercised too.
const sys::time_point two_minutes_before = sys::time_point{std::chrono::seconds{rfc_example - 120}};

sys::time_point utc(std::int64_t y, unsigned m, unsigned d, std::int64_t second_of_day = 0) {
  return sys::time_point{std::chrono::seconds{pollster::detail::days_from_civil(y, m, d) * 86400 + second_of_day}};
}

// The civil year of an HTTP-date as parse_http_date reads it at `now` (0 when it is not a date).
std::int64_t year_read(const char* text, sys::time_point now) {
  const auto date = pollster::parse_http_date(text, now);
  if (!date) return 0;
  const std::int64_t seconds = date->time_since_epoch().count();
  return pollster::detail::civil_from_days(seconds >= 0 ? seconds / 86400 : -((86399 - seconds) / 86400)).year;
}
}  // namespace

TEST_CASE("Retry-After delay-seconds", "[retry_after]") {
  CHECK(parse_retry_after("120", two_minutes_before) == duration{120s});
  CHECK(parse_retry_after("0", two_minutes_before) == duration{0s});
  CHECK(parse_retry_after("0120", two_minutes_before) == duration{120s});  // 1*DIGIT allows leading zeros
  CHECK(parse_retry_after(" \t120 ", two_minutes_before) == duration{120s});  // surrounding OWS is not the value
  CHECK(parse_retry_after("9223372036", two_minutes_before) == duration{9223372036s});  // the largest that fits
}

TEST_CASE("Retry-After HTTP-date in all three forms of RFC 9110", "[retry_after]") {
  SECTION("IMF-fixdate") {
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", two_minutes_before) == duration{120s});
  }
  SECTION("obsolete RFC 850 form") {
    CHECK(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", two_minutes_before) == duration{120s});
  }
  SECTION("obsolete asctime form, with a space-padded day and with two digits") {
    CHECK(parse_retry_after("Sun Nov  6 08:49:37 1994", two_minutes_before) == duration{120s});
    CHECK(parse_retry_after("Sun Nov 06 08:49:37 1994", two_minutes_before) == duration{120s});
  }
  SECTION("sub-second now: the delay is exact to the nanosecond") {
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", two_minutes_before + 250ms) == duration{119750ms});
  }
  SECTION("a date in the past asks for no delay") {
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", two_minutes_before + 1h) == duration{0s});
  }
  SECTION("a leap second and 29 February of a leap year are dates") {
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:60 GMT", two_minutes_before) == duration{143s});
    CHECK(parse_retry_after("Thu, 29 Feb 1996 00:00:00 GMT", utc(1996, 2, 28)) == duration{24h});
    CHECK(parse_retry_after("Tue, 29 Feb 2000 00:00:00 GMT", utc(2000, 2, 28)) == duration{24h});
  }
  SECTION("an RFC 850 year more than 50 years ahead is in the past century") {
    const auto now = utc(2026, 1, 1);
    CHECK(parse_retry_after("Thursday, 01-Jan-26 00:01:00 GMT", now) == duration{1min});
    // 2070 is 44 years ahead: taken as 2070. 2077 would be 51 years ahead: taken as 1977, long past.
    CHECK(parse_retry_after("Wednesday, 01-Jan-70 00:00:00 GMT", now) ==
          std::chrono::duration_cast<duration>(utc(2070, 1, 1) - now));
    CHECK(parse_retry_after("Saturday, 01-Jan-77 00:00:00 GMT", now) == duration{0s});
  }
}

// Issue 12, bug 9: a date past 2262 passed the range check, then `date - now` overflowed converting the date to
// nanoseconds (UBSan: signed overflow in chrono); and the last second that fits was refused.
TEST_CASE("Retry-After dates past 2262 give their wait whenever the wait fits a duration", "[retry_after][regression]") {
  // 2263-01-01 is 7510492800 s after 2025-01-01 (Python's calendar.timegm); the day name is not checked.
  CHECK(parse_retry_after("Sat, 01 Jan 2263 00:00:00 GMT", utc(2025, 1, 1)) == duration{7510492800s});
  CHECK(parse_retry_after("Saturday, 01-Jan-63 00:00:00 GMT", utc(2230, 1, 1)) ==
        std::chrono::duration_cast<duration>(std::chrono::seconds{pollster::detail::days_from_civil(2263, 1, 1) * 86400 -
                                                                  pollster::detail::days_from_civil(2230, 1, 1) * 86400}));
  // duration::max() is 9223372036.854775807 s. Read at 2026-01-01 00:00:00, 2318-04-12 23:47:16 is 9223372036 s
  // ahead (it fits) and :17 is 9223372037 s ahead (it does not)...
  const auto new_year = utc(2026, 1, 1);
  CHECK(parse_retry_after("Fri, 12 Apr 2318 23:47:16 GMT", new_year) == duration{9223372036s});
  CHECK_FALSE(parse_retry_after("Fri, 12 Apr 2318 23:47:17 GMT", new_year).has_value());
  // ...unless now is late enough in its second: the wait is then 9223372037 s less now's fraction.
  CHECK(parse_retry_after("Fri, 12 Apr 2318 23:47:17 GMT", new_year + 200ms) == duration{9223372036800ms});
  CHECK(parse_retry_after("Fri, 12 Apr 2318 23:47:17 GMT", new_year + 145224193ns) == duration::max());
  CHECK_FALSE(parse_retry_after("Fri, 12 Apr 2318 23:47:17 GMT", new_year + 145224192ns).has_value());
  CHECK_FALSE(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", new_year).has_value());
  // The ends of a nanosecond system_clock (2262-04-11 23:47:16.854775807 and 1677-09-21 00:12:43.145224192):
  // nothing is converted that cannot be. From the earliest instant, 1970 is exactly 1 ns too far.
  if (std::is_same_v<sys::duration, std::chrono::nanoseconds>) {
    CHECK(parse_retry_after("Fri, 11 Apr 2262 23:47:16 GMT", sys::time_point::max()) == duration{0s});
    CHECK(parse_retry_after("Fri, 11 Apr 2262 23:47:17 GMT", sys::time_point::max()) == duration{145224193ns});
    CHECK(parse_retry_after("Wed, 31 Dec 1969 23:59:59 GMT", sys::time_point::min()) ==
          duration{duration::max().count() - 999999999});
    CHECK_FALSE(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", sys::time_point::min()).has_value());
    CHECK(parse_retry_after("Mon, 01 Jan 1677 00:00:00 GMT", sys::time_point::min()) == duration{0s});
  }
}

// Issue 12, bug 10: RFC 9110 section 5.6.7 moves an rfc850-date that appears more than 50 years in the future back
// a century, comparing instants. The old code compared years, and also moved a past date forward: read in 2060,
// "06-Nov-05" became 2105.
TEST_CASE("RFC 850 two-digit years are read per RFC 9110 section 5.6.7, in different years", "[retry_after][regression]") {
  struct row {
    const char* date;
    sys::time_point now;
    std::int64_t year;
  };
  const row r = GENERATE(
      row{"Sunday, 06-Nov-94 08:49:37 GMT", utc(1994, 11, 6), 1994},
      // read in 2060: the current century, whatever lies in the past
      row{"Sunday, 06-Nov-05 08:49:37 GMT", utc(2060, 6, 15), 2005},
      row{"Friday, 15-Jun-10 12:00:00 GMT", utc(2060, 6, 15), 2010},
      row{"Tuesday, 06-Nov-99 08:49:37 GMT", utc(2060, 6, 15), 2099},
      // read at 2026-01-01 00:00:00: 2076-01-01 00:00:00 is exactly 50 years ahead, one second later is more
      row{"Thursday, 01-Jan-76 00:00:00 GMT", utc(2026, 1, 1), 2076},
      row{"Thursday, 01-Jan-76 00:00:01 GMT", utc(2026, 1, 1), 1976},
      row{"Tuesday, 31-Dec-75 23:59:59 GMT", utc(2026, 1, 1), 2075},
      row{"Friday, 01-Jan-77 00:00:00 GMT", utc(2026, 1, 1), 1977},
      row{"Thursday, 31-Dec-25 00:00:00 GMT", utc(2026, 1, 1), 2025},
      // read at 2049-06-15 12:00:00: the boundary falls inside a day
      row{"Monday, 15-Jun-99 12:00:00 GMT", utc(2049, 6, 15, 43200), 2099},
      row{"Monday, 15-Jun-99 12:00:01 GMT", utc(2049, 6, 15, 43200), 1999},
      row{"Sunday, 14-Jun-99 23:59:59 GMT", utc(2049, 6, 15, 43200), 2099},
      // read at 2000-01-01: "00" is now, "50" is exactly 50 years ahead at midnight
      row{"Saturday, 01-Jan-00 00:00:00 GMT", utc(2000, 1, 1), 2000},
      row{"Saturday, 01-Jan-50 00:00:00 GMT", utc(2000, 1, 1), 2050},
      row{"Saturday, 01-Jan-50 00:00:01 GMT", utc(2000, 1, 1), 1950},
      // read on 29 February 2024 at noon: the next 29 February in 2074 does not exist; 28 February and 1 March do
      row{"Wednesday, 28-Feb-74 23:59:59 GMT", utc(2024, 2, 29, 43200), 2074},
      row{"Thursday, 01-Mar-74 00:00:00 GMT", utc(2024, 2, 29, 43200), 1974});
  CAPTURE(r.date);
  CHECK(year_read(r.date, r.now) == r.year);
}

TEST_CASE("parse_http_date gives the second since the epoch", "[retry_after]") {
  const auto date = pollster::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", two_minutes_before);
  REQUIRE(date);
  CHECK(date->time_since_epoch().count() == rfc_example);
  CHECK(pollster::parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT", two_minutes_before)->time_since_epoch().count() ==
        0);
}

TEST_CASE("malformed Retry-After values are no hint and never throw", "[retry_after]") {
  const std::string bad = GENERATE(as<std::string>{},
                                   "",                                     // empty
                                   "   ",                                  // only whitespace
                                   "soon",                                 // a word
                                   "-1",                                   // negative
                                   "+5",                                   // a sign
                                   "1.5",                                  // a fraction
                                   "12a",                                  // trailing garbage
                                   "1 2",                                  // two numbers
                                   "120, 60",                              // a list
                                   "0x10",                                 // hexadecimal
                                   "1e3",                                  // exponent
                                   "9223372037",                           // one second more than a duration holds
                                   "99999999999999999999999999",           // far beyond int64
                                   "Sun, 06 Nov 1994 08:49:37 UTC",        // not GMT
                                   "Sun, 06 Nov 1994 08:49:37 gmt",        // GMT is case-sensitive
                                   "Sun, 06 Nov 1994 08:49:37",            // no zone
                                   "Sun, 06 nov 1994 08:49:37 GMT",        // month names are case-sensitive
                                   "sun, 06 Nov 1994 08:49:37 GMT",        // day names are case-sensitive
                                   "Sun, 6 Nov 1994 08:49:37 GMT",         // IMF needs two-digit days
                                   "Sun, 06 Nov 94 08:49:37 GMT",          // IMF needs four-digit years
                                   "Sun,  06 Nov 1994 08:49:37 GMT",       // two spaces
                                   "Sun, 31 Nov 1994 08:49:37 GMT",        // 31 November
                                   "Wed, 29 Feb 1995 08:49:37 GMT",        // 29 February of a common year
                                   "Thu, 29 Feb 1900 08:49:37 GMT",        // 1900 is not a leap year
                                   "Sun, 00 Nov 1994 08:49:37 GMT",        // day zero
                                   "Sun, 06 Nov 1994 24:00:00 GMT",        // hour 24
                                   "Sun, 06 Nov 1994 08:60:37 GMT",        // minute 60
                                   "Sun, 06 Nov 1994 08:49:61 GMT",        // second 61
                                   "Sun, 06 Nov 1994 8:49:37 GMT",         // one-digit hour
                                   "Sun, 06 Nov 1994 08:49:37 GMT x",      // trailing text
                                   "Xyz, 06 Nov 1994 08:49:37 GMT",        // no such day
                                   "Sunday, 06 Nov 1994 08:49:37 GMT",     // long day name with IMF's date
                                   "Sun, 06-Nov-94 08:49:37 GMT",          // short day name with RFC 850's date
                                   "Sunday, 06-Nov-1994 08:49:37 GMT",     // RFC 850 has two-digit years
                                   "Sun Nov 6 08:49:37 1994",              // asctime pads a one-digit day with a space
                                   "Sun Nov  6 08:49:37 94",               // asctime has four-digit years
                                   "Sun Nov  6 08:49:37 1994 GMT",         // asctime has no zone
                                   "Sun, 06 Nov 9999 08:49:37 GMT");       // beyond what a duration can hold
  CAPTURE(bad);
  CHECK_FALSE(parse_retry_after(bad, two_minutes_before).has_value());
}
