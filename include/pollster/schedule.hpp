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
#include <cmath>      // isfinite, isnan, pow, sqrt, tanh, trunc
#include <cstddef>    // size_t
#include <cstdint>    // uint64_t
#include <limits>     // numeric_limits
#include <optional>   // optional
#include <string>     // string, to_string
#include <type_traits>  // enable_if_t, false_type, void_t
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
    // tenacity lets `min` win over a smaller `max` (a constant `min`); pollster refuses floor > cap when built:
    // the pair is a typo far more often than an intent, and the intent is constant{floor}.
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
  full,          ///< U(floor, e): fewest calls under contention (AWS with no floor; tenacity 9's random_exponential)
  equal,         ///< e/2 + U(0, e/2): never less than half
  decorrelated,  ///< min(cap, U(base, 3 * previous)): grows from the last delay rather than the attempt
  proportional,  ///< e * (1 + U(-f, f)) with f = jitter_fraction: gRPC's connection backoff (f = 0.2)
  additive,      ///< e + U(0, jitter_amount): tenacity's wait_exponential_jitter
};

/// Where exponential backoff applies its cap. References differ, and the difference shows at the top of the range.
enum class cap_on {
  envelope_and_delay,  ///< the envelope is capped, jittered, and the delay capped again: never above the cap
  envelope,            ///< gRPC: the capped envelope is jittered, so a delay may pass the cap by the jitter
  delay,               ///< AWS SDK C++'s StandardRetryStrategy: the envelope grows on and the jittered delay is capped
};

/// Named parameters of `exponential` (C++20: `exponential{{.base = 100ms, .cap = 30s}}`).
struct exponential_options {
  duration base = std::chrono::seconds(1);
  double factor = 2.0;
  duration cap = duration::max();
  duration floor = duration::zero();
  pollster::jitter jitter = pollster::jitter::full;
  double jitter_fraction = 0.2;                      ///< only for jitter::proportional; in [0, 1]
  duration jitter_amount = std::chrono::seconds(1);  ///< only for jitter::additive; >= 0 (tenacity's `jitter`)
  pollster::cap_on cap_on = pollster::cap_on::envelope_and_delay;
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
    if (o.jitter_amount < duration::zero()) {
      detail::throw_invalid("exponential", "jitter_amount", ">= 0", detail::duration_text(o.jitter_amount));
    }
    if (o.jitter > pollster::jitter::additive || o.jitter < pollster::jitter::none) {
      detail::throw_invalid("exponential", "jitter", "one of none, full, equal, decorrelated, proportional, additive",
                            std::to_string(static_cast<int>(o.jitter)));
    }
    if (o.cap_on > pollster::cap_on::delay || o.cap_on < pollster::cap_on::envelope_and_delay) {
      detail::throw_invalid("exponential", "cap_on", "one of envelope_and_delay, envelope, delay",
                            std::to_string(static_cast<int>(o.cap_on)));
    }
    if (o.jitter == pollster::jitter::decorrelated && o.cap_on != pollster::cap_on::envelope_and_delay) {
      // AWS's formula caps inside the draw (min(cap, U(base, 3 prev))): there is no envelope to cap apart.
      detail::throw_invalid("exponential", "cap_on", "envelope_and_delay with decorrelated jitter",
                            std::to_string(static_cast<int>(o.cap_on)));
    }
    reset();
  }

  duration next() {
    const double e = growth_.advance();
    double value = e;
    switch (options_.jitter) {
      case pollster::jitter::none: break;
      case pollster::jitter::full: {
        // U(floor, e): with no floor this is AWS's U(0, e), bit for bit; with one it is tenacity 9's
        // random.uniform(min, high), not a clamp that would pile every short draw onto the floor.
        const double low = detail::to_double_ns(options_.floor);
        value = low + (std::max(e, low) - low) * detail::uniform01(generator_);
        break;
      }
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
      case pollster::jitter::additive:
        value = e + detail::to_double_ns(options_.jitter_amount) * detail::uniform01(generator_);
        break;
    }
    const duration upper = options_.cap_on == pollster::cap_on::envelope ? duration::max() : options_.cap;
    return detail::clamp(detail::from_double_ns(value), options_.floor, upper);
  }
  void reset() noexcept {
    // With cap_on::delay the envelope grows past the cap; 2^64 ns (beyond any duration) keeps it finite.
    const double envelope_cap = options_.cap_on == pollster::cap_on::delay ? 0x1.0p64 : detail::to_double_ns(options_.cap);
    growth_ = {detail::to_double_ns(options_.base), options_.factor, envelope_cap};
    previous_ns_ = detail::to_double_ns(options_.base);
  }
  std::optional<duration> plateau() const noexcept {
    if (options_.jitter == pollster::jitter::none && growth_.current_ns >= detail::to_double_ns(options_.cap)) {
      return options_.cap;
    }
    return std::nullopt;
  }
  /// Gives this copy its own random stream (a runner calls it for each copy of a prototype).
  void reseed(std::uint64_t seed) { generator_.seed(seed); }
  bool jittered() const noexcept { return options_.jitter != pollster::jitter::none; }
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
  bool fast_first = false;  ///< Polly.Contrib's fastFirst: retry at once first, then the curve from its second term
};

