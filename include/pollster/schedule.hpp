// SPDX-License-Identifier: MIT
#pragma once

// Schedules: how long to wait before the next check. Clock-free value types; copying one copies its progress,
// so a schedule you configure is a prototype and each run works on a fresh copy.
//
// Every schedule has
//   duration next();                         // the next delay, already clamped to the schedule's bounds
//   void reset();                            // back to the first delay (a generator keeps its own state)
//   std::optional<duration> plateau() const; // set when every further delay is this one (lets plan_for jump)
//   std::vector<duration> preview(n) const;  // the next n delays, without consuming them
//
// Delay order (DESIGN.md): schedule value -> jitter -> clamp to [floor, cap]. Server hints and deadlines are
// applied later by the poller, never here.

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"

#include <algorithm>  // max, min
#include <cmath>      // isfinite, isnan, pow, sqrt, tanh
#include <cstddef>    // size_t
#include <cstdint>    // uint64_t
#include <limits>     // numeric_limits
#include <optional>   // optional
#include <string>     // string, to_string
#include <utility>    // move
#include <vector>     // vector

POLLSTER_NAMESPACE_BEGIN

/// A tiny, fast, seedable generator (splitmix64) used when you inject none. It is a member of each jittered
/// schedule, never global, and never seeded from the wall clock.
class splitmix64 {
 public:
  using result_type = std::uint64_t;
  explicit constexpr splitmix64(std::uint64_t seed = 0x9e3779b97f4a7c15ULL) noexcept : state_(seed) {}
  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }
  constexpr result_type operator()() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Restarts the sequence: a runner gives each copy of a prototype its own stream with this.
  constexpr void seed(std::uint64_t value) noexcept { state_ = value; }

 private:
  std::uint64_t state_;
};

namespace detail {

/// A double in [0, 1) from any uniform random bit generator, identical on every standard library (unlike
/// std::uniform_real_distribution), so seeded runs reproduce bit for bit everywhere.
template <class URBG>
double uniform01(URBG& generator) {
  using result = typename URBG::result_type;
  constexpr auto low = static_cast<std::uint64_t>(URBG::min());
  constexpr auto high = static_cast<std::uint64_t>(URBG::max());
  constexpr std::uint64_t range = high - low;  // high - low + 1 may wrap to 0: full 64-bit range
  std::uint64_t bits = 0;
  if constexpr (range == std::numeric_limits<std::uint64_t>::max()) {
    bits = static_cast<std::uint64_t>(static_cast<result>(generator())) >> 11;
  } else {
    // Fewer bits per call: gather 53 of them, draw by draw.
    int have = 0;
    constexpr int per_draw = [] {
      int n = 0;
      for (std::uint64_t r = range + 1; r > 1; r >>= 1) ++n;
      return n;
    }();
    static_assert(per_draw > 0, "the generator must produce at least one bit per draw");
    while (have < 53) {
      const std::uint64_t draw = (static_cast<std::uint64_t>(generator()) - low) & ((1ULL << per_draw) - 1);
      bits = (bits << per_draw) | draw;
      have += per_draw;
    }
    bits >>= (have - 53);
  }
  return static_cast<double>(bits) * 0x1.0p-53;
}

inline duration clamp(duration value, duration floor, duration cap) noexcept {
  return std::min(std::max(value, floor), cap);
}

inline void require_positive(const char* type, const char* parameter, duration value) {
  if (value <= duration::zero()) throw_invalid(type, parameter, "> 0", duration_text(value));
}
inline void require_factor(const char* type, double factor) {
  if (!std::isfinite(factor) || factor < 1.0) throw_invalid(type, "factor", "finite and >= 1", number_text(factor));
}
inline void require_bounds(const char* type, duration floor, duration start, duration cap) {
  if (floor < duration::zero()) throw_invalid(type, "floor", ">= 0", duration_text(floor));
  if (cap < start) throw_invalid(type, "cap", ">= start (" + duration_text(start) + ")", duration_text(cap));
  if (cap < floor) throw_invalid(type, "cap", ">= floor (" + duration_text(floor) + ")", duration_text(cap));
}

/// Gives every schedule a non-consuming preview.
template <class Derived>
struct schedule_base {
  /// The next `count` delays this schedule would yield, without consuming them (jitter included: the
  /// generator is copied too, so the preview is exactly what next() will return).
  std::vector<duration> preview(std::size_t count) const {
    Derived copy = static_cast<const Derived&>(*this);
    std::vector<duration> delays;
    delays.reserve(count);
    for (std::size_t i = 0; i < count; ++i) delays.push_back(copy.next());
    return delays;
  }
};

/// Growth by a factor in double nanoseconds that stops multiplying once it reaches the cap, so the plateau is
/// exact and nothing overflows however many times it is asked.
struct growth {
  double current_ns;
  double factor;
  double cap_ns;

