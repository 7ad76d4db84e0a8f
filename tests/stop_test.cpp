#include "pollster_catch.hpp"

#include <pollster/poll.hpp>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pollster::stop_context;
using pollster::stop_reason;

TEST_CASE("after_attempts stops at the limit", "[stop]") {
  pollster::after_attempts three{3};
  CHECK(three.check({2, 0s}) == stop_reason::none);
  CHECK(three.check({3, 0s}) == stop_reason::attempts);
  CHECK(three.time_left(1h) == pollster::duration::max());
}

TEST_CASE("after_elapsed stops once the time is used", "[stop]") {
  pollster::after_elapsed minute{1min};
  CHECK(minute.check({100, 59s}) == stop_reason::none);
  CHECK(minute.check({1, 60s}) == stop_reason::elapsed);
}

TEST_CASE("before_deadline reports the time left and the deadline cause", "[stop]") {
  pollster::before_deadline quarter{15min};
  CHECK(quarter.time_left(0s) == 15min);
  CHECK(quarter.time_left(14min) == 1min);
  CHECK(quarter.time_left(20min) == 0s);
  CHECK(quarter.time_left(15min) == 0s);
  CHECK(quarter.check({1, 14min}) == stop_reason::none);
  CHECK(quarter.check({1, 15min}) == stop_reason::deadline);
  pollster::before_deadline far{pollster::duration::max()};
  CHECK(far.time_left(-1s) == pollster::duration::max());  // saturates, never wraps
}

TEST_CASE("never never stops", "[stop]") {
  CHECK(pollster::never{}.check({~0ULL, pollster::duration::max()}) == stop_reason::none);
}

TEST_CASE("stop rules combine with | and &", "[stop]") {
  auto either = pollster::after_attempts{5} | pollster::before_deadline{1min};
  CHECK(either.check({4, 30s}) == stop_reason::none);
  CHECK(either.check({5, 30s}) == stop_reason::attempts);
  CHECK(either.check({1, 1min}) == stop_reason::deadline);
  CHECK(either.time_left(10s) == 50s);

  auto both = pollster::after_attempts{5} & pollster::after_elapsed{1min};
  CHECK(both.check({5, 30s}) == stop_reason::none);
  CHECK(both.check({4, 2min}) == stop_reason::none);
  CHECK(both.check({5, 2min}) == stop_reason::attempts);

  auto three = pollster::after_attempts{10} | pollster::after_elapsed{1h} | pollster::before_deadline{2h};
  CHECK(three.check({1, 90min}) == stop_reason::elapsed);
  CHECK(three.time_left(1h) == 1h);

  auto custom = pollster::stop_when{[](const stop_context& c) { return c.attempts == 2; }} | pollster::never{};
  CHECK(custom.check({2, 0s}) == stop_reason::custom);
  CHECK(custom.check({3, 0s}) == stop_reason::none);
}