/// Polly's "decorrelated jitter backoff V2": a smooth exponential curve whose median first delay is the one you
/// ask for, without the clustering of plain decorrelated jitter. Computed as Polly computes it, in whole 100 ns
/// ticks (a TimeSpan), truncated: the same draws give the same delays.
template <class URBG = splitmix64>
class decorrelated_jitter_v2 : public detail::schedule_base<decorrelated_jitter_v2<URBG>> {
 public:
  using options = decorrelated_jitter_v2_options;

  explicit decorrelated_jitter_v2(const options& o, URBG generator = URBG{})
      : options_(o), generator_(std::move(generator)) {
    detail::require_positive("decorrelated_jitter_v2", "median_first_delay", o.median_first_delay);
    detail::require_bounds("decorrelated_jitter_v2", o.floor, o.median_first_delay, o.cap);
    reset();
  }

  duration next() {
    if (fast_pending_) {
      // Polly.Contrib: `if (fast) { i++; yield return TimeSpan.Zero; }`, no draw, and prev stays 0.
      fast_pending_ = false;
      attempt_ = 1;
      return detail::clamp(duration::zero(), options_.floor, options_.cap);
    }
    // Polly: t = attempt + U; next = 2^t tanh(sqrt(4 t)); ticks = (long)((next - prev) * (1 / 1.4) * median ticks).
    const double t = static_cast<double>(attempt_) + detail::uniform01(generator_);
    if (attempt_ < std::numeric_limits<std::uint64_t>::max()) ++attempt_;
    const double curve = std::pow(2.0, t) * std::tanh(std::sqrt(4.0 * t));
    if (!std::isfinite(curve)) {
      previous_ = curve;
      return options_.cap;  // the curve left double's range: the cap is all that is left
    }
    const double median_ticks = detail::to_double_ns(options_.median_first_delay) / 100.0;
    const double ticks = std::trunc((curve - previous_) * (1 / 1.4) * median_ticks);
    previous_ = curve;
    return detail::clamp(detail::from_double_ns(ticks * 100.0), options_.floor, options_.cap);
  }
  void reset() noexcept {
    attempt_ = 0;
    previous_ = 0;
    fast_pending_ = options_.fast_first;
  }
  std::optional<duration> plateau() const noexcept { return std::nullopt; }
  void reseed(std::uint64_t seed) { generator_.seed(seed); }
  const options& parameters() const noexcept { return options_; }

 private:
  options options_;
  URBG generator_;
  std::uint64_t attempt_ = 0;
  double previous_ = 0;
  bool fast_pending_ = false;
};

decorrelated_jitter_v2(const decorrelated_jitter_v2_options&) -> decorrelated_jitter_v2<splitmix64>;
template <class URBG>
decorrelated_jitter_v2(const decorrelated_jitter_v2_options&, URBG) -> decorrelated_jitter_v2<URBG>;