  double advance() noexcept {
    const double value = current_ns;
    if (value < cap_ns) current_ns = value * factor;
    return std::min(value, cap_ns);
  }
  bool at_cap() const noexcept { return current_ns >= cap_ns; }
};

}  // namespace detail

/// The same delay every time: the fixed 1 s period that pollster exists to beat, and a fine safety-net poll.
class constant : public detail::schedule_base<constant> {
 public:
  explicit constant(duration interval) : interval_(interval) {
    detail::require_positive("constant", "interval", interval);
  }
  duration next() noexcept { return interval_; }
  void reset() noexcept {}
  std::optional<duration> plateau() const noexcept { return interval_; }
  duration interval() const noexcept { return interval_; }

 private:
  duration interval_;
};

/// TaskRunner-style geometric polling: start, start*factor, start*factor^2, ... then exactly `cap` for ever.
/// OpenStack Heat's 1 s x 1.1 capped at 20 s covers a 10-minute operation with 52 polls instead of 600.
class geometric : public detail::schedule_base<geometric> {
 public:
  /// Named parameters (C++20: `geometric{{.start = 1s, .factor = 1.1, .cap = 20s}}`).
  struct options {
    duration start = std::chrono::seconds(1);
    double factor = 1.1;
    duration cap = std::chrono::seconds(20);
    duration floor = duration::zero();  ///< never wait less (tenacity's `min`)
  };

  explicit geometric(const options& o) : options_(o) {
    detail::require_positive("geometric", "start", o.start);
    detail::require_factor("geometric", o.factor);
    detail::require_bounds("geometric", o.floor, o.start, o.cap);
    reset();
  }
  geometric(duration start, double factor, duration cap) : geometric(options{start, factor, cap}) {}

  duration next() noexcept {
    return detail::clamp(detail::from_double_ns(growth_.advance()), options_.floor, options_.cap);
  }
  void reset() noexcept {
    growth_ = {detail::to_double_ns(options_.start), options_.factor, detail::to_double_ns(options_.cap)};
  }
  std::optional<duration> plateau() const noexcept {
    if (growth_.at_cap()) return options_.cap;
    if (options_.factor == 1.0) return detail::clamp(options_.start, options_.floor, options_.cap);
    return std::nullopt;
  }
  const options& parameters() const noexcept { return options_; }

 private:
  options options_;
  detail::growth growth_{};
};

/// How exponential backoff randomises each delay e (AWS "Exponential Backoff and Jitter"; gRPC for proportional).
enum class jitter {
  none,          ///< e: exact sequences
  full,          ///< U(0, e): fewest calls under contention
  equal,         ///< e/2 + U(0, e/2): never less than half
  decorrelated,  ///< min(cap, U(base, 3 * previous)): grows from the last delay rather than the attempt
  proportional,  ///< e * (1 + U(-f, f)) with f = jitter_fraction: gRPC's connection backoff (f = 0.2)
};

/// Named parameters of `exponential` (C++20: `exponential{{.base = 100ms, .cap = 30s}}`).
struct exponential_options {
  duration base = std::chrono::seconds(1);
  double factor = 2.0;
  duration cap = duration::max();
  duration floor = duration::zero();
  pollster::jitter jitter = pollster::jitter::full;
  double jitter_fraction = 0.2;  ///< only for jitter::proportional; in [0, 1]
};

/// Exponential backoff with jitter, for contended retries: many clients that failed together should not
/// retry together. The generator is a member: inject any URBG (seeded for reproducible runs).
template <class URBG = splitmix64>
class exponential : public detail::schedule_base<exponential<URBG>> {
 public:
  using options = exponential_options;

  explicit exponential(const options& o, URBG generator = URBG{}) : options_(o), generator_(std::move(generator)) {
    detail::require_positive("exponential", "base", o.base);
    detail::require_factor("exponential", o.factor);
    detail::require_bounds("exponential", o.floor, o.base, o.cap);
    if (!(o.jitter_fraction >= 0.0 && o.jitter_fraction <= 1.0)) {
      detail::throw_invalid("exponential", "jitter_fraction", "in [0, 1]", detail::number_text(o.jitter_fraction));
    }
    if (o.jitter > pollster::jitter::proportional || o.jitter < pollster::jitter::none) {
      detail::throw_invalid("exponential", "jitter", "one of none, full, equal, decorrelated, proportional",
                            std::to_string(static_cast<int>(o.jitter)));
    }
    reset();
  }

