// What routing a watch's changes through subscriptions costs, against the hand-written routing a user writes in a
// watch handler. Each iteration is one poll's diff over 10 000 records (integer ids and versions: the snapshot's
// indexed path) in which 1% of the records changed: alternately 100 servers go BUILD -> ACTIVE and back. Two
// consumers:
//   provision  status became ACTIVE                     (50 events a poll on average)
//   audit-eu   the records in region eu, any kind        (50 events a poll: half the changed servers are in eu)
//
//   subscriptions  pollster::subscriptions with those two filters (field(...).became, field(...) == ...), at-least-
//                  once delivery armed (no handler fails here), ids and CloudEvents attributes available;
//   hand_routed    one visitor with the two if-statements and the boundary logic written out, calling the same two
//                  counting functions (no ids, no retries, no filter objects).
//   diff_only      the diff with a visitor that only counts its events: the floor both stand on.
//
// Run with --benchmark_repetitions=N: the ratios printed at the end are of medians. The per-event cost is
// (subscriptions - hand_routed) / 100 events. Exact instruction counts: `--count-polls=N` makes N polls of each
// and nothing else; under callgrind (`valgrind --tool=callgrind --toggle-collect='*one_poll*'`, then
// `callgrind_annotate --inclusive=yes`), the difference between N = 100 and N = 300 over 200 is the cost of a poll.
#include <pollster/subscription.hpp>

#include <benchmark/benchmark.h>

#include "ratio.hpp"

#include <cstdint>  // uint64_t
#include <cstdio>   // printf
#include <string>   // string, stol
#include <vector>   // vector

namespace {

constexpr std::size_t records = 10'000;

struct server {
  std::uint64_t id;
  std::uint64_t version;
  std::string status;
  std::string region;
};

struct dataset {
  std::vector<server> first;
  std::vector<server> second;
  dataset() {
    for (std::uint64_t i = 0; i < records; ++i) first.push_back(server{i, 1, "ACTIVE", i % 200 < 100 ? "eu" : "us"});
    second = first;
    for (std::size_t i = 0; i < records; i += 100) {
      second[i].version = 2;
      second[i].status = "BUILD";
    }
  }
};
const dataset& data() {
  static const dataset d;
  return d;
}

struct counts {
  std::uint64_t provisioned = 0;
  std::uint64_t audited = 0;
};

// One poll each, out of line, so that callgrind can count the instructions of a poll alone.
template <class Snapshot, class Handler>
POLLSTER_NOINLINE void one_poll(Snapshot& snapshot, const std::vector<server>& next, Handler&& handler) {
  snapshot.update(next, handler);
}

/// The three ways of consuming a poll, each holding its snapshot, its handler and its counts.
struct with_subscriptions {
  pollster::manual_clock clock;
  pollster::subscriptions<server, std::uint64_t, pollster::manual_clock> subs{pollster::keyed(&server::id, &server::version)};
  decltype(pollster::make_snapshot<server>(&server::id, &server::version)) snapshot =
      pollster::make_snapshot<server>(&server::id, &server::version);
  counts c;
  with_subscriptions() {
    const auto status = pollster::field("status", &server::status);
    const auto region = pollster::field("region", &server::region);
    subs.subscribe("provision", status.became("ACTIVE"),
                   [this](const pollster::event<server, std::uint64_t>&) { ++c.provisioned; });
    subs.subscribe("audit-eu", region == "eu", [this](const pollster::event<server, std::uint64_t>&) { ++c.audited; });
    snapshot.update(data().first, subs.handler(clock));
  }
  void poll(bool flip) { one_poll(snapshot, flip ? data().first : data().second, subs.handler(clock)); }
  std::uint64_t events() const { return c.provisioned + c.audited; }
};

struct hand_router {
  counts* c;
  static bool eu(const server& s) { return s.region == "eu"; }
  void operator()(const pollster::added<const server&>& e) const {
    if (e.initial) return;  // the subscriptions skip the first list too
    if (e.element.status == "ACTIVE") ++c->provisioned;
    if (eu(e.element)) ++c->audited;
  }
  void operator()(const pollster::removed<const server&, std::uint64_t>& e) const {
    if (eu(e.last_known)) ++c->audited;
  }
  void operator()(const pollster::changed<const server&>& e) const {
    if (e.before.status != "ACTIVE" && e.after.status == "ACTIVE") ++c->provisioned;
    if (eu(e.before) || eu(e.after)) ++c->audited;  // entered, left, or changed inside the eu view
  }
};

struct hand_routed_polls {
  decltype(pollster::make_snapshot<server>(&server::id, &server::version)) snapshot =
      pollster::make_snapshot<server>(&server::id, &server::version);
  counts c;
  hand_routed_polls() { snapshot.update(data().first, hand_router{&c}); }
  void poll(bool flip) { one_poll(snapshot, flip ? data().first : data().second, hand_router{&c}); }
  std::uint64_t events() const { return c.provisioned + c.audited; }
};

/// Counts every event, so that the compiler cannot drop the comparisons that decide them (it can for a no-op).
struct event_counter {
  std::uint64_t* events;
  template <class Event>
  void operator()(const Event&) const {
    ++*events;
  }
};
struct diff_only_polls {
  decltype(pollster::make_snapshot<server>(&server::id, &server::version)) snapshot =
      pollster::make_snapshot<server>(&server::id, &server::version);
  std::uint64_t counted = 0;
  diff_only_polls() { snapshot.update(data().first, event_counter{&counted}); }
  void poll(bool flip) { one_poll(snapshot, flip ? data().first : data().second, event_counter{&counted}); }
  std::uint64_t events() const { return counted; }
};

template <class Scenario>
void run_polls(benchmark::State& state) {
  Scenario scenario;
  const std::uint64_t before = scenario.events();
  bool flip = false;
  for (auto _ : state) {
    scenario.poll(flip);
    flip = !flip;
  }
  state.counters["events/poll"] =
      static_cast<double>(scenario.events() - before) / static_cast<double>(state.iterations());
}
void subscriptions(benchmark::State& state) { run_polls<with_subscriptions>(state); }
void hand_routed(benchmark::State& state) { run_polls<hand_routed_polls>(state); }
void diff_only(benchmark::State& state) { run_polls<diff_only_polls>(state); }

/// `--count-polls=N`: N polls of each scenario and nothing else, for callgrind (no calibration runs).
template <class Scenario>
std::uint64_t count_polls(long n) {
  Scenario scenario;
  for (long i = 0; i < n; ++i) scenario.poll(i % 2 == 0 ? false : true);
  return scenario.events();
}

}  // namespace

BENCHMARK(subscriptions)->Unit(benchmark::kMicrosecond);
BENCHMARK(hand_routed)->Unit(benchmark::kMicrosecond);
BENCHMARK(diff_only)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--count-polls=", 0) == 0) {
      const long n = std::stol(arg.substr(14));
      std::printf("events: subscriptions %llu, hand_routed %llu, diff_only %llu\n",
                  static_cast<unsigned long long>(count_polls<with_subscriptions>(n)),
                  static_cast<unsigned long long>(count_polls<hand_routed_polls>(n)),
                  static_cast<unsigned long long>(count_polls<diff_only_polls>(n)));
      return 0;
    }
  }
  return pollster_bench::run_and_print_ratios(argc, argv,
                                              {{"subscriptions", "hand_routed"}, {"subscriptions", "diff_only"}});
}
