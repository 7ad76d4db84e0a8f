// The fleet budget on a real redis-server (started on a free loopback port by this program, stopped at the end):
//
//  1. acquisitions per second per process, saturated (a thread calling try_acquire as fast as it can), for 1 and 4
//     processes (threads with a budget and a Redis connection each): the local token bucket against redis_budget
//     with leases of 1, 8 and 64 tokens. Every budget is set to 1 000 000 per second, the GCRA script's resolution
//     (integer microseconds), so the rate is not what limits a lease of 64 on loopback, and a token stays usable 5 ms
//     after its time (`hold`; the default, one interval, is 1 us here: a token would expire on its way);
//  2. the limit's accuracy: 4 processes x 50 pollers (each wants a check every 10 ms) under a fleet limit of 20 per
//     second, for 3 s: checks per second overall and the most in any 1 s window (sliding), at each lease size;
//     against what a user would otherwise pick: a local budget of 20 per process (4 x over), and of 20 / 4.
// Prints one table; the medians of 3 runs for part 1. Real time: the machine's load moves the numbers.

#include <pollster/rate.hpp>
#include <pollster/redis_budget.hpp>
#include <pollster/runner.hpp>

#include "servers/redis_server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

pollster::duration now_of(pollster::steady_clock& clock) {
  return std::chrono::duration_cast<pollster::duration>(clock.now().time_since_epoch());
}

std::unique_ptr<pollster::budget_group> make_group(pollster::steady_clock& clock,
                                                   const pollster_test::redis_server& server, const std::string& key,
                                                   double rate, std::uint32_t lease, std::uint32_t processes,
                                                   pollster::duration hold = {}) {
  pollster::budget_options limits;
  limits.rate = rate;
  limits.burst = 1;
  if (lease == 0) return std::make_unique<pollster::local_budget>(limits);  // 0: the local token bucket
  pollster::redis_budget_options o;
  o.limits = limits;
  o.key = key;
  o.lease = lease;
  o.expected_processes = processes;
  o.hold = hold;
  o.redis = server.options(500ms);
  return std::make_unique<pollster::redis_budget<pollster::steady_clock>>(clock, o);
}

/// Part 1: tokens granted per second to each of `processes` threads spinning on try_acquire for `span`.
double acquisitions_per_second(const pollster_test::redis_server& server, std::uint32_t lease, std::uint32_t processes,
                               int run) {
  pollster::steady_clock clock;
  const std::string key = "bench:speed:" + std::to_string(lease) + ":" + std::to_string(processes) + ":" +
                          std::to_string(run);
  std::vector<std::unique_ptr<pollster::budget_group>> groups;
  for (std::uint32_t p = 0; p < processes; ++p) {
    groups.push_back(make_group(clock, server, key, 1e6, lease, processes, 5ms));
  }
  std::this_thread::sleep_for(100ms);  // connected, first lease on its way
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> counts(processes, 0);
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < processes; ++p) {
    threads.emplace_back([&, p] {
      while (!go.load()) std::this_thread::yield();
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (groups[p]->try_acquire(now_of(clock))) ++n;
      }
      counts[p] = n;
    });
  }
  const auto span = 700ms;
  go = true;
  std::this_thread::sleep_for(span);
  stop = true;
  for (std::thread& t : threads) t.join();
  std::uint64_t total = 0;
  for (std::uint64_t c : counts) total += c;
  const double seconds = std::chrono::duration<double>(span).count();
  return static_cast<double>(total) / processes / seconds;
}

struct accuracy {
  double per_second = 0;
  std::size_t worst_window = 0;
};

