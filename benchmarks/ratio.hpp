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
        if (run.aggregate_name == "median") times_[run.run_name.str()] = {run.GetAdjustedRealTime(), true};
      } else {
        auto& slot = times_[name];
        if (!slot.second) slot = {run.GetAdjustedRealTime(), false};
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
  /// Time per iteration of a benchmark by its full name, or a negative number when it did not run.
  double time_of(const std::string& name) const {
    const auto it = times_.find(name);
    return it == times_.end() ? -1 : it->second.first;
  }

 private:
  std::map<std::string, std::pair<double, bool>> times_;  // name -> (time, is a median)
};

/// Runs the benchmarks, then prints baseline/pollster for each pair: > 1 means pollster is faster.
inline int run_and_print_ratios(int argc, char** argv,
                                const std::vector<std::pair<std::string, std::string>>& pollster_vs_baseline) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ratio_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\n%-44s %-44s %12s\n", "pollster", "baseline", "time ratio");
  for (const auto& [ours, theirs] : pollster_vs_baseline) {
    const double a = reporter.time_of(ours);
    const double b = reporter.time_of(theirs);
    if (a <= 0 || b <= 0) continue;  // filtered out with --benchmark_filter
    std::printf("%-44s %-44s %11.2fx\n", ours.c_str(), theirs.c_str(), a / b);
  }
  std::printf("(time ratio = pollster time / baseline time: below 1 is faster than the baseline)\n");
  benchmark::Shutdown();
  return 0;
}

}  // namespace pollster_bench
