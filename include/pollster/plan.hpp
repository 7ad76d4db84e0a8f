// SPDX-License-Identifier: MIT
#pragma once

// plan_for: what a schedule costs and buys for an operation that completes at a known time, simulated on a copy
// without a clock. A jittered schedule (one with `reseed`) is simulated over many seeded runs and reported as a
// distribution: each figure is its own median, with the spread of polls and of lateness beside it.

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"
#include "schedule.hpp"

#include <algorithm>  // max, nth_element, sort
#include <cstddef>    // size_t
#include <cstdint>    // uint64_t
#include <limits>     // numeric_limits
#include <string>     // string, to_string
#include <vector>     // vector

POLLSTER_NAMESPACE_BEGIN

/// What a schedule costs and buys for an operation that completes at a known time. For a jittered schedule
/// every figure is the median over `runs` seeded runs (each figure its own median), and the spread fields say how
/// far runs differ; for a deterministic one runs is 1 and the spread fields equal the single run's figures.
struct plan {
  duration operation_time{};         ///< when the operation completes (T)
  std::uint64_t polls = 0;           ///< checks made after a sleep, until one lands at or after T
  std::uint64_t checks = 0;          ///< all checks, counting the immediate first one when there is one
  duration noticed_at{};             ///< when the first check at or after T happens
  duration detection_delay{};        ///< noticed_at - T: how late completion is seen
  duration worst_detection_delay{};  ///< the longest interval slept: the latest any completion can be seen
  duration mean_detection_delay{};   ///< average lateness for completion uniform over [0, noticed_at]
  std::uint64_t runs = 1;            ///< seeded runs simulated (1 for a deterministic schedule)
  std::uint64_t fewest_polls = 0;    ///< over the runs
  std::uint64_t most_polls = 0;      ///< over the runs
  duration detection_delay_p5{};     ///< 5th percentile of the lateness over the runs (nearest rank)
  duration detection_delay_p95{};    ///< 95th percentile of the lateness over the runs (nearest rank)
};

/// How `plan_for` simulates.
struct plan_options {
  bool immediate_first_poll = true;     ///< the default: check at t = 0, then sleep
  std::uint64_t max_polls = 100000000;  ///< refuse to simulate past this in one run (a jitter cannot be jumped)
  std::uint64_t runs = 1001;            ///< seeded runs for a jittered schedule (odd: the median is one run's)
  std::uint64_t first_seed = 1;         ///< run i reseeds the schedule's copy with first_seed + i
};

namespace detail {

/// n + 1 when `add`, saturating.
constexpr std::uint64_t sat_inc(std::uint64_t n, bool add) noexcept {
  return add && n != std::numeric_limits<std::uint64_t>::max() ? n + 1 : n;
}

/// One run of plan_for on `copy` (consumed). Plateaus are jumped arithmetically, so even `duration::max()` costs a
/// handful of steps for a capped schedule.
template <class Schedule>
plan simulate_plan(Schedule& copy, duration operation_time, const plan_options& options) {
  plan result;
  result.operation_time = operation_time;
  duration now = duration::zero();
  double squares = 0;  // sum of interval^2, for the mean detection delay
  auto sleep = [&](duration interval, std::uint64_t times) {
    now = sat_add(now, sat_mul(interval, times));
    result.polls = result.polls > std::numeric_limits<std::uint64_t>::max() - times
                       ? std::numeric_limits<std::uint64_t>::max()
                       : result.polls + times;
    result.worst_detection_delay = std::max(result.worst_detection_delay, interval);
    squares += to_double_ns(interval) * to_double_ns(interval) * static_cast<double>(times);
  };
  // With an immediate first poll, an operation that is already done at T = 0 is seen without sleeping.
  const bool done_at_start = options.immediate_first_poll && operation_time == duration::zero();
  while (!done_at_start && (now < operation_time || result.polls == 0) && now != duration::max()) {
    if (auto flat = copy.plateau(); flat && *flat > duration::zero()) {
      const duration left = sat_sub(operation_time, now);
      const std::uint64_t times =
          left <= duration::zero() ? 1 : static_cast<std::uint64_t>((left.count() - 1) / flat->count() + 1);
      sleep(*flat, times);
      break;
    }
    if (result.polls >= options.max_polls) {
      throw_invalid("plan_for", "operation_time", "reachable within max_polls (" + std::to_string(options.max_polls) +
                    ")", duration_text(operation_time));
    }
    sleep(std::max(duration::zero(), duration{copy.next()}), 1);
  }
  result.checks = sat_inc(result.polls, options.immediate_first_poll);
  result.noticed_at = now;
  result.detection_delay = sat_sub(now, operation_time);
  if (now > duration::zero()) result.mean_detection_delay = from_double_ns(squares / (2 * to_double_ns(now)));
  result.fewest_polls = result.most_polls = result.polls;
  result.detection_delay_p5 = result.detection_delay_p95 = result.detection_delay;
  return result;
}

/// The nearest-rank percentile (p in (0, 100]) of `values`, which it reorders.
template <class T>
T percentile(std::vector<T>& values, std::size_t p) {
  std::size_t rank = (values.size() * p + 99) / 100;  // ceil(n p / 100), at least 1
  if (rank == 0) rank = 1;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(rank - 1), values.end());
  return values[rank - 1];
}

}  // namespace detail

