// pollster::diff_each against the two diffs a user would write by hand: one over a std::map and a careful one over a
// reserve()d std::unordered_map. Snapshots of 1 000, 100 000 and 1 000 000 records (64-bit id, short name, status,
// version) with 1% changed, 0.5% added and 0.5% removed, shuffled and, separately, sorted by id.
//
// Prints Google Benchmark's usual lines, then a table of medians in ns per record (of one snapshot), the ratios, and
// the extra heap bytes per record each diff allocates at its peak (counted by a replaced operator new).
#include <pollster/diff.hpp>

#include <benchmark/benchmark.h>

#include <malloc.h>  // malloc_usable_size (glibc)

#include <algorithm>      // shuffle, sort, max
#include <cstdint>        // uint64_t, uint8_t
#include <cstdio>         // printf
#include <cstdlib>        // malloc, free, abort
#include <map>            // map
#include <new>            // bad_alloc
#include <random>         // mt19937_64
#include <string>         // string, to_string
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
void operator delete(void* memory) noexcept { counted_free(memory); }
void operator delete(void* memory, std::size_t) noexcept { counted_free(memory); }

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

struct dataset {
  std::size_t size = 0;
  bool sorted = false;
  std::vector<record> before;
  std::vector<record> after;
  counts expected;
};

// Distinct, well-spread ids: splitmix64's finaliser is a bijection on 64-bit integers.
std::uint64_t id_for(std::uint64_t n) { return pollster::detail::mix_hash(n + 0x1234567ULL); }

