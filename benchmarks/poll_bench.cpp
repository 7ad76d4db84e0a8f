// poll_until's overhead per attempt against the while loop a user would write for the same job: Heat's geometric
// schedule, a deadline the last sleep is clamped to, a cancellation token, the manual clock (so the sleeps cost
// nothing and only the loop is measured). Both loops call the same check. Heap allocations are counted by
// replacing the global operator new in this translation unit.
//
//   poll_bench --benchmark_repetitions=9 --benchmark_report_aggregates_only=true
//
// Instruction counts stay put on a noisy machine: `--count-instructions=poll_until` (or `=hand_loop`) makes
// 200 000 attempts of the same two loops, in runs of 200 (or of N with `=poll_until/N`), in a function of that
// name, for callgrind to count alone with what it calls; the instructions per attempt are callgrind's "Collected"
// over the attempts printed. Name the function exactly: a wildcard would also match poll_until's own loop, whose
// name contains the check's, and toggle the collection off inside it.
//
//   valgrind --tool=callgrind --toggle-collect='(anonymous namespace)::count_poll_until(long)' poll_bench
//       --count-instructions=poll_until          (all on one line; or =poll_until/53 for runs of 53)
//   valgrind --tool=callgrind --toggle-collect='(anonymous namespace)::count_hand_loop(long)' poll_bench
//       --count-instructions=hand_loop

#if defined(__GNUC__) && !defined(__clang__)
// The counting operator new below pairs malloc with free; GCC's check cannot see through the replacement.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <pollster/poll.hpp>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>

#include <benchmark/benchmark.h>

#include "ratio.hpp"

#include <algorithm>  // min
#include <atomic>     // atomic
#include <chrono>     // literals
#include <cstdint>    // int64_t, uint64_t
#include <cstdio>     // printf
#include <cstdlib>    // malloc, free, strtol
#include <cstring>    // strncmp, strchr, strlen
#include <string>     // string
#include <new>        // operator new, bad_alloc

