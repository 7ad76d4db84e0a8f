// libFuzzer target for pollster's schedules, presets and stop rules (schedule.hpp, presets.hpp, plan.hpp, stop.hpp):
// the bytes choose a kind and its parameters from raw bits (so NaN, +-inf, subnormals, duration::min()/max() and huge
// counts come up) and a number of delays. A constructor either throws std::invalid_argument (anything else aborts)
// or gives a schedule whose every delay lies in the bounds its documentation states; stop rules answer for any
// context; plan_for either plans or refuses. UBSan must stay silent (no overflow anywhere).
//
// Build: cmake -DPOLLSTER_BUILD_FUZZERS=ON with clang; run: ./schedule_fuzz -max_total_time=30
#include <pollster/plan.hpp>
#include <pollster/presets.hpp>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>  // max, min
#include <cmath>      // isfinite
#include <cstddef>    // size_t
#include <cstdint>    // int64_t, uint64_t, uint8_t
#include <cstdio>     // fprintf
#include <cstdlib>    // abort
#include <limits>     // numeric_limits
#include <stdexcept>  // invalid_argument

namespace {

using pollster::duration;

[[noreturn]] void fail(const char* what, duration d, duration low, duration high) {
  std::fprintf(stderr, "schedule_fuzz: %s gave %lld ns, outside [%lld, %lld]\n", what, static_cast<long long>(d.count()),
               static_cast<long long>(low.count()), static_cast<long long>(high.count()));
  std::abort();
}

/// A duration from the bytes: often a special value, otherwise any int64 of nanoseconds or a plausible size.
duration any_duration(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: return duration::max();
    case 1: return duration::min();
    case 2: return duration::zero();
    case 3: return duration{1};
    case 4: return duration{in.ConsumeIntegral<std::int64_t>()};
    case 5: return std::chrono::milliseconds(in.ConsumeIntegralInRange<std::int64_t>(-10, 1000000));
    default: return std::chrono::seconds(in.ConsumeIntegralInRange<std::int64_t>(-10, 100000));
  }
}

/// A double from the bytes: NaN, infinities, subnormals, the edges, or any bit pattern.
double any_double(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 9)) {
    case 0: return std::numeric_limits<double>::quiet_NaN();
    case 1: return std::numeric_limits<double>::infinity();
    case 2: return -std::numeric_limits<double>::infinity();
    case 3: return std::numeric_limits<double>::denorm_min();
    case 4: return std::numeric_limits<double>::max();
    case 5: return 1.0;
    case 6: {
      const std::uint64_t bits = in.ConsumeIntegral<std::uint64_t>();
      double d;
      static_assert(sizeof d == sizeof bits);
      __builtin_memcpy(&d, &bits, sizeof d);
      return d;
    }
    default: return in.ConsumeFloatingPointInRange<double>(-1.0, 10.0);
  }
}

std::uint64_t any_count(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return std::numeric_limits<std::uint64_t>::max();
    case 1: return 0;
    default: return in.ConsumeIntegralInRange<std::uint64_t>(0, 100);
  }
}

/// d * factor, saturating, for bounds.
duration scaled(duration d, double factor) { return pollster::detail::from_double_ns(pollster::detail::to_double_ns(d) * factor); }

template <class Schedule>
void check_delays(const char* what, Schedule& s, std::size_t n, duration low, duration high) {
  for (std::size_t i = 0; i < n; ++i) {
    const duration d = s.next();
    if (d < low || d > high) fail(what, d, low, high);
  }
  s.reset();
  (void)s.plateau();
  (void)s.preview(3);
}

/// Plans a built schedule briefly (small limits, so a jittered or tiny-step schedule is refused rather than slow).
template <class Schedule>
void plan_briefly(const Schedule& s, FuzzedDataProvider& in) {
  pollster::plan_options o;
  o.max_polls = 200;
  o.runs = 3;
  o.immediate_first_poll = in.ConsumeBool();
  try {
    const pollster::plan p = pollster::plan_for(s, any_duration(in), o);
    if (p.noticed_at < p.operation_time && p.noticed_at != duration::max()) std::abort();
    if (p.checks < p.polls) std::abort();
  } catch (const std::invalid_argument&) {
  }
}

