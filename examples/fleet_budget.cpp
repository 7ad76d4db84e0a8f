// OpenStack Heat's failure, replayed in virtual time: 50 concurrent stack operations of 20 resources each poll one
// cloud API that allows 10 requests per second. Polling every resource every second floods the API (every request
// over the limit is a 429, and Heat's stacks failed); pollster's runner with Heat's geometric schedule and one
// shared budget stays inside the limit. The whole simulation takes a fraction of a second.

#include <pollster/runner.hpp>

#include <algorithm>  // sort, nth_element
#include <chrono>     // seconds
#include <cstdint>    // uint64_t
#include <cstdio>     // printf
#include <optional>   // optional
#include <vector>     // vector

using namespace std::chrono_literals;

namespace {

constexpr int stacks = 50;
constexpr int resources_per_stack = 20;
constexpr double api_rate = 10.0;  // requests per second the API accepts
constexpr pollster::duration api_window = 1s;

struct report {
  std::uint64_t requests = 0;
  std::uint64_t over_limit = 0;
  pollster::duration median_delay{};
  pollster::duration p99_delay{};
  pollster::duration finished_at{};
};

/// When each resource becomes ready: spread over 20 s to 10 min, the same for both runs.
std::vector<pollster::duration> ready_times() {
  pollster::splitmix64 random{2015};
  std::vector<pollster::duration> times;
  for (int i = 0; i < stacks * resources_per_stack; ++i) {
    times.push_back(20s + pollster::duration{static_cast<std::int64_t>(random() % 580'000'000'000ULL)});
  }
  return times;
}

/// Requests the API would refuse: more than `api_rate` in the second (t - 1 s, t] before one.
std::uint64_t count_over_limit(std::vector<pollster::duration> requests) {
  std::sort(requests.begin(), requests.end());
  std::uint64_t over = 0;
  std::size_t window_start = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    while (requests[window_start] <= requests[i] - api_window) ++window_start;
    if (static_cast<double>(i - window_start + 1) > api_rate) ++over;
  }
  return over;
}

pollster::duration percentile(std::vector<pollster::duration> values, double p) {
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(rank), values.end());
  return values[rank];
}

template <class Schedule>
report simulate(const Schedule& schedule, std::optional<pollster::budget_options> budget) {
  pollster::manual_clock clock;
  pollster::runner<pollster::manual_clock> fleet{clock};
  pollster::submit_options options;
  if (budget) options.budget = fleet.add_budget("compute-api", *budget);

  const std::vector<pollster::duration> ready = ready_times();
  std::vector<pollster::duration> requests;
  std::vector<pollster::duration> delays;
  using step = pollster::step<const char*, const char*>;
  for (const pollster::duration ready_at : ready) {
    fleet.submit(
        [&clock, &requests, ready_at]() -> step {
          const pollster::duration now = clock.now().time_since_epoch();
          requests.push_back(now);
          return now >= ready_at ? step{pollster::done("CREATE_COMPLETE")} : step{pollster::pending("IN_PROGRESS")};
        },
        schedule, pollster::never{},
        [&clock, &delays, ready_at](const pollster::outcome<const char*, const char*>&) {
          delays.push_back(clock.now().time_since_epoch() - ready_at);
        },
        options);
  }
  fleet.run();  // virtual time: the whole fleet, start to finish

  report r;
  r.requests = requests.size();
  r.over_limit = count_over_limit(requests);
  r.median_delay = percentile(delays, 0.5);
  r.p99_delay = percentile(delays, 0.99);
  r.finished_at = clock.now().time_since_epoch();
  return r;
}

void print(const char* name, const report& r) {
  auto seconds = [](pollster::duration d) { return std::chrono::duration<double>(d).count(); };
  std::printf("%-44s %8llu %12llu %10.1f s %9.1f s %9.1f s\n", name, static_cast<unsigned long long>(r.requests),
              static_cast<unsigned long long>(r.over_limit), seconds(r.median_delay), seconds(r.p99_delay),
              seconds(r.finished_at));
}

}  // namespace

int main() {
  std::printf("%d stacks x %d resources, one API limited to %.0f requests/s (virtual time)\n\n", stacks,
              resources_per_stack, api_rate);
  std::printf("%-44s %8s %12s %12s %11s %11s\n", "", "polls", "over limit", "delay p50", "delay p99", "all done");
  const report fixed = simulate(pollster::constant{1s}, std::nullopt);
  print("fixed 1 s polling, no budget", fixed);
  print("geometric 1 s x 1.1 to 20 s, no budget", simulate(pollster::presets::heat(), std::nullopt));
  pollster::budget_options api;
  api.rate = api_rate;
  api.burst = 1;  // one request every 100 ms, never 11 in a second
  const report shared = simulate(pollster::presets::heat(), api);
  print("pollster: 1 s x 1.1 to 20 s, shared budget", shared);
  std::printf("\nEvery request over the limit is a 429 the API would have refused.\n");
  return shared.over_limit == 0 ? 0 : 1;
}
