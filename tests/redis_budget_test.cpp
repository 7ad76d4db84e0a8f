#include "pollster_catch.hpp"

#include <pollster/poll.hpp>
#include <pollster/redis_budget.hpp>
#include <pollster/runner.hpp>

#include "servers/redis_server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

/// GCRA as a reference, token by token, in integer microseconds: what one script call must equal, written without
/// the script's closed form (`fit`), so that the two are checked against each other.
struct gcra_model {
  double rate;
  std::int64_t burst;
  double factor;
  double min_rate;
  std::int64_t recovery;
  std::optional<std::int64_t> tat;
  std::optional<double> cut_rate;
  std::int64_t cut_at = 0;
  std::uint64_t throttles = 0;

  double rate_at(std::int64_t t) const {
    if (!cut_rate || t >= cut_at + recovery) return rate;
    double progress = 0;
    if (t > cut_at) progress = static_cast<double>(t - cut_at) / static_cast<double>(recovery);
    return std::min(rate, *cut_rate + (rate - *cut_rate) * progress);
  }
  std::int64_t interval_at(std::int64_t t) const {
    return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::floor(1000000.0 / rate_at(t) + 0.5)));
  }

  struct lease {
    std::uint32_t granted = 0;
    std::vector<std::int64_t> times;
    std::int64_t tat = 0;
    std::int64_t retry_at = 0;
    std::int64_t milli_rate = 0;
  };
  lease reserve(std::int64_t now, std::uint32_t want, std::int64_t horizon) {
    const std::int64_t interval = interval_at(now);
    std::int64_t t = tat && *tat > now ? *tat : now;
    lease l;
    while (l.granted < want) {
      const std::int64_t next = t + interval;
      const std::int64_t conforms = next - burst * interval;
      if (conforms > now + horizon) break;
      l.times.push_back(std::max(now, conforms));
      t = next;
      ++l.granted;
    }
    if (l.granted != 0) tat = t;
    const std::int64_t next_base = std::max(tat.value_or(now), now);
    l.retry_at = next_base + interval - burst * interval - horizon;
    l.tat = tat.value_or(now);
    l.milli_rate = static_cast<std::int64_t>(std::floor(rate_at(now) * 1000 + 0.5));
    return l;
  }
  void throttle(std::int64_t now) {
    const double cut = std::max(min_rate, rate_at(now) * factor);
    cut_rate = cut;
    cut_at = now;
    ++throttles;
    const std::int64_t floor_tat = now + interval_at(now) * burst;
    if (!tat || *tat < floor_tat) tat = floor_tat;
  }
  bool release(std::int64_t lease_end, std::int64_t return_to) {
    if (tat && *tat == lease_end && return_to < *tat) {
      tat = return_to;
      return true;
    }
    return false;
  }
};

pollster::budget_options limits(double rate, std::uint64_t burst, pollster::duration recovery = 10s) {
  pollster::budget_options o;
  o.rate = rate;
  o.burst = burst;
  o.throttle_factor = 0.5;
  o.recovery = recovery;
  return o;
}

}  // namespace

TEST_CASE("the GCRA script grants exactly what a token-by-token model does, in virtual time", "[redis][gcra]") {
  pollster_test::redis_server server;
  pollster::redis_connection connection(server.options(1000ms));
  struct config {
    double rate;
    std::uint64_t burst;
    std::uint64_t seed;
  };
  const config configs[] = {{20.0, 1, 1}, {7.3, 5, 2}, {1000.0, 3, 3}, {0.5, 1, 4}};
  std::size_t compared = 0;
  std::size_t throttled = 0;
  std::size_t released = 0;
  for (const config& c : configs) {
    const pollster::budget_options l = limits(c.rate, c.burst, 2s);
    pollster::redis_gcra script(l, "test:gcra:" + std::to_string(c.seed));
    gcra_model model{c.rate, static_cast<std::int64_t>(c.burst), 0.5, c.rate / 100.0, 2000000, {}, {}, 0, 0};
    std::mt19937_64 random(c.seed);
    std::int64_t now = 1700000000000000;  // about now, in microseconds since 1970: the size Redis' TIME gives
    const std::int64_t interval = model.interval_at(now);
    std::optional<std::int64_t> last_end;
    std::int64_t last_base = 0;
    std::int64_t last_interval = 0;
    std::uint32_t last_granted = 0;
    for (int op = 0; op < 400; ++op) {
      now += static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(3 * interval + 1));
      const std::uint64_t kind = random() % 10;
      if (kind == 0) {
        script.throttle(connection, now);
        model.throttle(now);
        ++throttled;
      } else if (kind == 1 && last_end) {
        const std::uint32_t keep = last_granted == 0 ? 0 : static_cast<std::uint32_t>(random() % last_granted);
        const std::int64_t return_to = last_base + keep * last_interval;
        const bool wrong_end = random() % 4 == 0;
        const std::int64_t end = wrong_end ? *last_end + 1 : *last_end;
        const bool expected = model.release(end, return_to);
        CHECK(script.release(connection, end, return_to, now) == expected);
        released += expected ? 1 : 0;
        last_end.reset();
      } else {
        const auto want = static_cast<std::uint32_t>(random() % 11);
        const std::int64_t horizon = static_cast<std::int64_t>(random() % static_cast<std::uint64_t>(10 * interval));
        const pollster::gcra_lease got = script.reserve(connection, want, std::chrono::microseconds(horizon), {}, 10s, now);
        const gcra_model::lease expected = model.reserve(now, want, horizon);
        INFO("rate " << c.rate << ", burst " << c.burst << ", op " << op << ", now " << now << ", want " << want
                     << ", horizon " << horizon);
        REQUIRE(got.granted == expected.granted);
        std::vector<std::int64_t> times;
        for (std::uint32_t i = 0; i < got.granted; ++i) times.push_back(got.token_at(i));
        CHECK(times == expected.times);
        CHECK(got.tat == expected.tat);
        CHECK(got.retry_at == expected.retry_at);
        CHECK(std::llround(got.rate * 1000) == expected.milli_rate);
        CHECK(got.throttles == model.throttles);
        CHECK(got.now == now);
        if (got.granted != 0) {
          last_end = got.tat;
          last_base = got.base;
          last_interval = got.interval;
          last_granted = got.granted;
        }
        ++compared;
      }
    }
  }
  CHECK(compared > 1000);
  CHECK(throttled > 100);
  CHECK(released > 10);
}