  duration next() {
    const double e = growth_.advance();
    double value = e;
    switch (options_.jitter) {
      case pollster::jitter::none: break;
      case pollster::jitter::full: value = e * detail::uniform01(generator_); break;
      case pollster::jitter::equal: value = e / 2 + (e / 2) * detail::uniform01(generator_); break;
      case pollster::jitter::decorrelated: {
        const double low = detail::to_double_ns(options_.base);
        const double high = std::max(low, previous_ns_ * 3);
        value = std::min(detail::to_double_ns(options_.cap), low + (high - low) * detail::uniform01(generator_));
        previous_ns_ = value;
        break;
      }
      case pollster::jitter::proportional:
        value = e * (1 + options_.jitter_fraction * (2 * detail::uniform01(generator_) - 1));
        break;
    }
    return detail::clamp(detail::from_double_ns(value), options_.floor, options_.cap);
  }
  void reset() noexcept {
    growth_ = {detail::to_double_ns(options_.base), options_.factor, detail::to_double_ns(options_.cap)};
    previous_ns_ = detail::to_double_ns(options_.base);
  }
  std::optional<duration> plateau() const noexcept {
    if (options_.jitter == pollster::jitter::none && growth_.at_cap()) return options_.cap;
    return std::nullopt;
  }
  /// Gives this copy its own random stream (a runner calls it for each copy of a prototype).
  void reseed(std::uint64_t seed) { generator_.seed(seed); }
  const options& parameters() const noexcept { return options_; }
  URBG& generator() noexcept { return generator_; }

 private:
  options options_;
  URBG generator_;
  detail::growth growth_{};
  double previous_ns_ = 0;
};

exponential(const exponential_options&) -> exponential<splitmix64>;
template <class URBG>
exponential(const exponential_options&, URBG) -> exponential<URBG>;

/// Named parameters of `decorrelated_jitter_v2` (Polly's names: the median first delay, and the largest delay).
struct decorrelated_jitter_v2_options {
  duration median_first_delay = std::chrono::seconds(1);
  duration cap = duration::max();
  duration floor = duration::zero();
};

/// Polly's "decorrelated jitter backoff V2": a smooth exponential curve whose median first delay is the one you
/// ask for, without the clustering of plain decorrelated jitter.
template <class URBG = splitmix64>
class decorrelated_jitter_v2 : public detail::schedule_base<decorrelated_jitter_v2<URBG>> {
 public:
  using options = decorrelated_jitter_v2_options;

  explicit decorrelated_jitter_v2(const options& o, URBG generator = URBG{})
      : options_(o), generator_(std::move(generator)) {
    detail::require_positive("decorrelated_jitter_v2", "median_first_delay", o.median_first_delay);
    detail::require_bounds("decorrelated_jitter_v2", o.floor, o.median_first_delay, o.cap);
  }

  duration next() {
    // Polly: t = attempt + U; next = 2^t * tanh(sqrt(4 t)); delay = (next - prev) / 1.4 * median.
    const double t = static_cast<double>(attempt_) + detail::uniform01(generator_);
    if (attempt_ < std::numeric_limits<std::uint64_t>::max()) ++attempt_;
    const double curve = std::pow(2.0, t) * std::tanh(std::sqrt(4.0 * t));
    if (!std::isfinite(curve)) {
      previous_ = curve;
      return options_.cap;  // the curve left double's range: the cap is all that is left
    }
    const double value = (curve - previous_) / 1.4 * detail::to_double_ns(options_.median_first_delay);
    previous_ = curve;
    return detail::clamp(detail::from_double_ns(value), options_.floor, options_.cap);
  }
  void reset() noexcept {
    attempt_ = 0;
    previous_ = 0;
  }
  std::optional<duration> plateau() const noexcept { return std::nullopt; }
  void reseed(std::uint64_t seed) { generator_.seed(seed); }
  const options& parameters() const noexcept { return options_; }

 private:
  options options_;
  URBG generator_;
  std::uint64_t attempt_ = 0;
  double previous_ = 0;
};

