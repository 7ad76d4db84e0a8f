// pollster::diff_each against the diffs a user would otherwise write, in the same run:
//
//  * shuffled input: a boost::unordered_flat_map (Boost >= 1.81) and an absl::flat_hash_map that store each old
//    record's version and position (so a lookup never reads the old record), a reserve()d std::unordered_map, and a
//    std::map (up to 100 000 records: it takes seconds beyond);
//  * sorted input: a hand-written merge that trusts the order (no check, no duplicates), and the flat maps.
//
// Records are a 64-bit id, a short name, a status and a 64-bit version; "changed" means the version differs. With
// churn c, c of the records change, c/2 are removed and c/2 are added; 1% and 50%. Sizes 1 000, 100 000 and
// 1 000 000 records; `--sizes=...` picks others (10 000 000 takes about 3 GB and a few minutes).
//
// Prints Google Benchmark's lines, then a table of medians in ns per record of one snapshot, the ratios
// baseline / pollster (above 1: pollster is faster) and the extra heap bytes per record each diff allocates at its
// peak. `--count-instructions=IMPL/SIZE/INPUT/CHURN` (e.g. pollster/100000/shuffled/1) runs one diff and then 10
// inside `run_counted_diffs`, for callgrind to count alone.
#include <pollster/diff.hpp>

#include <benchmark/benchmark.h>

#if __has_include(<boost/unordered/unordered_flat_map.hpp>)
#include <boost/unordered/unordered_flat_map.hpp>  // Boost >= 1.81
#define POLLSTER_BENCH_BOOST 1
#else
#define POLLSTER_BENCH_BOOST 0
#endif
#if __has_include(<absl/container/flat_hash_map.h>) && defined(POLLSTER_BENCH_WITH_ABSL)
#include <absl/container/flat_hash_map.h>
#define POLLSTER_BENCH_ABSL 1
#else
#define POLLSTER_BENCH_ABSL 0
#endif

#include <malloc.h>  // malloc_usable_size (glibc)

#include <algorithm>      // shuffle, sort, max
#include <cstdint>        // uint64_t, uint32_t, uint8_t
#include <cstdio>         // printf
#include <cstdlib>        // malloc, free, abort, strtoull
#include <map>            // map
#include <new>            // bad_alloc
#include <random>         // mt19937_64
#include <string>         // string, to_string
#include <string_view>    // string_view
#include <unordered_map>  // unordered_map
#include <vector>         // vector

// ---------------------------------------------------------------------------------------------------------------------
// Heap accounting: counts bytes only while `counting` is set, so the timed runs pay one branch per allocation.

namespace {
bool counting = false;
long long live_bytes = 0;
long long peak_bytes = 0;

void* counted_allocate(std::size_t size) {
  void* memory = std::malloc(size == 0 ? 1 : size);
  if (memory == nullptr) throw std::bad_alloc();
  if (counting) {
    live_bytes += static_cast<long long>(malloc_usable_size(memory));
    peak_bytes = std::max(peak_bytes, live_bytes);
  }
  return memory;
}
void counted_free(void* memory) noexcept {
  if (memory == nullptr) return;
  if (counting) live_bytes -= static_cast<long long>(malloc_usable_size(memory));
  std::free(memory);
}
}  // namespace

void* operator new(std::size_t size) { return counted_allocate(size); }
void* operator new[](std::size_t size) { return counted_allocate(size); }
void operator delete(void* memory) noexcept { counted_free(memory); }
void operator delete(void* memory, std::size_t) noexcept { counted_free(memory); }
void operator delete[](void* memory) noexcept { counted_free(memory); }
void operator delete[](void* memory, std::size_t) noexcept { counted_free(memory); }

