#include "pollster_catch.hpp"

#include <pollster/stop.hpp>

#include <chrono>
#include <string>

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
