#include "pollster_catch.hpp"
#include "scripted_draws.hpp"

#include <pollster/schedule.hpp>

#include <chrono>
#include <cmath>
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
      case pollster::jitter::none:
      case pollster::jitter::additive: break;
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


// ---- What tenacity users write (tables from tenacity's own wait functions, 9.1.4+ at jd/tenacity c650fb45, run in
// Python with random.random() returning the draws of test::oracle_cycle; seconds to the nearest nanosecond) ----

namespace {
std::vector<duration> ns(std::initializer_list<std::int64_t> values) {
  std::vector<duration> out;
  for (const std::int64_t v : values) out.push_back(duration{v});
  return out;
}
}  // namespace

TEST_CASE("tenacity wait_incrementing as incrementing", "[schedule][tenacity]") {
  pollster::incrementing defaults{0s, 100s};  // wait_incrementing(): start 0, increment 100, max MAX_WAIT
  CHECK(take(defaults, 12) == ns({0, 100000000000, 200000000000, 300000000000, 400000000000, 500000000000,
                                  600000000000, 700000000000, 800000000000, 900000000000, 1000000000000,
                                  1100000000000}));
  pollster::incrementing capped{1s, 2s, 10s};
  CHECK(take(capped, 12) == ns({1000000000, 3000000000, 5000000000, 7000000000, 9000000000, 10000000000, 10000000000,
                                10000000000, 10000000000, 10000000000, 10000000000, 10000000000}));
  CHECK(capped.plateau() == std::optional<duration>{10s});
  pollster::incrementing quarter{500ms, 250ms, 3s};
  CHECK(take(quarter, 12) == ns({500000000, 750000000, 1000000000, 1250000000, 1500000000, 1750000000, 2000000000,
                                 2250000000, 2500000000, 2750000000, 3000000000, 3000000000}));
  pollster::incrementing huge{duration::max() - 1s, duration::max(), duration::max()};
  CHECK(huge.next() == duration::max() - 1s);
  CHECK(huge.next() == duration::max());  // saturates
  CHECK(message_of([] { pollster::incrementing{0s, 0s}; }) ==
        "pollster::incrementing: increment must be > 0 when start is 0 (every delay would be 0), got 0s");
  CHECK(message_of([] { pollster::incrementing{1s, -1s}; }) ==
        "pollster::incrementing: increment must be >= 0, got -1s");
}

TEST_CASE("tenacity wait_random and wait_fixed(3) + wait_random(0, 2) as random_between and +", "[schedule][tenacity]") {
  pollster::random_between unit{0s, 1s, test::oracle_cycle()};
  CHECK(take(unit, 12) == ns({900000000, 0, 500000000, 999990000, 250000000, 900000000, 0, 500000000, 999990000,
                              250000000, 900000000, 0}));
  pollster::random_between one_to_three{1s, 3s, test::oracle_cycle()};
  CHECK(take(one_to_three, 12) == ns({2800000000, 1000000000, 2000000000, 2999980000, 1500000000, 2800000000,
                                      1000000000, 2000000000, 2999980000, 1500000000, 2800000000, 1000000000}));
  auto combined = pollster::constant{3s} + pollster::random_between{0s, 2s, test::oracle_cycle()};
  CHECK(take(combined, 12) == ns({4800000000, 3000000000, 4000000000, 4999980000, 3500000000, 4800000000, 3000000000,
                                  4000000000, 4999980000, 3500000000, 4800000000, 3000000000}));
  CHECK_FALSE(combined.plateau().has_value());
  auto fixed_sum = pollster::constant{3s} + pollster::constant{2s};
  CHECK(fixed_sum.plateau() == std::optional<duration>{5s});
  auto saturating = pollster::constant{duration::max()} + pollster::constant{1s};
  CHECK(saturating.next() == duration::max());
}