namespace {

// ---------------------------------------------------------------------------------------------------------------------
// Data

enum class status : std::uint8_t { building, active, error, deleting };

struct record {
  std::uint64_t id;
  std::string name;  // short enough for the small-string buffer, as real names mostly are
  status state;
  std::uint64_t version;
};

struct counts {
  std::size_t added = 0;
  std::size_t removed = 0;
  std::size_t changed = 0;
  bool operator==(const counts& other) const {
    return added == other.added && removed == other.removed && changed == other.changed;
  }
};

struct dataset_key {
  std::size_t size = 0;
  bool sorted = false;
  unsigned churn_percent = 0;
  bool operator==(const dataset_key& other) const {
    return size == other.size && sorted == other.sorted && churn_percent == other.churn_percent;
  }
};

struct dataset {
  dataset_key key;
  std::vector<record> before;
  std::vector<record> after;
  counts expected;
};

// Distinct, well-spread ids: splitmix64's finaliser is a bijection on 64-bit integers.
std::uint64_t id_for(std::uint64_t n) { return pollster::detail::mix_hash(n + 0x1234567ULL); }

dataset make_dataset(const dataset_key& key) {
  const std::size_t size = key.size;
  std::mt19937_64 random(20240613ULL + size + key.churn_percent);
  dataset data;
  data.key = key;
  data.before.reserve(size);
  for (std::size_t n = 0; n < size; ++n) {
    data.before.push_back({id_for(n), "srv-" + std::to_string(n % 1000000), status::active, 1 + n % 7});
  }
  // c changed, c/2 removed, c/2 added, chosen by position in a random permutation.
  std::vector<std::size_t> order(size);
  for (std::size_t n = 0; n < size; ++n) order[n] = n;
  std::shuffle(order.begin(), order.end(), random);
  const std::size_t changes = size * key.churn_percent / 100;
  const std::size_t removals = size * key.churn_percent / 200;
  const std::size_t additions = removals;
  std::vector<bool> removed(size, false);
  for (std::size_t n = changes; n < changes + removals; ++n) removed[order[n]] = true;
  std::vector<bool> changing(size, false);
  for (std::size_t n = 0; n < changes; ++n) changing[order[n]] = true;
  data.after.reserve(size - removals + additions);
  for (std::size_t n = 0; n < size; ++n) {
    if (removed[n]) continue;
    data.after.push_back(data.before[n]);
    if (changing[n]) {
      data.after.back().version += 1;
      data.after.back().state = status::error;
    }
  }
  for (std::size_t n = 0; n < additions; ++n) {
    data.after.push_back({id_for(size + n), "srv-new-" + std::to_string(n % 100000), status::building, 1});
  }
  data.expected = {additions, removals, changes};
  if (key.sorted) {
    const auto by_id = [](const record& left, const record& right) { return left.id < right.id; };
    std::sort(data.before.begin(), data.before.end(), by_id);
    std::sort(data.after.begin(), data.after.end(), by_id);
  } else {
    std::shuffle(data.before.begin(), data.before.end(), random);
    std::shuffle(data.after.begin(), data.after.end(), random);
  }
  return data;
}

// One dataset alive at a time: the benchmarks are registered grouped by dataset.
const dataset& dataset_for(const dataset_key& key) {
  static dataset current;
  if (!(current.key == key) || current.before.empty()) {
    current = dataset{};
    current = make_dataset(key);
  }
  return current;
}

// ---------------------------------------------------------------------------------------------------------------------
// The diffs. Each counts events, so none of the work can be optimised away.

struct event_counter {
  counts* total;
  void operator()(const pollster::added<const record&>&) const { ++total->added; }
  void operator()(const pollster::removed<const record&, std::uint64_t>&) const { ++total->removed; }
  void operator()(const pollster::changed<const record&>&) const { ++total->changed; }
};

counts pollster_diff(const std::vector<record>& before, const std::vector<record>& after) {
  counts total;
  pollster::diff_each(before, after, &record::id, &record::version, event_counter{&total});
  return total;
}

// The merge a user writes for lists they know are sorted by id and free of duplicates: nothing checked.
counts merge_diff(const std::vector<record>& before, const std::vector<record>& after) {
  counts total;
  std::size_t b = 0;
  std::size_t a = 0;
  while (b < before.size() && a < after.size()) {
    if (before[b].id < after[a].id) {
      ++total.removed;
      ++b;
    } else if (after[a].id < before[b].id) {
      ++total.added;
      ++a;
    } else {
      if (before[b].version != after[a].version) ++total.changed;
      ++b;
      ++a;
    }
  }
  total.removed += before.size() - b;
  total.added += after.size() - a;
  return total;
}

// What a user writes with a std::map: index the old list, look every new record up, what was never seen is gone.
counts map_diff(const std::vector<record>& before, const std::vector<record>& after) {
  struct entry {
    const record* last_known;
    bool seen;
  };
  std::map<std::uint64_t, entry> old;
  for (const record& r : before) {
    if (!old.emplace(r.id, entry{&r, false}).second) std::abort();
  }
  counts total;
  for (const record& r : after) {
    const auto found = old.find(r.id);
    if (found == old.end()) {
      ++total.added;
    } else {
      if (found->second.seen) std::abort();
      found->second.seen = true;
      if (found->second.last_known->version != r.version) ++total.changed;
    }
  }
  for (const auto& [id, e] : old) {
    if (!e.seen) ++total.removed;
  }
  return total;
}

// The value the hash maps keep per old record: its version (so a lookup reads no old record), its position (where a
// removal event finds the last known record), and whether a new record matched it.
struct map_entry {
  std::uint64_t version;
  std::uint32_t position;
  bool seen;
};

// The hash diff a careful user writes: reserve()d, one lookup per new record, the unseen entries are the removals.
template <class Map>
counts hash_map_diff(const std::vector<record>& before, const std::vector<record>& after) {
  Map old;
  old.reserve(before.size());
  for (std::size_t b = 0; b < before.size(); ++b) {
    const record& r = before[b];
    if (!old.emplace(r.id, map_entry{r.version, static_cast<std::uint32_t>(b), false}).second) std::abort();
  }
  counts total;
  for (const record& r : after) {
    const auto found = old.find(r.id);
    if (found == old.end()) {
      ++total.added;
    } else {
      if (found->second.seen) std::abort();
      found->second.seen = true;
      if (found->second.version != r.version) ++total.changed;
    }
  }
  for (const auto& [id, e] : old) {
    if (!e.seen) ++total.removed;
  }
  return total;
}

counts unordered_map_diff(const std::vector<record>& before, const std::vector<record>& after) {
  return hash_map_diff<std::unordered_map<std::uint64_t, map_entry>>(before, after);
}

#if POLLSTER_BENCH_BOOST
counts boost_flat_diff(const std::vector<record>& before, const std::vector<record>& after) {
  return hash_map_diff<boost::unordered_flat_map<std::uint64_t, map_entry>>(before, after);
}
#endif
#if POLLSTER_BENCH_ABSL
counts absl_flat_diff(const std::vector<record>& before, const std::vector<record>& after) {
  return hash_map_diff<absl::flat_hash_map<std::uint64_t, map_entry>>(before, after);
}
#endif

using diff_function = counts (*)(const std::vector<record>&, const std::vector<record>&);

struct implementation {
  const char* name;
  diff_function run;
  bool sorted_only;           // the merge trusts the order
  std::size_t largest_size;  // too slow beyond
};
const implementation implementations[] = {
    {"pollster", pollster_diff, false, ~std::size_t{0}},
    {"merge", merge_diff, true, ~std::size_t{0}},
#if POLLSTER_BENCH_BOOST
    {"boost_flat", boost_flat_diff, false, ~std::size_t{0}},
#endif
#if POLLSTER_BENCH_ABSL
    {"absl_flat", absl_flat_diff, false, ~std::size_t{0}},
#endif
    {"unordered_map", unordered_map_diff, false, 1000000},
    {"std_map", map_diff, false, 100000},
};

bool runs(const implementation& impl, const dataset_key& key) {
  return (!impl.sorted_only || key.sorted) && key.size <= impl.largest_size;
}

void run_diff(benchmark::State& state, dataset_key key, diff_function diff) {
  const dataset& data = dataset_for(key);
  const counts found = diff(data.before, data.after);
  if (!(found == data.expected)) {
    state.SkipWithError("the diff found other counts than the data holds");
    return;
  }
  // A second untimed run: the first after a dataset is built (or another diff freed its memory) pays page faults
  // and cold caches that have nothing to do with the diff, and whichever implementation runs first would pay them.
  benchmark::DoNotOptimize(diff(data.before, data.after));
  for (auto _ : state) {
    counts total = diff(data.before, data.after);
    benchmark::DoNotOptimize(total);
    benchmark::ClobberMemory();
  }
}

// Extra heap bytes at the diff's peak, per record of one snapshot.
double bytes_per_record(const dataset_key& key, diff_function diff) {
  const dataset& data = dataset_for(key);
  live_bytes = 0;
  peak_bytes = 0;
  counting = true;
  const counts total = diff(data.before, data.after);
  counting = false;
  benchmark::DoNotOptimize(total);
  return static_cast<double>(peak_bytes) / static_cast<double>(key.size);
}

// ---------------------------------------------------------------------------------------------------------------------
// Instruction counts: one diff, then `counted_diffs` inside run_counted_diffs (callgrind --toggle-collect).

constexpr int counted_diffs = 10;

[[gnu::noinline]] counts run_counted_diffs(diff_function diff, const dataset& data) {
  counts last;
  for (int i = 0; i < counted_diffs; ++i) {
    last = diff(data.before, data.after);
    benchmark::DoNotOptimize(last);
  }
  return last;
}

int count_instructions(std::string_view spec) {
  // IMPL/SIZE/INPUT/CHURN
  const auto next_part = [&spec]() {
    const std::size_t slash = spec.find('/');
    const std::string_view part = spec.substr(0, slash);
    spec = slash == std::string_view::npos ? std::string_view{} : spec.substr(slash + 1);
    return std::string(part);
  };
  const std::string name = next_part();
  const std::size_t size = std::strtoull(next_part().c_str(), nullptr, 10);
  const bool sorted = next_part() == "sorted";
  const auto churn = static_cast<unsigned>(std::strtoul(next_part().c_str(), nullptr, 10));
  for (const implementation& impl : implementations) {
    if (name != impl.name) continue;
    const dataset& data = dataset_for({size, sorted, churn});
    if (!(impl.run(data.before, data.after) == data.expected)) return 2;
    const counts last = run_counted_diffs(impl.run, data);
    std::printf("%d diffs of %zu records (%s, %u%% churn) by %s: divide callgrind's count by %zu\n", counted_diffs,
                size, sorted ? "sorted" : "shuffled", churn, impl.name,
                static_cast<std::size_t>(counted_diffs) * size);
    return last == data.expected ? 0 : 2;
  }
  std::fprintf(stderr, "unknown implementation %s\n", name.c_str());
  return 1;
}

// ---------------------------------------------------------------------------------------------------------------------
// Reporting: the usual console output, plus the medians collected for the summary table.

class summary_reporter : public benchmark::ConsoleReporter {
 public:
  // Per benchmark name, one entry per repetition: wall-clock and CPU seconds. On a shared machine the CPU time is
  // the steadier of the two; the table shows both.
  std::map<std::string, std::vector<double>> real_seconds;
  std::map<std::string, std::vector<double>> cpu_seconds;

