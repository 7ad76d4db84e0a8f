// One watcher cycle over 100 000 records (the list call returns pre-built data: two snapshots that differ in 1% of
// their records, alternately; the diff; the events delivered to a counting handler) against the loop a user writes
// by hand: poll, then diff against a std::unordered_map of the last list, in two versions:
//   rebuild   - build a new map from each list and swap it in (the obvious loop);
//   in_place  - update one reserve()d map in place, mark what was seen, sweep the rest (the careful loop).
// The watcher cycle is a step of the poller that submit_watch() and watcher::run() drive (the same check and the
// same adaptive schedule), so this measures what a watcher does per poll, minus the runner's timer (one heap op).
//
// Run with --benchmark_repetitions=N: the ratios printed at the end are of medians.
#include <pollster/watch.hpp>

#include <benchmark/benchmark.h>

#include "ratio.hpp"

#include <algorithm>      // shuffle
#include <cstdint>        // uint64_t, uint8_t
#include <cstdio>         // printf
#include <cstdlib>        // abort
#include <random>         // mt19937_64
#include <string>         // string, to_string
#include <string_view>    // string_view
#include <unordered_map>  // unordered_map
#include <utility>        // move
#include <vector>         // vector

namespace {

constexpr std::size_t records = 100'000;

enum class status : std::uint8_t { building, active, error, deleting };

struct record {
  std::uint64_t id;
  std::string name;  // short: within the small-string buffer, as most real names are
  status state;
  std::uint64_t version;
};

/// Two snapshots of the same fleet, 1% of records changed (new version and state), in shuffled order.
struct dataset {
  std::vector<record> first;
  std::vector<record> second;
  std::size_t changed = 0;

