#include "pollster_catch.hpp"

#include <pollster/plan.hpp>
#include <pollster/presets.hpp>

#include <chrono>
#include <cstdint>
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pollster::duration;

TEST_CASE("plan_for reproduces the Heat blueprint table", "[plan][heat]") {
  struct row {
    int seconds;
    std::uint64_t geometric_polls;
  };
  const row r = GENERATE(row{60, 21}, row{120, 27}, row{300, 37}, row{600, 52}, row{1200, 82}, row{3600, 202});
  INFO("operation of " << r.seconds << " s");
  const auto geometric = pollster::plan_for(pollster::presets::heat(), std::chrono::seconds(r.seconds));
  CHECK(geometric.polls == r.geometric_polls);
  CHECK(geometric.checks == r.geometric_polls + 1);
  // The worst case is the longest interval slept; it is the 20 s cap once the run gets past 201.14 s.
  if (r.seconds >= 300) CHECK(geometric.worst_detection_delay == 20s);
  if (r.seconds < 201) CHECK(geometric.worst_detection_delay < 20s);
  const auto fixed = pollster::plan_for(pollster::constant{1s}, std::chrono::seconds(r.seconds));
  CHECK(fixed.polls == static_cast<std::uint64_t>(r.seconds));
  CHECK(fixed.detection_delay == 0s);
  CHECK(fixed.worst_detection_delay == 1s);
}

TEST_CASE("plan_for a 10-minute operation: 52 polls, noticed at 601.14 s", "[plan][heat]") {
  const pollster::plan p = pollster::plan_for(pollster::presets::heat(), 10min);
  CHECK(p.polls == 52);
  CHECK(p.checks == 53);
  CHECK(p.noticed_at > 601135ms);
  CHECK(p.noticed_at < 601145ms);
  CHECK(p.detection_delay == p.noticed_at - 600s);
  CHECK(p.worst_detection_delay == 20s);
  CHECK(p.mean_detection_delay > 5s);
  CHECK(p.mean_detection_delay < 10s);
  const pollster::plan wait_first = pollster::plan_for(pollster::presets::heat(), 10min, {false});
  CHECK(wait_first.polls == 52);
  CHECK(wait_first.checks == 52);
}

TEST_CASE("plan_for edge cases: done at once, duration::max(), and an unreachable jittered plan", "[plan]") {
  const auto instant = pollster::plan_for(pollster::presets::heat(), 0s);
  CHECK(instant.polls == 0);
  CHECK(instant.checks == 1);
  CHECK(instant.noticed_at == 0s);
  const auto instant_wait_first = pollster::plan_for(pollster::presets::heat(), 0s, {false});
  CHECK(instant_wait_first.polls == 1);
  CHECK(instant_wait_first.noticed_at == 1s);

  const auto forever = pollster::plan_for(pollster::presets::heat(), duration::max());
  CHECK(forever.noticed_at == duration::max());
  CHECK(forever.detection_delay == 0s);
  CHECK(forever.polls > 461168601);  // about max / 20 s; never wraps

  const auto constant_forever = pollster::plan_for(pollster::constant{1ns}, duration::max());
  CHECK(constant_forever.polls == static_cast<std::uint64_t>(duration::max().count()));

  pollster::exponential_options o;
  o.cap = 1s;
  pollster::plan_options few;
  few.max_polls = 1000;
  CHECK_THROWS_AS(pollster::plan_for(pollster::exponential{o}, 1h, few), std::invalid_argument);
  CHECK_THROWS_AS(pollster::plan_for(pollster::presets::heat(), -1s), std::invalid_argument);
}

TEST_CASE("plan_for a jittered schedule: each figure is its median over seeded runs, with the spread beside it",
          "[plan][jitter]") {
  pollster::plan_options options;
  options.runs = 5;
  options.first_seed = 100;
  const pollster::random_between prototype{1s, 3s};
  const pollster::plan p = pollster::plan_for(prototype, 10s, options);
  // The same five runs by hand: reseed with 100..104, sleep until at or past 10 s.
  std::vector<std::uint64_t> polls;
  std::vector<duration> late;
  for (std::uint64_t seed = 100; seed < 105; ++seed) {
    pollster::random_between copy = prototype;
    copy.reseed(seed);
    duration now{};
    std::uint64_t n = 0;
    while (now < 10s) {
      now += copy.next();
      ++n;
    }
    polls.push_back(n);
    late.push_back(now - 10s);
  }
  std::sort(polls.begin(), polls.end());
  std::sort(late.begin(), late.end());
  CHECK(p.runs == 5);
  CHECK(p.polls == polls[2]);
  CHECK(p.checks == polls[2] + 1);
  CHECK(p.fewest_polls == polls.front());
  CHECK(p.most_polls == polls.back());
  CHECK(p.detection_delay == late[2]);
  CHECK(p.detection_delay_p5 == late[0]);   // nearest rank: ceil(5 x 5 / 100) = 1st
  CHECK(p.detection_delay_p95 == late[4]);  // ceil(5 x 95 / 100) = 5th
  CHECK(pollster::to_string(p).find(" over 5 runs, ") != std::string::npos);
  CHECK(pollster::to_string(p).find(" late (5-95%: ") != std::string::npos);
}

TEST_CASE("plan_for a schedule that could be jittered but is not runs it once", "[plan]") {
  pollster::exponential_options o;
  o.jitter = pollster::jitter::none;
  o.cap = 40s;
  const pollster::plan p = pollster::plan_for(pollster::exponential{o}, 100s);
  CHECK(p.runs == 1);
  CHECK(p.polls == 7);  // 1 + 2 + 4 + 8 + 16 + 32 = 63, then 40 s: noticed at 103 s
  CHECK(p.noticed_at == 103s);
  CHECK(p.fewest_polls == p.most_polls);
  CHECK(p.detection_delay_p5 == p.detection_delay);
  CHECK(pollster::to_string(p).find("runs") == std::string::npos);
  const pollster::plan kubernetes = pollster::plan_for(pollster::presets::kubernetes_example(), 10s);
  CHECK(kubernetes.runs == 1);
  CHECK(kubernetes.noticed_at == 12s);  // 1, 2, 3, 3, 3
  pollster::plan_options none;
  none.runs = 0;
  CHECK_THROWS_WITH(pollster::plan_for(pollster::random_between{0s, 1s}, 1s, none),
                    "pollster::plan_for: runs must be >= 1, got 0");
}