/// tenacity's wait_incrementing: start, start + increment, start + 2 increment, ... and `cap` once reached.
/// (tenacity also takes a negative increment, counting down to zero; pollster asks for >= 0.)
class incrementing : public detail::schedule_base<incrementing> {
 public:
  incrementing(duration start, duration increment, duration cap = duration::max())
      : start_(start), increment_(increment), cap_(cap) {
    if (start < duration::zero()) detail::throw_invalid("incrementing", "start", ">= 0", detail::duration_text(start));
    if (increment < duration::zero()) {
      detail::throw_invalid("incrementing", "increment", ">= 0", detail::duration_text(increment));
    }
    if (start == duration::zero() && increment == duration::zero()) {
      detail::throw_invalid("incrementing", "increment", "> 0 when start is 0 (every delay would be 0)", "0s");
    }
    detail::require_positive("incrementing", "cap", cap);
    if (cap < start) detail::throw_invalid("incrementing", "cap", ">= start (" + detail::duration_text(start) + ")",
                                           detail::duration_text(cap));
    reset();
  }
  duration next() noexcept {
    const duration value = current_;
    if (current_ < cap_) current_ = std::min(detail::sat_add(current_, increment_), cap_);
    return value;
  }
  void reset() noexcept { current_ = start_; }
  std::optional<duration> plateau() const noexcept {
    if (current_ >= cap_ || increment_ == duration::zero()) return current_;
    return std::nullopt;
  }
  duration start() const noexcept { return start_; }
  duration increment() const noexcept { return increment_; }
  duration cap() const noexcept { return cap_; }

 private:
  duration start_;
  duration increment_;
  duration cap_;
  duration current_{};
};

/// tenacity's wait_random: a delay drawn uniformly from [low, high] every time. Alone it spreads a fleet out;
/// added to another schedule (`constant{3s} + random_between{0s, 2s}`) it is the jitter users write by hand.
template <class URBG = splitmix64>
class random_between : public detail::schedule_base<random_between<URBG>> {
 public:
  random_between(duration low, duration high, URBG generator = URBG{})
      : low_(low), high_(high), generator_(std::move(generator)) {
    if (low < duration::zero()) detail::throw_invalid("random_between", "low", ">= 0", detail::duration_text(low));
    detail::require_positive("random_between", "high", high);
    if (high < low) detail::throw_invalid("random_between", "high", ">= low (" + detail::duration_text(low) + ")",
                                          detail::duration_text(high));
  }
  /// tenacity: min + random() * (max - min).
  duration next() {
    const double low = detail::to_double_ns(low_);
    const double value = low + detail::uniform01(generator_) * (detail::to_double_ns(high_) - low);
    return detail::clamp(detail::from_double_ns(value), low_, high_);
  }
  void reset() noexcept {}
  std::optional<duration> plateau() const noexcept {
    if (low_ == high_) return low_;
    return std::nullopt;
  }
  void reseed(std::uint64_t seed) { generator_.seed(seed); }
  bool jittered() const noexcept { return low_ != high_; }
  duration low() const noexcept { return low_; }
  duration high() const noexcept { return high_; }

 private:
  duration low_;
  duration high_;
  URBG generator_;
};

random_between(duration, duration) -> random_between<splitmix64>;
template <class URBG>
random_between(duration, duration, URBG) -> random_between<URBG>;

namespace detail {
template <class Schedule, class = void>
struct is_reseedable : std::false_type {};
template <class Schedule>
struct is_reseedable<Schedule, std::void_t<decltype(std::declval<Schedule&>().reseed(std::uint64_t{}))>>
    : std::true_type {};

/// A composite reseeds each part that has a generator, each with its own stream (equal seeds would make two
/// jittered parts of one schedule draw the same numbers).
template <class Schedule>
void reseed_part(Schedule& schedule, std::uint64_t seed, std::uint64_t part) {
  if constexpr (is_reseedable<Schedule>::value) schedule.reseed(splitmix64{seed ^ (part * 0x9e3779b97f4a7c15ULL)}());
}

template <class Schedule, class = void>
struct has_jittered : std::false_type {};
template <class Schedule>
struct has_jittered<Schedule, std::void_t<decltype(bool{std::declval<const Schedule&>().jittered()})>>
    : std::true_type {};

/// Whether a schedule draws random numbers now: its `jittered()` when it says, else whether it can be reseeded.
template <class Schedule>
bool is_jittered(const Schedule& schedule) {
  if constexpr (has_jittered<Schedule>::value) {
    return schedule.jittered();
  } else {
    return is_reseedable<Schedule>::value;
  }
}
}  // namespace detail

