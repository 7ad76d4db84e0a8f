// SPDX-License-Identifier: MIT
#pragma once

// The references' own backoff policies, computed as their code computes them (units, truncation, where the jitter
// and the cap go), and the presets that people know by name. Each names the reference version it follows and the
// test that proves it (tests/presets_test.cpp). Where pollster differs on purpose, the comment says so.

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"
#include "schedule.hpp"
#include "stop.hpp"

#include <algorithm>  // max, min
#include <chrono>     // milliseconds, seconds, minutes
#include <cmath>      // isfinite, trunc
#include <cstdint>    // int64_t, uint64_t
#include <limits>     // numeric_limits
#include <optional>   // optional
#include <string>     // string, to_string
#include <utility>    // move

POLLSTER_NAMESPACE_BEGIN

namespace detail {
constexpr double two_to_63 = 9223372036854775808.0;

/// A double of a reference's own integer unit back to an int64 as C++ and Go convert it (toward zero), saturating
/// where they would overflow (gRPC saturates too; Go's conversion is then implementation-defined).
inline std::int64_t truncate_saturating(double value) noexcept {
  if (std::isnan(value)) return 0;
  if (value >= two_to_63) return std::numeric_limits<std::int64_t>::max();
  if (value <= -two_to_63) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(value);
}

/// `count` units of `unit_ns` nanoseconds as a duration, saturating.
inline duration from_units(std::int64_t count, std::int64_t unit_ns) noexcept {
  if (count <= 0) return duration::zero();
  return sat_mul(duration{unit_ns}, static_cast<std::uint64_t>(count));
}

inline void require_whole_ms(const char* type, const char* parameter, duration value) {
  if (value % std::chrono::milliseconds(1) != duration::zero()) {
    throw_invalid(type, parameter, "a whole number of milliseconds", duration_text(value));
  }
}
inline void require_fraction(const char* type, const char* parameter, double value) {
  if (!(value >= 0.0 && value <= 1.0)) throw_invalid(type, parameter, "in [0, 1]", number_text(value));
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------------------------
// gRPC

/// Named parameters of `grpc_backoff` (gRPC's names; the defaults are gRPC's connection backoff).
struct grpc_backoff_options {
  duration initial_backoff = std::chrono::seconds(1);  ///< whole milliseconds
  double multiplier = 1.6;
  double jitter = 0.2;  ///< in [0, 1]: each delay is the backoff times U[1 - jitter, 1 + jitter)
  duration max_backoff = std::chrono::seconds(120);  ///< whole milliseconds; the jitter applies after it
  bool jitter_first = true;  ///< gRPC's code jitters the first delay; its protocol document does not (false)
};

/// gRPC's BackOff, as gRPC core computes it (src/core/util/backoff.cc, BackOff::NextAttemptDelay, and
/// src/core/util/time.h, at grpc/grpc commit 15bab7a3): the backoff is multiplied and capped in whole
/// milliseconds (grpc_core::Duration * double truncates), then jittered AFTER the cap, so with the defaults a
/// delay reaches up to 144 s; the delay is truncated to whole milliseconds too. The first delay is jittered as
/// in the code (doc/connection-backoff.md jitters it not: `jitter_first = false`).
/// Test: "gRPC backoff matches gRPC core's arithmetic for fixed uniform draws".
template <class URBG = splitmix64>
class grpc_backoff : public detail::schedule_base<grpc_backoff<URBG>> {
 public:
  using options = grpc_backoff_options;

  explicit grpc_backoff(const options& o = {}, URBG generator = URBG{}) : options_(o), generator_(std::move(generator)) {
    detail::require_positive("grpc_backoff", "initial_backoff", o.initial_backoff);
    detail::require_whole_ms("grpc_backoff", "initial_backoff", o.initial_backoff);
    detail::require_whole_ms("grpc_backoff", "max_backoff", o.max_backoff);
    if (o.max_backoff < o.initial_backoff) {
      detail::throw_invalid("grpc_backoff", "max_backoff", ">= initial_backoff (" +
                            detail::duration_text(o.initial_backoff) + ")", detail::duration_text(o.max_backoff));
    }
    detail::require_factor("grpc_backoff", o.multiplier);
    detail::require_fraction("grpc_backoff", "jitter", o.jitter);
    reset();
  }

  duration next() {
    const bool first = first_;
    if (first_) {
      first_ = false;
    } else {
      current_ms_ = times(current_ms_, options_.multiplier);
    }
    current_ms_ = std::min(current_ms_, max_ms_);
    double factor = 1.0;
    if (options_.jitter > 0 && (options_.jitter_first || !first)) {
      // absl::Uniform(gen, 1 - jitter, 1 + jitter): range * sample + lo.
      const double lo = 1 - options_.jitter;
      const double hi = 1 + options_.jitter;
      factor = (hi - lo) * detail::uniform01(generator_) + lo;
    }
    return detail::from_units(times(current_ms_, factor), 1000000);
  }
  void reset() noexcept {
    current_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(options_.initial_backoff).count();
    max_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(options_.max_backoff).count();
    first_ = true;
  }
  std::optional<duration> plateau() const noexcept {
    if (options_.jitter == 0 && !first_ && current_ms_ >= max_ms_) return options_.max_backoff;
    return std::nullopt;
  }
  bool jittered() const noexcept { return options_.jitter > 0; }
  void reseed(std::uint64_t seed) { generator_.seed(seed); }
  const options& parameters() const noexcept { return options_; }

 private:
  /// grpc_core::Duration * double: Duration::FromSecondsAsDouble(millis * factor / 1000.0), whose millis are
  /// seconds * 1000.0 truncated (saturating): the same operations in the same order, so the same doubles.
  static std::int64_t times(std::int64_t millis, double factor) noexcept {
    const double seconds = static_cast<double>(millis) * factor / 1000.0;
    return detail::truncate_saturating(seconds * 1000.0);
  }

  options options_;
  URBG generator_;
  std::int64_t current_ms_ = 0;
  std::int64_t max_ms_ = 0;
  bool first_ = true;
};

grpc_backoff() -> grpc_backoff<splitmix64>;
grpc_backoff(const grpc_backoff_options&) -> grpc_backoff<splitmix64>;
template <class URBG>
grpc_backoff(const grpc_backoff_options&, URBG) -> grpc_backoff<URBG>;

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes

/// Named parameters of `kubernetes_backoff`: k8s.io/apimachinery's wait.Backoff, with its zero values meaning
/// what they mean there.
struct kubernetes_backoff_options {
  duration initial = std::chrono::seconds(1);  ///< wait.Backoff's Duration (> 0 here)
  double factor = 0;       ///< the duration is multiplied by it at each growth step; 0: it never changes. (0, 1) shrinks
  double jitter = 0;       ///< each delay is d + U[0, 1) * jitter * d: upward only. 0: none
  std::int64_t steps = 0;  ///< growth steps left (not attempts); 0 or less: the duration never changes
  duration cap = duration::zero();  ///< the largest duration; hitting it ends the growth (Steps = 0). 0: no cap
};

namespace detail {
/// wait.Backoff's state between Step() calls.
struct kubernetes_state {
  std::int64_t duration_ns;
  std::int64_t steps;
};

/// k8s.io/apimachinery pkg/util/wait/backoff.go, `delay`, without the jitter: the next state.
inline kubernetes_state kubernetes_grow(kubernetes_state s, const kubernetes_backoff_options& o) noexcept {
  if (s.steps < 1) return s;
  --s.steps;
  std::int64_t next = s.duration_ns;
  if (o.factor != 0) next = truncate_saturating(static_cast<double>(s.duration_ns) * o.factor);
  if (o.cap > duration::zero() && next > o.cap.count()) {
    next = o.cap.count();
    s.steps = 0;
  }
  s.duration_ns = next;
  return s;
}
}  // namespace detail

/// Kubernetes' wait.Backoff.Step(), exactly (k8s.io/apimachinery v0.36, pkg/util/wait/backoff.go `delay` and
/// wait.go `Jitter`): each Step returns the current duration (jittered upward by U[0, jitter) of itself) and
/// then, while Steps are left, multiplies the duration by Factor, truncating to whole nanoseconds as Go's
/// time.Duration(float64) does; a product above Cap becomes Cap and ends the growth. With Steps 0 nothing grows:
/// Backoff{Duration: 1s, Factor: 2, Cap: 3s} is 1, 1, 1, ... and needs Steps >= 2 for 1, 2, 3, 3.
/// Delays lie in [0, max(initial, cap) * (1 + jitter)] (a factor below 1 shrinks them towards 0). Differences:
/// pollster refuses Duration <= 0 and Cap < Duration (Kubernetes then returns the uncapped Duration first), and
/// saturates where Go's conversion would overflow. For wait.ExponentialBackoff's stopping, see kubernetes_backoff_limit.
/// Test: "Kubernetes Step() over a grid of Duration, Factor, Steps and Cap".
template <class URBG = splitmix64>
class kubernetes_backoff : public detail::schedule_base<kubernetes_backoff<URBG>> {
 public:
  using options = kubernetes_backoff_options;

  explicit kubernetes_backoff(const options& o, URBG generator = URBG{}) : options_(o), generator_(std::move(generator)) {
    detail::require_positive("kubernetes_backoff", "initial", o.initial);
    if (!std::isfinite(o.factor) || o.factor < 0) {
      detail::throw_invalid("kubernetes_backoff", "factor", "finite and >= 0", detail::number_text(o.factor));
    }
    if (!std::isfinite(o.jitter) || o.jitter < 0) {
      detail::throw_invalid("kubernetes_backoff", "jitter", "finite and >= 0", detail::number_text(o.jitter));
    }
    if (o.cap < duration::zero()) {
      detail::throw_invalid("kubernetes_backoff", "cap", ">= 0 (0: no cap)", detail::duration_text(o.cap));
    }
    if (o.cap > duration::zero() && o.cap < o.initial) {
      detail::throw_invalid("kubernetes_backoff", "cap", "0 or >= initial (" + detail::duration_text(o.initial) + ")",
                            detail::duration_text(o.cap));
    }
    reset();
  }

  duration next() {
    const std::int64_t current = state_.duration_ns;
    state_ = detail::kubernetes_grow(state_, options_);
    if (options_.jitter <= 0) return duration{current};
    // Jitter(d, f) = d + time.Duration(rand.Float64() * f * float64(d)), left to right.
    const double extra = detail::uniform01(generator_) * options_.jitter * static_cast<double>(current);
    return detail::sat_add(duration{current}, duration{detail::truncate_saturating(extra)});
  }
  void reset() noexcept { state_ = {options_.initial.count(), options_.steps}; }
  std::optional<duration> plateau() const noexcept {
    if (options_.jitter == 0 && state_.steps < 1) return duration{state_.duration_ns};
    return std::nullopt;
  }
  bool jittered() const noexcept { return options_.jitter > 0; }
  void reseed(std::uint64_t seed) { generator_.seed(seed); }
  const options& parameters() const noexcept { return options_; }
  /// Growth steps left (wait.Backoff's Steps now).
  std::int64_t steps() const noexcept { return state_.steps; }

 private:
  options options_;
  URBG generator_;
  detail::kubernetes_state state_{};
};

kubernetes_backoff(const kubernetes_backoff_options&) -> kubernetes_backoff<splitmix64>;
template <class URBG>
kubernetes_backoff(const kubernetes_backoff_options&, URBG) -> kubernetes_backoff<URBG>;

/// Stops where wait.ExponentialBackoff gives up with ErrWaitTimeout for the same Backoff: after `steps` checks, or
/// after the check whose Step() hit the cap (Kubernetes then sleeps that step's delay before returning; pollster
/// ends at once). Jitter does not change when that is. The outcome says exhausted, stop_reason::attempts.
/// Test: "kubernetes_backoff_limit stops where wait.ExponentialBackoff returns ErrWaitTimeout".
class kubernetes_backoff_limit : public detail::stop_rule_base<kubernetes_backoff_limit> {
 public:
  explicit kubernetes_backoff_limit(const kubernetes_backoff_options& o) : options_(o) {
    if (o.steps < 1) {
      // ExponentialBackoff's loop `for backoff.Steps > 0` would not check at all; pollster always checks once.
      detail::throw_invalid("kubernetes_backoff_limit", "steps", ">= 1 (wait.ExponentialBackoff checks nothing "
                            "with Steps 0)", std::to_string(o.steps));
    }
    (void)kubernetes_backoff<splitmix64>{o};  // the same parameter checks as the schedule
    reset();
  }
  stop_reason check(const stop_context& c) const noexcept {
    // The state before check n = c.attempts, kept from the last call (the poller asks once per check).
    const std::uint64_t n = c.attempts == 0 ? 1 : c.attempts;
    if (n < checked_) reset();
    // Steps only fall, and without them the state no longer changes: at most `steps` iterations, whatever n is.
    while (checked_ < n && before_.steps >= 1) {
      before_ = detail::kubernetes_grow(before_, options_);
      ++checked_;
    }
    checked_ = n;
    if (before_.steps <= 1) return stop_reason::attempts;                       // `if backoff.Steps == 1 { break }`
    if (detail::kubernetes_grow(before_, options_).steps == 0) return stop_reason::attempts;  // Step() hit the cap
    return stop_reason::none;
  }
  duration time_left(duration) const noexcept { return duration::max(); }
  void reset() const noexcept {
    before_ = {options_.initial.count(), options_.steps};
    checked_ = 1;
  }
  const kubernetes_backoff_options& parameters() const noexcept { return options_; }

 private:
  kubernetes_backoff_options options_;
  // A cache of the Backoff's state before check `checked_`; mutable because check() is const (it is logically).
  mutable detail::kubernetes_state before_{};
  mutable std::uint64_t checked_ = 1;
};

// ---------------------------------------------------------------------------------------------------------------
// google-cloud-cpp

/// Named parameters of `google_cloud_backoff`: ExponentialBackoffPolicy's five-argument constructor.
struct google_cloud_backoff_options {
  duration minimum_delay = duration::zero();
  duration initial_delay_upper_bound = std::chrono::seconds(1);
  duration maximum_delay = std::chrono::minutes(5);
  double scaling_lower_bound = 2.0;  ///< >= 1
  double scaling_upper_bound = 2.0;  ///< > 1, >= scaling_lower_bound
};

/// google-cloud-cpp's ExponentialBackoffPolicy, which is always jittered (google/cloud/internal/backoff_policy.cc
/// of the v2 releases with the five-argument constructor): each delay is U[start, end) in double microseconds,
/// truncated to whole milliseconds; start grows by the lower scaling, end by the upper, end is capped at the
/// maximum, and once start reaches maximum / upper scaling it is reset to max(minimum, maximum / upper scaling).
/// The three-argument form (initial, maximum, scaling) is (initial, initial * scaling, maximum, scaling, scaling):
/// with scaling 2 the delays are U[d, 2d) and, at the top, U[maximum / 2, maximum).
/// Test: "google-cloud-cpp ExponentialBackoffPolicy: each delay in its range, truncated to milliseconds".
template <class URBG = splitmix64>
class google_cloud_backoff : public detail::schedule_base<google_cloud_backoff<URBG>> {
 public:
  using options = google_cloud_backoff_options;

  explicit google_cloud_backoff(const options& o, URBG generator = URBG{})
      : options_(o), generator_(std::move(generator)), initial_end_us_(detail::to_double_ns(o.initial_delay_upper_bound) / 1000.0) {
    validate();
    reset();
  }
  /// ExponentialBackoffPolicy(initial_delay, maximum_delay, scaling).
  google_cloud_backoff(duration initial_delay, duration maximum_delay, double scaling, URBG generator = URBG{})
      : options_{initial_delay, initial_delay, maximum_delay, scaling, scaling}, generator_(std::move(generator)) {
    if (!std::isfinite(scaling) || scaling <= 1.0) {
      detail::throw_invalid("google_cloud_backoff", "scaling", "finite and > 1", detail::number_text(scaling));
    }
    // google-cloud-cpp: `initial_delay * scaling`, in double, before any truncation.
    initial_end_us_ = detail::to_double_ns(initial_delay) / 1000.0 * scaling;
    options_.initial_delay_upper_bound = detail::from_double_ns(initial_end_us_ * 1000.0);
    detail::require_positive("google_cloud_backoff", "initial_delay", initial_delay);
    validate();
    reset();
  }

  duration next() {
    const double maximum = detail::to_double_ns(options_.maximum_delay) / 1000.0;
    if (start_us_ >= maximum / options_.scaling_upper_bound) {
      start_us_ = std::max(detail::to_double_ns(options_.minimum_delay) / 1000.0, maximum / options_.scaling_upper_bound);
    }
    end_us_ = std::min(end_us_, maximum);
    // std::uniform_real_distribution<double>(start, end): canonical * (end - start) + start.
    const double delay_us = detail::uniform01(generator_) * (end_us_ - start_us_) + start_us_;
    start_us_ *= options_.scaling_lower_bound;
    end_us_ *= options_.scaling_upper_bound;
    // duration_cast<milliseconds>(duration<double, micro>): count / 1000.0, truncated.
    return detail::from_units(detail::truncate_saturating(delay_us / 1000.0), 1000000);
  }
  void reset() noexcept {
    start_us_ = detail::to_double_ns(options_.minimum_delay) / 1000.0;
    end_us_ = initial_end_us_;
  }
  std::optional<duration> plateau() const noexcept { return std::nullopt; }
  void reseed(std::uint64_t seed) { generator_.seed(seed); }
  const options& parameters() const noexcept { return options_; }

 private:
  void validate() const {
    const options& o = options_;
    if (o.minimum_delay < duration::zero()) {
      detail::throw_invalid("google_cloud_backoff", "minimum_delay", ">= 0", detail::duration_text(o.minimum_delay));
    }
    detail::require_positive("google_cloud_backoff", "initial_delay_upper_bound", o.initial_delay_upper_bound);
    if (o.initial_delay_upper_bound < o.minimum_delay) {
      detail::throw_invalid("google_cloud_backoff", "initial_delay_upper_bound", ">= minimum_delay (" +
                            detail::duration_text(o.minimum_delay) + ")", detail::duration_text(o.initial_delay_upper_bound));
    }
    // google-cloud-cpp does not check this one; with maximum < minimum its uniform distribution has low > high.
    if (o.maximum_delay < o.minimum_delay || o.maximum_delay <= duration::zero()) {
      detail::throw_invalid("google_cloud_backoff", "maximum_delay", "> 0 and >= minimum_delay (" +
                            detail::duration_text(o.minimum_delay) + ")", detail::duration_text(o.maximum_delay));
    }
    if (!std::isfinite(o.scaling_lower_bound) || o.scaling_lower_bound < 1.0) {
      detail::throw_invalid("google_cloud_backoff", "scaling_lower_bound", "finite and >= 1",
                            detail::number_text(o.scaling_lower_bound));
    }
    if (!std::isfinite(o.scaling_upper_bound) || o.scaling_upper_bound <= 1.0) {
      detail::throw_invalid("google_cloud_backoff", "scaling_upper_bound", "finite and > 1",
                            detail::number_text(o.scaling_upper_bound));
    }
    if (o.scaling_lower_bound > o.scaling_upper_bound) {
      detail::throw_invalid("google_cloud_backoff", "scaling_lower_bound", "<= scaling_upper_bound (" +
                            detail::number_text(o.scaling_upper_bound) + ")", detail::number_text(o.scaling_lower_bound));
    }
  }

  options options_;
  URBG generator_;
  double initial_end_us_ = 0;
  double start_us_ = 0;
  double end_us_ = 0;
};

google_cloud_backoff(const google_cloud_backoff_options&) -> google_cloud_backoff<splitmix64>;
template <class URBG>
google_cloud_backoff(const google_cloud_backoff_options&, URBG) -> google_cloud_backoff<URBG>;
google_cloud_backoff(duration, duration, double) -> google_cloud_backoff<splitmix64>;
template <class URBG>
google_cloud_backoff(duration, duration, double, URBG) -> google_cloud_backoff<URBG>;

// ---------------------------------------------------------------------------------------------------------------
// Presets

/// Schedules that people already know, by name. Each comment names its reference and the test that proves it.
namespace presets {
/// OpenStack Heat's improve-api-polling blueprint: 1 s x 1.1, capped at 20 s (52 polls for 10 minutes).
/// Tests: "plan_for reproduces the Heat blueprint table", "geometric schedule plateaus at exactly its cap".
inline geometric heat() { return geometric{std::chrono::seconds(1), 1.1, std::chrono::seconds(20)}; }

/// google-cloud-cpp's long-running-operation polling: ExponentialBackoffPolicy(1s, 5min, 2.0) in the generated
/// connections' default options (google-cloud-cpp v2), which is jittered: U[1, 2) s, U[2, 4) s, ..., U[150, 300) s, in whole ms.
/// Test: "google-cloud-cpp ExponentialBackoffPolicy: each delay in its range, truncated to milliseconds".
inline google_cloud_backoff<splitmix64> google_cloud(splitmix64 generator = splitmix64{}) {
  return google_cloud_backoff<splitmix64>{std::chrono::seconds(1), std::chrono::minutes(5), 2.0, generator};
}

/// Kubernetes (k8s.io/apimachinery v0.36) `wait.Backoff{Duration: 1s, Factor: 2, Steps: 2, Cap: 3s}` without
/// jitter: 1, 2, 3, 3, ... (any
/// Steps >= 2 gives the same; with Steps 0, as DESIGN.md first wrote it, Kubernetes gives 1, 1, 1, ...).
/// Test: "Kubernetes wait.Backoff{1s, x2, cap 3s} needs Steps >= 2, and the reflector's relist backoff".
inline kubernetes_backoff<splitmix64> kubernetes_example() {
  kubernetes_backoff_options o;
  o.initial = std::chrono::seconds(1);
  o.factor = 2.0;
  o.steps = 2;
  o.cap = std::chrono::seconds(3);
  return kubernetes_backoff<splitmix64>{o};
}

/// client-go's retry.DefaultBackoff, `wait.Backoff{Steps: 4, Duration: 10ms, Factor: 5.0, Jitter: 0.1}` (k8s.io/
/// client-go util/retry/util.go, unchanged for years): "for a client attempting an unrelated modification to a resource under active management".
/// With kubernetes_backoff_limit{presets::kubernetes_default_backoff().parameters()} it makes 4 checks, as
/// retry.RetryOnConflict does. Test: "client-go's retry.DefaultBackoff and retry.DefaultRetry".
inline kubernetes_backoff<splitmix64> kubernetes_default_backoff(splitmix64 generator = splitmix64{}) {
  kubernetes_backoff_options o;
  o.initial = std::chrono::milliseconds(10);
  o.factor = 5.0;
  o.jitter = 0.1;
  o.steps = 4;
  return kubernetes_backoff<splitmix64>{o, generator};
}

/// client-go's retry.DefaultRetry, `wait.Backoff{Steps: 5, Duration: 10ms, Factor: 1.0, Jitter: 0.1}`: 5 checks
/// about 10 ms apart. Test: "client-go's retry.DefaultBackoff and retry.DefaultRetry".
inline kubernetes_backoff<splitmix64> kubernetes_default_retry(splitmix64 generator = splitmix64{}) {
  kubernetes_backoff_options o;
  o.initial = std::chrono::milliseconds(10);
  o.factor = 1.0;
  o.jitter = 0.1;
  o.steps = 5;
  return kubernetes_backoff<splitmix64>{o, generator};
}

/// gRPC connection backoff (1 s x 1.6, capped at 120 s, +-20 % jitter after the cap, up to 144 s), computed as gRPC
/// core computes it: see grpc_backoff. Test: "gRPC backoff matches gRPC core's arithmetic for fixed uniform draws".
inline grpc_backoff<splitmix64> grpc_connect(splitmix64 generator = splitmix64{}) {
  return grpc_backoff<splitmix64>{grpc_backoff_options{}, generator};
}

/// AWS SDK for C++'s DefaultRetryStrategy (aws-sdk-cpp 1.11, src/aws-cpp-sdk-core/source/client/
/// DefaultRetryStrategy.cpp; scale factor 25 ms): CalculateDelayBeforeNextRetry is 0 for the first
/// retry, then (1 << retries) * 25 ms: 0, 50, 100, 200, ... ms, uncapped (pollster saturates where the SDK's shift
/// would overflow). Its 10-retry limit is after_attempts{11}. Test: "AWS SDK C++ retry strategies".
inline immediate_first<geometric> aws_default_retry() {
  return immediate_first<geometric>{geometric{std::chrono::milliseconds(25), 2.0, duration::max()}};
}

/// AWS SDK for C++'s StandardRetryStrategy (aws-sdk-cpp 1.11, RetryStrategy.cpp at aws/aws-sdk-cpp commit f7972a01):
/// min(rand() % 1000 * 2^min(retries, 15), 20000) ms, full jitter
/// capped AFTER the draw (many late delays sit at exactly 20 s). pollster draws U[0, 1000) ms x 2^retries
/// continuously where the SDK draws whole milliseconds 0..999, and keeps doubling past 2^15 (where every draw but
/// 0 ms already gives 20 s). Its 3-attempt default is after_attempts{3}. Test: "AWS SDK C++ retry strategies".
inline exponential<splitmix64> aws_standard_retry(splitmix64 generator = splitmix64{}) {
  exponential_options o;
  o.base = std::chrono::seconds(1);
  o.factor = 2.0;
  o.cap = std::chrono::seconds(20);
  o.jitter = jitter::full;
  o.cap_on = cap_on::delay;
  return exponential<splitmix64>{o, generator};
}
}  // namespace presets

/// Readable text for logs and the fmt integration.
template <class URBG>
std::string to_string(const grpc_backoff<URBG>& s) {
  const grpc_backoff_options& o = s.parameters();
  std::string text = "grpc_backoff(initial " + to_string(o.initial_backoff) + ", multiplier " +
                     detail::number_text(o.multiplier) + ", jitter " + detail::number_text(o.jitter) + ", max " +
                     to_string(o.max_backoff);
  if (!o.jitter_first) text += ", first unjittered";
  return text + ")";
}
template <class URBG>
std::string to_string(const kubernetes_backoff<URBG>& s) {
  const kubernetes_backoff_options& o = s.parameters();
  return "kubernetes_backoff(duration " + to_string(o.initial) + ", factor " + detail::number_text(o.factor) +
         ", jitter " + detail::number_text(o.jitter) + ", steps " + std::to_string(o.steps) + ", cap " +
         to_string(o.cap) + ")";
}
template <class URBG>
std::string to_string(const google_cloud_backoff<URBG>& s) {
  const google_cloud_backoff_options& o = s.parameters();
  return "google_cloud_backoff(minimum " + to_string(o.minimum_delay) + ", initial upper bound " +
         to_string(o.initial_delay_upper_bound) + ", maximum " + to_string(o.maximum_delay) + ", scaling " +
         detail::number_text(o.scaling_lower_bound) + " to " + detail::number_text(o.scaling_upper_bound) + ")";
}
inline std::string to_string(const kubernetes_backoff_limit& r) {
  return "until wait.ExponentialBackoff gives up (steps " + std::to_string(r.parameters().steps) + ")";
}

POLLSTER_NAMESPACE_END