TEST_CASE("tenacity wait_exponential_jitter as exponential with additive jitter", "[schedule][tenacity][jitter]") {
  pollster::exponential_options o;  // wait_exponential_jitter(): initial 1, exp_base 2, jitter 1, no max
  o.base = 1s;
  o.jitter = pollster::jitter::additive;
  o.jitter_amount = 1s;
  pollster::exponential defaults{o, test::oracle_cycle()};
  CHECK(take(defaults, 12) == ns({1900000000, 2000000000, 4500000000, 8999990000, 16250000000, 32900000000,
                                  64000000000, 128500000000, 256999990000, 512250000000, 1024900000000,
                                  2048000000000}));
  o.cap = 60s;
  pollster::exponential capped{o, test::oracle_cycle()};
  CHECK(take(capped, 12) == ns({1900000000, 2000000000, 4500000000, 8999990000, 16250000000, 32900000000, 60000000000,
                                60000000000, 60000000000, 60000000000, 60000000000, 60000000000}));
  pollster::exponential_options m;  // (multiplier=0.5, max=10, exp_base=3, jitter=0.2, min=1)
  m.base = 500ms;
  m.factor = 3;
  m.cap = 10s;
  m.floor = 1s;
  m.jitter = pollster::jitter::additive;
  m.jitter_amount = 200ms;
  pollster::exponential wide{m, test::oracle_cycle()};
  CHECK(take(wide, 12) == ns({1000000000, 1500000000, 4600000000, 10000000000, 10000000000, 10000000000, 10000000000,
                              10000000000, 10000000000, 10000000000, 10000000000, 10000000000}));
}

TEST_CASE("tenacity 9 wait_random_exponential(min=...) draws from U(min, high), as full jitter with a floor",
          "[schedule][tenacity][jitter]") {
  pollster::exponential_options o;  // wait_random_exponential(max=60)
  o.base = 1s;
  o.cap = 60s;
  pollster::exponential no_floor{o, test::oracle_cycle()};
  CHECK(take(no_floor, 12) == ns({900000000, 0, 2000000000, 7999920000, 4000000000, 28800000000, 0, 30000000000,
                                  59999400000, 15000000000, 54000000000, 0}));
  pollster::exponential_options f;  // wait_random_exponential(multiplier=0.5, max=20, min=2)
  f.base = 500ms;
  f.cap = 20s;
  f.floor = 2s;
  pollster::exponential floored{f, test::oracle_cycle()};
  CHECK(take(floored, 12) == ns({2000000000, 2000000000, 2000000000, 3999980000, 3500000000, 14600000000, 2000000000,
                                 11000000000, 19999820000, 6500000000, 18200000000, 2000000000}));
}

TEST_CASE("tenacity wait_exponential with other bases, and max < min, which pollster refuses", "[schedule][tenacity]") {
  pollster::geometric base3{100ms, 3.0, 100s};  // (multiplier=0.1, max=100, exp_base=3)
  CHECK(take(base3, 12) == ns({100000000, 300000000, 900000000, 2700000000, 8100000000, 24300000000, 72900000000,
                               100000000000, 100000000000, 100000000000, 100000000000, 100000000000}));
  pollster::geometric base15{250ms, 1.5, duration::max()};  // (multiplier=0.25, exp_base=1.5)
  CHECK(take(base15, 12) == ns({250000000, 375000000, 562500000, 843750000, 1265625000, 1898437500, 2847656250,
                                4271484375, 6407226563, 9610839844, 14416259766, 21624389648}));
  // wait_exponential(min=10, max=5) waits 10 s every time (min wins). pollster refuses the pair when it is built: a
  // floor above the cap is a typo far more often than an intent, and "a constant 10 s" is constant{10s}.
  CHECK(message_of([] {
          pollster::geometric::options o;
          o.floor = 10s;
          o.cap = 5s;
          pollster::geometric{o};
        }) == "pollster::geometric: cap must be >= floor (10s), got 5s");
}

TEST_CASE("tenacity wait_chain as chain_by_attempt: 1, 2, 4, 8 where chain gives 1, 1, 2, 4", "[schedule][tenacity][chain]") {
  const pollster::geometric doubling{1s, 2.0, duration::max()};
  pollster::chain_by_attempt tenacity_style{pollster::constant{1s}, 1, doubling};
  CHECK(take(tenacity_style, 12) == ns({1000000000, 2000000000, 4000000000, 8000000000, 16000000000, 32000000000,
                                        64000000000, 128000000000, 256000000000, 512000000000, 1024000000000,
                                        2048000000000}));
  pollster::chain pollster_style{pollster::constant{1s}, 1, doubling};
  CHECK(take(pollster_style, 4) == secs({1, 1, 2, 4}));
  // wait_chain(*[wait_fixed(1)] * 3 + [wait_fixed(2)] * 5 + [wait_fixed(5)] * 4): counts are attempt numbers.
  pollster::chain_by_attempt three_five_four{pollster::constant{1s}, 3,
                                             pollster::chain_by_attempt{pollster::constant{2s}, 8, pollster::constant{5s}}};
  CHECK(take(three_five_four, 12) == secs({1, 1, 1, 2, 2, 2, 2, 2, 5, 5, 5, 5}));
  three_five_four.reset();
  CHECK(take(three_five_four, 4) == secs({1, 1, 1, 2}));
  CHECK(message_of([] { pollster::chain_by_attempt{pollster::constant{1s}, 0, pollster::constant{1s}}; }) ==
        "pollster::chain_by_attempt: count must be >= 1, got 0");
}