dataset make_dataset(std::size_t size, bool sorted) {
  std::mt19937_64 random(20240613ULL + size);
  dataset data;
  data.size = size;
  data.sorted = sorted;
  data.before.reserve(size);
  for (std::size_t n = 0; n < size; ++n) {
    data.before.push_back({id_for(n), "srv-" + std::to_string(n % 1000000), status::active, 1 + n % 7});
  }
  // 1% changed, 0.5% removed, 0.5% added, chosen by position in a random permutation.
  std::vector<std::size_t> order(size);
  for (std::size_t n = 0; n < size; ++n) order[n] = n;
  std::shuffle(order.begin(), order.end(), random);
  const std::size_t changes = size / 100;
  const std::size_t removals = size / 200;
  const std::size_t additions = size / 200;
  std::vector<bool> removed(size, false);
  for (std::size_t n = changes; n < changes + removals; ++n) removed[order[n]] = true;
  data.after.reserve(size - removals + additions);
  for (std::size_t n = 0; n < size; ++n) {
    if (!removed[n]) data.after.push_back(data.before[n]);
  }
  std::vector<bool> changing(size, false);
  for (std::size_t n = 0; n < changes; ++n) changing[order[n]] = true;
  std::size_t at = 0;  // after[] holds the survivors in their original order
  for (std::size_t n = 0; n < size; ++n) {
    if (removed[n]) continue;
    if (changing[n]) {
      data.after[at].version += 1;
      data.after[at].state = status::error;
    }
    ++at;
  }
  for (std::size_t n = 0; n < additions; ++n) {
    data.after.push_back({id_for(size + n), "srv-new-" + std::to_string(n % 100000), status::building, 1});
  }
  data.expected = {additions, removals, changes};
  if (sorted) {
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
const dataset& dataset_for(std::size_t size, bool sorted) {
  static dataset current;
  if (current.size != size || current.sorted != sorted || current.before.empty()) {
    current = dataset{};
    current = make_dataset(size, sorted);
  }
  return current;
}

// ---------------------------------------------------------------------------------------------------------------------
// The three diffs. Each counts events, so none of the work can be optimised away.

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

// The careful hand-written hash diff: reserve()d, pointers instead of copies, one lookup per new record.
counts unordered_map_diff(const std::vector<record>& before, const std::vector<record>& after) {
  struct entry {
    const record* last_known;
    bool seen;
  };
  std::unordered_map<std::uint64_t, entry> old;
  old.reserve(before.size());
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

using diff_function = counts (*)(const std::vector<record>&, const std::vector<record>&);

struct implementation {
  const char* name;
  diff_function run;
};
const implementation implementations[] = {
    {"pollster", pollster_diff},
    {"std_map", map_diff},
    {"unordered_map", unordered_map_diff},
};

void run_diff(benchmark::State& state, std::size_t size, bool sorted, diff_function diff) {
  const dataset& data = dataset_for(size, sorted);
  const counts found = diff(data.before, data.after);
  if (!(found == data.expected)) {
    state.SkipWithError("the diff found other counts than the data holds");
    return;
  }
  for (auto _ : state) {
    counts total = diff(data.before, data.after);
    benchmark::DoNotOptimize(total);
    benchmark::ClobberMemory();
  }
}

// Extra heap bytes at the diff's peak, per record of one snapshot.
double bytes_per_record(std::size_t size, bool sorted, diff_function diff) {
  const dataset& data = dataset_for(size, sorted);
  live_bytes = 0;
  peak_bytes = 0;
  counting = true;
  const counts total = diff(data.before, data.after);
  counting = false;
  benchmark::DoNotOptimize(total);
  return static_cast<double>(peak_bytes) / static_cast<double>(size);
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

std::string benchmark_name(const implementation& impl, std::size_t size, bool sorted) {
  return std::string("diff/") + impl.name + "/" + (sorted ? "sorted" : "shuffled") + "/" + std::to_string(size);
}

const std::size_t sizes[] = {1000, 100000, 1000000};

}  // namespace

int main(int argc, char** argv) {
  for (const std::size_t size : sizes) {
    for (const bool sorted : {false, true}) {
      for (const implementation& impl : implementations) {
        auto* registered =
            benchmark::RegisterBenchmark(benchmark_name(impl, size, sorted).c_str(), run_diff, size, sorted, impl.run);
        registered->Unit(benchmark::kMillisecond)->Repetitions(5)->UseRealTime();
        // A million-record std::map diff takes seconds: one iteration per repetition is plenty.
        if (size >= 1000000) {
          registered->Iterations(1);
        } else {
          registered->MinTime(0.1);
        }
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  summary_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf(
      "\nmedians of 5 repetitions in ns per record of one snapshot (wall clock / CPU time);\n"
      "ratio = baseline time / pollster time; B/rec = extra heap bytes at the peak, per record\n");
  std::printf("%-8s %-8s | %15s %17s %17s | %13s %13s | %6s %6s %6s\n", "records", "input", "pollster", "std::map",
              "unordered_map", "vs map", "vs unordered", "B/rec", "map", "u_map");
  for (const std::size_t size : sizes) {
    for (const bool sorted : {false, true}) {
      double wall[3] = {};
      double cpu[3] = {};
      double bytes[3] = {};
      for (std::size_t i = 0; i < 3; ++i) {
        const std::string name = benchmark_name(implementations[i], size, sorted);
        wall[i] = summary_reporter::median(reporter.real_seconds, reporter.real_median, name) * 1e9 / static_cast<double>(size);
        cpu[i] = summary_reporter::median(reporter.cpu_seconds, reporter.cpu_median, name) * 1e9 / static_cast<double>(size);
      }
      if (wall[0] <= 0.0 || wall[1] <= 0.0 || wall[2] <= 0.0) continue;  // filtered out on the command line
      for (std::size_t i = 0; i < 3; ++i) bytes[i] = bytes_per_record(size, sorted, implementations[i].run);
      std::printf(
          "%-8zu %-8s | %7.1f/%7.1f %8.1f/%8.1f %8.1f/%8.1f | %5.1fx/%5.1fx %5.1fx/%5.1fx | %6.1f %6.1f %6.1f\n", size,
          sorted ? "sorted" : "shuffled", wall[0], cpu[0], wall[1], cpu[1], wall[2], cpu[2], wall[1] / wall[0],
          cpu[1] / cpu[0], wall[2] / wall[0], cpu[2] / cpu[0], bytes[0], bytes[1], bytes[2]);
    }
  }
  benchmark::Shutdown();
  return 0;
}