  dataset() {
    std::mt19937_64 random{42};
    first.reserve(records);
    for (std::size_t i = 0; i < records; ++i) {
      first.push_back(record{random(), "srv-" + std::to_string(i % 100'000), status::active, 1});
    }
    second = first;
    for (std::size_t i = 0; i < records; i += 100) {
      second[i].version = 2;
      second[i].state = status::building;
      ++changed;
    }
    std::shuffle(first.begin(), first.end(), random);
    std::shuffle(second.begin(), second.end(), random);
  }
};

const dataset& data() {
  static const dataset d;
  return d;
}

/// The list API: returns the pre-built snapshots alternately, by reference (nothing is built per call).
struct list_api {
  std::uint64_t calls = 0;
  const std::vector<record>& operator()() { return (calls++ % 2 == 0) ? data().first : data().second; }
};

struct counts {
  std::uint64_t added = 0;
  std::uint64_t removed = 0;
  std::uint64_t changed = 0;
};

/// The counting handler both sides deliver events to.
struct counting_handler {
  counts* seen;
  void operator()(const pollster::added<const record&>&) const { ++seen->added; }
  void operator()(const pollster::removed<const record&, std::uint64_t>&) const { ++seen->removed; }
  void operator()(const pollster::changed<const record&>&) const { ++seen->changed; }
};

void check_counts(const counts& c, std::uint64_t cycles) {
  // The first cycle reports the initial list; every later one 1% changes.
  if (c.added != records || c.removed != 0 || c.changed != (cycles - 1) * data().changed) {
    std::fprintf(stderr, "wrong events: added %llu removed %llu changed %llu after %llu cycles\n",
                 static_cast<unsigned long long>(c.added), static_cast<unsigned long long>(c.removed),
                 static_cast<unsigned long long>(c.changed), static_cast<unsigned long long>(cycles));
    std::abort();
  }
}

// Each side is a callable that runs one cycle and owns its state; the first call reports the initial list.

auto watcher_cycle(counts& seen, list_api& api) {
  auto check = pollster::watching(std::ref(api), pollster::keyed(&record::id, &record::version), counting_handler{&seen});
  // The watch restarts its schedule after a poll that saw changes (watch_options::adaptive), as the watcher does.
  pollster::geometric schedule{std::chrono::seconds(1), 2.0, std::chrono::seconds(60)};
  using time_point = pollster::manual_clock::time_point;
  return [poller = pollster::make_poller(std::move(check), std::move(schedule), pollster::never{}, time_point{})]() mutable {
    poller.step(poller.next_due());
  };
}

auto unordered_map_rebuild_cycle(counts& seen, list_api& api) {
  return [&seen, &api, known = std::unordered_map<std::uint64_t, record>()]() mutable {
    const counting_handler handler{&seen};
    const std::vector<record>& list = api();
    std::unordered_map<std::uint64_t, record> next;
    next.reserve(list.size());
    for (const record& r : list) {
      const auto it = known.find(r.id);
      if (it == known.end()) {
        handler(pollster::added<const record&>{r, false});
      } else if (it->second.version != r.version) {
        handler(pollster::changed<const record&>{it->second, r});
      }
      next.emplace(r.id, r);
    }
    for (const auto& entry : known) {
      if (next.find(entry.first) == next.end()) {
        handler(pollster::removed<const record&, std::uint64_t>{entry.first, entry.second});
      }
    }
    known.swap(next);
  };
}

struct slot {
  record last;
  std::uint64_t seen_in = 0;
};

auto unordered_map_in_place_cycle(counts& seen, list_api& api) {
  std::unordered_map<std::uint64_t, slot> reserved;
  reserved.reserve(records * 2);
  return [&seen, &api, known = std::move(reserved), generation = std::uint64_t{0}]() mutable {
    const counting_handler handler{&seen};
    const std::vector<record>& list = api();
    ++generation;
    for (const record& r : list) {
      auto [it, inserted] = known.try_emplace(r.id);
      slot& s = it->second;
      if (inserted) {
        s.last = r;
        handler(pollster::added<const record&>{s.last, false});
      } else if (s.last.version != r.version) {
        handler(pollster::changed<const record&>{s.last, r});
        s.last = r;
      }
      s.seen_in = generation;
    }
    for (auto it = known.begin(); it != known.end();) {
      if (it->second.seen_in != generation) {
        handler(pollster::removed<const record&, std::uint64_t>{it->first, it->second.last});
        it = known.erase(it);
      } else {
        ++it;
      }
    }
  };
}

template <class MakeCycle>
void run_benchmark(benchmark::State& state, MakeCycle make_cycle) {
  counts seen;
  list_api api;
  auto cycle = make_cycle(seen, api);
  cycle();  // the initial list
  std::uint64_t cycles = 1;
  for (auto _ : state) {
    cycle();
    ++cycles;
  }
  check_counts(seen, cycles);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(records));
}

void bm_watcher_cycle(benchmark::State& state) {
  run_benchmark(state, [](counts& seen, list_api& api) { return watcher_cycle(seen, api); });
}
void bm_unordered_map_rebuild(benchmark::State& state) {
  run_benchmark(state, [](counts& seen, list_api& api) { return unordered_map_rebuild_cycle(seen, api); });
}
void bm_unordered_map_in_place(benchmark::State& state) {
  run_benchmark(state, [](counts& seen, list_api& api) { return unordered_map_in_place_cycle(seen, api); });
}

// Instruction and cache-miss counts stay put on a noisy machine: `--count-instructions=NAME` runs the initial cycle
// and then `counted_cycles` cycles of one side inside `run_counted_cycles`, for callgrind to count alone.
constexpr std::uint64_t counted_cycles = 10;

template <class Cycle>
[[gnu::noinline]] void run_counted_cycles(Cycle& cycle) {
  for (std::uint64_t i = 0; i < counted_cycles; ++i) cycle();
}

template <class MakeCycle>
int count_instructions(MakeCycle make_cycle) {
  counts seen;
  list_api api;
  auto cycle = make_cycle(seen, api);
  cycle();
  run_counted_cycles(cycle);
  check_counts(seen, counted_cycles + 1);
  std::printf("cycles %llu\n", static_cast<unsigned long long>(counted_cycles));
  return 0;
}

BENCHMARK(bm_watcher_cycle)->Unit(benchmark::kMillisecond);
BENCHMARK(bm_unordered_map_rebuild)->Unit(benchmark::kMillisecond);
BENCHMARK(bm_unordered_map_in_place)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  data();  // build the snapshots before timing
  if (argc == 2) {
    const std::string_view arg = argv[1];
    if (arg == "--count-instructions=watcher") return count_instructions(watcher_cycle);
    if (arg == "--count-instructions=rebuild") return count_instructions(unordered_map_rebuild_cycle);
    if (arg == "--count-instructions=in_place") return count_instructions(unordered_map_in_place_cycle);
  }
  return pollster_bench::run_and_print_ratios(
      argc, argv, {{"bm_watcher_cycle", "bm_unordered_map_rebuild"}, {"bm_watcher_cycle", "bm_unordered_map_in_place"}});
}
