// SPDX-License-Identifier: MIT
#pragma once

// Small text helpers: durations as people write them, and the one way pollster reports a bad parameter.

#include "config.hpp"
#include "saturate.hpp"

#include <cmath>        // isnan, isinf
#include <cstdint>      // int64_t, uint64_t
#include <cstdio>       // snprintf
#include <cstdlib>      // strtod
#include <ostream>      // ostream (is_ostreamable)
#include <stdexcept>    // invalid_argument
#include <string>       // string
#include <type_traits>  // false_type, true_type, void_t
#include <utility>      // declval

POLLSTER_NAMESPACE_BEGIN
namespace detail {

/// "1.1s", "250ms", "20s", "3us", "7ns"; the saturated ends read "max" and "min". Exact by default (error
/// messages must not round a bad value into a good one); `decimals` rounds within the chosen unit for tables.
inline std::string duration_text(duration d, int decimals = -1) {
  if (d == duration::max()) return "max";
  if (d == duration::min()) return "min";
  const std::int64_t ns = d.count();
  if (ns == 0) return "0s";
  const std::uint64_t mag = ns < 0 ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
  struct unit {
    std::uint64_t size;
    const char* suffix;
  };
  static constexpr unit units[] = {{1000000000ULL, "s"}, {1000000ULL, "ms"}, {1000ULL, "us"}, {1ULL, "ns"}};
  for (const unit& u : units) {
    if (mag < u.size && u.size != 1) continue;
    std::string text = ns < 0 ? "-" : "";
    if (decimals >= 0 && u.size != 1) {
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, "%.*f", decimals,
                    static_cast<double>(mag) / static_cast<double>(u.size));
      std::string rounded = buffer;
      if (rounded.find('.') != std::string::npos) {
        while (rounded.back() == '0') rounded.pop_back();
        if (rounded.back() == '.') rounded.pop_back();
      }
      return text + rounded + u.suffix;
    }
    text += std::to_string(mag / u.size);
    std::uint64_t frac = mag % u.size;
    if (frac != 0) {
      std::string digits = std::to_string(frac);
      digits.insert(0, std::to_string(u.size).size() - 1 - digits.size(), '0');
      while (!digits.empty() && digits.back() == '0') digits.pop_back();
      text += "." + digits;
    }
    return text + u.suffix;
  }
  return "0s";  // not reached: the nanosecond unit always matches
}

inline std::string number_text(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  // Prefer the shortest text that reads back the same value ("1.1", not "1.1000000000000001").
  for (int precision = 1; precision <= 17; ++precision) {
    char shorter[64];
    std::snprintf(shorter, sizeof shorter, "%.*g", precision, value);
    if (std::strtod(shorter, nullptr) == value) return shorter;
  }
  return buffer;
}

/// Whether `std::ostream << x` compiles: a value that can print itself (a key, a version, a filter's operand).
template <class X, class = void>
struct is_ostreamable : std::false_type {};
template <class X>
struct is_ostreamable<X, std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const X&>())>>
    : std::true_type {};

/// Every rejected parameter reads the same way: "pollster::geometric: factor must be >= 1, got 0.5".
[[noreturn]] inline void throw_invalid(const char* type, const char* parameter, const std::string& requirement,
                                       const std::string& value) {
  throw std::invalid_argument(std::string("pollster::") + type + ": " + parameter + " must be " + requirement +
                              ", got " + value);
}

}  // namespace detail
POLLSTER_NAMESPACE_END
