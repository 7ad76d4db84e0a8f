// The event-driven-cloud arithmetic, in virtual time: 100 servers, each changing about once a day (a seeded Poisson
// process over one simulated day). How many API calls a day does it take to learn of every change, and how late?
//
//   (a) a fixed 1-minute poll of the list API;
//   (b) the same, with a detail call per server (the N+1 pattern);
//   (c) pollster's watcher with adaptive cadence (fast after a change, slower when quiet);
//   (d) the watcher nudged by callbacks (each change also sends a webhook a few seconds later; one in twenty is
//       lost), with a slow 15-minute safety poll. A callback is never trusted: it only makes the watcher call the
//       list API now, and the diff says what changed.
//
// The day runs on pollster's manual clock in well under a second. The program checks its own results and exits
// non-zero if a sanity check fails (it runs as a CTest test).

#include <pollster/runner.hpp>
#include <pollster/watch.hpp>

#include <algorithm>  // sort, nth_element, max
#include <chrono>     // literals
#include <cmath>      // log
#include <cstddef>    // size_t, ptrdiff_t
#include <cstdint>    // uint32_t, uint64_t
#include <cstdio>     // printf
#include <functional>  // ref
#include <string>     // string
#include <vector>     // vector

using namespace std::chrono_literals;
using pollster::duration;

namespace {

constexpr int servers = 100;
constexpr duration day = 24h;
constexpr duration margin = 1h;  // changes late in the day are still detected: the simulation runs on this long

struct server_state {
  int id = 0;
  std::uint32_t version = 0;  // bumped by every change, as a server-assigned resource version is
};

/// The simulated cloud: when each server changes. Seeded, so every run prints the same table.
struct fleet {
  std::vector<std::vector<duration>> change_times;  // per server, in order
  std::size_t total_changes = 0;

  explicit fleet(std::uint64_t seed) : change_times(servers) {
    pollster::splitmix64 random{seed};
    const auto uniform = [&random] { return (static_cast<double>(random() >> 11) + 0.5) * 0x1p-53; };
    for (auto& times : change_times) {
      // A Poisson process with one change a day on average: exponential gaps.
      double t_hours = 0;
      for (;;) {
        t_hours += -std::log(uniform()) * 24.0;
        if (t_hours >= 24.0) break;
        times.push_back(std::chrono::duration_cast<duration>(std::chrono::duration<double, std::ratio<3600>>(t_hours)));
        ++total_changes;
      }
    }
  }

  std::uint32_t version_at(int id, duration now) const {
    const auto& times = change_times[static_cast<std::size_t>(id)];
    return static_cast<std::uint32_t>(std::upper_bound(times.begin(), times.end(), now) - times.begin());
  }
};

/// What one strategy cost and how well it did.
struct result {
  std::string name;
  std::string schedule;
  std::uint64_t calls = 0;  // API calls made during the day
  std::vector<duration> delays;
  std::size_t missed = 0;
};

/// The list API (and, for the N+1 pattern, the detail API), counting the calls made during the day.
struct cloud_api {
  const fleet* world;
  const pollster::manual_clock* clock;
  bool detail_per_server = false;
  std::uint64_t calls = 0;

  std::vector<server_state> operator()() {
    const duration now = clock->now().time_since_epoch();
    const bool counted = now <= day;
    if (counted) ++calls;
    std::vector<server_state> list(servers);
    for (int id = 0; id < servers; ++id) {
      list[static_cast<std::size_t>(id)].id = id;
      // The N+1 pattern: the list gives ids, each server's state takes a call of its own.
      if (detail_per_server && counted) ++calls;
      list[static_cast<std::size_t>(id)].version = world->version_at(id, now);
    }
    return list;
  }
};

/// Receives the watcher's events and turns each detected version into detection delays.
struct delay_meter {
  const fleet* world;
  const pollster::manual_clock* clock;
  std::vector<duration>* delays;

  void operator()(const pollster::added<const server_state&>&) const {}  // the initial list
  void operator()(const pollster::removed<const server_state&, int>&) const {}
  void operator()(const pollster::changed<const server_state&>& e) const {
    const duration now = clock->now().time_since_epoch();
    const auto& times = world->change_times[static_cast<std::size_t>(e.after.id)];
    for (std::uint32_t v = e.before.version + 1; v <= e.after.version; ++v) delays->push_back(now - times[v - 1]);
  }
};

/// Runs one watcher over the day on a runner; `callbacks` are the times at which a webhook nudges it.
template <class Schedule>
result simulate(const fleet& world, std::string name, std::string schedule_text, Schedule schedule, bool adaptive,
                bool detail_per_server, const std::vector<duration>& callbacks) {
  pollster::manual_clock clock;
  pollster::runner<pollster::manual_clock> runner(clock);
  result out{std::move(name), std::move(schedule_text), 0, {}, 0};
  cloud_api api{&world, &clock, detail_per_server, 0};
  pollster::watch_options options;
  options.adaptive = adaptive;
  pollster::handle h = runner.submit(
      pollster::watching(std::ref(api), pollster::keyed(&server_state::id, &server_state::version),
                         delay_meter{&world, &clock, &out.delays}, options),
      std::move(schedule), pollster::never{}, [](auto&&) {});
  for (const duration at : callbacks) {
    runner.run_until(pollster::manual_clock::time_point{} + at);
    h.nudge();
  }
  runner.run_until(pollster::manual_clock::time_point{} + day + margin);
  h.cancel();
  runner.run();
  out.calls = api.calls;
  out.missed = world.total_changes - out.delays.size();
  return out;
}

duration percentile(std::vector<duration> values, double p) {
  if (values.empty()) return duration::zero();
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(rank), values.end());
  return values[rank];
}

}  // namespace