  // With --benchmark_report_aggregates_only the repetitions never reach a reporter, only their aggregates: then
  // the "median" aggregate is the median.
  std::map<std::string, double> real_median;
  std::map<std::string, double> cpu_median;

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const double multiplier = benchmark::GetTimeUnitMultiplier(run.time_unit);
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name != "median") continue;
        real_median[run.run_name.function_name] = run.GetAdjustedRealTime() / multiplier;
        cpu_median[run.run_name.function_name] = run.GetAdjustedCPUTime() / multiplier;
        continue;
      }
      real_seconds[run.run_name.function_name].push_back(run.GetAdjustedRealTime() / multiplier);
      cpu_seconds[run.run_name.function_name].push_back(run.GetAdjustedCPUTime() / multiplier);
    }
    ConsoleReporter::ReportRuns(runs);
  }

  static double median(const std::map<std::string, std::vector<double>>& seconds,
                       const std::map<std::string, double>& aggregates, const std::string& name) {
    if (const auto aggregate = aggregates.find(name); aggregate != aggregates.end()) return aggregate->second;
    const auto found = seconds.find(name);
    if (found == seconds.end() || found->second.empty()) return 0.0;
    std::vector<double> sorted = found->second;
    std::sort(sorted.begin(), sorted.end());
    const std::size_t middle = sorted.size() / 2;
    return sorted.size() % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  }
};

