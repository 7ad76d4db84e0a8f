// Asynchronous checks: 100 000 pollers whose checks complete after a latency (asio timers standing in for the
// network), all in flight at once, against the same work written directly on asio, and against a pool of 64
// threads running blocking checks.
//
//   asio_direct           one io_context thread; per poller one steady_timer: wait the latency (the request), then
//                         the schedule's delay, K times. What a careful asio user writes by hand.
//   pollster_async_poll   the same on the same io_context through pollster::async_poll: an asynchronous check
//                         starts the latency timer and its handler reports into the pollster::completion; the poller
//                         decides the next delay (constant schedule, after_attempts{K}).
//   pollster_runner       pollster::runner on its own thread with the same checks; the "network" (the timers) runs
//                         on an io_context thread, and every completion comes back through the runner's queue.
//   thread_pool_blocking  64 threads, each taking the next poller and running a blocking check (sleep the latency).
//
// Every variant makes the same N x K checks; the time per iteration divided by N x K is the cost per check. The
// ratios printed at the end are baseline / pollster per check (wall and CPU; CPU includes every thread of the
// process), and the throughput against the pool of 64 threads.
//
//   async_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <pollster/asio.hpp>
#include <pollster/runner.hpp>

#include <benchmark/benchmark.h>
#include <asio.hpp>

#include "ratio.hpp"

#include <algorithm>  // max
#include <atomic>     // atomic
#include <chrono>     // milliseconds
#include <cstdint>    // uint64_t
#include <cstdio>     // printf
#include <memory>     // shared_ptr, make_shared
#include <mutex>      // mutex
#include <thread>     // thread
#include <vector>     // vector