void fuzz_schedule(FuzzedDataProvider& in) {
  const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 300);
  switch (in.ConsumeIntegralInRange<int>(0, 12)) {
    case 0: {
      pollster::constant s{any_duration(in)};
      check_delays("constant", s, n, s.interval(), s.interval());
      plan_briefly(s, in);
      break;
    }
    case 1: {
      pollster::geometric::options o;
      o.start = any_duration(in);
      o.factor = any_double(in);
      o.cap = any_duration(in);
      o.floor = any_duration(in);
      pollster::geometric s{o};
      check_delays("geometric", s, n, o.floor, o.cap);
      plan_briefly(s, in);
      break;
    }
    case 2: {
      pollster::exponential_options o;
      o.base = any_duration(in);
      o.factor = any_double(in);
      o.cap = any_duration(in);
      o.floor = any_duration(in);
      o.jitter = static_cast<pollster::jitter>(in.ConsumeIntegralInRange<int>(-1, 6));
      o.jitter_fraction = any_double(in);
      o.jitter_amount = any_duration(in);
      o.cap_on = static_cast<pollster::cap_on>(in.ConsumeIntegralInRange<int>(-1, 3));
      pollster::exponential s{o, pollster::splitmix64{in.ConsumeIntegral<std::uint64_t>()}};
      // cap_on::envelope lets the jitter pass the cap: by at most the fraction (proportional) or the amount (additive).
      duration high = o.cap;
      if (o.cap_on == pollster::cap_on::envelope) {
        high = o.jitter == pollster::jitter::additive ? pollster::detail::sat_add(o.cap, o.jitter_amount)
                                                      : std::max(o.cap, scaled(o.cap, 1 + o.jitter_fraction));
        high = pollster::detail::sat_add(high, duration{1});
      }
      check_delays("exponential", s, n, o.floor, high);
      plan_briefly(s, in);
      break;
    }
    case 3: {
      pollster::decorrelated_jitter_v2_options o;
      o.median_first_delay = any_duration(in);
      o.cap = any_duration(in);
      o.floor = any_duration(in);
      o.fast_first = in.ConsumeBool();
      pollster::decorrelated_jitter_v2 s{o, pollster::splitmix64{in.ConsumeIntegral<std::uint64_t>()}};
      check_delays("decorrelated_jitter_v2", s, n, o.floor, o.cap);
      plan_briefly(s, in);
      break;
    }
    case 4: {
      const duration start = any_duration(in), increment = any_duration(in), cap = any_duration(in);
      pollster::incrementing s{start, increment, cap};
      check_delays("incrementing", s, n, start, cap);
      plan_briefly(s, in);
      break;
    }
    case 5: {
      const duration low = any_duration(in), high = any_duration(in);
      auto s = pollster::constant{std::max(duration{1}, high)} + pollster::random_between{low, high};
      check_delays("constant + random_between", s, n, pollster::detail::sat_add(std::max(duration{1}, high), low),
                   pollster::detail::sat_add(std::max(duration{1}, high), high));
      plan_briefly(s, in);
      break;
    }
    case 6: {
      const std::uint64_t count = any_count(in);
      const duration a = any_duration(in), b = any_duration(in);
      pollster::chain_by_attempt s{pollster::constant{a}, count, pollster::incrementing{b, b, duration::max()}};
      check_delays("chain_by_attempt", s, n, std::min(a, b), duration::max());
      pollster::chain c{pollster::constant{a}, count, pollster::constant{b}};
      check_delays("chain", c, n, std::min(a, b), std::max(a, b));
      plan_briefly(c, in);
      break;
    }
    case 7: {
      pollster::immediate_first s{pollster::constant{any_duration(in)}};
      check_delays("immediate_first", s, n, duration::zero(), s.schedule().interval());
      break;
    }
    case 8: {
      pollster::grpc_backoff_options o;
      o.initial_backoff = any_duration(in);
      o.multiplier = any_double(in);
      o.jitter = any_double(in);
      o.max_backoff = any_duration(in);
      o.jitter_first = in.ConsumeBool();
      pollster::grpc_backoff s{o, pollster::splitmix64{in.ConsumeIntegral<std::uint64_t>()}};
      // gRPC jitters after the cap: [initial (1 - jitter), max (1 + jitter)], to the millisecond.
      check_delays("grpc_backoff", s, n, std::max(duration::zero(), scaled(o.initial_backoff, 1 - o.jitter) - std::chrono::milliseconds(1)),
                   pollster::detail::sat_add(scaled(o.max_backoff, 1 + o.jitter), std::chrono::milliseconds(1)));
      plan_briefly(s, in);
      break;
    }
    case 9: {
      pollster::kubernetes_backoff_options o;
      o.initial = any_duration(in);
      o.factor = any_double(in);
      o.jitter = any_double(in);
      o.steps = in.ConsumeIntegral<std::int64_t>() % 200;
      o.cap = any_duration(in);
      pollster::kubernetes_backoff s{o, pollster::splitmix64{in.ConsumeIntegral<std::uint64_t>()}};
      // Upward jitter after the cap: [0, max(initial, cap) (1 + jitter)]; without a cap anything up to max.
      const duration high = o.cap > duration::zero()
                                ? pollster::detail::sat_add(std::max(scaled(o.cap, 1 + o.jitter), o.cap), duration{1})
                                : duration::max();
      check_delays("kubernetes_backoff", s, n, duration::zero(), high);
      plan_briefly(s, in);
      try {
        const pollster::kubernetes_backoff_limit limit{o};
        for (std::uint64_t a = 1; a <= n; ++a) (void)limit.check({a, duration::zero()});
        (void)limit.check({any_count(in), any_duration(in)});
      } catch (const std::invalid_argument&) {
      }
      break;
    }
    case 10: {
      pollster::google_cloud_backoff_options o;
      o.minimum_delay = any_duration(in);
      o.initial_delay_upper_bound = any_duration(in);
      o.maximum_delay = any_duration(in);
      o.scaling_lower_bound = any_double(in);
      o.scaling_upper_bound = any_double(in);
      pollster::google_cloud_backoff s{o, pollster::splitmix64{in.ConsumeIntegral<std::uint64_t>()}};
      check_delays("google_cloud_backoff", s, n, duration::zero(), o.maximum_delay);
      plan_briefly(s, in);
      break;
    }
    case 11: {
      const duration initial = any_duration(in), maximum = any_duration(in);
      pollster::google_cloud_backoff s{initial, maximum, any_double(in),
                                       pollster::splitmix64{in.ConsumeIntegral<std::uint64_t>()}};
      check_delays("google_cloud_backoff (3)", s, n, duration::zero(), maximum);
      break;
    }
    default: {
      auto s = pollster::presets::aws_default_retry();
      check_delays("aws_default_retry", s, n, duration::zero(), duration::max());
      auto standard = pollster::presets::aws_standard_retry(pollster::splitmix64{in.ConsumeIntegral<std::uint64_t>()});
      check_delays("aws_standard_retry", standard, n, duration::zero(), std::chrono::seconds(20));
      break;
    }
  }
}

