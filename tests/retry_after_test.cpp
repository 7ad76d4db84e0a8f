#include "pollster_catch.hpp"

#include <pollster/retry_after.hpp>

#include <chrono>
#include <optional>
#include <string>

using namespace std::chrono_literals;
using pollster::duration;
using pollster::parse_retry_after;
using sys = std::chrono::system_clock;

namespace {
// RFC 9110's example date, Sun, 06 Nov 1994 08:49:37 GMT, is 784111777 s after the epoch.
constexpr std::int64_t rfc_example = 784111777;
// Two minutes before it, and half a second more, so sub-second arithmetic is exercised too.
const sys::time_point two_minutes_before = sys::time_point{std::chrono::seconds{rfc_example - 120}};

sys::time_point utc(std::int64_t y, unsigned m, unsigned d) {
  return sys::time_point{std::chrono::seconds{pollster::detail::days_from_civil(y, m, d) * 86400}};
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