TEST_CASE("invalid stop rules are rejected naming the parameter", "[stop][errors]") {
  auto message = [](auto build) -> std::string {
    try {
      build();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(no exception)";
  };
  CHECK(message([] { pollster::after_attempts{0}; }) == "pollster::after_attempts: limit must be >= 1, got 0");
  CHECK(message([] { pollster::after_elapsed{0s}; }) == "pollster::after_elapsed: limit must be > 0, got 0s");
  CHECK(message([] { pollster::before_deadline{-5s}; }) == "pollster::before_deadline: budget must be >= 0, got -5s");
}

TEST_CASE("before_elapsed judges the next delay, not the attempt", "[stop][before_elapsed]") {
  pollster::before_elapsed ten{10s};
  CHECK(ten.check({100, 1h}) == stop_reason::none);  // it has nothing to say before the delay is known
  CHECK(ten.check_next_delay({3, 6s}, 3s) == stop_reason::none);
  CHECK(ten.check_next_delay({4, 9s}, 3s) == stop_reason::elapsed);
  CHECK(ten.check_next_delay({4, 7500ms}, 2500ms) == stop_reason::elapsed);  // tenacity: >=
  CHECK(ten.check_next_delay({1, pollster::duration::max()}, 1s) == stop_reason::elapsed);  // saturates
  CHECK_THROWS_WITH(pollster::before_elapsed{0s}, "pollster::before_elapsed: limit must be > 0, got 0s");
  static_assert(pollster::detail::sees_next_delay<pollster::before_elapsed>::value);
  static_assert(!pollster::detail::sees_next_delay<pollster::after_attempts>::value);
  static_assert(pollster::detail::sees_next_delay<decltype(pollster::after_attempts{3} | ten)>::value);
  static_assert(pollster::detail::sees_next_delay<decltype(ten & pollster::after_attempts{3})>::value);
  static_assert(!pollster::detail::sees_next_delay<decltype(pollster::after_attempts{3} | pollster::never{})>::value);
  // &: both must say stop once the delay is known; the rule without check_next_delay answers with check().
  const auto both = ten & pollster::after_attempts{3};
  CHECK(both.check({5, 9s}) == stop_reason::none);
  CHECK(both.check_next_delay({2, 9s}, 3s) == stop_reason::none);
  CHECK(both.check_next_delay({3, 9s}, 3s) == stop_reason::elapsed);
  CHECK(pollster::to_string(ten) == "before a sleep past 10s");
}

namespace {
using manual_clock = pollster::manual_clock;
using pollster::duration;

// The times of the checks of a run that never finishes, driven by poll_until (its fast loop: no hooks).
template <class Schedule, class Stop>
std::vector<duration> poll_until_times(Schedule schedule, Stop stop, pollster::outcome<int, int>* result = nullptr,
                                       const pollster::poll_options& options = {}) {
  manual_clock clock;
  std::vector<duration> at;
  auto check = [&](const pollster::poll_state& s) -> pollster::step<int, int> {
    at.push_back(s.elapsed);
    if (s.attempt == 100) return pollster::done(-1);  // a rule that fails to stop fails the test, never hangs it
    return pollster::pending();
  };
  auto out = pollster::poll_until(clock, check, std::move(schedule), std::move(stop), options);
  if (result != nullptr) *result = out;
  return at;
}

// The same through a poller stepped by hand (step() and plan_next(), the path of the runner and of every driver).
template <class Schedule, class Stop>
std::vector<duration> stepped_times(Schedule schedule, Stop stop, pollster::cause* why = nullptr,
                                    const pollster::poll_options& options = {}) {
  using tp = manual_clock::time_point;
  std::vector<duration> at;
  auto check = [&](const pollster::poll_state& s) -> pollster::step<int, int> {
    at.push_back(s.elapsed);
    if (s.attempt == 100) return pollster::done(-1);
    return pollster::pending();
  };
  auto p = pollster::make_poller(check, std::move(schedule), std::move(stop), tp{}, options);
  for (int guard = 0; !p.done() && guard < 1000; ++guard) p.step(p.next_due());
  if (why != nullptr) *why = p.outcome().cause;
  return at;
}

std::vector<duration> seconds(std::initializer_list<double> values) {
  std::vector<duration> out;
  for (const double v : values) out.push_back(std::chrono::duration_cast<duration>(std::chrono::duration<double>(v)));
  return out;
}
}  // namespace

// tenacity's own Retrying loop (jd/tenacity c650fb45, 9.1.4+) run with a fake clock and sleep, and an attempt that
// always fails, gave the times of its attempts in seconds.
TEST_CASE("before_elapsed stops where tenacity's stop_before_delay does, through poll_until and a stepped poller",
          "[stop][before_elapsed][tenacity]") {
  const pollster::geometric doubling{1s, 2.0, duration::max()};
  // stop_before_delay(10), wait_fixed(3): [0, 3, 6, 9]; stop_after_delay(10): one more sleep, [0, 3, 6, 9, 12].
  CHECK(poll_until_times(pollster::constant{3s}, pollster::before_elapsed{10s}) == seconds({0, 3, 6, 9}));
  CHECK(stepped_times(pollster::constant{3s}, pollster::before_elapsed{10s}) == seconds({0, 3, 6, 9}));
  CHECK(poll_until_times(pollster::constant{3s}, pollster::after_elapsed{10s}) == seconds({0, 3, 6, 9, 12}));
  // ...and pollster's before_deadline shortens the last sleep and checks once more, at the deadline.
  CHECK(poll_until_times(pollster::constant{3s}, pollster::before_deadline{10s}) == seconds({0, 3, 6, 9, 10}));
  // stop_before_delay(10), wait_fixed(2.5): [0, 2.5, 5, 7.5] (7.5 + 2.5 >= 10).
  CHECK(poll_until_times(pollster::constant{2500ms}, pollster::before_elapsed{10s}) == seconds({0, 2.5, 5, 7.5}));
  CHECK(stepped_times(pollster::constant{2500ms}, pollster::before_elapsed{10s}) == seconds({0, 2.5, 5, 7.5}));
  // stop_before_delay(60), wait_exponential(): [0, 1, 3, 7, 15, 31]; stop_after_delay(60): [..., 63].
  CHECK(poll_until_times(doubling, pollster::before_elapsed{60s}) == seconds({0, 1, 3, 7, 15, 31}));
  CHECK(stepped_times(doubling, pollster::before_elapsed{60s}) == seconds({0, 1, 3, 7, 15, 31}));
  CHECK(poll_until_times(doubling, pollster::after_elapsed{60s}) == seconds({0, 1, 3, 7, 15, 31, 63}));
  // stop_before_delay(60) | stop_after_attempt(4): [0, 1, 3, 7]; & : [0, 1, 3, 7, 15, 31].
  CHECK(poll_until_times(doubling, pollster::before_elapsed{60s} | pollster::after_attempts{4}) ==
        seconds({0, 1, 3, 7}));
  CHECK(stepped_times(doubling, pollster::before_elapsed{60s} | pollster::after_attempts{4}) == seconds({0, 1, 3, 7}));
  CHECK(poll_until_times(doubling, pollster::before_elapsed{60s} & pollster::after_attempts{4}) ==
        seconds({0, 1, 3, 7, 15, 31}));
  // stop_before_delay(100) & stop_after_attempt(9): [0, 1, 3, 7, 15, 31, 63, 127, 255].
  CHECK(poll_until_times(doubling, pollster::before_elapsed{100s} & pollster::after_attempts{9}) ==
        seconds({0, 1, 3, 7, 15, 31, 63, 127, 255}));
  CHECK(stepped_times(doubling, pollster::before_elapsed{100s} & pollster::after_attempts{9}) ==
        seconds({0, 1, 3, 7, 15, 31, 63, 127, 255}));
}

TEST_CASE("a run ended by before_elapsed is exhausted, reason elapsed, and keeps its account", "[stop][before_elapsed]") {
  pollster::outcome<int, int> result;
  (void)poll_until_times(pollster::constant{3s}, pollster::before_elapsed{10s}, &result);
  CHECK(result.cause == pollster::cause::exhausted);
  CHECK(result.stop == stop_reason::elapsed);
  CHECK(result.attempts == 4);
  CHECK(result.elapsed == 9s);  // it never slept past the limit
  pollster::cause why = pollster::cause::running;
  (void)stepped_times(pollster::constant{3s}, pollster::before_elapsed{10s}, &why);
  CHECK(why == pollster::cause::exhausted);
  // With wait_first, a first sleep that would pass the limit ends the run before any check.
  pollster::poll_options first;
  first.wait_first = true;
  CHECK(poll_until_times(pollster::constant{30s}, pollster::before_elapsed{10s}, &result, first).empty());
  CHECK(result.cause == pollster::cause::exhausted);
  CHECK(result.attempts == 0);
  CHECK(stepped_times(pollster::constant{30s}, pollster::before_elapsed{10s}, &why, first).empty());
  CHECK(poll_until_times(pollster::constant{3s}, pollster::before_elapsed{10s}, &result, first) == seconds({3, 6, 9}));
}

TEST_CASE("before_elapsed sees the delay after a server hint, and a hint past the limit ends the run", "[stop][before_elapsed]") {
  auto run = [](duration hint) {
    manual_clock clock;
    std::vector<duration> at;
    auto check = [&](const pollster::poll_state& s) -> pollster::step<int, int> {
      at.push_back(s.elapsed);
      if (s.attempt == 2) return pollster::pending(pollster::after(hint));  // Retry-After on the second response
      if (s.attempt == 100) return pollster::done(-1);
      return pollster::pending();
    };
    (void)pollster::poll_until(clock, check, pollster::constant{1s}, pollster::before_elapsed{10s});
    return at;
  };
  CHECK(run(9500ms) == seconds({0, 1}));  // 1 s + 9.5 s would pass 10 s: no sleep
  CHECK(run(8s) == seconds({0, 1, 9}));   // 1 + 8 = 9 s; at 9 s, even a 1 s sleep reaches the limit
}
