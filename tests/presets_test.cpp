// The references' own policies (presets.hpp) against tables produced by the references' own code, each run with the
// same uniform draws as pollster (tests/scripted_draws.hpp). How each table was made is said above its test.
#include "pollster_catch.hpp"
#include "scripted_draws.hpp"

#include <pollster/poll.hpp>
#include <pollster/presets.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pollster::duration;

namespace {

template <class Schedule>
std::vector<std::int64_t> take_ms(Schedule& s, std::size_t n) {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < n; ++i) {
    const duration d = s.next();
    REQUIRE(d % 1ms == 0ns);  // these references count whole milliseconds
    out.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  }
  return out;
}

template <class Schedule>
std::vector<std::int64_t> take_ns(Schedule& s, std::size_t n) {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(s.next().count());
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

// gRPC core's own Duration arithmetic (src/core/util/time.h: operator*, FromSecondsAsDouble) and
// BackOff::NextAttemptDelay (src/core/util/backoff.cc, grpc/grpc commit 15bab7a3), compiled with Debian's real
// absl::Uniform drawing from the same 64-bit values, gave these delays in milliseconds.
TEST_CASE("gRPC backoff matches gRPC core's arithmetic for fixed uniform draws", "[presets][grpc]") {
  using test::scripted_draws;
  SECTION("u = 0.9: delay 12 is 139.2 s, past the 120 s cap (jitter after the cap)") {
    pollster::grpc_backoff s{pollster::grpc_backoff_options{}, scripted_draws{test::k_09}};
    CHECK(take_ms(s, 16) == std::vector<std::int64_t>{1160, 1855, 2969, 4751, 7601, 12161, 19457, 31132, 49810, 79696,
                                                      127514, 139200, 139200, 139200, 139200, 139200});
  }
  SECTION("u = 0 and u = 0.99999: the ends of the jitter, 96 s and 143.999 s at the top") {
    pollster::grpc_backoff low{pollster::grpc_backoff_options{}, scripted_draws{test::k_0}};
    CHECK(take_ms(low, 16) == std::vector<std::int64_t>{800, 1280, 2048, 3276, 5242, 8387, 13419, 21470, 34352, 54963,
                                                        87940, 96000, 96000, 96000, 96000, 96000});
    pollster::grpc_backoff high{pollster::grpc_backoff_options{}, scripted_draws{test::k_099999}};
    CHECK(take_ms(high, 16) == std::vector<std::int64_t>{1199, 1919, 3071, 4915, 7863, 12580, 20128, 32205, 51527, 82444,
                                                         131910, 143999, 143999, 143999, 143999, 143999});
  }
  SECTION("a cycle of draws, and other parameters (20 ms x 1.3 to 5 s, jitter 0.5)") {
    // This run's cycle is u = 0, 0.25, 0.5, 0.9, 0.99999.
    pollster::grpc_backoff s{pollster::grpc_backoff_options{},
                             scripted_draws{test::k_0, test::k_025, test::k_05, test::k_09, test::k_099999}};
    CHECK(take_ms(s, 16) == std::vector<std::int64_t>{800, 1440, 2560, 4751, 7863, 8387, 15096, 26838, 49810, 82444,
                                                      87940, 108000, 120000, 139200, 143999, 96000});
    pollster::grpc_backoff_options o;
    o.initial_backoff = 20ms;
    o.multiplier = 1.3;
    o.jitter = 0.5;
    o.max_backoff = 5s;
    pollster::grpc_backoff other{o, scripted_draws{test::k_025, test::k_09}};
    CHECK(take_ms(other, 20) == std::vector<std::int64_t>{15, 36, 24, 58, 40, 98, 68, 165, 114, 277, 192, 467, 325, 789,
                                                          549, 1332, 927, 2251, 1567, 3803});
  }
  SECTION("the protocol document's reading: the first deadline unjittered, the rest as the code") {
    pollster::grpc_backoff_options o;
    o.jitter_first = false;
    pollster::grpc_backoff s{o, scripted_draws{test::k_09}};
    CHECK(take_ms(s, 3) == std::vector<std::int64_t>{1000, 1855, 2969});
  }
  SECTION("the preset is gRPC's connection backoff, and a seeded preset stays within [0.8 s, 144 s]") {
    auto preset = pollster::presets::grpc_connect(pollster::splitmix64{7});
    CHECK(preset.parameters().initial_backoff == 1s);
    CHECK(preset.parameters().multiplier == 1.6);
    CHECK(preset.parameters().jitter == 0.2);
    CHECK(preset.parameters().max_backoff == 120s);
    duration most{};
    for (int i = 0; i < 10000; ++i) {
      const duration d = preset.next();
      REQUIRE(d >= 800ms);
      REQUIRE(d < 144s);
      most = std::max(most, d);
    }
    CHECK(most > 140s);  // the old clamp never let a delay pass 120 s
  }
  CHECK(message_of([] {
          pollster::grpc_backoff_options o;
          o.initial_backoff = 1500us;
          pollster::grpc_backoff{o};
        }) == "pollster::grpc_backoff: initial_backoff must be a whole number of milliseconds, got 1.5ms");
  CHECK(message_of([] {
          pollster::grpc_backoff_options o;
          o.jitter = 1.5;
          pollster::grpc_backoff{o};
        }) == "pollster::grpc_backoff: jitter must be in [0, 1], got 1.5");
}

// k8s.io/apimachinery's own Backoff.Step, delay and Jitter, run in Go with the same draws: tests/data.
TEST_CASE("Kubernetes Step() over a grid of Duration, Factor, Steps and Cap", "[presets][kubernetes]") {
  struct row {
    std::int64_t duration_ns;
    double factor;
    double jitter;
    std::int64_t steps;
    std::int64_t cap_ns;
    std::vector<std::int64_t> delays;
    int exponential_backoff_checks;
  };
  const std::vector<row> grid = {
#include "data/kubernetes_step_grid.inc"
  };
  REQUIRE(grid.size() == 128);
  int jittered_rows = 0;
  for (const row& r : grid) {
    INFO("Backoff{Duration " << r.duration_ns << "ns, Factor " << r.factor << ", Jitter " << r.jitter << ", Steps "
                             << r.steps << ", Cap " << r.cap_ns << "ns}");
    pollster::kubernetes_backoff_options o;
    o.initial = duration{r.duration_ns};
    o.factor = r.factor;
    o.jitter = r.jitter;
    o.steps = r.steps;
    o.cap = duration{r.cap_ns};
    pollster::kubernetes_backoff s{o, test::oracle_cycle()};
    CHECK(take_ns(s, r.delays.size()) == r.delays);
    if (r.jitter > 0) {
      ++jittered_rows;
      // Jitter is upward only: each delay lies in [d, d (1 + jitter)] of the unjittered row.
      pollster::kubernetes_backoff_options plain = o;
      plain.jitter = 0;
      pollster::kubernetes_backoff unjittered{plain};
      for (const std::int64_t delay : r.delays) {
        const std::int64_t base = unjittered.next().count();
        CHECK(delay >= base);
        CHECK(static_cast<double>(delay) <= static_cast<double>(base) * (1 + r.jitter));
      }
    }
  }
  CHECK(jittered_rows == 64);
}

TEST_CASE("kubernetes_backoff_limit stops where wait.ExponentialBackoff returns ErrWaitTimeout", "[presets][kubernetes]") {
  struct row {
    std::int64_t duration_ns;
    double factor;
    double jitter;
    std::int64_t steps;
    std::int64_t cap_ns;
    std::vector<std::int64_t> delays;
    int exponential_backoff_checks;
  };
  const std::vector<row> grid = {
#include "data/kubernetes_step_grid.inc"
  };
  using manual_clock = pollster::manual_clock;
  int compared = 0;
  for (const row& r : grid) {
    INFO("Backoff{Duration " << r.duration_ns << "ns, Factor " << r.factor << ", Steps " << r.steps << ", Cap "
                             << r.cap_ns << "ns}");
    pollster::kubernetes_backoff_options o;
    o.initial = duration{r.duration_ns};
    o.factor = r.factor;
    o.jitter = r.jitter;
    o.steps = r.steps;
    o.cap = duration{r.cap_ns};
    if (r.steps < 1) {
      CHECK(r.exponential_backoff_checks == 0);  // Kubernetes checks nothing; pollster refuses the rule
      CHECK_THROWS_AS(pollster::kubernetes_backoff_limit{o}, std::invalid_argument);
      continue;
    }
    manual_clock clock;
    int checks = 0;
    auto never_done = [&checks]() -> pollster::step<int, int> {
      if (++checks == 1000) return pollster::done(-1);  // a limit that fails to stop fails the test, never hangs it
      return pollster::pending();
    };
    const auto result = pollster::poll_until(clock, never_done, pollster::kubernetes_backoff{o, test::oracle_cycle()},
                                             pollster::kubernetes_backoff_limit{o});
    CHECK(checks == r.exponential_backoff_checks);
    CHECK(result.cause == pollster::cause::exhausted);
    CHECK(result.stop == pollster::stop_reason::attempts);
    ++compared;
  }
  CHECK(compared == 96);
  // A rule reused across runs (reset) and asked out of order still answers for the attempt it is given.
  pollster::kubernetes_backoff_options o;
  o.factor = 2;
  o.steps = 10;
  o.cap = 30s;  // 1, 2, 4, 8, 16, then the product 32 s passes the cap: Step 5 ends the growth
  pollster::kubernetes_backoff_limit limit{o};
  CHECK(limit.check({5, 0s}) == pollster::stop_reason::attempts);
  CHECK(limit.check({4, 0s}) == pollster::stop_reason::none);
  CHECK(limit.check({1, 0s}) == pollster::stop_reason::none);
  CHECK(limit.check({5, 0s}) == pollster::stop_reason::attempts);
}

TEST_CASE("Kubernetes wait.Backoff{1s, x2, cap 3s} needs Steps >= 2, and the reflector's relist backoff",
          "[presets][kubernetes]") {
  auto preset = pollster::presets::kubernetes_example();
  CHECK(take_ns(preset, 5) == std::vector<std::int64_t>{1000000000, 2000000000, 3000000000, 3000000000, 3000000000});
  CHECK(preset.plateau() == std::optional<duration>{3s});
  pollster::kubernetes_backoff_options zero_steps = preset.parameters();
  zero_steps.steps = 0;  // as DESIGN.md first wrote it: Kubernetes never grows the duration
  pollster::kubernetes_backoff never_grows{zero_steps};
  CHECK(take_ns(never_grows, 3) == std::vector<std::int64_t>{1000000000, 1000000000, 1000000000});
  // client-go's reflector: wait.Backoff{Duration: 800ms, Factor: 2, Cap: 30s} with enough Steps.
  pollster::kubernetes_backoff_options relist;
  relist.initial = 800ms;
  relist.factor = 2;
  relist.steps = 100;
  relist.cap = 30s;
  pollster::kubernetes_backoff reflector{relist};
  CHECK(take_ns(reflector, 9) == std::vector<std::int64_t>{800000000, 1600000000, 3200000000, 6400000000, 12800000000,
                                                           25600000000, 30000000000, 30000000000, 30000000000});
  CHECK(message_of([] {
          pollster::kubernetes_backoff_options o;
          o.cap = 500ms;
          pollster::kubernetes_backoff{o};
        }) == "pollster::kubernetes_backoff: cap must be 0 or >= initial (1s), got 500ms");
  CHECK(message_of([] {
          pollster::kubernetes_backoff_options o;
          o.factor = -1;
          pollster::kubernetes_backoff{o};
        }) == "pollster::kubernetes_backoff: factor must be finite and >= 0, got -1");
}

// The same Go run of apimachinery's Step() for client-go's two util/retry backoffs, and ExponentialBackoff's checks.
TEST_CASE("client-go's retry.DefaultBackoff and retry.DefaultRetry", "[presets][kubernetes]") {
  using manual_clock = pollster::manual_clock;
  struct row {
    pollster::kubernetes_backoff<pollster::splitmix64> preset;
    std::vector<std::int64_t> delays;
    int checks;
  };
  const row rows[] = {
      {pollster::presets::kubernetes_default_backoff(),
       {10900000, 50000000, 262500000, 1374998750, 6406250000, 6812500000}, 4},
      {pollster::presets::kubernetes_default_retry(), {10900000, 10000000, 10500000, 10999990, 10250000, 10900000}, 5},
  };
  for (const row& r : rows) {
    pollster::kubernetes_backoff s{r.preset.parameters(), test::oracle_cycle()};
    CHECK(take_ns(s, r.delays.size()) == r.delays);
    manual_clock clock;
    int checks = 0;
    auto conflict = [&checks]() -> pollster::step<int, int> {
      if (++checks == 1000) return pollster::done(-1);
      return pollster::pending();
    };
    (void)pollster::poll_until(clock, conflict, r.preset, pollster::kubernetes_backoff_limit{r.preset.parameters()});
    CHECK(checks == r.checks);
  }
}

// google-cloud-cpp's own ExponentialBackoffPolicy (both constructors and OnCompletion, google/cloud/internal/
// backoff_policy.{h,cc}, the v2 sources with the five-argument form), compiled with libstdc++'s real
// std::uniform_real_distribution drawing from the same 64-bit values, gave these delays in milliseconds.
TEST_CASE("google-cloud-cpp ExponentialBackoffPolicy: each delay in its range, truncated to milliseconds",
          "[presets][google_cloud]") {
  using test::scripted_draws;
  SECTION("(1s, 5min, 2.0), the LRO polling default: U[d, 2d), then U[150 s, 300 s)") {
    pollster::google_cloud_backoff high{1s, 5min, 2.0, scripted_draws{test::k_09}};
    CHECK(take_ms(high, 14) == std::vector<std::int64_t>{1900, 3800, 7600, 15200, 30400, 60800, 121600, 243200, 285000,
                                                         285000, 285000, 285000, 285000, 285000});
    pollster::google_cloud_backoff low{1s, 5min, 2.0, scripted_draws{test::k_0}};
    CHECK(take_ms(low, 14) == std::vector<std::int64_t>{1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 150000,
                                                        150000, 150000, 150000, 150000, 150000});
    pollster::google_cloud_backoff top{1s, 5min, 2.0, scripted_draws{test::k_099999}};
    CHECK(take_ms(top, 14) == std::vector<std::int64_t>{1999, 3999, 7999, 15999, 31999, 63999, 127999, 255998, 299998,
                                                        299998, 299998, 299998, 299998, 299998});
    pollster::google_cloud_backoff cycle{1s, 5min, 2.0, test::oracle_cycle()};
    CHECK(take_ms(cycle, 14) == std::vector<std::int64_t>{1900, 2000, 6000, 15999, 20000, 60800, 64000, 192000, 299998,
                                                          187500, 285000, 150000, 225000, 299998});
  }
  SECTION("(10ms, 500ms, 1.618), the header's example") {
    pollster::google_cloud_backoff s{10ms, 500ms, 1.618, test::oracle_cycle()};
    CHECK(take_ms(s, 14) == std::vector<std::int64_t>{15, 16, 34, 68, 79, 172, 179, 380, 499, 356, 480, 309, 404, 499});
  }
  SECTION("the five-argument form: (0ms, 10ms, 500ms, 1.0, 1.618) and (100ms, 1s, 60s, 1.5, 3.0)") {
    pollster::google_cloud_backoff full_jitter{{0ms, 10ms, 500ms, 1.0, 1.618}, test::oracle_cycle()};
    CHECK(take_ms(full_jitter, 14) == std::vector<std::int64_t>{9, 0, 13, 42, 17, 99, 0, 145, 469, 125, 450, 0, 250, 499});
    pollster::google_cloud_backoff wide{{100ms, 1s, 60s, 1.5, 3.0}, test::oracle_cycle()};
    CHECK(take_ms(wide, 14) == std::vector<std::int64_t>{910, 150, 4612, 26999, 15379, 54075, 1139, 30854, 59999, 17883,
                                                         54576, 8649, 36487, 59999});
  }
  SECTION("the preset with its own generator: every delay in its range, and reset starts over") {
    auto preset = pollster::presets::google_cloud(pollster::splitmix64{3});
    const std::int64_t lows[] = {1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 150000, 150000};
    for (int round = 0; round < 2; ++round) {
      for (const std::int64_t low : lows) {
        const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(preset.next()).count();
        CHECK(d >= low);
        CHECK(d < (low == 150000 ? 300000 : 2 * low));
      }
      preset.reset();
    }
  }
  CHECK(message_of([] { pollster::google_cloud_backoff{1s, 5min, 1.0}; }) ==
        "pollster::google_cloud_backoff: scaling must be finite and > 1, got 1");
  CHECK(message_of([] { pollster::google_cloud_backoff{{2s, 1s, 60s, 2.0, 2.0}}; }) ==
        "pollster::google_cloud_backoff: initial_delay_upper_bound must be >= minimum_delay (2s), got 1s");
  CHECK(message_of([] { pollster::google_cloud_backoff{{0s, 1s, 60s, 3.0, 2.0}}; }) ==
        "pollster::google_cloud_backoff: scaling_lower_bound must be <= scaling_upper_bound (2), got 3");
}

TEST_CASE("plan_for reports google-cloud-cpp's jittered polling as a distribution over seeded runs",
          "[presets][google_cloud][plan]") {
  // The un-jittered 1 s x 2 to 300 s (the old preset) makes 10 polls and sees a 600 s operation 211 s late; the
  // real, jittered policy makes 9 or 10, and how late varies widely from run to run.
  const pollster::plan fixed = pollster::plan_for(pollster::geometric{1s, 2.0, 300s}, 600s);
  CHECK(fixed.polls == 10);
  CHECK(fixed.runs == 1);
  CHECK(fixed.detection_delay == 211s);
  const pollster::plan jittered = pollster::plan_for(pollster::presets::google_cloud(), 600s);
  CHECK(jittered.runs == 1001);
  CHECK(jittered.fewest_polls == 9);
  CHECK(jittered.most_polls == 10);
  CHECK(jittered.polls == 9);
  CHECK(jittered.detection_delay > 90s);  // median 97.6 s with the default seeds 1..1001
  CHECK(jittered.detection_delay < 105s);
  CHECK(jittered.detection_delay_p5 > 5s);
  CHECK(jittered.detection_delay_p5 < 12s);
  CHECK(jittered.detection_delay_p95 > 240s);
  CHECK(jittered.detection_delay_p95 < 260s);
  // Reproducible: the same seeds give the same plan.
  const pollster::plan again = pollster::plan_for(pollster::presets::google_cloud(), 600s);
  CHECK(again.detection_delay == jittered.detection_delay);
  CHECK(again.detection_delay_p95 == jittered.detection_delay_p95);
}

// AWS SDK for C++: DefaultRetryStrategy::CalculateDelayBeforeNextRetry is `attemptedRetries == 0 ? 0 :
// (1UL << attemptedRetries) * m_scaleFactor` (scale 25 ms), called with retries = 0, 1, ... by AWSClient;
// StandardRetryStrategy's is `min(GetRandomValue() % 1000 * (1 << min(attemptedRetries, 15)), 20000)`.
TEST_CASE("AWS SDK C++ retry strategies", "[presets][aws]") {
  auto default_retry = pollster::presets::aws_default_retry();
  CHECK(take_ms(default_retry, 12) ==
        std::vector<std::int64_t>{0, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200});
  // Standard: for draws u with u * 1000 a whole number r (the SDK's rand() % 1000), the same delays; other draws
  // fall between the SDK's whole-millisecond steps. u = 0.9, 0, 0.5, 0.25 are r = 900, 0, 500, 250.
  auto standard = pollster::exponential{pollster::presets::aws_standard_retry().parameters(),
                                        test::scripted_draws{test::k_09, test::k_0, test::k_05, test::k_025}};
  const std::vector<std::int64_t> sdk = {900, 0, 2000, 2000, 14400, 0, 20000, 20000, 20000, 0, 20000, 20000};
  const std::vector<std::int64_t> got = take_ns(standard, sdk.size());
  for (std::size_t i = 0; i < sdk.size(); ++i) {
    INFO("retry " << i);
    CHECK(std::llabs(got[i] - sdk[i] * 1000000) <= 1);  // u = 0.9 is 0.9 to 2^-53: within a nanosecond
  }
  // The cap applies after the draw: late delays pile up at exactly 20 s (about 99.4 % of them at retry 15).
  auto seeded = pollster::presets::aws_standard_retry(pollster::splitmix64{5});
  int at_cap = 0;
  for (int run = 0; run < 2000; ++run) {
    seeded.reset();
    duration d{};
    for (int retry = 0; retry <= 15; ++retry) d = seeded.next();
    if (d == 20s) ++at_cap;
  }
  CHECK(at_cap > 1980);
}

TEST_CASE("the references' policies read as their parameters", "[presets][text]") {
  CHECK(pollster::to_string(pollster::presets::grpc_connect()) ==
        "grpc_backoff(initial 1s, multiplier 1.6, jitter 0.2, max 120s)");
  CHECK(pollster::to_string(pollster::presets::kubernetes_example()) ==
        "kubernetes_backoff(duration 1s, factor 2, jitter 0, steps 2, cap 3s)");
  CHECK(pollster::to_string(pollster::presets::google_cloud()) ==
        "google_cloud_backoff(minimum 1s, initial upper bound 2s, maximum 300s, scaling 2 to 2)");
  CHECK(pollster::to_string(pollster::kubernetes_backoff_limit{pollster::presets::kubernetes_example().parameters()}) ==
        "until wait.ExponentialBackoff gives up (steps 2)");
  CHECK(pollster::to_string(pollster::before_elapsed{1min}) == "before a sleep past 60s");
}