void check_reason(pollster::stop_reason r) {
  if (r < pollster::stop_reason::none || r > pollster::stop_reason::custom) std::abort();
}

template <class Rule>
void ask(const Rule& rule, FuzzedDataProvider& in) {
  for (int i = 0; i < 8; ++i) {
    const pollster::stop_context c{any_count(in), any_duration(in)};
    check_reason(rule.check(c));
    if (rule.time_left(c.elapsed) < duration::zero()) std::abort();
    check_reason(pollster::detail::verdict_with_delay(rule, c, any_duration(in)));
  }
}

void fuzz_stop_rule(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0: ask(pollster::after_attempts{any_count(in)} | pollster::before_elapsed{any_duration(in)}, in); break;
    case 1: ask(pollster::after_elapsed{any_duration(in)} & pollster::before_elapsed{any_duration(in)}, in); break;
    case 2: {
      const pollster::before_deadline rule{any_duration(in)};
      ask(rule, in);
      for (int i = 0; i < 8; ++i) {
        const duration elapsed = any_duration(in);
        const duration left = rule.time_left(elapsed);
        if (left > rule.budget() && elapsed >= duration::zero()) std::abort();
      }
      break;
    }
    case 3: ask(pollster::before_elapsed{any_duration(in)} | pollster::never{}, in); break;
    default: ask(pollster::before_deadline{any_duration(in)} & pollster::after_attempts{any_count(in)}, in); break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  try {
    if (in.ConsumeBool()) {
      fuzz_schedule(in);
    } else {
      fuzz_stop_rule(in);
    }
  } catch (const std::invalid_argument&) {
    // refused when built, with a message: the documented answer to bad parameters
  }
  return 0;
}