TEST_CASE("GCRA leases never let more than rate * W + burst tokens fall in any window W", "[redis][gcra]") {
  // The property the fleet's accuracy rests on, checked on what the script granted to leases of every size: token
  // times (not grant times) are what a process sends at.
  pollster_test::redis_server server;
  pollster::redis_connection connection(server.options(1000ms));
  for (const std::uint64_t burst : {std::uint64_t{1}, std::uint64_t{4}}) {
    const double rate = 20.0;
    pollster::redis_gcra script(limits(rate, burst), "test:window:" + std::to_string(burst));
    std::mt19937_64 random(burst);
    std::vector<std::int64_t> times;
    std::int64_t now = 1700000000000000;
    for (int op = 0; op < 600; ++op) {
      now += static_cast<std::int64_t>(random() % 120000);
      const auto want = static_cast<std::uint32_t>(1 + random() % 64);
      const pollster::gcra_lease l = script.reserve(connection, want, 1s, {}, 10s, now);
      for (std::uint32_t i = 0; i < l.granted; ++i) times.push_back(l.token_at(i));
    }
    std::sort(times.begin(), times.end());
    REQUIRE(times.size() > 400);
    std::size_t worst = 0;
    for (std::size_t i = 0, j = 0; i < times.size(); ++i) {
      while (times[i] - times[j] >= 1000000) ++j;  // the tokens in [times[i] - 1 s, times[i]]
      worst = std::max(worst, i - j + 1);
    }
    INFO("burst " << burst);
    CHECK(worst <= static_cast<std::size_t>(rate) + burst);
    CHECK(worst >= static_cast<std::size_t>(rate));  // and the limit is used, not merely respected
  }
}

TEST_CASE("a GCRA lease follows redis-cell's table: a burst of five, then one per second", "[redis][gcra]") {
  // redis-cell's it_rate_limits case, in pollster's terms: 1 per second with a burst of 5 (their max_burst 4).
  pollster_test::redis_server server;
  pollster::redis_connection connection(server.options(1000ms));
  pollster::redis_gcra script(limits(1.0, 5), "test:cell");
  const std::int64_t start = 1700000000000000;
  const pollster::gcra_lease first = script.reserve(connection, 6, 0s, {}, 10s, start);
  CHECK(first.granted == 5);  // never more than the burst at once
  for (std::uint32_t i = 0; i < 5; ++i) CHECK(first.token_at(i) == start);
  CHECK(first.tat == start + 5000000);
  CHECK(first.retry_at == start + 1000000);  // the sixth one second later
  CHECK(script.reserve(connection, 1, 0s, {}, 10s, start).granted == 0);
  // 3 s later, 3 tokens have come back (their case 7: remaining 2 after taking one).
  CHECK(script.reserve(connection, 10, 0s, {}, 10s, start + 3000000).granted == 3);
  // With a horizon, a lease reaches into the future: each token carries its own time.
  const pollster::gcra_lease ahead = script.reserve(connection, 3, 2500ms, {}, 10s, start + 3000000);
  REQUIRE(ahead.granted == 2);
  CHECK(ahead.token_at(0) == start + 4000000);
  CHECK(ahead.token_at(1) == start + 5000000);
}

