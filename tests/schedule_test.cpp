#include "pollster_catch.hpp"

#include <pollster/schedule.hpp>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pollster::duration;

namespace {

std::vector<duration> secs(std::initializer_list<double> values) {
  std::vector<duration> out;
  for (double v : values) out.push_back(duration{static_cast<std::int64_t>(v * 1e9 + (v >= 0 ? 0.5 : -0.5))});
  return out;
}

template <class Schedule>
std::vector<duration> take(Schedule& s, std::size_t n) {
  std::vector<duration> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(s.next());
  return out;
}

std::string message_of(void (*build)()) {
  try {
    build();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_CASE("geometric schedule grows by its factor: Heat's 1, 1.1, 1.21, 1.331", "[schedule][geometric][heat]") {
  auto heat = pollster::presets::heat();
  CHECK(take(heat, 5) == secs({1, 1.1, 1.21, 1.331, 1.4641}));
}

TEST_CASE("geometric schedule plateaus at exactly its cap", "[schedule][geometric]") {
  auto heat = pollster::presets::heat();
  std::vector<duration> delays = take(heat, 40);
  // 1.1^31 = 19.19 s is the last interval under the cap; interval 33 is the first at 20 s.
  CHECK(delays[31] < 20s);
  CHECK(delays[31] > 19s);
  for (std::size_t i = 32; i < delays.size(); ++i) CHECK(delays[i] == 20s);
  duration sum{};
  for (std::size_t i = 0; i < 32; ++i) sum += delays[i];
  CHECK(sum > 201130ms);  // reaches the cap at 201.14 s cumulative
  CHECK(sum < 201145ms);
  CHECK(heat.plateau() == std::optional<duration>{20s});
}

TEST_CASE("Kubernetes wait.Backoff{1s, x2, cap 3s} and the reflector's relist backoff", "[schedule][kubernetes]") {
  auto k8s = pollster::presets::kubernetes_example();
  CHECK(take(k8s, 5) == secs({1, 2, 3, 3, 3}));
  pollster::geometric relist{800ms, 2.0, 30s};
  CHECK(take(relist, 9) == secs({0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30, 30, 30}));
}

TEST_CASE("tenacity wait_exponential sequences", "[schedule][tenacity]") {
  SECTION("multiplier 1, base 2") {
    pollster::geometric plain{1s, 2.0, duration::max()};
    CHECK(take(plain, 8) == secs({1, 2, 4, 8, 16, 32, 64, 128}));
  }
  SECTION("max 40") {
    pollster::geometric capped{1s, 2.0, 40s};
    CHECK(take(capped, 8) == secs({1, 2, 4, 8, 16, 32, 40, 40}));
  }
  SECTION("min 20, multiplier 2: the floor holds the first delays up") {
    pollster::geometric::options o;
    o.start = 2s;
    o.factor = 2.0;
    o.cap = duration::max();
    o.floor = 20s;
    pollster::geometric floored{o};
    CHECK(take(floored, 8) == secs({20, 20, 20, 20, 32, 64, 128, 256}));
  }
}

TEST_CASE("constant schedule and reset", "[schedule]") {
  pollster::constant every{1s};
  CHECK(take(every, 3) == secs({1, 1, 1}));
  auto heat = pollster::presets::heat();
  take(heat, 10);
  heat.reset();
  CHECK(take(heat, 3) == secs({1, 1.1, 1.21}));
}

TEST_CASE("preview shows the next delays without consuming them", "[schedule]") {
  auto heat = pollster::presets::heat();
  heat.next();
  CHECK(heat.preview(3) == secs({1.1, 1.21, 1.331}));
  CHECK(pollster::preview(heat, 2) == secs({1.1, 1.21}));
  CHECK(heat.next() == 1100ms);

  pollster::exponential_options o;
  o.base = 1s;
  o.cap = 60s;
  pollster::exponential jittered{o, std::mt19937_64{7}};
  const std::vector<duration> seen = jittered.preview(6);
  CHECK(take(jittered, 6) == seen);  // the generator is copied too: preview is exactly the future
}

TEST_CASE("chain uses one schedule for the first attempts and another after", "[schedule][chain]") {
  pollster::chain fast_then_heat{pollster::constant{500ms}, 3, pollster::presets::heat()};
  CHECK(take(fast_then_heat, 5) == secs({0.5, 0.5, 0.5, 1, 1.1}));
  CHECK_FALSE(fast_then_heat.plateau().has_value());
  fast_then_heat.reset();
  CHECK(take(fast_then_heat, 4) == secs({0.5, 0.5, 0.5, 1}));
}

TEST_CASE("AWS jitter stays inside its documented bounds and the schedule's bounds", "[schedule][jitter]") {
  const auto kind = GENERATE(pollster::jitter::full, pollster::jitter::equal, pollster::jitter::decorrelated,
                             pollster::jitter::proportional);
  pollster::exponential_options o;
  o.base = 100ms;
  o.factor = 2.0;
  o.cap = 10s;
  o.floor = 50ms;
  o.jitter = kind;
  pollster::exponential s{o, std::mt19937_64{2026}};
  pollster::geometric envelope{100ms, 2.0, 10s};
  duration previous = o.base;
  double sum_ratio = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const duration e = envelope.next();
    const duration d = s.next();
    INFO("attempt " << i << " envelope " << e.count() << "ns delay " << d.count() << "ns");
    REQUIRE(d >= o.floor);
    REQUIRE(d <= o.cap);
    switch (kind) {
      case pollster::jitter::full: REQUIRE(d <= e); break;
      case pollster::jitter::equal: REQUIRE(d >= e / 2); REQUIRE(d <= e); break;
      case pollster::jitter::decorrelated: REQUIRE(d <= std::max(o.base, previous * 3) + 1ns); break;
      case pollster::jitter::proportional: REQUIRE(d >= e * 8 / 10 - 1ns); REQUIRE(d <= std::min(o.cap, e * 12 / 10 + 1ns)); break;
      case pollster::jitter::none: break;
    }
    previous = d;
    sum_ratio += static_cast<double>(d.count()) / static_cast<double>(e.count());
  }
  // Not a fixed number: the jitter really is random. Full jitter averages about half the envelope.
  if (kind == pollster::jitter::full) CHECK(sum_ratio / n == Catch::Approx(0.5).margin(0.02));
  if (kind == pollster::jitter::equal) CHECK(sum_ratio / n == Catch::Approx(0.75).margin(0.02));
}

TEST_CASE("a seeded generator reproduces a jittered sequence bit for bit", "[schedule][jitter][determinism]") {
  pollster::exponential_options o;
  o.cap = 30s;
  pollster::exponential a{o, pollster::splitmix64{42}};
  pollster::exponential b{o, pollster::splitmix64{42}};
  pollster::exponential c{o, pollster::splitmix64{43}};
  const auto sa = take(a, 50);
  CHECK(sa == take(b, 50));
  CHECK(sa != take(c, 50));
  // Pinned values: the default generator and uniform01 are ours, so these are the same on every platform.
  pollster::exponential pinned{o, pollster::splitmix64{1}};
  const auto first = take(pinned, 3);
  CHECK(first[0] <= 1s);
  CHECK(first[1] <= 2s);
  CHECK(first[2] <= 4s);
}

TEST_CASE("jitter none gives the exact exponential sequence", "[schedule][jitter]") {
  pollster::exponential_options o;
  o.base = 1s;
  o.cap = 40s;
  o.jitter = pollster::jitter::none;
  pollster::exponential s{o};
  CHECK(take(s, 8) == secs({1, 2, 4, 8, 16, 32, 40, 40}));
  CHECK(s.plateau() == std::optional<duration>{40s});
}

TEST_CASE("Polly decorrelated jitter v2 stays in bounds and grows", "[schedule][jitter][polly]") {
  pollster::decorrelated_jitter_v2_options o;
  o.median_first_delay = 1s;
  o.cap = 60s;
  pollster::decorrelated_jitter_v2 s{o, pollster::splitmix64{9}};
  std::vector<duration> d = take(s, 2000);
  for (duration x : d) {
    REQUIRE(x >= 0ns);
    REQUIRE(x <= 60s);
  }
  CHECK(d.back() == 60s);  // 2^t overflows double long before attempt 2000: the cap is all that is left
  // Polly's first delay is 2^t tanh(sqrt(4t)) / 1.4 x median for t ~ U(0, 1): at most 2 tanh(2) / 1.4 = 1.377 x,
  // with its own median at t = 0.5, 0.897 x. Over many seeds about half fall below that.
  int below = 0;
  for (std::uint64_t seed = 0; seed < 4000; ++seed) {
    pollster::decorrelated_jitter_v2 fresh{o, pollster::splitmix64{seed}};
    const duration first = fresh.next();
    REQUIRE(first < 1378ms);
    if (first < 897ms) ++below;
  }
  CHECK(below > 1800);
  CHECK(below < 2200);
}

TEST_CASE("saturation: a million steps and duration::max() never wrap", "[schedule][saturation]") {
  SECTION("geometric with a huge factor and no cap") {
    pollster::geometric s{1ns, 1e300, duration::max()};
    for (int i = 0; i < 1000000; ++i) REQUIRE(s.next() >= 1ns);
    CHECK(s.next() == duration::max());
  }
  SECTION("geometric starting at duration::max()") {
    pollster::geometric s{duration::max(), 2.0, duration::max()};
    for (int i = 0; i < 1000; ++i) REQUIRE(s.next() == duration::max());
  }
  SECTION("exponential full jitter at the top") {
    pollster::exponential_options o;
    o.base = duration::max() / 2;
    o.jitter = pollster::jitter::decorrelated;
    pollster::exponential s{o};
    for (int i = 0; i < 1000000; ++i) REQUIRE(s.next() >= o.base);
  }
  SECTION("chain counts past any limit") {
    pollster::chain s{pollster::constant{1ns}, std::uint64_t(-1), pollster::constant{2ns}};
    for (int i = 0; i < 1000000; ++i) REQUIRE(s.next() == 1ns);
  }
}

TEST_CASE("invalid parameters are rejected when the schedule is built, naming type, parameter and value",
          "[schedule][errors]") {
  using pollster::geometric;
  CHECK(message_of([] { geometric{1s, 0.5, 20s}; }) == "pollster::geometric: factor must be finite and >= 1, got 0.5");
  CHECK(message_of([] { geometric{1s, std::nan(""), 20s}; }) ==
        "pollster::geometric: factor must be finite and >= 1, got nan");
  CHECK(message_of([] { geometric{1s, HUGE_VAL, 20s}; }) ==
        "pollster::geometric: factor must be finite and >= 1, got inf");
  CHECK(message_of([] { geometric{0s, 1.1, 20s}; }) == "pollster::geometric: start must be > 0, got 0s");
  CHECK(message_of([] { geometric{-1s, 1.1, 20s}; }) == "pollster::geometric: start must be > 0, got -1s");
  CHECK(message_of([] { geometric{20s, 1.1, 1s}; }) == "pollster::geometric: cap must be >= start (20s), got 1s");
  CHECK(message_of([] {
          geometric::options o;
          o.floor = -1ms;
          geometric{o};
        }) == "pollster::geometric: floor must be >= 0, got -1ms");
  CHECK(message_of([] {
          geometric::options o;
          o.floor = 30s;
          geometric{o};
        }) == "pollster::geometric: cap must be >= floor (30s), got 20s");
  CHECK(message_of([] { pollster::constant{0s}; }) == "pollster::constant: interval must be > 0, got 0s");
  CHECK(message_of([] { pollster::constant{-250ms}; }) == "pollster::constant: interval must be > 0, got -250ms");
  CHECK(message_of([] {
          pollster::exponential_options o;
          o.jitter_fraction = 1.5;
          pollster::exponential{o};
        }) == "pollster::exponential: jitter_fraction must be in [0, 1], got 1.5");
  CHECK(message_of([] {
          pollster::exponential_options o;
          o.jitter_fraction = -0.1;
          pollster::exponential{o};
        }) == "pollster::exponential: jitter_fraction must be in [0, 1], got -0.1");
  CHECK(message_of([] {
          pollster::exponential_options o;
          o.factor = 0.9;
          pollster::exponential{o};
        }) == "pollster::exponential: factor must be finite and >= 1, got 0.9");
  CHECK(message_of([] {
          pollster::exponential_options o;
          o.base = 0s;
          pollster::exponential{o};
        }) == "pollster::exponential: base must be > 0, got 0s");
  CHECK(message_of([] {
          pollster::decorrelated_jitter_v2_options o;
          o.median_first_delay = -1s;
          pollster::decorrelated_jitter_v2{o};
        }) == "pollster::decorrelated_jitter_v2: median_first_delay must be > 0, got -1s");
  CHECK(message_of([] { pollster::chain{pollster::constant{1s}, 0, pollster::constant{1s}}; }) ==
        "pollster::chain: count must be >= 1, got 0");
}

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