/// Simulates `schedule` (on copies) against an operation that completes at `operation_time`. A schedule with
/// `reseed` is jittered: it is simulated `options.runs` times, run i reseeded with `options.first_seed + i`, and
/// the plan reports medians and the spread (google-cloud-cpp's always-jittered backoff covers a 10-minute
/// operation with 9 or 10 polls, not with one sample's count).
template <class Schedule>
plan plan_for(const Schedule& schedule, duration operation_time, const plan_options& options = {}) {
  if (operation_time < duration::zero()) {
    detail::throw_invalid("plan_for", "operation_time", ">= 0", detail::duration_text(operation_time));
  }
  if constexpr (!detail::is_reseedable<Schedule>::value) {
    Schedule copy = schedule;
    return detail::simulate_plan(copy, operation_time, options);
  } else {
    if (!detail::is_jittered(schedule)) {
      Schedule copy = schedule;
      return detail::simulate_plan(copy, operation_time, options);
    }
    if (options.runs == 0) detail::throw_invalid("plan_for", "runs", ">= 1", "0");
    std::vector<std::uint64_t> polls;
    std::vector<duration> noticed, late, worst, mean;
    for (std::uint64_t i = 0; i < options.runs; ++i) {
      Schedule copy = schedule;
      copy.reset();
      copy.reseed(options.first_seed + i);
      const plan one = detail::simulate_plan(copy, operation_time, options);
      polls.push_back(one.polls);
      noticed.push_back(one.noticed_at);
      late.push_back(one.detection_delay);
      worst.push_back(one.worst_detection_delay);
      mean.push_back(one.mean_detection_delay);
    }
    plan result;
    result.operation_time = operation_time;
    result.runs = options.runs;
    result.polls = detail::percentile(polls, 50);
    result.checks = detail::sat_inc(result.polls, options.immediate_first_poll);
    result.noticed_at = detail::percentile(noticed, 50);
    result.detection_delay = detail::percentile(late, 50);
    result.worst_detection_delay = detail::percentile(worst, 50);
    result.mean_detection_delay = detail::percentile(mean, 50);
    result.fewest_polls = *std::min_element(polls.begin(), polls.end());
    result.most_polls = *std::max_element(polls.begin(), polls.end());
    result.detection_delay_p5 = detail::percentile(late, 5);
    result.detection_delay_p95 = detail::percentile(late, 95);
    return result;
  }
}

/// "52 polls (53 checks) for 600s: noticed at 601.14s, 1.14s late; worst 20s, mean 8.42s" (times rounded to two
/// decimals of their unit: a plan is read by people). A jittered plan adds its spread: "10 polls (9 to 10 over 1001
/// runs) ... 97.25s late (5-95%: 8.1s to 248s) ...".
inline std::string to_string(const plan& p) {
  auto text = [](duration d) { return detail::duration_text(d, 2); };
  std::string polls = std::to_string(p.polls) + " polls (";
  if (p.runs > 1) {
    polls += std::to_string(p.fewest_polls) + " to " + std::to_string(p.most_polls) + " over " +
             std::to_string(p.runs) + " runs, ";
  }
  std::string late = text(p.detection_delay) + " late";
  if (p.runs > 1) late += " (5-95%: " + text(p.detection_delay_p5) + " to " + text(p.detection_delay_p95) + ")";
  return polls + std::to_string(p.checks) + " checks) for " + text(p.operation_time) + ": noticed at " +
         text(p.noticed_at) + ", " + late + "; worst " + text(p.worst_detection_delay) + ", mean " +
         text(p.mean_detection_delay);
}

POLLSTER_NAMESPACE_END