// ---- Polly: DecorrelatedJitterBackoffV2 (Polly.Contrib.WaitAndRetry's Backoff.DecorrelatedJitterV2.cs, with
// fastFirst; Polly.Core 8.7's RetryHelper computes the same without it), transcribed line by line from the C#, with
// Random.NextDouble returning the draws of test::oracle_cycle; ticks of 100 ns ----

TEST_CASE("Polly DecorrelatedJitterBackoffV2 in 100 ns ticks, with and without fastFirst", "[schedule][jitter][polly]") {
  auto ticks = [](std::initializer_list<std::int64_t> values) {
    std::vector<duration> out;
    for (const std::int64_t v : values) out.push_back(duration{v * 100});
    return out;
  };
  pollster::decorrelated_jitter_v2_options o;
  o.median_first_delay = 1s;
  pollster::decorrelated_jitter_v2 plain{o, test::oracle_cycle()};
  CHECK(take(plain, 12) == ticks({12742717, 1029105, 26489741, 73946705, 21629848, 290639801, 30614137, 835857996,
                                  2364122513, 691982448, 9299834533, 979631219}));
  o.median_first_delay = 200ms;
  pollster::decorrelated_jitter_v2 short_median{o, test::oracle_cycle()};
  CHECK(take(short_median, 12) == ticks({2548543, 205821, 5297948, 14789341, 4325969, 58127960, 6122827, 167171599,
                                         472824502, 138396489, 1859966906, 195926243}));
  // fastFirst: the first retry at once, then the curve from attempt 1 with prev = 0 (not the rest of the plain run).
  o.median_first_delay = 1s;
  o.fast_first = true;
  pollster::decorrelated_jitter_v2 fast{o, test::oracle_cycle()};
  CHECK(take(fast, 12) == ticks({0, 26444004, 1928490, 52348863, 147788844, 43251695, 581250191, 61227283, 1671706579,
                                 4728242098, 1383964832, 18599671109}));
  o.median_first_delay = 200ms;
  pollster::decorrelated_jitter_v2 fast_short{o, test::oracle_cycle()};
  CHECK(take(fast_short, 12) == ticks({0, 5288800, 385698, 10469772, 29557768, 8650339, 116250038, 12245456,
                                       334341315, 945648419, 276792966, 3719934221}));
  fast_short.reset();
  CHECK(fast_short.next() == 0ns);
}

// ---- Where the cap goes ----

TEST_CASE("exponential's cap_on: envelope_and_delay, envelope (gRPC) and delay (AWS SDK C++)", "[schedule][jitter]") {
  pollster::exponential_options o;
  o.base = 1s;
  o.factor = 2;
  o.cap = 4s;
  o.jitter = pollster::jitter::proportional;
  o.jitter_fraction = 0.2;
  SECTION("the default caps the envelope and the delay: never above the cap") {
    pollster::exponential s{o, test::scripted_draws{test::k_099999}};
    const auto d = take(s, 5);
    CHECK(d[2] == 4s);  // 4 s x 1.19999 is clamped
    CHECK(d[4] == 4s);
  }
  SECTION("envelope: the capped envelope is jittered, so a delay passes the cap by up to the jitter") {
    o.cap_on = pollster::cap_on::envelope;
    pollster::exponential s{o, test::scripted_draws{test::k_099999}};
    const auto d = take(s, 5);
    CHECK(d[3] == duration{4799984000});  // 4 s x (1 + 0.2 (2 u - 1)) with u = 0.99999
    CHECK(d[4] == duration{4799984000});
  }
  SECTION("delay: the envelope grows on and only the jittered delay is capped") {
    o.cap_on = pollster::cap_on::delay;
    o.jitter = pollster::jitter::full;
    pollster::exponential s{o, test::scripted_draws{test::k_025}};
    CHECK(take(s, 5) == secs({0.25, 0.5, 1, 2, 4}));  // U(0, 16 s) at u = 0.25 is 4 s: at the cap
    CHECK(s.next() == 4s);
    CHECK(s.plateau() == std::nullopt);  // jittered: no plateau
  }
  SECTION("decorrelated jitter caps inside its draw: another cap_on is refused") {
    o.jitter = pollster::jitter::decorrelated;
    o.cap_on = pollster::cap_on::envelope;
    CHECK_THROWS_WITH(pollster::exponential{o},
                      "pollster::exponential: cap_on must be envelope_and_delay with decorrelated jitter, got 1");
  }
}