TEST_CASE("a throttle in the GCRA script cuts the rate for everyone and it recovers linearly", "[redis][gcra]") {
  pollster_test::redis_server server;
  pollster::redis_connection connection(server.options(1000ms));
  pollster::redis_gcra script(limits(10.0, 1, 10s), "test:throttle");
  const std::int64_t start = 1700000000000000;
  CHECK(script.reserve(connection, 1, 0s, {}, 10s, start).granted == 1);
  CHECK(script.throttle(connection, start) == 5.0);        // halved
  CHECK(script.throttle(connection, start + 1) == 2.5);    // halved again from where it stands
  const pollster::gcra_lease after = script.reserve(connection, 1, 10s, {}, 10s, start + 5000000);
  CHECK(after.rate == Catch::Approx(2.5 + 7.5 * 0.5).margin(0.001));  // halfway through the recovery
  CHECK(after.interval == 160000);                             // 1 / 6.25 per second
  CHECK(script.reserve(connection, 1, 10s, {}, 10s, start + 11000000).rate == 10.0);
}

namespace {
using outcome_type = pollster::outcome<int, std::string>;
using step_type = pollster::step<int, std::string>;

/// Records when each check of the fleet ran (real time), from any thread.
struct check_log {
  std::mutex mutex;
  std::vector<std::chrono::steady_clock::time_point> times;
  void add() {
    std::lock_guard<std::mutex> lock(mutex);
    times.push_back(std::chrono::steady_clock::now());
  }
  /// The most checks in any window of `window`.
  std::size_t worst(std::chrono::steady_clock::duration window) {
    std::lock_guard<std::mutex> lock(mutex);
    std::vector<std::chrono::steady_clock::time_point> t = times;
    std::sort(t.begin(), t.end());
    std::size_t most = 0;
    for (std::size_t i = 0, j = 0; i < t.size(); ++i) {
      while (t[i] - t[j] >= window) ++j;
      most = std::max(most, i - j + 1);
    }
    return most;
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mutex);
    return times.size();
  }
};

/// A "process": a runner on its own thread, with a fleet budget, and `pollers` pollers that each check every 10 ms
/// for ever (so the budget, not the schedule, decides when checks happen).
struct process {
  pollster::steady_clock clock;
  pollster::runner<pollster::steady_clock> runner{clock};
  pollster::redis_budget<pollster::steady_clock>* budget = nullptr;
  std::vector<pollster::handle> handles;

  process(const pollster::redis_budget_options& options, int pollers, check_log& log) {
    auto owned = std::make_unique<pollster::redis_budget<pollster::steady_clock>>(clock, options);
    budget = owned.get();
    pollster::submit_options submit;
    submit.budget = runner.add_budget("fleet", std::move(owned));
    for (int i = 0; i < pollers; ++i) {
      handles.push_back(runner.submit(
          [&log]() -> step_type {
            log.add();
            return pollster::pending();
          },
          pollster::constant{10ms}, pollster::never{}, [](outcome_type) {}, submit));
    }
    runner.start();
  }
  ~process() {
    for (const pollster::handle& h : handles) h.cancel();
    runner.stop();
  }
};

pollster::redis_budget_options fleet_options(const pollster_test::redis_server& server, const std::string& key,
                                             double rate, std::uint32_t lease) {
  pollster::redis_budget_options o;
  o.limits.rate = rate;
  o.limits.burst = 1;
  o.key = key;
  o.lease = lease;
  o.expected_processes = 2;
  o.redis = server.options(200ms);
  return o;
}
}  // namespace

TEST_CASE("two processes sharing a fleet budget stay within its rate together, with leases of 8", "[redis][budget]") {
  pollster_test::redis_server server;
  check_log log;
  const double rate = 40.0;
  {
    process a(fleet_options(server, "test:fleet", rate, 8), 20, log);
    process b(fleet_options(server, "test:fleet", rate, 8), 20, log);
    std::this_thread::sleep_for(2500ms);
    const auto sa = a.budget->stats();
    const auto sb = b.budget->stats();
    CHECK(sa.connected);
    CHECK(sb.connected);
    CHECK(sa.members_seen == 2);
    CHECK(sa.from_fallback == 0);
    CHECK(sb.from_fallback == 0);
    CHECK(sa.granted > 20);
    CHECK(sb.granted > 20);
    // Leases of 8: far fewer round trips than checks.
    CHECK(sa.round_trips * 3 < sa.granted);
  }
  // Within rate * (W + hold) + burst in any second (hold: one interval), and close to the rate overall.
  CHECK(log.worst(1s) <= static_cast<std::size_t>(rate) + 2);
  CHECK(log.size() >= static_cast<std::size_t>(rate * 2.0));
}

