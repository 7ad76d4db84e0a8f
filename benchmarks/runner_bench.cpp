// The runner's own dispatch cost and memory, against what a C++ user would otherwise write: one
// asio::steady_timer per poller, re-armed in its handler, on a single-threaded io_context.
//
// Every poller's check is trivial and always due (a 1 ns constant schedule on the real steady clock), so what is
// measured is the runner's own work per poll: find what is due, step the poller, re-arm it. One benchmark
// iteration is one sweep of N polls for both. Memory is the heap in use (glibc mallinfo2, so allocator overhead
// and asio's aligned_alloc'd handlers count too) after N pollers are pending, divided by N.
//
//   build-runner-rel/benchmarks/runner_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// The table at the end uses the medians of the repetitions.
//
// Instructions per dispatch stay put on a noisy machine: `--count-instructions=runner/N` (N pollers, 100 000 by
// default) sets up the fleet and sweeps it once, then makes 10 more sweeps inside count_runner_sweeps, for
// callgrind to count alone; the instructions per dispatch are callgrind's "Collected" over the dispatches printed.
//
//   valgrind --tool=callgrind --toggle-collect='*count_runner_sweeps*' runner_bench --count-instructions=runner/100000
//
// (A wildcard: g++ clones the function as `count_runner_sweeps(...) [clone .constprop.0]`.)

#if defined(__GNUC__) && !defined(__clang__)
// The counting operator new below pairs malloc with free; GCC's check cannot see through the replacement.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <pollster/detail/timer_heap.hpp>
#include <pollster/runner.hpp>

#include <benchmark/benchmark.h>
#include <malloc.h>  // mallinfo2
#include <asio.hpp>

#include <algorithm>  // sort
#include <atomic>     // atomic
#include <chrono>     // nanoseconds
#include <cstdint>    // uint64_t
#include <cstdio>     // printf
#include <cstdlib>    // malloc, free, strtol
#include <cstring>    // strncmp, strchr, strlen
#include <map>        // map
#include <memory>     // unique_ptr
#include <new>        // bad_alloc
#include <string>     // string
#include <utility>    // pair
#include <vector>     // vector