decorrelated_jitter_v2(const decorrelated_jitter_v2_options&) -> decorrelated_jitter_v2<splitmix64>;
template <class URBG>
decorrelated_jitter_v2(const decorrelated_jitter_v2_options&, URBG) -> decorrelated_jitter_v2<URBG>;

/// One schedule for the first `count` delays, another after: "poll every second for a minute, then back off".
template <class First, class Then>
class chain : public detail::schedule_base<chain<First, Then>> {
 public:
  chain(First first, std::uint64_t count, Then then) : first_(std::move(first)), then_(std::move(then)), count_(count) {
    if (count == 0) detail::throw_invalid("chain", "count", ">= 1", "0");
  }
  auto next() {
    if (used_ < count_) {
      ++used_;
      return first_.next();
    }
    return then_.next();
  }
  void reset() {
    used_ = 0;
    first_.reset();
    then_.reset();
  }
  std::optional<duration> plateau() const {
    if (used_ < count_) return std::nullopt;
    return then_.plateau();
  }
  const First& first() const noexcept { return first_; }
  const Then& then() const noexcept { return then_; }
  std::uint64_t count() const noexcept { return count_; }

 private:
  First first_;
  Then then_;
  std::uint64_t count_;
  std::uint64_t used_ = 0;
};

/// The next `count` delays of any schedule, without consuming it.
template <class Schedule>
std::vector<duration> preview(const Schedule& schedule, std::size_t count) {
  return schedule.preview(count);
}

/// Schedules that people already know, by name.
namespace presets {
/// OpenStack Heat's improve-api-polling proposal: 1 s x 1.1, capped at 20 s.
inline geometric heat() { return geometric{std::chrono::seconds(1), 1.1, std::chrono::seconds(20)}; }
/// google-cloud-cpp's long-running-operation polling: 1 s x 2, capped at 300 s.
inline geometric google_cloud() { return geometric{std::chrono::seconds(1), 2.0, std::chrono::seconds(300)}; }
/// Kubernetes `wait.Backoff{Duration: 1s, Factor: 2, Cap: 3s}` without jitter: 1, 2, 3, 3, ...
inline geometric kubernetes_example() { return geometric{std::chrono::seconds(1), 2.0, std::chrono::seconds(3)}; }
/// gRPC connection backoff: 1 s x 1.6 capped at 120 s, each delay jittered by +-20 %.
inline exponential<splitmix64> grpc_connect(splitmix64 generator = splitmix64{}) {
  exponential_options o;
  o.base = std::chrono::seconds(1);
  o.factor = 1.6;
  o.cap = std::chrono::seconds(120);
  o.jitter = jitter::proportional;
  o.jitter_fraction = 0.2;
  return exponential<splitmix64>{o, generator};
}
}  // namespace presets

/// What a schedule costs and buys for an operation that completes at a known time.
struct plan {
  duration operation_time{};         ///< when the operation completes (T)
  std::uint64_t polls = 0;           ///< checks made after a sleep, until one lands at or after T
  std::uint64_t checks = 0;          ///< all checks, counting the immediate first one when there is one
  duration noticed_at{};             ///< when the first check at or after T happens
  duration detection_delay{};        ///< noticed_at - T: how late completion is seen
  duration worst_detection_delay{};  ///< the longest interval slept: the latest any completion can be seen
  duration mean_detection_delay{};   ///< average lateness for completion uniform over [0, noticed_at]
};

/// How `plan_for` simulates: whether the first check is immediate, and where it gives up on a schedule it cannot jump.
struct plan_options {
  bool immediate_first_poll = true;    ///< the default: check at t = 0, then sleep
  std::uint64_t max_polls = 100000000; ///< refuse to simulate past this (a jittered schedule cannot be jumped)
};