TEST_CASE("when Redis stops answering, each process falls back to its share, and the shared budget resumes",
          "[redis][budget]") {
  pollster_test::redis_server server;
  check_log log;
  const double rate = 40.0;
  process a(fleet_options(server, "test:fallback", rate, 4), 10, log);
  std::this_thread::sleep_for(500ms);
  REQUIRE(a.budget->stats().connected);
  CHECK(a.budget->fallback_rate() == Catch::Approx(20.0));  // rate / expected_processes (2)

  server.pause();  // SIGSTOP: commands time out after 200 ms
  std::this_thread::sleep_for(600ms);
  const auto during = a.budget->stats();
  CHECK_FALSE(during.connected);
  CHECK(during.fallbacks == 1);
  const std::size_t before = log.size();
  std::this_thread::sleep_for(1000ms);
  const std::size_t in_one_second = log.size() - before;
  CHECK(in_one_second <= 21);  // the share: 20 per second
  CHECK(in_one_second >= 10);

  server.resume();
  std::this_thread::sleep_for(1500ms);
  const auto after = a.budget->stats();
  CHECK(after.connected);
  CHECK(after.leased > during.leased);
  CHECK(after.from_fallback >= 10);
  CHECK(after.reconnects >= 2);
}

TEST_CASE("a budget that starts while Redis is down runs on its share, and joins when Redis comes up",
          "[redis][budget]") {
  pollster_test::redis_server server;
  server.stop();
  check_log log;
  process a(fleet_options(server, "test:late", 40.0, 4), 5, log);
  std::this_thread::sleep_for(700ms);
  CHECK_FALSE(a.budget->stats().connected);
  CHECK(log.size() >= 5);   // checks go on, on the share
  CHECK(log.size() <= 16);  // 20 per second for 0.7 s
  server.restart();
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!a.budget->stats().connected && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(20ms);
  CHECK(a.budget->stats().connected);
  CHECK(a.budget->stats().last_error.find("cannot connect") != std::string::npos);
}

TEST_CASE("a throttle in one process cuts the rate another process leases at", "[redis][budget]") {
  pollster_test::redis_server server;
  check_log log_a;
  check_log log_b;
  process a(fleet_options(server, "test:shared-throttle", 40.0, 4), 5, log_a);
  process b(fleet_options(server, "test:shared-throttle", 40.0, 4), 5, log_b);
  std::this_thread::sleep_for(300ms);
  a.budget->throttled(std::chrono::duration_cast<pollster::duration>(a.clock.now().time_since_epoch()));
  std::this_thread::sleep_for(400ms);
  CHECK(a.budget->stats().throttles == 1);
  CHECK(b.budget->stats().rate < 40.0);  // b heard of it from Redis, at its next lease
  CHECK(b.budget->stats().rate >= 20.0);
}

TEST_CASE("tokens a process no longer needs go back to the fleet", "[redis][budget]") {
  pollster_test::redis_server server;
  check_log log;
  pollster::redis_budget_options o = fleet_options(server, "test:hand-back", 10.0, 30);
  o.horizon = 3s;  // one lease reaches 3 s ahead: most of its tokens are still to come when demand stops
  auto a = std::make_unique<process>(o, 1, log);
  std::this_thread::sleep_for(300ms);
  for (const pollster::handle& h : a->handles) h.cancel();  // no more demand
  std::this_thread::sleep_for(1000ms);
  const auto s = a->budget->stats();
  CHECK(s.leased == 30);
  CHECK(s.handed_back >= 20);
  CHECK(s.granted - s.from_fallback + s.handed_back + s.wasted + s.held == s.leased);
  // What went back is the fleet's again: a token now, where without the hand-back the next one would come 3 s after
  // the first lease.
  pollster::redis_connection c(server.options(1000ms));
  pollster::redis_gcra probe(o.limits, o.key);
  CHECK(probe.reserve(c, 1, 200ms).granted == 1);
}

TEST_CASE("a fleet budget refuses impossible options, naming them", "[redis][budget]") {
  pollster::steady_clock clock;
  pollster::redis_budget_options o;
  o.lease = 0;
  CHECK_THROWS_WITH((pollster::redis_budget<pollster::steady_clock>{clock, o}),
                    "pollster::redis_budget: lease must be >= 1, got 0");
  o.lease = 4;
  o.expected_processes = 0;
  CHECK_THROWS_WITH((pollster::redis_budget<pollster::steady_clock>{clock, o}),
                    "pollster::redis_budget: expected_processes must be >= 1, got 0");
  o.expected_processes = 1;
  o.limits.rate = -1;
  CHECK_THROWS_WITH((pollster::redis_budget<pollster::steady_clock>{clock, o}),
                    "pollster::token_bucket: rate must be finite and in (0, 1e9] per second, got -1");
}