// Counts calls to the global operator new, to show that a poll allocates nothing.
namespace {
std::atomic<std::uint64_t> new_calls{0};
}  // namespace
void* operator new(std::size_t size) {
  new_calls.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc{};
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace std::chrono_literals;

std::size_t heap_in_use() {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

struct measured {
  double bytes_per_poller = 0;
  double allocations_per_poll = 0;
};

// --- pollster: one runner, N pollers --------------------------------------------------------------------------

using trivial_step = pollster::step<int, int>;
struct trivial_check {
  trivial_step operator()() const { return pollster::pending(); }
};
// What each pending poller of the benchmark is: this poller, in a node behind the runner's node header.
using bench_poller =
    pollster::poller<trivial_check, pollster::constant, pollster::never, pollster::steady_clock::time_point>;

void pollster_runner(benchmark::State& state) {
  const auto pollers = static_cast<std::size_t>(state.range(0));
  pollster::steady_clock clock;
  const std::size_t heap_before = heap_in_use();
  auto fleet = std::make_unique<pollster::runner<>>(clock);
  for (std::size_t i = 0; i < pollers; ++i) {
    fleet->submit(trivial_check{}, pollster::constant{1ns}, pollster::never{},
                  [](pollster::outcome<int, int>) {});
  }
  fleet->poll();  // the first sweep: every poller is now pending in the timers, in its steady state
  const double bytes = static_cast<double>(heap_in_use() - heap_before) / static_cast<double>(pollers);
  std::size_t polls = 0;
  const std::uint64_t calls_before = new_calls.load();
  for (auto _ : state) {
    const std::size_t swept = fleet->poll();
    benchmark::DoNotOptimize(swept);
    polls += swept;
  }
  const std::uint64_t allocations = new_calls.load() - calls_before;
  if (polls != pollers * static_cast<std::size_t>(state.iterations())) state.SkipWithError("a sweep missed pollers");
  state.SetItemsProcessed(static_cast<std::int64_t>(polls));
  state.counters["bytes_per_poller"] = bytes;
  state.counters["allocs_per_poll"] = static_cast<double>(allocations) / static_cast<double>(polls);
  state.counters["polls_per_iteration"] = static_cast<double>(pollers);
}

// The sweeps callgrind counts (see the top of the file): one poll() per sweep, every poller due.
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
std::size_t count_runner_sweeps(pollster::runner<>& fleet, std::size_t sweeps) {
  std::size_t dispatched = 0;
  for (std::size_t i = 0; i < sweeps; ++i) dispatched += fleet.poll();
  return dispatched;
}

int count_runner_instructions(std::size_t pollers) {
  pollster::steady_clock clock;
  pollster::runner<> fleet{clock};
  for (std::size_t i = 0; i < pollers; ++i) {
    fleet.submit(trivial_check{}, pollster::constant{1ns}, pollster::never{}, [](pollster::outcome<int, int>) {});
  }
  fleet.poll();  // the first sweep, not counted
  const std::size_t dispatched = count_runner_sweeps(fleet, 10);
  std::printf("dispatches %zu\n", dispatched);
  return dispatched == 10 * pollers ? 0 : 1;
}

// --- asio: one steady_timer per poller, re-armed in its handler --------------------------------------------------

struct asio_fleet {
  asio::io_context io{1};
  std::vector<asio::steady_timer> timers;
  std::uint64_t polls = 0;
  std::uint64_t stop_at = 0;

  void arm(std::size_t i) {
    timers[i].expires_after(1ns);
    timers[i].async_wait([this, i](const asio::error_code& error) {
      if (error) return;
      if (++polls == stop_at) io.stop();
      arm(i);
    });
  }
};

void asio_timers(benchmark::State& state) {
  const auto pollers = static_cast<std::size_t>(state.range(0));
  const std::size_t heap_before = heap_in_use();
  auto fleet = std::make_unique<asio_fleet>();
  fleet->timers.reserve(pollers);
  for (std::size_t i = 0; i < pollers; ++i) fleet->timers.emplace_back(fleet->io);
  for (std::size_t i = 0; i < pollers; ++i) fleet->arm(i);
  fleet->stop_at = pollers;
  fleet->io.run();  // the first sweep, as for pollster
  const double bytes = static_cast<double>(heap_in_use() - heap_before) / static_cast<double>(pollers);
  const std::uint64_t start = fleet->polls;
  for (auto _ : state) {
    fleet->stop_at = fleet->polls + pollers;
    fleet->io.restart();
    fleet->io.run();
  }
  const std::uint64_t polls = fleet->polls - start;
  state.SetItemsProcessed(static_cast<std::int64_t>(polls));
  state.counters["bytes_per_poller"] = bytes;
  state.counters["polls_per_iteration"] = static_cast<double>(pollers);
}

// --- the timer structure alone: radix heap against a 4-ary heap, same always-due pattern ------------------------

struct four_ary_heap {
  struct entry {
    std::uint64_t key;
    void* item;
  };
  std::vector<entry> heap;
  void push(std::uint64_t key, void* item) {
    heap.push_back({key, item});
    std::size_t i = heap.size() - 1;
    while (i > 0) {
      const std::size_t parent = (i - 1) / 4;
      if (heap[parent].key <= heap[i].key) break;
      std::swap(heap[parent], heap[i]);
      i = parent;
    }
  }
  entry pop() {
    const entry top = heap[0];
    heap[0] = heap.back();
    heap.pop_back();
    std::size_t i = 0;
    for (;;) {
      const std::size_t first = 4 * i + 1;
      if (first >= heap.size()) break;
      std::size_t best = first;
      const std::size_t last = std::min(first + 4, heap.size());
      for (std::size_t c = first + 1; c < last; ++c) {
        if (heap[c].key < heap[best].key) best = c;
      }
      if (heap[i].key <= heap[best].key) break;
      std::swap(heap[i], heap[best]);
      i = best;
    }
    return top;
  }
};

template <class Heap>
void sweep_structure(benchmark::State& state, Heap& heap, std::size_t count) {
  std::uint64_t now = 1;
  for (std::size_t i = 0; i < count; ++i) heap.push(now, reinterpret_cast<void*>(i + 1));
  for (auto _ : state) {
    ++now;
    for (std::size_t i = 0; i < count; ++i) {
      const auto e = heap.pop();
      heap.push(now + (e.key & 1), e.item);  // two due times interleaved, so the order has to be kept
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(count) * state.iterations());
  state.counters["polls_per_iteration"] = static_cast<double>(count);
}

void structure_radix_heap(benchmark::State& state) {
  pollster::detail::radix_heap<void*> heap;
  sweep_structure(state, heap, static_cast<std::size_t>(state.range(0)));
}
void structure_four_ary_heap(benchmark::State& state) {
  four_ary_heap heap;
  sweep_structure(state, heap, static_cast<std::size_t>(state.range(0)));
}

void sizes(benchmark::internal::Benchmark* b) {
  b->Arg(10000)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK(pollster_runner)->Apply(sizes)->Iterations(20);
BENCHMARK(asio_timers)->Apply(sizes)->Iterations(20);
BENCHMARK(structure_radix_heap)->Apply(sizes)->Iterations(20);
BENCHMARK(structure_four_ary_heap)->Apply(sizes)->Iterations(20);

// Keeps the median (or the only run) of each benchmark: ns per poll and its counters.
class table_reporter : public benchmark::ConsoleReporter {
 public:
  struct row {
    double ns_per_poll = 0;      // wall clock
    double cpu_ns_per_poll = 0;  // CPU time: the steadier on a shared machine
    std::map<std::string, double> counters;
  };
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      const bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
      if (!median && !single) continue;
      row r;
      for (const auto& [name, counter] : run.counters) r.counters[name] = counter.value;
      const double per_iteration = r.counters["polls_per_iteration"];
      // Real time per iteration, in ns, over the polls one iteration makes.
      r.ns_per_poll = run.GetAdjustedRealTime() * 1e6 / per_iteration;  // the unit is milliseconds
      r.cpu_ns_per_poll = run.GetAdjustedCPUTime() * 1e6 / per_iteration;
      rows[run.run_name.function_name + "/" + run.run_name.args] = r;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, row> rows;
};

}  // namespace

int main(int argc, char** argv) {
  const char* const counting = "--count-instructions=runner";
  if (argc == 2 && std::strncmp(argv[1], counting, std::strlen(counting)) == 0) {
    const char* slash = std::strchr(argv[1], '/');
    const long pollers = slash != nullptr ? std::strtol(slash + 1, nullptr, 10) : 100000;
    if (pollers < 1) return 2;
    return count_runner_instructions(static_cast<std::size_t>(pollers));
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  table_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf("\nns per poll as wall clock / CPU time (medians when --benchmark_repetitions is given)\n\n");
  std::printf(
      "| pollers | pollster ns/poll | asio ns/poll | speed-up | pollster bytes/poller | asio bytes/poller "
      "| memory ratio | pollster allocs/poll |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const char* n : {"10000", "100000", "1000000"}) {
    const auto ours = reporter.rows.find(std::string("pollster_runner/") + n);
    const auto theirs = reporter.rows.find(std::string("asio_timers/") + n);
    if (ours == reporter.rows.end() || theirs == reporter.rows.end()) continue;
    auto& a = ours->second;
    auto& b = theirs->second;
    std::printf("| %s | %.1f / %.1f | %.1f / %.1f | %.2fx / %.2fx | %.0f | %.0f | %.2f | %.3g |\n", n, a.ns_per_poll,
                a.cpu_ns_per_poll, b.ns_per_poll, b.cpu_ns_per_poll, b.ns_per_poll / a.ns_per_poll,
                b.cpu_ns_per_poll / a.cpu_ns_per_poll, a.counters["bytes_per_poller"], b.counters["bytes_per_poller"],
                a.counters["bytes_per_poller"] / b.counters["bytes_per_poller"], a.counters["allocs_per_poll"]);
  }
  std::printf("\n| timers | radix heap ns/op | 4-ary heap ns/op | speed-up |\n|---:|---:|---:|---:|\n");
  for (const char* n : {"10000", "100000", "1000000"}) {
    const auto radix = reporter.rows.find(std::string("structure_radix_heap/") + n);
    const auto four = reporter.rows.find(std::string("structure_four_ary_heap/") + n);
    if (radix == reporter.rows.end() || four == reporter.rows.end()) continue;
    std::printf("| %s | %.1f / %.1f | %.1f / %.1f | %.2fx / %.2fx |\n", n, radix->second.ns_per_poll,
                radix->second.cpu_ns_per_poll, four->second.ns_per_poll, four->second.cpu_ns_per_poll,
                four->second.ns_per_poll / radix->second.ns_per_poll,
                four->second.cpu_ns_per_poll / radix->second.cpu_ns_per_poll);
  }
  std::printf("(speed-up = asio or 4-ary ns per poll / pollster's; memory ratio = pollster bytes / asio bytes)\n");
  std::printf("sizeof: poller %zu B (step<int, int>, constant, never), runner node header %zu B, node %zu B\n",
              sizeof(bench_poller), sizeof(pollster::detail::runner_node),
              sizeof(bench_poller) + sizeof(pollster::detail::runner_node));
  benchmark::Shutdown();
  return 0;
}