/// Simulates `schedule` (on a copy) against an operation that completes at `operation_time`. Plateaus are
/// jumped arithmetically, so even `duration::max()` costs a handful of steps for a capped schedule.
template <class Schedule>
plan plan_for(const Schedule& schedule, duration operation_time, const plan_options& options = {}) {
  if (operation_time < duration::zero()) {
    detail::throw_invalid("plan_for", "operation_time", ">= 0", detail::duration_text(operation_time));
  }
  Schedule copy = schedule;
  plan result;
  result.operation_time = operation_time;
  duration now = duration::zero();
  double squares = 0;  // sum of interval^2, for the mean detection delay
  auto sleep = [&](duration interval, std::uint64_t times) {
    now = detail::sat_add(now, detail::sat_mul(interval, times));
    result.polls = result.polls > std::numeric_limits<std::uint64_t>::max() - times
                       ? std::numeric_limits<std::uint64_t>::max()
                       : result.polls + times;
    result.worst_detection_delay = std::max(result.worst_detection_delay, interval);
    squares += detail::to_double_ns(interval) * detail::to_double_ns(interval) * static_cast<double>(times);
  };
  // With an immediate first poll, an operation that is already done at T = 0 is seen without sleeping.
  const bool done_at_start = options.immediate_first_poll && operation_time == duration::zero();
  while (!done_at_start && (now < operation_time || result.polls == 0) && now != duration::max()) {
    if (auto flat = copy.plateau(); flat && *flat > duration::zero()) {
      const duration left = detail::sat_sub(operation_time, now);
      const std::uint64_t times =
          left <= duration::zero() ? 1 : static_cast<std::uint64_t>((left.count() - 1) / flat->count() + 1);
      sleep(*flat, times);
      break;
    }
    if (result.polls >= options.max_polls) {
      detail::throw_invalid("plan_for", "operation_time", "reachable within max_polls (" +
                            std::to_string(options.max_polls) + ")", detail::duration_text(operation_time));
    }
    sleep(copy.next(), 1);
  }
  result.checks = result.polls + (options.immediate_first_poll ? 1 : 0);
  result.noticed_at = now;
  result.detection_delay = detail::sat_sub(now, operation_time);
  if (now > duration::zero()) {
    result.mean_detection_delay = detail::from_double_ns(squares / (2 * detail::to_double_ns(now)));
  }
  return result;
}

/// Readable text for logs, the demo and the fmt integration (`fmt.hpp` formats through these).
inline std::string to_string(duration d) { return detail::duration_text(d); }
inline std::string to_string(jitter j) {
  switch (j) {
    case jitter::none: return "none";
    case jitter::full: return "full";
    case jitter::equal: return "equal";
    case jitter::decorrelated: return "decorrelated";
    case jitter::proportional: return "proportional";
  }
  return "jitter(" + std::to_string(static_cast<int>(j)) + ")";
}
inline std::string to_string(const constant& s) { return "constant(" + to_string(s.interval()) + ")"; }
inline std::string to_string(const geometric& s) {
  const geometric::options& o = s.parameters();
  std::string text = "geometric(start " + to_string(o.start) + ", factor " + detail::number_text(o.factor) +
                     ", cap " + to_string(o.cap);
  if (o.floor > duration::zero()) text += ", floor " + to_string(o.floor);
  return text + ")";
}
template <class URBG>
std::string to_string(const exponential<URBG>& s) {
  const exponential_options& o = s.parameters();
  std::string text = "exponential(base " + to_string(o.base) + ", factor " + detail::number_text(o.factor) +
                     ", cap " + to_string(o.cap);
  if (o.floor > duration::zero()) text += ", floor " + to_string(o.floor);
  text += ", jitter " + to_string(o.jitter);
  if (o.jitter == jitter::proportional) text += " " + detail::number_text(o.jitter_fraction);
  return text + ")";
}
template <class URBG>
std::string to_string(const decorrelated_jitter_v2<URBG>& s) {
  const decorrelated_jitter_v2_options& o = s.parameters();
  std::string text = "decorrelated_jitter_v2(median first delay " + to_string(o.median_first_delay) + ", cap " +
                     to_string(o.cap);
  if (o.floor > duration::zero()) text += ", floor " + to_string(o.floor);
  return text + ")";
}
template <class First, class Then>
std::string to_string(const chain<First, Then>& s) {
  return "chain(" + std::to_string(s.count()) + " x " + to_string(s.first()) + ", then " + to_string(s.then()) + ")";
}
/// "52 polls (53 checks) for 600s: noticed at 601.14s, 1.14s late; worst 20s, mean 8.42s" (times rounded
/// to two decimals of their unit: a plan is read by people).
inline std::string to_string(const plan& p) {
  auto text = [](duration d) { return detail::duration_text(d, 2); };
  return std::to_string(p.polls) + " polls (" + std::to_string(p.checks) + " checks) for " +
         text(p.operation_time) + ": noticed at " + text(p.noticed_at) + ", " + text(p.detection_delay) +
         " late; worst " + text(p.worst_detection_delay) + ", mean " + text(p.mean_detection_delay);
}

POLLSTER_NAMESPACE_END
