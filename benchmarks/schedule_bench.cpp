// The cost of one "next delay" of each schedule, against the loop a user writes by hand:
//   d = std::min(d * f, cap);
// Each iteration takes 64 delays from a fresh start (33 of growth, then the plateau), so both the growing and
// the capped phase are measured. Target: un-jittered geometric within 1.2x of the hand-written loop.

#include <pollster/schedule.hpp>

#include "ratio.hpp"

#include <algorithm>  // min
#include <chrono>     // duration, duration_cast
#include <cstdint>    // int64_t

using namespace std::chrono_literals;

namespace {

constexpr int delays_per_iteration = 64;

// What a user writes: double seconds, multiply, cap, hand the result to a sleep as nanoseconds.
void hand_written_loop(benchmark::State& state) {
  const double factor = 1.1;
  const double cap = 20.0;
  for (auto _ : state) {
    double seconds = 1.0;
    std::int64_t sum = 0;
    for (int i = 0; i < delays_per_iteration; ++i) {
      const auto delay = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
      sum += delay.count();
      seconds = std::min(seconds * factor, cap);
      benchmark::DoNotOptimize(seconds);
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * delays_per_iteration);
}

template <class Schedule>
void run_schedule(benchmark::State& state, Schedule prototype) {
  for (auto _ : state) {
    Schedule schedule = prototype;  // a fresh run, as a poller would get
    std::int64_t sum = 0;
    for (int i = 0; i < delays_per_iteration; ++i) {
      sum += schedule.next().count();
      benchmark::DoNotOptimize(schedule);
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * delays_per_iteration);
}

void geometric_heat(benchmark::State& state) { run_schedule(state, pollster::presets::heat()); }
void constant_1s(benchmark::State& state) { run_schedule(state, pollster::constant{1s}); }
void exponential_no_jitter(benchmark::State& state) {
  pollster::exponential_options o;
  o.cap = 20s;
  o.jitter = pollster::jitter::none;
  run_schedule(state, pollster::exponential{o});
}
void exponential_full_jitter(benchmark::State& state) {
  pollster::exponential_options o;
  o.cap = 20s;
  run_schedule(state, pollster::exponential{o, pollster::splitmix64{1}});
}
void exponential_decorrelated(benchmark::State& state) {
  pollster::exponential_options o;
  o.cap = 20s;
  o.jitter = pollster::jitter::decorrelated;
  run_schedule(state, pollster::exponential{o, pollster::splitmix64{1}});
}
void polly_v2(benchmark::State& state) {
  pollster::decorrelated_jitter_v2_options o;
  o.cap = 20s;
  run_schedule(state, pollster::decorrelated_jitter_v2{o, pollster::splitmix64{1}});
}
void chain_fast_then_heat(benchmark::State& state) {
  run_schedule(state, pollster::chain{pollster::constant{500ms}, 5, pollster::presets::heat()});
}
// What tenacity users write, and the references' own policies (issue 13).
void incrementing_1s(benchmark::State& state) { run_schedule(state, pollster::incrementing{1s, 1s, 20s}); }
void fixed_plus_random(benchmark::State& state) {
  run_schedule(state, pollster::constant{3s} + pollster::random_between{0s, 2s, pollster::splitmix64{1}});
}
void chain_by_attempt_tenacity(benchmark::State& state) {
  run_schedule(state, pollster::chain_by_attempt{pollster::constant{500ms}, 5, pollster::presets::heat()});
}
void grpc_connect(benchmark::State& state) { run_schedule(state, pollster::presets::grpc_connect(pollster::splitmix64{1})); }
void kubernetes_jittered(benchmark::State& state) {
  pollster::kubernetes_backoff_options o;
  o.factor = 1.1;
  o.jitter = 0.1;
  o.steps = 100;
  o.cap = 20s;
  run_schedule(state, pollster::kubernetes_backoff{o, pollster::splitmix64{1}});
}
void google_cloud(benchmark::State& state) { run_schedule(state, pollster::presets::google_cloud(pollster::splitmix64{1})); }

}  // namespace

BENCHMARK(hand_written_loop);
BENCHMARK(geometric_heat);
BENCHMARK(constant_1s);
BENCHMARK(exponential_no_jitter);
BENCHMARK(exponential_full_jitter);
BENCHMARK(exponential_decorrelated);
BENCHMARK(polly_v2);
BENCHMARK(chain_fast_then_heat);
BENCHMARK(incrementing_1s);
BENCHMARK(fixed_plus_random);
BENCHMARK(chain_by_attempt_tenacity);
BENCHMARK(grpc_connect);
BENCHMARK(kubernetes_jittered);
BENCHMARK(google_cloud);

int main(int argc, char** argv) {
  return pollster_bench::run_and_print_ratios(argc, argv,
                                              {{"geometric_heat", "hand_written_loop"},
                                               {"exponential_no_jitter", "hand_written_loop"},
                                               {"constant_1s", "hand_written_loop"},
                                               {"exponential_full_jitter", "hand_written_loop"},
                                               {"exponential_decorrelated", "hand_written_loop"},
                                               {"polly_v2", "hand_written_loop"},
                                               {"chain_fast_then_heat", "hand_written_loop"},
                                               {"incrementing_1s", "hand_written_loop"},
                                               {"fixed_plus_random", "hand_written_loop"},
                                               {"chain_by_attempt_tenacity", "hand_written_loop"},
                                               {"grpc_connect", "hand_written_loop"},
                                               {"kubernetes_jittered", "hand_written_loop"},
                                               {"google_cloud", "hand_written_loop"}});
}