/// The sum of two schedules' delays, saturating (tenacity's wait_combine, and `wait_fixed(3) + wait_random(0, 2)`
/// written `constant{3s} + random_between{0s, 2s}`).
template <class A, class B>
class sum : public detail::schedule_base<sum<A, B>> {
 public:
  sum(A a, B b) : a_(std::move(a)), b_(std::move(b)) {}
  duration next() { return detail::sat_add(duration{a_.next()}, duration{b_.next()}); }
  void reset() {
    a_.reset();
    b_.reset();
  }
  std::optional<duration> plateau() const {
    const std::optional<duration> a = a_.plateau();
    const std::optional<duration> b = a ? b_.plateau() : std::nullopt;
    if (!a || !b) return std::nullopt;
    return detail::sat_add(*a, *b);
  }
  template <class S = sum, class = std::enable_if_t<detail::is_reseedable<A>::value || detail::is_reseedable<B>::value,
                                                    S>>
  void reseed(std::uint64_t seed) {
    detail::reseed_part(a_, seed, 1);
    detail::reseed_part(b_, seed, 2);
  }
  bool jittered() const { return detail::is_jittered(a_) || detail::is_jittered(b_); }
  const A& first() const noexcept { return a_; }
  const B& second() const noexcept { return b_; }

 private:
  A a_;
  B b_;
};

/// `constant{3s} + random_between{0s, 2s}`: adds the delays of two schedules.
template <class A, class B>
sum<A, B> operator+(const detail::schedule_base<A>& a, const detail::schedule_base<B>& b) {
  return {static_cast<const A&>(a), static_cast<const B&>(b)};
}