namespace {

using namespace std::chrono_literals;

constexpr auto latency = 5ms;  // the "network": every check's answer comes this long after it starts
constexpr auto delay = 5ms;    // the schedule between an answer and the next check
constexpr std::uint64_t checks_per_poller = 3;

using check_step = pollster::step<int, int>;
using check_completion = pollster::completion<int, int>;

/// Counts checks in flight, to report the peak.
struct flight_meter {
  std::atomic<std::int64_t> now{0};
  std::atomic<std::int64_t> peak{0};
  void start() {
    const std::int64_t n = now.fetch_add(1, std::memory_order_relaxed) + 1;
    std::int64_t p = peak.load(std::memory_order_relaxed);
    while (n > p && !peak.compare_exchange_weak(p, n, std::memory_order_relaxed)) {
    }
  }
  void end() { now.fetch_sub(1, std::memory_order_relaxed); }
};

void finish(benchmark::State& state, std::uint64_t checks, const flight_meter& meter) {
  state.SetItemsProcessed(static_cast<std::int64_t>(checks));
  state.counters["checks"] = static_cast<double>(checks);
  state.counters["peak_in_flight"] = static_cast<double>(meter.peak.load());
}

// --- asio alone ------------------------------------------------------------------------------------------------

struct direct_poller {
  asio::steady_timer timer;
  std::uint64_t done = 0;
  flight_meter* meter;
  std::uint64_t* checks;
  direct_poller(asio::io_context& io, flight_meter* m, std::uint64_t* c) : timer(io), meter(m), checks(c) {}
  void request() {
    meter->start();
    timer.expires_after(latency);
    timer.async_wait([this](const asio::error_code&) { answered(); });
  }
  void answered() {
    meter->end();
    ++*checks;
    if (++done == checks_per_poller) return;
    timer.expires_after(delay);
    timer.async_wait([this](const asio::error_code&) { request(); });
  }
};

void asio_direct(benchmark::State& state) {
  const auto pollers = static_cast<std::size_t>(state.range(0));
  std::uint64_t checks = 0;
  flight_meter meter;
  for (auto _ : state) {
    asio::io_context io{1};
    std::vector<std::unique_ptr<direct_poller>> fleet;
    fleet.reserve(pollers);
    for (std::size_t i = 0; i < pollers; ++i) fleet.push_back(std::make_unique<direct_poller>(io, &meter, &checks));
    for (auto& p : fleet) p->request();
    io.run();
  }
  finish(state, checks, meter);
}

// --- pollster::async_poll on the same io_context ---------------------------------------------------------------

void pollster_async_poll(benchmark::State& state) {
  const auto pollers = static_cast<std::size_t>(state.range(0));
  std::uint64_t checks = 0;
  std::uint64_t ok = 0;
  flight_meter meter;
  for (auto _ : state) {
    asio::io_context io{1};
    for (std::size_t i = 0; i < pollers; ++i) {
      auto timer = std::make_shared<asio::steady_timer>(io);  // the poller's "connection", reused by every check
      auto check = [timer, &meter](check_completion c) {
        meter.start();
        timer->expires_after(latency);
        timer->async_wait([c = std::move(c), &meter](const asio::error_code&) mutable {
          meter.end();
          c(check_step(pollster::pending()));
        });
      };
      pollster::async_poll(io.get_executor(), std::move(check), pollster::constant{delay},
                           pollster::after_attempts{checks_per_poller}, pollster::poll_options{},
                           [&checks, &ok](const pollster::outcome<int, int>& o) {
                             checks += o.attempts;
                             ok += o.cause == pollster::cause::exhausted ? 1 : 0;
                           });
    }
    io.run();
  }
  if (ok != pollers * static_cast<std::size_t>(state.iterations())) state.SkipWithError("a poll did not end as planned");
  finish(state, checks, meter);
}

// --- pollster::runner on its own thread, the network on an io_context thread ------------------------------------

void pollster_runner(benchmark::State& state) {
  const auto pollers = static_cast<std::size_t>(state.range(0));
  std::uint64_t checks = 0;
  flight_meter meter;
  for (auto _ : state) {
    asio::io_context network{1};
    auto work = asio::make_work_guard(network);
    std::thread io_thread([&] { network.run(); });
    pollster::steady_clock clock;
    pollster::runner<> fleet{clock};
    std::atomic<std::size_t> ended{0};
    for (std::size_t i = 0; i < pollers; ++i) {
      auto timer = std::make_shared<asio::steady_timer>(network);
      auto check = [timer, &meter, &network](check_completion c) {
        meter.start();
        // The request goes out on the network's thread; its answer comes back to the runner through its queue.
        asio::post(network, [timer, &meter, c = std::move(c)]() mutable {
          timer->expires_after(latency);
          timer->async_wait([c = std::move(c), &meter](const asio::error_code&) mutable {
            meter.end();
            c(check_step(pollster::pending()));
          });
        });
      };
      fleet.submit(std::move(check), pollster::constant{delay}, pollster::after_attempts{checks_per_poller},
                   [&checks, &ended](const pollster::outcome<int, int>& o) {
                     checks += o.attempts;
                     ended.fetch_add(1, std::memory_order_relaxed);
                   });
    }
    fleet.run();
    work.reset();
    io_thread.join();
    if (ended.load() != pollers) state.SkipWithError("a poller did not end");
  }
  finish(state, checks, meter);
}

// --- a pool of 64 threads running blocking checks --------------------------------------------------------------

void thread_pool_blocking(benchmark::State& state) {
  const auto pollers = static_cast<std::size_t>(state.range(0));
  std::uint64_t total = 0;
  flight_meter meter;
  for (auto _ : state) {
    std::atomic<std::uint64_t> next{0};
    const std::uint64_t jobs = pollers * checks_per_poller;
    std::vector<std::thread> pool;
    for (int t = 0; t < 64; ++t) {
      pool.emplace_back([&] {
        while (next.fetch_add(1, std::memory_order_relaxed) < jobs) {
          meter.start();
          std::this_thread::sleep_for(latency);  // the blocking request
          meter.end();
        }
      });
    }
    for (auto& t : pool) t.join();
    total += jobs;
  }
  finish(state, total, meter);
}

BENCHMARK(asio_direct)->Arg(100000)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(pollster_async_poll)->Arg(100000)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
BENCHMARK(pollster_runner)->Arg(100000)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
// The pool makes 6 400 x 3 checks (3 seconds a run): its throughput does not depend on the number of pollers.
BENCHMARK(thread_pool_blocking)->Arg(6400)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  pollster_bench::ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const double checks = 100000.0 * checks_per_poller;
  const auto per_check = [&](const char* name) {
    const auto t = reporter.time_of(name);
    return std::pair<double, double>{t.wall * 1e6 / checks, t.cpu * 1e6 / checks};  // ms per iteration -> ns per check
  };
  const auto direct = per_check("asio_direct/100000/iterations:3/process_time/real_time");
  std::printf("\nper check (ns, wall / CPU of the whole process; %g checks of 100 000 pollers, latency 5 ms):\n", checks);
  std::printf("  %-22s %10.1f / %8.1f\n", "asio alone", direct.first, direct.second);
  for (const char* name : {"pollster_async_poll", "pollster_runner"}) {
    const auto ours = per_check((std::string(name) + "/100000/iterations:3/process_time/real_time").c_str());
    if (ours.second <= 0) continue;
    std::printf("  %-22s %10.1f / %8.1f   overhead vs asio alone: %.2fx CPU\n", name, ours.first, ours.second,
                ours.second / direct.second);
  }
  const auto pool = reporter.time_of("thread_pool_blocking/6400/iterations:1/process_time/real_time");
  const auto runner = reporter.time_of("pollster_runner/100000/iterations:3/process_time/real_time");
  if (pool.wall > 0 && runner.wall > 0) {
    const double pool_rate = 6400.0 * checks_per_poller / (pool.wall / 1e3);
    const double runner_rate = checks / (runner.wall / 1e3);
    std::printf("throughput: runner %.0f checks/s, 64 blocking threads %.0f checks/s: %.1fx\n", runner_rate, pool_rate,
                runner_rate / pool_rate);
  }
  benchmark::Shutdown();
  return 0;
}