TEST_CASE("full jitter without a floor is AWS's U(0, e) bit for bit; with one it never piles onto the floor",
          "[schedule][jitter]") {
  pollster::exponential_options o;
  o.base = 100ms;
  o.cap = 10s;
  pollster::exponential s{o, pollster::splitmix64{11}};
  pollster::splitmix64 same{11};
  pollster::geometric envelope{100ms, 2.0, 10s};
  for (int i = 0; i < 1000; ++i) {
    const double e = pollster::detail::to_double_ns(envelope.next());
    REQUIRE(s.next() == pollster::detail::from_double_ns(e * pollster::detail::uniform01(same)));
  }
  o.floor = 1s;
  pollster::exponential floored{o, pollster::splitmix64{12}};
  int at_floor = 0;
  for (int i = 0; i < 20000; ++i) {
    floored.reset();
    for (int k = 0; k < 6; ++k) (void)floored.next();  // envelope 3.2 s at the 6th
    if (floored.next() == 1s) ++at_floor;                 // U(1 s, 6.4 s): 1 s exactly is a null event
  }
  CHECK(at_floor == 0);
}

TEST_CASE("immediate_first retries at once, then the schedule from its second delay", "[schedule]") {
  pollster::immediate_first aws{pollster::geometric{25ms, 2.0, duration::max()}};
  CHECK(take(aws, 5) == secs({0, 0.05, 0.1, 0.2, 0.4}));
  aws.reset();
  CHECK(aws.next() == 0ns);
  pollster::immediate_first constant_after{pollster::constant{1s}};
  CHECK_FALSE(constant_after.plateau().has_value());
  (void)constant_after.next();
  CHECK(constant_after.plateau() == std::optional<duration>{1s});
}

TEST_CASE("composites reseed each jittered part with its own stream", "[schedule][determinism]") {
  pollster::exponential_options o;
  o.cap = 60s;
  auto make = [&] {
    return pollster::chain{pollster::exponential{o}, 3, pollster::random_between{0s, 5s}} +
           pollster::random_between{0s, 1s};
  };
  auto a = make();
  auto b = make();
  a.reseed(7);
  b.reseed(7);
  CHECK(a.preview(20) == b.preview(20));
  b.reseed(8);
  CHECK(a.preview(20) != b.preview(20));
  CHECK(a.jittered());
  auto fixed = pollster::chain{pollster::constant{1s}, 2, pollster::constant{2s}};
  CHECK_FALSE(pollster::detail::is_reseedable<decltype(fixed)>::value);
}

TEST_CASE("the new schedules read as their parameters", "[schedule][text]") {
  CHECK(pollster::to_string(pollster::incrementing{1s, 2s, 10s}) == "incrementing(start 1s, increment 2s, cap 10s)");
  CHECK(pollster::to_string(pollster::constant{3s} + pollster::random_between{0s, 2s}) ==
        "constant(3s) + random_between(0s, 2s)");
  CHECK(pollster::to_string(pollster::chain_by_attempt{pollster::constant{1s}, 3, pollster::constant{2s}}) ==
        "chain_by_attempt(constant(1s) to attempt 3, then constant(2s))");
  CHECK(pollster::to_string(pollster::immediate_first{pollster::constant{1s}}) == "immediate_first(constant(1s))");
  pollster::exponential_options o;
  o.cap = 20s;
  o.jitter = pollster::jitter::additive;
  o.jitter_amount = 500ms;
  o.cap_on = pollster::cap_on::delay;
  CHECK(pollster::to_string(pollster::exponential{o}) ==
        "exponential(base 1s, factor 2, cap 20s, jitter additive 500ms, cap on delay)");
  pollster::decorrelated_jitter_v2_options p;
  p.fast_first = true;
  CHECK(pollster::to_string(pollster::decorrelated_jitter_v2{p}) ==
        "decorrelated_jitter_v2(median first delay 1s, cap max, fast first)");
}
