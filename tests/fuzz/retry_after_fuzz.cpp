// libFuzzer target for pollster/retry_after.hpp: the first 8 bytes are `now` (nanoseconds since the epoch, any
// int64), the rest a Retry-After field value. pollster's parse_retry_after must agree with an independent reading of
// RFC 9110 written differently on purpose: std::regex for the grammar, day counting by the "days before the year"
// formula instead of Hinnant's eras, the 50-year rule by comparing instants built from a civil date found by
// stepping through years and months, and the wait in 128-bit arithmetic. Aborts on the first disagreement; UBSan
// and ASan must stay silent.
//
// Build: cmake -DPOLLSTER_BUILD_FUZZERS=ON with clang; run: ./retry_after_fuzz -max_total_time=30
//        -dict=tests/fuzz/retry_after.dict tests/fuzz/retry_after_corpus
#include <pollster/retry_after.hpp>

#include <chrono>    // nanoseconds, system_clock
#include <cstddef>   // size_t
#include <cstdint>   // int64_t, uint8_t
#include <cstdio>    // fprintf
#include <cstdlib>   // abort
#include <cstring>   // memcpy
#include <optional>  // optional
#include <regex>     // regex, regex_match
#include <string>    // string, stoi

namespace {

__extension__ typedef __int128 wide;  // the oracle's own arithmetic: nothing it computes can overflow

const char* const short_days = "(Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const char* const long_days = "(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)";
const char* const month_names = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)";

const std::regex& imf() {
  static const std::regex r(std::string("^") + short_days + ", ([0-9]{2}) " + month_names +
                            " ([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT$");
  return r;
}
const std::regex& rfc850() {
  static const std::regex r(std::string("^") + long_days + ", ([0-9]{2})-" + month_names +
                            "-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT$");
  return r;
}
const std::regex& asctime() {
  static const std::regex r(std::string("^") + short_days + " " + month_names +
                            " ([0-9]{2}| [0-9]) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([0-9]{4})$");
  return r;
}

int month_number(const std::string& name) {
  static const char* const names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i) {
    if (name == names[i]) return i + 1;
  }
  return 0;
}

bool leap(wide y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
int month_length(wide y, int m) {
  static const int lengths[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : lengths[m - 1];
}

// Days from 0001-01-01 to the first of January of year y (proleptic Gregorian, y may be 0 or negative).
wide days_before_year(wide y) {
  const wide p = y - 1;
  auto floor_div = [](wide a, wide b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  return 365 * p + floor_div(p, 4) - floor_div(p, 100) + floor_div(p, 400);
}
wide epoch_days(wide y, int m, int d) {
  wide days = days_before_year(y) - days_before_year(1970);
  for (int i = 1; i < m; ++i) days += month_length(y, i);
  return days + d - 1;
}

struct civil {
  wide year;
  int month;
  int day;
  wide second_of_day;
};
// The civil date of a second since the epoch, by stepping: years from an estimate, then months.
civil civil_of(wide seconds) {
  wide days = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
  civil c{1970 + days / 366, 1, 1, seconds - days * 86400};
  while (epoch_days(c.year + 1, 1, 1) <= days) ++c.year;
  while (epoch_days(c.year, 1, 1) > days) --c.year;
  wide rest = days - epoch_days(c.year, 1, 1);
  while (rest >= month_length(c.year, c.month)) {
    rest -= month_length(c.year, c.month);
    ++c.month;
  }
  c.day = static_cast<int>(rest) + 1;
  return c;
}

// The oracle's wait in nanoseconds, or nothing.
std::optional<wide> oracle(std::string value, std::int64_t now_ns) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
  static const std::regex digits("^[0-9]+$");
  if (std::regex_match(value, digits)) {
    const std::size_t first = value.find_first_not_of('0');
    const std::string significant = first == std::string::npos ? "0" : value.substr(first);
    if (significant.size() > 12) return std::nullopt;
    const wide seconds = std::stoll(significant);
    if (seconds * 1000000000 > INT64_MAX) return std::nullopt;
    return seconds * 1000000000;
  }
  const wide now = now_ns;
  const wide now_seconds = now >= 0 ? now / 1000000000 : -((-now + 999999999) / 1000000000);
  std::smatch m;
  wide year = 0;
  int month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (std::regex_match(value, m, imf())) {
    day = std::stoi(m[2]);
    month = month_number(m[3]);
    year = std::stoi(m[4]);
    hour = std::stoi(m[5]);
    minute = std::stoi(m[6]);
    second = std::stoi(m[7]);
  } else if (std::regex_match(value, m, rfc850())) {
    day = std::stoi(m[2]);
    month = month_number(m[3]);
    hour = std::stoi(m[5]);
    minute = std::stoi(m[6]);
    second = std::stoi(m[7]);
    // RFC 9110 5.6.7: the year in now's century, unless that is more than 50 years in the future.
    const civil today = civil_of(now_seconds);
    year = today.year - ((today.year % 100) + 100) % 100 + std::stoi(m[4]);
    if (day >= 1 && day <= 31 && month_length(year, month) >= day) {
      const civil later{today.year + 50, today.month, today.day, today.second_of_day};
      const wide candidate_key = ((year * 13 + month) * 32 + day) * 86400 + hour * 3600 + minute * 60 + second;
      const wide limit_key = ((later.year * 13 + later.month) * 32 + later.day) * 86400 + later.second_of_day;
      if (candidate_key > limit_key) year -= 100;
    }
  } else if (std::regex_match(value, m, asctime())) {
    month = month_number(m[2]);
    const std::string d = m[3];
    day = d[0] == ' ' ? d[1] - '0' : std::stoi(d);
    hour = std::stoi(m[4]);
    minute = std::stoi(m[5]);
    second = std::stoi(m[6]);
    year = std::stoi(m[7]);
  } else {
    return std::nullopt;
  }
  if (hour > 23 || minute > 59 || second > 60 || day < 1 || day > month_length(year, month)) return std::nullopt;
  const wide date_seconds = epoch_days(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  const wide wait = date_seconds * 1000000000 - now;
  if (wait <= 0) return wide{0};
  if (wait > INT64_MAX) return std::nullopt;
  return wait;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 96) return 0;  // longer values are refused by both at their first character past the grammar
  std::int64_t now_ns = 0;
  if (size >= 8) {
    std::memcpy(&now_ns, data, 8);
    data += 8;
    size -= 8;
  }
  const std::string value(reinterpret_cast<const char*>(data), size);
  const auto now = std::chrono::system_clock::time_point{
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds{now_ns})};
  const std::optional<pollster::duration> got = pollster::parse_retry_after(value, now);
  const std::optional<wide> want = oracle(value, now.time_since_epoch() / std::chrono::nanoseconds{1});
  if (got.has_value() != want.has_value() || (got && static_cast<wide>(got->count()) != *want)) {
    std::fprintf(stderr, "retry_after_fuzz: \"%s\" at %lld ns: pollster %s %lld, oracle %s %lld\n", value.c_str(),
                 static_cast<long long>(now_ns), got ? "wait" : "no hint",
                 got ? static_cast<long long>(got->count()) : 0LL, want ? "wait" : "no hint",
                 want ? static_cast<long long>(*want) : 0LL);
    std::abort();
  }
  if (got && *got < pollster::duration::zero()) std::abort();
  return 0;
}
