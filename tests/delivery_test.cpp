#include "pollster_catch.hpp"

#include <pollster/delivery.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pollster::duration;

namespace Catch {
template <>
struct StringMaker<pollster::duration> {
  static std::string convert(pollster::duration d) { return pollster::detail::duration_text(d); }
};
}  // namespace Catch

namespace {

/// The attempts a retry policy makes for an event that always fails, first attempt at 0: their times and why it
/// stops.
struct simulated {
  std::vector<duration> attempts;
  pollster::stop_reason reason = pollster::stop_reason::none;
};
simulated simulate(const pollster::retry_policy& policy, std::size_t limit = 1000) {
  simulated s;
  auto state = policy.start(1);
  duration age = duration::zero();
  for (std::size_t i = 1; i <= limit; ++i) {
    s.attempts.push_back(age);
    duration delay{};
    s.reason = state->plan(i, age, delay);
    if (s.reason != pollster::stop_reason::none) break;
    age += delay;
  }
  return s;
}

}  // namespace

TEST_CASE("delay_steps yields its delays in order, then the last one for ever") {
  pollster::delay_steps steps({1s, 5s, 30s});
  CHECK(steps.preview(6) == std::vector<duration>{1s, 5s, 30s, 30s, 30s, 30s});
  CHECK_FALSE(steps.plateau());
  steps.next();
  steps.next();
  REQUIRE(steps.plateau());
  CHECK(*steps.plateau() == 30s);
  steps.reset();
  CHECK(steps.next() == 1s);
  CHECK(pollster::to_string(steps) == "delay_steps(1s, 5s, 30s, then the last for ever)");
}

TEST_CASE("delay_steps refuses an empty list and a delay that is not positive") {
  CHECK_THROWS_WITH(pollster::delay_steps({}), "pollster::delay_steps: delays must be not empty, got no delays");
  CHECK_THROWS_WITH(pollster::delay_steps({1s, 0s}), "pollster::delay_steps: delays must be > 0, got 0s");
}

TEST_CASE("Event Grid's schedule: 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h, then every 12 h") {
  CHECK(pollster::event_grid_schedule().preview(12) ==
        std::vector<duration>{10s, 30s, 1min, 5min, 10min, 30min, 1h, 3h, 6h, 12h, 12h, 12h});
}

TEST_CASE("Event Grid's policy: 12 attempts in 24 hours, the last moved onto the time to live") {
  const simulated s = simulate(pollster::event_grid_retry());
  CHECK(s.attempts == std::vector<duration>{0s, 10s, 40s, 100s, 400s, 1000s, 2800s, 6400s, 17200s, 38800s, 82000s,
                                            86400s});
  CHECK(s.reason == pollster::stop_reason::deadline);
  SECTION("at most 30 attempts when the time to live is longer") {
    const simulated long_lived = simulate(pollster::event_grid_retry(30, std::chrono::hours(24 * 30)));
    CHECK(long_lived.attempts.size() == 30);
    CHECK(long_lived.reason == pollster::stop_reason::attempts);
    // 10 h 46 min 40 s for the first nine retries, then twenty 12 h steps.
    CHECK(long_lived.attempts.back() == 38800s + 20 * 12h);
  }
  SECTION("a shorter time to live, as eventTimeToLiveInMinutes allows") {
    const simulated hour = simulate(pollster::event_grid_retry(30, 1h));
    CHECK(hour.attempts == std::vector<duration>{0s, 10s, 40s, 100s, 400s, 1000s, 2800s, 3600s});
    CHECK(hour.reason == pollster::stop_reason::deadline);
  }
  SECTION("bad limits are refused by the stop rules") {
    CHECK_THROWS_AS(pollster::event_grid_retry(0), std::invalid_argument);
    CHECK_THROWS_AS(pollster::event_grid_retry(30, -1s), std::invalid_argument);
  }
}

TEST_CASE("a retry policy takes any schedule and stop rule; each event gets fresh copies") {
  const pollster::retry_policy policy(pollster::geometric{1s, 2.0, 8s}, pollster::after_attempts{6});
  const simulated first = simulate(policy);
  const simulated second = simulate(policy);
  CHECK(first.attempts == std::vector<duration>{0s, 1s, 3s, 7s, 15s, 23s});
  CHECK(second.attempts == first.attempts);
  CHECK(first.reason == pollster::stop_reason::attempts);
  CHECK(policy.description() == "geometric(start 1s, factor 2, cap 8s), until after 6 attempts");
}

TEST_CASE("a jittered retry schedule gets its own seed per event, so failures do not retry in lockstep") {
  pollster::exponential_options o;
  o.base = 1s;
  o.cap = 1min;
  const pollster::retry_policy policy(pollster::exponential<>{o}, pollster::after_attempts{4});
  const auto first_delay = [&policy](std::uint64_t seed) {
    duration delay{};
    REQUIRE(policy.start(seed)->plan(1, 0s, delay) == pollster::stop_reason::none);
    return delay;
  };
  CHECK(first_delay(1) != first_delay(2));
  CHECK(first_delay(1) == first_delay(1));
}

TEST_CASE("a restored retry skips the waits of its earlier attempts, stopping at the plateau or after 4096") {
  const pollster::retry_policy steps(pollster::delay_steps({1s, 2s, 3s}), pollster::after_attempts{100});
  const auto next_delay_after = [](const pollster::retry_policy& policy, std::uint64_t earlier) {
    auto state = policy.start(1);
    state->skip(earlier);
    duration delay{};
    REQUIRE(state->plan(earlier + 1, 0s, delay) == pollster::stop_reason::none);
    return delay;
  };
  CHECK(next_delay_after(steps, 0) == 1s);
  CHECK(next_delay_after(steps, 1) == 2s);
  CHECK(next_delay_after(steps, 2) == 3s);
  CHECK(next_delay_after(steps, 50) == 3s);  // at the plateau after two: the loop stops there
  // A jittered schedule has no plateau: a saved count near 2^64 costs 4096 draws, and the delay is within the cap.
  pollster::exponential_options o;
  o.base = 1s;
  o.cap = 1min;
  const pollster::retry_policy jittered(pollster::exponential<>{o}, pollster::after_attempts{~std::uint64_t{0}});
  const duration late = next_delay_after(jittered, ~std::uint64_t{0} - 2);
  CHECK(late > 0s);
  CHECK(late <= 1min);
}

TEST_CASE("dead-letter reasons read as words") {
  CHECK(std::string(pollster::to_string(pollster::dead_letter_reason::attempts)) == "attempts");
  CHECK(std::string(pollster::to_string(pollster::dead_letter_reason::deadline)) == "deadline");
  CHECK(std::string(pollster::to_string(pollster::dead_letter_reason::queue_full)) == "queue full");
  CHECK(std::string(pollster::to_string(pollster::dead_letter_reason::unsubscribed)) == "unsubscribed");
}

TEST_CASE("a stop rule that looks at the next wait (before_elapsed) gives up before a retry it would not allow") {
  const simulated s = simulate(pollster::retry_policy(pollster::constant{30s}, pollster::before_elapsed{100s}));
  CHECK(s.attempts == std::vector<duration>{0s, 30s, 60s, 90s});  // a fifth attempt would be at 120 s
  CHECK(s.reason == pollster::stop_reason::elapsed);
}