namespace {
std::atomic<std::uint64_t> allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace std::chrono_literals;

namespace {

/// The work both loops do per attempt: ask "is it done?" of a simulated resource.
struct resource {
  std::int64_t checks_until_done = 0;
  std::int64_t checks = 0;
  /// 0 = BUILD, 1 = ACTIVE
  int status() noexcept { return ++checks >= checks_until_done ? 1 : 0; }
};

/// Divides the benchmark's time by the attempts made and reports allocations per attempt.
void report(benchmark::State& state, std::uint64_t attempts, std::uint64_t allocated) {
  state.counters["attempts"] = static_cast<double>(attempts);
  state.counters["per_attempt"] =
      benchmark::Counter(static_cast<double>(attempts), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["allocs_per_attempt"] = static_cast<double>(allocated) / static_cast<double>(attempts);
}

void BM_poll_until(benchmark::State& state) {
  const auto per_run = static_cast<std::int64_t>(state.range(0));
  pollster::manual_clock clock;
  pollster::cancel_source cancel;
  pollster::poll_options options;
  options.cancel = cancel.get_token();
  const pollster::geometric heat = pollster::presets::heat();
  const pollster::before_deadline deadline{1h};
  std::uint64_t attempts = 0;
  const std::uint64_t allocated_before = allocations.load();
  for (auto _ : state) {
    resource r{per_run};
    auto check = [&r]() -> pollster::step<int, int> {
      const int s = r.status();
      return s == 1 ? pollster::step<int, int>{pollster::done(s)} : pollster::step<int, int>{pollster::pending()};
    };
    const auto result = pollster::poll_until(clock, check, heat, deadline, options);
    benchmark::DoNotOptimize(result.attempts);
    attempts += result.attempts;
  }
  report(state, attempts, allocations.load() - allocated_before);
}

/// What a careful user writes by hand for the same job: immediate first check, schedule, deadline clamp,
/// cancellation checked before and after each sleep, attempts and elapsed time kept.
void BM_hand_written_loop(benchmark::State& state) {
  const auto per_run = static_cast<std::int64_t>(state.range(0));
  pollster::manual_clock clock;
  pollster::cancel_source cancel;
  const pollster::cancel_token token = cancel.get_token();
  const pollster::geometric heat = pollster::presets::heat();
  const pollster::duration budget = 1h;
  std::uint64_t attempts = 0;
  const std::uint64_t allocated_before = allocations.load();
  for (auto _ : state) {
    resource r{per_run};
    pollster::geometric schedule = heat;
    const auto start = clock.now();
    std::uint64_t tries = 0;
    int last = -1;
    while (true) {
      ++tries;
      last = r.status();
      if (last == 1) break;
      const pollster::duration elapsed = clock.now() - start;
      if (elapsed >= budget || token.cancel_requested()) break;
      const pollster::duration delay = std::min(schedule.next(), budget - elapsed);
      if (!clock.sleep_until(clock.now() + delay, token) || token.cancel_requested()) break;
    }
    const pollster::duration elapsed = clock.now() - start;
    benchmark::DoNotOptimize(tries);
    benchmark::DoNotOptimize(last);
    benchmark::DoNotOptimize(elapsed);
    attempts += tries;
  }
  report(state, attempts, allocations.load() - allocated_before);
}

/// The poller alone, stepped by hand in virtual time (what the runner does): no clock, no sleep.
void BM_poller_step(benchmark::State& state) {
  const auto per_run = static_cast<std::int64_t>(state.range(0));
  using tp = pollster::manual_clock::time_point;
  const pollster::geometric heat = pollster::presets::heat();
  std::uint64_t attempts = 0;
  const std::uint64_t allocated_before = allocations.load();
  for (auto _ : state) {
    resource r{per_run};
    auto check = [&r]() -> pollster::step<int, int> {
      const int s = r.status();
      return s == 1 ? pollster::step<int, int>{pollster::done(s)} : pollster::step<int, int>{pollster::pending()};
    };
    auto p = pollster::make_poller(check, heat, pollster::before_deadline{1h}, tp{});
    while (!p.done()) p.step(p.next_due());
    benchmark::DoNotOptimize(p.outcome().attempts);
    attempts += p.outcome().attempts;
  }
  report(state, attempts, allocations.load() - allocated_before);
}

/// The same state machine written by hand: schedule, deadline clamp, next due time.
void BM_hand_written_step(benchmark::State& state) {
  const auto per_run = static_cast<std::int64_t>(state.range(0));
  using tp = pollster::manual_clock::time_point;
  const pollster::geometric heat = pollster::presets::heat();
  const pollster::duration budget = 1h;
  std::uint64_t attempts = 0;
  const std::uint64_t allocated_before = allocations.load();
  for (auto _ : state) {
    resource r{per_run};
    pollster::geometric schedule = heat;
    const tp start{};
    tp due = start;
    std::uint64_t tries = 0;
    bool finished = false;
    while (!finished) {
      const tp now = due;
      ++tries;
      if (r.status() == 1) break;
      const pollster::duration elapsed = now - start;
      if (elapsed >= budget) break;
      due = now + std::min(schedule.next(), budget - elapsed);
    }
    benchmark::DoNotOptimize(tries);
    benchmark::DoNotOptimize(due);
    attempts += tries;
  }
  report(state, attempts, allocations.load() - allocated_before);
}

BENCHMARK(BM_poll_until)->Arg(1)->Arg(53)->Arg(200);
BENCHMARK(BM_hand_written_loop)->Arg(1)->Arg(53)->Arg(200);
BENCHMARK(BM_poller_step)->Arg(53)->Arg(200);
BENCHMARK(BM_hand_written_step)->Arg(53)->Arg(200);

}  // namespace

namespace {
// For callgrind (see the top of the file): the loops of BM_poll_until and BM_hand_written_loop, 200 000 attempts.
constexpr std::int64_t counted_attempts = 200000;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
std::uint64_t
count_poll_until(std::int64_t per_run) {
  const std::int64_t counted_runs = counted_attempts / per_run;
  pollster::manual_clock clock;
  pollster::cancel_source cancel;
  pollster::poll_options options;
  options.cancel = cancel.get_token();
  const pollster::geometric heat = pollster::presets::heat();
  const pollster::before_deadline deadline{1h};
  std::uint64_t attempts = 0;
  for (std::int64_t i = 0; i < counted_runs; ++i) {
    resource r{per_run};
    auto check = [&r]() -> pollster::step<int, int> {
      const int s = r.status();
      return s == 1 ? pollster::step<int, int>{pollster::done(s)} : pollster::step<int, int>{pollster::pending()};
    };
    const auto result = pollster::poll_until(clock, check, heat, deadline, options);
    benchmark::DoNotOptimize(result.attempts);
    attempts += result.attempts;
  }
  return attempts;
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
std::uint64_t
count_hand_loop(std::int64_t per_run) {
  const std::int64_t counted_runs = counted_attempts / per_run;
  pollster::manual_clock clock;
  pollster::cancel_source cancel;
  const pollster::cancel_token token = cancel.get_token();
  const pollster::geometric heat = pollster::presets::heat();
  const pollster::duration budget = 1h;
  std::uint64_t attempts = 0;
  for (std::int64_t i = 0; i < counted_runs; ++i) {
    resource r{per_run};
    pollster::geometric schedule = heat;
    const auto start = clock.now();
    std::uint64_t tries = 0;
    int last = -1;
    while (true) {
      ++tries;
      last = r.status();
      if (last == 1) break;
      const pollster::duration elapsed = clock.now() - start;
      if (elapsed >= budget || token.cancel_requested()) break;
      const pollster::duration delay = std::min(schedule.next(), budget - elapsed);
      if (!clock.sleep_until(clock.now() + delay, token) || token.cancel_requested()) break;
    }
    const pollster::duration elapsed = clock.now() - start;
    benchmark::DoNotOptimize(tries);
    benchmark::DoNotOptimize(last);
    benchmark::DoNotOptimize(elapsed);
    attempts += tries;
  }
  return attempts;
}
}  // namespace

int main(int argc, char** argv) {
  const char* const counting = "--count-instructions=";
  if (argc == 2 && std::strncmp(argv[1], counting, std::strlen(counting)) == 0) {
    const char* which = argv[1] + std::strlen(counting);
    const char* slash = std::strchr(which, '/');
    const std::int64_t per_run = slash != nullptr ? std::strtol(slash + 1, nullptr, 10) : 200;
    const std::size_t name_length = slash != nullptr ? static_cast<std::size_t>(slash - which) : std::strlen(which);
    if (per_run < 1 || per_run > counted_attempts) return 2;
    if (std::string(which, name_length) == "poll_until") {
      std::printf("attempts %llu\n", static_cast<unsigned long long>(count_poll_until(per_run)));
      return 0;
    }
    if (std::string(which, name_length) == "hand_loop") {
      std::printf("attempts %llu\n", static_cast<unsigned long long>(count_hand_loop(per_run)));
      return 0;
    }
    return 2;
  }
  return pollster_bench::run_and_print_ratios(argc, argv,
                                              {{"BM_poll_until/1", "BM_hand_written_loop/1"},
                                               {"BM_poll_until/53", "BM_hand_written_loop/53"},
                                               {"BM_poll_until/200", "BM_hand_written_loop/200"},
                                               {"BM_poller_step/53", "BM_hand_written_step/53"},
                                               {"BM_poller_step/200", "BM_hand_written_step/200"}});
}