std::string benchmark_name(const implementation& impl, const dataset_key& key) {
  return std::string("diff/") + impl.name + "/" + (key.sorted ? "sorted" : "shuffled") + "/" +
         std::to_string(key.size) + "/churn" + std::to_string(key.churn_percent);
}

std::vector<std::size_t> parse_sizes(std::string_view list) {
  std::vector<std::size_t> sizes;
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    sizes.push_back(std::strtoull(std::string(list.substr(0, comma)).c_str(), nullptr, 10));
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
  }
  return sizes;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes{1000, 100000, 1000000};
  bool quick = false;  // CI: one short repetition each, for the ratios' sake, not their precision
  std::vector<char*> arguments;
  for (int i = 0; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.substr(0, 21) == "--count-instructions=") return count_instructions(arg.substr(21));
    if (arg.substr(0, 8) == "--sizes=") {
      sizes = parse_sizes(arg.substr(8));
      continue;
    }
    if (arg == "--quick") {
      quick = true;
      continue;
    }
    arguments.push_back(argv[i]);
  }
  const unsigned churns[] = {1, 50};
  for (const std::size_t size : sizes) {
    for (const unsigned churn : churns) {
      for (const bool sorted : {false, true}) {
        const dataset_key key{size, sorted, churn};
        for (const implementation& impl : implementations) {
          if (!runs(impl, key)) continue;
          auto* registered = benchmark::RegisterBenchmark(benchmark_name(impl, key).c_str(), run_diff, key, impl.run);
          registered->Unit(benchmark::kMillisecond)->Repetitions(quick ? 1 : 5)->UseRealTime();
          // A large diff takes tens of milliseconds or more: a few iterations per repetition are plenty.
          if (quick) {
            registered->MinTime(0.02);
          } else if (size >= 1000000) {
            registered->Iterations(size >= 10000000 ? 1 : 3);
          } else {
            registered->MinTime(0.1);
          }
        }
      }
    }
  }
  int benchmark_argc = static_cast<int>(arguments.size());
  benchmark::Initialize(&benchmark_argc, arguments.data());
  if (benchmark::ReportUnrecognizedArguments(benchmark_argc, arguments.data())) return 1;
  summary_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf(
      "\nmedians in ns per record of one snapshot, CPU time (wall clock in the benchmark lines above);\n"
      "ratio = baseline time / pollster time (above 1: pollster is faster); B/rec = extra heap bytes at the peak\n");
  std::printf("%-9s %-8s %-5s |", "records", "input", "churn");
  for (const implementation& impl : implementations) std::printf(" %13s", impl.name);
  std::printf(" |");
  for (const implementation& impl : implementations) {
    if (std::string_view(impl.name) != "pollster") std::printf(" %13s", (std::string("vs ") + impl.name).c_str());
  }
  std::printf(" | B/rec pollster\n");
  for (const std::size_t size : sizes) {
    for (const unsigned churn : churns) {
      for (const bool sorted : {false, true}) {
        const dataset_key key{size, sorted, churn};
        std::vector<double> cpu;
        for (const implementation& impl : implementations) {
          const std::string name = benchmark_name(impl, key);
          const double seconds = summary_reporter::median(reporter.cpu_seconds, reporter.cpu_median, name);
          cpu.push_back(runs(impl, key) ? seconds * 1e9 / static_cast<double>(size) : 0.0);
        }
        if (cpu[0] <= 0.0) continue;  // filtered out on the command line
        std::printf("%-9zu %-8s %4u%% |", size, sorted ? "sorted" : "shuffled", churn);
        for (const double value : cpu) {
          if (value > 0.0) {
            std::printf(" %13.2f", value);
          } else {
            std::printf(" %13s", "-");
          }
        }
        std::printf(" |");
        for (std::size_t i = 1; i < cpu.size(); ++i) {
          if (cpu[i] > 0.0) {
            std::printf(" %12.2fx", cpu[i] / cpu[0]);
          } else {
            std::printf(" %13s", "-");
          }
        }
        std::printf(" | %6.1f\n", bytes_per_record(key, implementations[0].run));
      }
    }
  }
  benchmark::Shutdown();
  return 0;
}