int main() {
  const fleet world{20140623};

  // Callbacks: each change sends one 1 to 5 s later; one in twenty never arrives.
  std::vector<duration> callbacks;
  std::size_t lost = 0;
  pollster::splitmix64 random{7};
  for (const auto& times : world.change_times) {
    for (const duration t : times) {
      if (random() % 20 == 0) {
        ++lost;
        continue;
      }
      callbacks.push_back(t + 1s + duration{static_cast<std::int64_t>(random() % 4'000'000'000ULL)});
    }
  }
  std::sort(callbacks.begin(), callbacks.end());

  const pollster::geometric adaptive_schedule{10s, 2.0, 5min};
  std::vector<result> results;
  results.push_back(simulate(world, "(a) fixed poll of the list", "constant 1 min", pollster::constant{1min}, false,
                             false, {}));
  results.push_back(simulate(world, "(b) list + detail per server", "constant 1 min", pollster::constant{1min},
                             false, true, {}));
  results.push_back(simulate(world, "(c) watcher, adaptive", "geometric 10 s x 2, cap 5 min", adaptive_schedule,
                             true, false, {}));
  results.push_back(simulate(world, "(d) watcher + callbacks", "nudges + constant 15 min", pollster::constant{15min},
                             false, false, callbacks));

  std::printf("%d servers, %zu changes in one simulated day (seeded Poisson, about one per server), %zu callbacks "
              "sent, %zu lost\n\n",
              servers, world.total_changes, callbacks.size(), lost);
  std::printf("%-30s %-30s %14s %12s %12s %10s\n", "strategy", "schedule", "API calls/day", "worst delay",
              "median delay", "detected");
  for (const result& r : results) {
    std::printf("%-30s %-30s %14llu %12s %12s %5zu/%zu\n", r.name.c_str(), r.schedule.c_str(),
                static_cast<unsigned long long>(r.calls), pollster::detail::duration_text(percentile(r.delays, 1.0), 1).c_str(),
                pollster::detail::duration_text(percentile(r.delays, 0.5), 1).c_str(), r.delays.size(),
                world.total_changes);
  }

  // What the cap costs: the adaptive watcher's cap bounds the detection delay and sets the quiet-time call rate.
  std::printf("\nthe adaptive watcher's cap (geometric 10 s x 2):\n%-12s %14s %12s %12s\n", "cap", "API calls/day",
              "worst delay", "median delay");
  std::vector<result> caps;
  for (const duration cap : {duration{1min}, duration{2min}, duration{5min}, duration{15min}, duration{1h}}) {
    caps.push_back(simulate(world, "", "", pollster::geometric{10s, 2.0, cap}, true, false, {}));
    const result& r = caps.back();
    std::printf("%-12s %14llu %12s %12s\n", pollster::detail::duration_text(cap).c_str(),
                static_cast<unsigned long long>(r.calls), pollster::detail::duration_text(percentile(r.delays, 1.0), 1).c_str(),
                pollster::detail::duration_text(percentile(r.delays, 0.5), 1).c_str());
  }

  // Sanity checks: the table means something only if these hold.
  int failures = 0;
  const auto expect = [&failures](bool ok, const char* what) {
    if (!ok) {
      std::printf("SANITY CHECK FAILED: %s\n", what);
      ++failures;
    }
  };
  const result& a = results[0];
  const result& b = results[1];
  const result& c = results[2];
  const result& d = results[3];
  expect(world.total_changes > 50 && world.total_changes < 150, "about one change per server per day");
  for (const result& r : results) expect(r.missed == 0, "every strategy detects every change");
  expect(a.calls == 1441, "a fixed 1-minute poll makes 1441 calls in a day (t = 0 included)");
  expect(b.calls == a.calls * (servers + 1), "the N+1 pattern multiplies the calls by 101");
  expect(percentile(a.delays, 1.0) <= 1min, "a 1-minute poll notices every change within a minute");
  expect(percentile(c.delays, 1.0) <= 5min, "the adaptive watcher notices every change within its cap");
  expect(d.calls < a.calls / 4, "callbacks with a safety poll need far fewer calls than a 1-minute poll");
  expect(percentile(d.delays, 0.5) <= 5s, "a delivered callback makes detection take seconds");
  expect(percentile(d.delays, 1.0) <= 15min, "a lost callback is caught by the 15-minute safety poll");
  for (std::size_t i = 1; i < caps.size(); ++i) {
    expect(caps[i].calls < caps[i - 1].calls, "a longer cap makes fewer calls");
    expect(caps[i].missed == 0, "every cap detects every change");
  }
  return failures == 0 ? 0 : 1;
}