/// Part 2: 4 runners x 50 pollers under one fleet limit (or local budgets when lease is 0), for 3 s.
accuracy measure_accuracy(const pollster_test::redis_server& server, std::uint32_t lease, double rate_per_group) {
  constexpr std::uint32_t processes = 4;
  constexpr int pollers = 50;
  std::mutex mutex;
  std::vector<steady::time_point> checks;
  struct process {
    pollster::steady_clock clock;
    pollster::runner<pollster::steady_clock> runner{clock};
    std::vector<pollster::handle> handles;
  };
  std::vector<std::unique_ptr<process>> fleet;
  const std::string key = "bench:accuracy:" + std::to_string(lease) + ":" + std::to_string(rate_per_group);
  for (std::uint32_t p = 0; p < processes; ++p) {
    auto proc = std::make_unique<process>();
    pollster::submit_options submit;
    submit.budget =
        proc->runner.add_budget("api", make_group(proc->clock, server, key, rate_per_group, lease, processes));
    for (int i = 0; i < pollers; ++i) {
      proc->handles.push_back(proc->runner.submit(
          [&]() -> pollster::step<int, int> {
            std::lock_guard<std::mutex> lock(mutex);
            checks.push_back(steady::now());
            return pollster::pending();
          },
          pollster::constant{10ms}, pollster::never{}, [](pollster::outcome<int, int>) {}, submit));
    }
    fleet.push_back(std::move(proc));
  }
  const steady::time_point start = steady::now();
  for (auto& proc : fleet) proc->runner.start();
  std::this_thread::sleep_for(3s);
  for (auto& proc : fleet) {
    for (const pollster::handle& h : proc->handles) h.cancel();
    proc->runner.stop();
  }
  const double seconds = std::chrono::duration<double>(steady::now() - start).count();
  fleet.clear();
  std::sort(checks.begin(), checks.end());
  accuracy a;
  a.per_second = static_cast<double>(checks.size()) / seconds;
  for (std::size_t i = 0, j = 0; i < checks.size(); ++i) {
    while (checks[i] - checks[j] >= 1s) ++j;
    a.worst_window = std::max(a.worst_window, i - j + 1);
  }
  return a;
}

double median3(double a, double b, double c) { return std::max(std::min(a, b), std::min(std::max(a, b), c)); }

}  // namespace

int main() {
  pollster_test::redis_server server;
  std::printf("redis_bench: redis-server on 127.0.0.1:%d\n\n", server.port());
  std::printf("1. acquisitions per second per process (saturated; rate set to 1 000 000/s; median of 3 runs)\n");
  std::printf("%-22s %14s %14s\n", "budget", "1 process", "4 processes");
  double local_1 = 0;
  for (const std::uint32_t lease : {0u, 1u, 8u, 64u}) {
    double r[2];
    for (int k = 0; k < 2; ++k) {
      const std::uint32_t processes = k == 0 ? 1 : 4;
      r[k] = median3(acquisitions_per_second(server, lease, processes, 0),
                     acquisitions_per_second(server, lease, processes, 1),
                     acquisitions_per_second(server, lease, processes, 2));
    }
    if (lease == 0) local_1 = r[0];
    const std::string name = lease == 0 ? "local token bucket" : "redis, lease " + std::to_string(lease);
    std::printf("%-22s %14.0f %14.0f", name.c_str(), r[0], r[1]);
    if (lease != 0) std::printf("   (local / redis, 1 process: %.1fx)", local_1 / r[0]);
    std::printf("\n");
  }

  std::printf("\n2. accuracy: 4 processes x 50 pollers wanting 100 checks/s each, fleet limit 20/s, 3 s\n");
  std::printf("%-34s %12s %22s\n", "budget", "checks/s", "most in any 1 s window");
  struct row {
    const char* name;
    std::uint32_t lease;
    double rate;
  };
  for (const row& r : {row{"local 20/s per process", 0, 20.0}, row{"local 5/s per process (20 / 4)", 0, 5.0},
                       row{"redis 20/s, lease 1", 1, 20.0}, row{"redis 20/s, lease 8", 8, 20.0},
                       row{"redis 20/s, lease 64", 64, 20.0}}) {
    const accuracy a = measure_accuracy(server, r.lease, r.rate);
    std::printf("%-34s %12.1f %22zu\n", r.name, a.per_second, a.worst_window);
  }
  return 0;
}