/// One schedule for the first `count` delays, another after: "poll every second for a minute, then back off".
/// The second starts from its own first delay (1, 1, 2, 4 for constant{1s} x 1 then geometric{1s, 2}); for
/// tenacity's wait_chain, where it goes on as if it had run from the start, use chain_by_attempt.
template <class First, class Then>
class chain : public detail::schedule_base<chain<First, Then>> {
 public:
  chain(First first, std::uint64_t count, Then then) : first_(std::move(first)), then_(std::move(then)), count_(count) {
    if (count == 0) detail::throw_invalid("chain", "count", ">= 1", "0");
  }
  duration next() {
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
  template <class S = chain, class = std::enable_if_t<
                                 detail::is_reseedable<First>::value || detail::is_reseedable<Then>::value, S>>
  void reseed(std::uint64_t seed) {
    detail::reseed_part(first_, seed, 1);
    detail::reseed_part(then_, seed, 2);
  }
  bool jittered() const { return detail::is_jittered(first_) || detail::is_jittered(then_); }
  const First& first() const noexcept { return first_; }
  const Then& then() const noexcept { return then_; }
  std::uint64_t count() const noexcept { return count_; }

 private:
  First first_;
  Then then_;
  std::uint64_t count_;
  std::uint64_t used_ = 0;
};

/// tenacity's wait_chain: `first` for the delays after attempts 1 to `count`, then `then` as it would be at that
/// attempt, as if it had run from the first (tenacity hands every link the global attempt number).
/// chain_by_attempt{constant{1s}, 1, geometric{1s, 2, max}} gives 1, 2, 4, 8 where chain gives 1, 1, 2, 4.
/// `then` steps along with `first` (its delays are drawn and dropped), so a jittered `then` draws as often.
template <class First, class Then>
class chain_by_attempt : public detail::schedule_base<chain_by_attempt<First, Then>> {
 public:
  chain_by_attempt(First first, std::uint64_t count, Then then)
      : first_(std::move(first)), then_(std::move(then)), count_(count) {
    if (count == 0) detail::throw_invalid("chain_by_attempt", "count", ">= 1", "0");
  }
  duration next() {
    if (used_ < count_) {
      ++used_;
      (void)then_.next();
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
  template <class S = chain_by_attempt,
            class = std::enable_if_t<detail::is_reseedable<First>::value || detail::is_reseedable<Then>::value, S>>
  void reseed(std::uint64_t seed) {
    detail::reseed_part(first_, seed, 1);
    detail::reseed_part(then_, seed, 2);
  }
  bool jittered() const { return detail::is_jittered(first_) || detail::is_jittered(then_); }
  const First& first() const noexcept { return first_; }
  const Then& then() const noexcept { return then_; }
  std::uint64_t count() const noexcept { return count_; }

 private:
  First first_;
  Then then_;
  std::uint64_t count_;
  std::uint64_t used_ = 0;
};

/// The first delay is zero (retry at once); the rest are `schedule`'s from its second delay on (its first is
/// drawn and dropped). AWS SDK C++'s DefaultRetryStrategy, 0, 50, 100, 200 ms, ..., is
/// immediate_first{geometric{25ms, 2.0, duration::max()}}.
template <class Schedule>
class immediate_first : public detail::schedule_base<immediate_first<Schedule>> {
 public:
  explicit immediate_first(Schedule schedule) : schedule_(std::move(schedule)) {}
  duration next() {
    if (!started_) {
      started_ = true;
      (void)schedule_.next();
      return duration::zero();
    }
    return schedule_.next();
  }
  void reset() {
    started_ = false;
    schedule_.reset();
  }
  std::optional<duration> plateau() const {
    if (!started_) return std::nullopt;
    return schedule_.plateau();
  }
  template <class S = immediate_first, class = std::enable_if_t<detail::is_reseedable<Schedule>::value, S>>
  void reseed(std::uint64_t seed) {
    schedule_.reseed(seed);
  }
  bool jittered() const { return detail::is_jittered(schedule_); }
  const Schedule& schedule() const noexcept { return schedule_; }

 private:
  Schedule schedule_;
  bool started_ = false;
};

/// The next `count` delays of any schedule, without consuming it.
template <class Schedule>
std::vector<duration> preview(const Schedule& schedule, std::size_t count) {
  return schedule.preview(count);
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
    case jitter::additive: return "additive";
  }
  return "jitter(" + std::to_string(static_cast<int>(j)) + ")";
}
inline std::string to_string(cap_on c) {
  switch (c) {
    case cap_on::envelope_and_delay: return "envelope_and_delay";
    case cap_on::envelope: return "envelope";
    case cap_on::delay: return "delay";
  }
  return "cap_on(" + std::to_string(static_cast<int>(c)) + ")";
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
  if (o.jitter == jitter::additive) text += " " + to_string(o.jitter_amount);
  if (o.cap_on != cap_on::envelope_and_delay) text += ", cap on " + to_string(o.cap_on);
  return text + ")";
}
template <class URBG>
std::string to_string(const decorrelated_jitter_v2<URBG>& s) {
  const decorrelated_jitter_v2_options& o = s.parameters();
  std::string text = "decorrelated_jitter_v2(median first delay " + to_string(o.median_first_delay) + ", cap " +
                     to_string(o.cap);
  if (o.floor > duration::zero()) text += ", floor " + to_string(o.floor);
  if (o.fast_first) text += ", fast first";
  return text + ")";
}
inline std::string to_string(const incrementing& s) {
  return "incrementing(start " + to_string(s.start()) + ", increment " + to_string(s.increment()) + ", cap " +
         to_string(s.cap()) + ")";
}
template <class URBG>
std::string to_string(const random_between<URBG>& s) {
  return "random_between(" + to_string(s.low()) + ", " + to_string(s.high()) + ")";
}
template <class A, class B>
std::string to_string(const sum<A, B>& s) {
  return to_string(s.first()) + " + " + to_string(s.second());
}
template <class First, class Then>
std::string to_string(const chain<First, Then>& s) {
  return "chain(" + std::to_string(s.count()) + " x " + to_string(s.first()) + ", then " + to_string(s.then()) + ")";
}
template <class First, class Then>
std::string to_string(const chain_by_attempt<First, Then>& s) {
  return "chain_by_attempt(" + to_string(s.first()) + " to attempt " + std::to_string(s.count()) + ", then " +
         to_string(s.then()) + ")";
}
template <class Schedule>
std::string to_string(const immediate_first<Schedule>& s) {
  return "immediate_first(" + to_string(s.schedule()) + ")";
}

POLLSTER_NAMESPACE_END

// The rest of the schedule layer: simulating a schedule (plan_for), and the references' own policies and presets.
// Each header includes this one; including this one gives all three.
#include "plan.hpp"     // IWYU pragma: export
#include "presets.hpp"  // IWYU pragma: export
