// A small reference model of what a runner does with independent pollers of asynchronous checks, for random-operation
// tests: submit, nudge (in bursts), cancel, answers that arrive after a latency (or never), attempt timeouts, and
// time advancing. It knows nothing of the runner's structures: it replays the contract (DESIGN.md, poller.hpp) in the
// plainest way, in integer milliseconds of virtual time. Kept apart from the test so that other tests (several
// threads, allocation failures) can drive the same model.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace runner_model {

constexpr std::int64_t never = -1;

/// One poller as the model sees it: a constant schedule of `delay`, an attempt timeout, at most `max_attempts`
/// attempts; attempt n (from 1) answers after `latency[n - 1]` (the last repeats; `never`: no answer) with "done" if
/// n == done_at, else "pending".
struct poller {
  std::int64_t start = 0;
  std::int64_t delay = 1000;
  std::int64_t timeout = 2000;
  std::uint64_t max_attempts = 3;
  std::uint64_t done_at = 0;  // 0: never done
  std::vector<std::int64_t> latency{100};

  enum class phase { idle, flying, finished } state = phase::idle;
  std::int64_t due = 0;
  std::int64_t flight_start = 0;
  bool nudge_pending = false;
  // What the outcome must say.
  std::string cause = "running";
  std::uint64_t attempts = 0;
  std::uint32_t timeouts = 0;
  std::uint32_t nudges = 0;
  std::int64_t end = 0;
  std::vector<std::int64_t> starts;  // when each attempt began

  std::int64_t latency_of(std::uint64_t attempt) const {
    return latency[std::min<std::size_t>(static_cast<std::size_t>(attempt - 1), latency.size() - 1)];
  }
  /// When this poller's next event happens (max when none).
  std::int64_t next_event() const {
    if (state == phase::idle) return due;
    if (state == phase::flying) {
      const std::int64_t lat = latency_of(attempts);
      const std::int64_t answer = lat == never || lat >= timeout ? std::numeric_limits<std::int64_t>::max()
                                                                 : flight_start + lat;
      return std::min(answer, flight_start + timeout);
    }
    return std::numeric_limits<std::int64_t>::max();
  }
  void happen(std::int64_t t) {
    if (state == phase::idle) {
      ++attempts;
      starts.push_back(t);
      state = phase::flying;
      flight_start = t;
      return;
    }
    const std::int64_t lat = latency_of(attempts);
    const bool answered = lat != never && lat < timeout && t == flight_start + lat;
    if (answered && attempts == done_at) {
      finish("done", t);
      return;
    }
    if (!answered) ++timeouts;
    if (attempts >= max_attempts) {
      finish("exhausted", t);
      return;
    }
    state = phase::idle;
    due = nudge_pending ? t : t + delay;
    nudge_pending = false;
  }
  void nudge(std::int64_t t) {
    if (state == phase::finished) return;
    ++nudges;
    if (state == phase::flying) {
      nudge_pending = true;
    } else {
      due = std::min(due, t);
    }
  }
  void cancel(std::int64_t t) {
    if (state != phase::finished) finish("cancelled", t);
  }
  void finish(const char* why, std::int64_t t) {
    state = phase::finished;
    cause = why;
    end = t;
  }
};

/// Every poller of the fleet, advanced together (they share nothing, so the order of simultaneous events of
/// different pollers does not matter).
struct fleet {
  std::vector<poller> pollers;
  std::int64_t now = 0;

  void advance_to(std::int64_t t) {
    for (;;) {
      std::int64_t earliest = std::numeric_limits<std::int64_t>::max();
      for (const poller& p : pollers) earliest = std::min(earliest, p.next_event());
      if (earliest > t) break;
      for (poller& p : pollers) {
        if (p.next_event() == earliest) p.happen(earliest);
      }
    }
    now = t;
  }
};

}  // namespace runner_model
