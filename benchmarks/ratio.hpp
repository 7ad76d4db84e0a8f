// Shared by pollster's benchmarks: run Google Benchmark as usual, then print "pollster vs baseline" ratios
// computed from the same run (the median of repetitions when --benchmark_repetitions is given).
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pollster_bench {

/// Collects each benchmark's time per iteration (preferring the "_median" aggregate) while printing as usual.
class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      const std::string name = run.benchmark_name();
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name == "median") {
          times_[run.run_name.str()] = {run.GetAdjustedRealTime(), run.GetAdjustedCPUTime(), true};
        }
      } else {
        timing& slot = times_[name];
        if (!slot.median) slot = {run.GetAdjustedRealTime(), run.GetAdjustedCPUTime(), false};
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
  struct timing {
    double wall = -1;
    double cpu = -1;
    bool median = false;
  };
  /// Wall-clock and CPU time per iteration of a benchmark by its full name (negative when it did not run).
  timing time_of(const std::string& name) const {
    const auto it = times_.find(name);
    return it == times_.end() ? timing{} : it->second;
  }

 private:
  std::map<std::string, timing> times_;
};

/// Runs the benchmarks, then prints baseline/pollster for each pair: > 1 means pollster is faster.
inline int run_and_print_ratios(int argc, char** argv,
                                const std::vector<std::pair<std::string, std::string>>& pollster_vs_baseline) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\n%-40s %-40s %10s %10s\n", "pollster", "baseline", "wall ratio", "cpu ratio");
  for (const auto& [ours, theirs] : pollster_vs_baseline) {
    const ratio_reporter::timing a = reporter.time_of(ours);
    const ratio_reporter::timing b = reporter.time_of(theirs);
    if (a.wall <= 0 || b.wall <= 0) continue;  // filtered out with --benchmark_filter
    std::printf("%-40s %-40s %9.2fx %9.2fx\n", ours.c_str(), theirs.c_str(), a.wall / b.wall,
                b.cpu > 0 ? a.cpu / b.cpu : 0.0);
  }
  std::printf("(ratio = pollster time / baseline time, medians when repeated: below 1 is faster than the baseline;\n"
              " on a shared machine the CPU-time ratio is the steadier of the two)\n");
  benchmark::Shutdown();
  return 0;
}

}  // namespace pollster_bench
