#include "pollster_catch.hpp"

#include <pollster/poll.hpp>
#include <pollster/runner.hpp>

#include "cancel_latency.hpp"
#include "runner_model.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <atomic>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>  // mallinfo2
#endif

using namespace std::chrono_literals;
using pollster::cause;
using pollster::manual_clock;
using pollster::poll_status;
using pollster::runner;

namespace {

using step_type = pollster::step<int, std::string>;
using outcome_type = pollster::outcome<int, std::string>;

pollster::duration since_start(const manual_clock& clock) { return clock.now().time_since_epoch(); }

/// A check that is done on its `ready_at`-th call and records when it was called.
struct counting_check {
  int ready_at;
  std::vector<pollster::duration>* calls;
  const manual_clock* clock;
  step_type operator()() const {
    calls->push_back(since_start(*clock));
    if (static_cast<int>(calls->size()) >= ready_at) return pollster::done(static_cast<int>(calls->size()));
    return pollster::pending(static_cast<int>(calls->size()));
  }
};

}  // namespace

TEST_CASE("a runner polls one poller on its schedule in virtual time", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<pollster::duration> calls;
  std::vector<outcome_type> outcomes;
  fleet.submit(counting_check{4, &calls, &clock}, pollster::geometric{1s, 2.0, 10s}, pollster::never{},
               [&](outcome_type o) { outcomes.push_back(std::move(o)); });
  CHECK(fleet.run() == 4);
  CHECK(calls == std::vector<pollster::duration>{0s, 1s, 3s, 7s});
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].cause == cause::done);
  CHECK(outcomes[0].value() == 4);
  CHECK(outcomes[0].attempts == 4);
  CHECK(outcomes[0].elapsed == 7s);
  CHECK(outcomes[0].budget_wait == 0s);
  CHECK(since_start(clock) == 7s);
  CHECK(fleet.empty());
}

TEST_CASE("pollers due at the same time are checked in submission order, earlier times first", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<std::string> order;
  auto make = [&](std::string name, int ready_at) {
    return [&order, name, ready_at, n = 0]() mutable -> step_type {
      order.push_back(name);
      return ++n >= ready_at ? step_type{pollster::done(n)} : step_type{pollster::pending()};
    };
  };
  auto ignore = [](outcome_type) {};
  fleet.submit(make("a", 3), pollster::constant{2s}, pollster::never{}, ignore);
  fleet.submit(make("b", 2), pollster::constant{3s}, pollster::never{}, ignore);
  fleet.submit(make("c", 2), pollster::constant{1s}, pollster::never{}, ignore);
  fleet.run();
  // t=0: a b c; t=1: c (done); t=2: a; t=3: b (done); t=4: a (done)
  CHECK(order == std::vector<std::string>{"a", "b", "c", "c", "a", "b", "a"});
  CHECK(since_start(clock) == 4s);
}

namespace {

/// Records every check of a fleet: when, and which poller.
struct request_log {
  std::vector<pollster::duration> times;
  /// The most requests in any window [t, t + window) that starts at a request (the worst window starts at one).
  std::size_t most_in_window(pollster::duration window) const {
    std::vector<pollster::duration> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    std::size_t most = 0;
    std::size_t end = 0;
    for (std::size_t begin = 0; begin < sorted.size(); ++begin) {
      while (end < sorted.size() && sorted[end] < sorted[begin] + window) ++end;
      most = std::max(most, end - begin);
    }
    return most;
  }
};

}  // namespace

TEST_CASE("a shared budget never lets more than rate x window + burst through in any window", "[runner][budget]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  const auto api = fleet.add_budget("compute-api", pollster::budget_options{10.0, 5});
  request_log log;
  std::vector<outcome_type> outcomes;
  pollster::submit_options options;
  options.budget = api;
  for (int i = 0; i < 100; ++i) {
    fleet.submit(
        [&log, &clock, n = 0]() mutable -> step_type {
          log.times.push_back(since_start(clock));
          return ++n >= 3 ? step_type{pollster::done(n)} : step_type{pollster::pending()};
        },
        pollster::constant{1s}, pollster::never{}, [&](outcome_type o) { outcomes.push_back(std::move(o)); }, options);
  }
  CHECK(fleet.run() == 300);
  REQUIRE(outcomes.size() == 100);
  CHECK(log.times.size() == 300);
  // 10 per second with a burst of 5: the first 5 go at once, then one every 100 ms.
  CHECK(log.most_in_window(1s) == 10 + 5 - 1);  // a window of exactly 1 s holds rate x 1 s + burst - 1 grants
  CHECK(log.most_in_window(10s) <= 10 * 10 + 5);
  CHECK(log.most_in_window(100ms) <= 1 + 5);
  CHECK(log.times[4] == 0s);
  CHECK(log.times[5] == 100ms);
  CHECK(log.times.back() == 29500ms);  // 300 requests: 5 at t = 0, then 295 more every 100 ms
  const pollster::budget_stats stats = fleet.stats(api);
  CHECK(stats.granted == 300);
  CHECK(stats.waiting == 0);
  // Every outcome carries its own wait, and they add up to the budget's total.
  pollster::duration total{};
  for (const outcome_type& o : outcomes) {
    CHECK(o.cause == cause::done);
    CHECK(o.slept >= o.budget_wait);
    total += o.budget_wait;
  }
  CHECK(total == stats.total_wait);
  CHECK(total > 0s);
}

TEST_CASE("pollers waiting for a budget are served in due-time order, so none starves", "[runner][budget]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  const auto api = fleet.add_budget("api", pollster::budget_options{1.0, 1});
  std::vector<std::pair<int, pollster::duration>> served;
  pollster::submit_options options;
  options.budget = api;
  // A fast poller (every 100 ms) and two slow ones (every 10 s) share 1 request per second: the fast one
  // cannot overtake a slow one that became due before it.
  auto make = [&](int id, int checks) {
    return [&served, &clock, id, checks, n = 0]() mutable -> step_type {
      served.emplace_back(id, since_start(clock));
      return ++n >= checks ? step_type{pollster::done(n)} : step_type{pollster::pending()};
    };
  };
  auto ignore = [](outcome_type) {};
  fleet.submit(make(0, 6), pollster::constant{100ms}, pollster::never{}, ignore, options);
  fleet.submit(make(1, 2), pollster::constant{10s}, pollster::never{}, ignore, options);
  fleet.submit(make(2, 2), pollster::constant{10s}, pollster::never{}, ignore, options);
  fleet.run();
  const std::vector<std::pair<int, pollster::duration>> expected{
      {0, 0s},  {1, 1s}, {2, 2s},                    // all due at 0: submission order, one token per second
      {0, 3s},  {0, 4s}, {0, 5s}, {0, 6s}, {0, 7s},  // poller 0 was due at 0.1 s; each check re-arms it 100 ms later
      {1, 11s}, {2, 12s}};                           // due at 11 s and 12 s: served on time
  CHECK(served == expected);
}

namespace {
/// A budget group whose tokens arrive from another thread (as a lease from a remote store does): it has none to
/// give until `grant` is called, answers next_available with "not before I wake you", and wakes the runner then.
class background_group final : public pollster::budget_group {
 public:
  bool try_acquire(pollster::duration) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (tokens_ == 0) {
      ++refusals_;
      return false;
    }
    --tokens_;
    ++granted_;
    return true;
  }
  pollster::duration next_available(pollster::duration now) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return tokens_ != 0 ? now : pollster::duration::max();
  }
  void throttled(pollster::duration) override {}
  void on_wake(std::function<void()> wake) override { wake_ = std::move(wake); }
  std::uint64_t granted() const noexcept override { return granted_; }
  std::uint64_t throttles() const noexcept override { return 0; }
  double rate_at(pollster::duration) const override { return 0.0; }

  /// Any thread: `n` tokens arrive.
  void grant(int n) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tokens_ += n;
    }
    wake_();
  }
  bool attached() const { return static_cast<bool>(wake_); }
  int refusals() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return refusals_;
  }

 private:
  mutable std::mutex mutex_;
  int tokens_ = 0;
  int refusals_ = 0;
  std::uint64_t granted_ = 0;
  std::function<void()> wake_;
};
}  // namespace

TEST_CASE("a budget group whose tokens arrive from another thread wakes the runner when they do", "[runner][budget]") {
  // Virtual time stands still while the runner waits for the group: nothing else is due, so it sleeps until woken
  // (a bounded real-time wait here), and the tokens granted by the other thread are spent at the same virtual time.
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  auto owned = std::make_unique<background_group>();
  background_group& group = *owned;
  pollster::submit_options options;
  options.budget = fleet.add_budget("remote", std::move(owned));
  REQUIRE(group.attached());
  std::vector<pollster::duration> checks;
  std::vector<outcome_type> outcomes;
  std::vector<pollster::handle> handles;
  for (int i = 0; i < 3; ++i) {
    handles.push_back(fleet.submit(
        [&]() -> step_type {
          checks.push_back(since_start(clock));
          return pollster::done(1);
        },
        pollster::constant{1s}, pollster::never{}, [&](outcome_type o) { outcomes.push_back(std::move(o)); },
        options));
  }
  std::atomic<bool> finished{false};
  std::thread lender([&] {
    // Grant only once the runner has asked (and been refused): the wake is what must end its sleep.
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (group.refusals() == 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    group.grant(2);
    std::this_thread::sleep_for(20ms);
    group.grant(1);
    // A watchdog: a runner that never woke is cancelled after 3 s, so the test fails instead of hanging.
    const auto give_up = std::chrono::steady_clock::now() + 3s;
    while (!finished.load() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(1ms);
    for (const pollster::handle& h : handles) h.cancel();
  });
  fleet.run();
  finished.store(true);
  lender.join();
  REQUIRE(outcomes.size() == 3);
  for (const outcome_type& o : outcomes) CHECK(o.cause == cause::done);
  CHECK(checks == std::vector<pollster::duration>{0s, 0s, 0s});
  CHECK(group.granted() == 3);
  CHECK(group.refusals() >= 2);  // once before the first grant, once more before the second
}

TEST_CASE("a throttled answer slows the whole budget down, and it recovers", "[runner][budget]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  pollster::budget_options limits;
  limits.rate = 10.0;
  limits.burst = 1;
  limits.throttle_factor = 0.5;
  limits.recovery = 10s;
  const auto api = fleet.add_budget("api", limits);
  pollster::submit_options options;
  options.budget = api;
  std::vector<pollster::duration> times;
  fleet.submit(
      [&, n = 0]() mutable -> step_type {
        times.push_back(since_start(clock));
        ++n;
        if (n == 3) return pollster::throttled();
        return n >= 6 ? step_type{pollster::done(n)} : step_type{pollster::pending()};
      },
      pollster::constant{1ms}, pollster::never{}, [](outcome_type) {}, options);
  fleet.run();
  REQUIRE(times.size() == 6);
  CHECK(times[1] == 100ms);
  CHECK(times[2] == 200ms);  // this one said 429: the rate halves to 5/s
  CHECK(times[3] == 400ms);  // 200 ms after the 429, at the halved rate
  // Then the rate climbs back: 5.1 per second at 400 ms into a 10 s recovery.
  CHECK(times[4] - times[3] == std::chrono::nanoseconds{196078431});
  CHECK(fleet.stats(api).throttles == 1);
  CHECK(fleet.stats(api).rate_now > 5.0);  // climbing back linearly over 10 s
  CHECK(fleet.stats(api).rate_now < 10.0);
}

TEST_CASE("a nudge makes a poller check at once, and the schedule resumes", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<pollster::duration> calls;
  std::vector<outcome_type> outcomes;
  auto h = fleet.submit(counting_check{4, &calls, &clock}, pollster::constant{10s}, pollster::never{},
                        [&](outcome_type o) { outcomes.push_back(std::move(o)); });
  CHECK(fleet.run_for(3s) == 1);
  CHECK(since_start(clock) == 3s);
  CHECK(h.status() == poll_status::scheduled);
  h.nudge();
  CHECK(fleet.poll() == 1);  // due now
  CHECK(calls == std::vector<pollster::duration>{0s, 3s});
  fleet.run();
  CHECK(calls == std::vector<pollster::duration>{0s, 3s, 13s, 23s});
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].nudges == 1);
  CHECK(h.status() == poll_status::finished);
  h.nudge();  // harmless on a finished poller
  h.cancel();
  CHECK(fleet.poll() == 0);
}

TEST_CASE("cancel ends one poller with cause cancelled and its last value; the others go on", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<pollster::duration> calls_a;
  std::vector<pollster::duration> calls_b;
  std::vector<outcome_type> outcomes;
  auto record = [&](outcome_type o) { outcomes.push_back(std::move(o)); };
  auto a = fleet.submit(counting_check{100, &calls_a, &clock}, pollster::constant{1s}, pollster::never{}, record);
  fleet.submit(counting_check{5, &calls_b, &clock}, pollster::constant{1s}, pollster::never{}, record);
  fleet.run_for(2500ms);
  a.cancel();
  fleet.run();
  REQUIRE(outcomes.size() == 2);
  CHECK(outcomes[0].cause == cause::cancelled);
  CHECK(outcomes[0].last_value == 3);
  CHECK(outcomes[0].attempts == 3);
  CHECK(outcomes[1].cause == cause::done);
  CHECK(calls_b.size() == 5);
  CHECK(a.finished());
}

TEST_CASE("a check that throws ends only its own poller, with the exception in the outcome", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<outcome_type> outcomes;
  auto record = [&](outcome_type o) { outcomes.push_back(std::move(o)); };
  fleet.submit(
      [n = 0]() mutable -> step_type {
        if (++n == 2) throw std::runtime_error("connection reset");
        return pollster::pending(n);
      },
      pollster::constant{1s}, pollster::never{}, record);
  std::vector<pollster::duration> calls;
  fleet.submit(counting_check{4, &calls, &clock}, pollster::constant{1s}, pollster::never{}, record);
  CHECK(fleet.run() == 2 + 4);
  REQUIRE(outcomes.size() == 2);
  CHECK(outcomes[0].cause == cause::exception);
  CHECK(outcomes[0].last_value == 1);
  CHECK(outcomes[0].attempts == 2);
  REQUIRE(outcomes[0].exception);
  CHECK_THROWS_WITH(std::rethrow_exception(outcomes[0].exception), "connection reset");
  CHECK(outcomes[1].cause == cause::done);
}

TEST_CASE("a completion callback can submit the next poller", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<pollster::duration> finished_at;
  std::function<void(outcome_type)> chain;
  int remaining = 3;
  chain = [&](outcome_type o) {
    REQUIRE(o.cause == cause::done);
    finished_at.push_back(since_start(clock));
    if (--remaining > 0) {
      fleet.submit([n = 0]() mutable -> step_type { return ++n >= 2 ? step_type{pollster::done(n)} : step_type{}; },
                   pollster::constant{5s}, pollster::never{}, chain);
    }
  };
  fleet.submit([n = 0]() mutable -> step_type { return ++n >= 2 ? step_type{pollster::done(n)} : step_type{}; },
               pollster::constant{5s}, pollster::never{}, chain);
  CHECK(fleet.run() == 6);
  CHECK(finished_at == std::vector<pollster::duration>{5s, 10s, 15s});
}

TEST_CASE("run_until stops at its time, and the stop rule still ends a poller", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<pollster::duration> calls;
  std::vector<outcome_type> outcomes;
  fleet.submit(counting_check{1000, &calls, &clock}, pollster::presets::heat(), pollster::before_deadline{60s},
               [&](outcome_type o) { outcomes.push_back(std::move(o)); });
  CHECK(fleet.run_until(clock.now() + 30s) == 15);  // t = 0, then 14 delays 1, 1.1, 1.21, ... ending at 27.97 s
  CHECK(since_start(clock) == 30s);
  CHECK(outcomes.empty());
  fleet.run();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].cause == cause::deadline);
  CHECK(outcomes[0].elapsed == 60s);
  CHECK(calls.back() == 60s);
}

TEST_CASE("copies of one jittered prototype get their own random streams", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  pollster::exponential_options o;
  o.base = 1s;
  o.cap = 60s;
  o.jitter = pollster::jitter::full;
  const pollster::exponential prototype{o};
  std::vector<std::vector<pollster::duration>> calls(2);
  for (auto& log : calls) {
    fleet.submit(
        [&log, &clock]() -> step_type {
          log.push_back(since_start(clock));
          return log.size() >= 4 ? step_type{pollster::done(0)} : step_type{};
        },
        prototype, pollster::never{}, [](outcome_type) {});
  }
  fleet.run();
  REQUIRE(calls[0].size() == 4);
  REQUIRE(calls[1].size() == 4);
  CHECK(calls[0] != calls[1]);
  // An explicit seed reproduces a run exactly.
  std::vector<pollster::duration> again[2];
  for (auto& log : again) {
    manual_clock replay_clock;
    runner<manual_clock> replay{replay_clock};
    pollster::submit_options seeded;
    seeded.seed = 42;
    replay.submit(
        [&log, &replay_clock]() -> step_type {
          log.push_back(since_start(replay_clock));
          return log.size() >= 4 ? step_type{pollster::done(0)} : step_type{};
        },
        prototype, pollster::never{}, [](outcome_type) {}, seeded);
    replay.run();
  }
  CHECK(again[0] == again[1]);
}

TEST_CASE("a handle outlives its runner harmlessly; pending pollers are destroyed without callbacks", "[runner]") {
  pollster::handle h;
  int callbacks = 0;
  {
    manual_clock clock;
    runner<manual_clock> fleet{clock};
    h = fleet.submit([]() -> step_type { return pollster::pending(); }, pollster::constant{1s}, pollster::never{},
                     [&](outcome_type) { ++callbacks; });
    fleet.run_for(5s);
    CHECK(h.status() == poll_status::scheduled);
  }
  CHECK(callbacks == 0);
  CHECK(h.status() == poll_status::finished);
  h.nudge();
  h.cancel();
  CHECK(pollster::handle{}.status() == poll_status::finished);
}

TEST_CASE("many nudges leave stale timers that are swept, not leaked", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<pollster::handle> handles;
  for (int i = 0; i < 3000; ++i) {
    handles.push_back(fleet.submit([]() -> step_type { return pollster::pending(); }, pollster::constant{1h},
                                   pollster::never{}, [](outcome_type) {}));
  }
  CHECK(fleet.poll() == 3000);
  for (int round = 0; round < 3; ++round) {
    clock.advance(1s);
    for (auto& h : handles) h.nudge();
    CHECK(fleet.poll() == 3000);
  }
  for (auto& h : handles) h.cancel();
  fleet.poll();
  CHECK(fleet.empty());
  CHECK(fleet.run() == 0);
}

TEST_CASE("one poller nudged a thousand times between far-apart checks stays exact", "[runner]") {
  // Every nudge leaves the poller's earlier timer entry behind, stale, an hour ahead: a thousand of them point at
  // one node (more than its small reference count holds) while the fleet is far too small for the global sweep.
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  int checks = 0;
  std::vector<outcome_type> outcomes;
  auto h = fleet.submit(
      [&checks]() -> step_type {
        ++checks;
        return pollster::pending(checks);
      },
      pollster::constant{1h}, pollster::never{}, [&](outcome_type o) { outcomes.push_back(std::move(o)); });
  CHECK(fleet.poll() == 1);
  for (int i = 0; i < 1000; ++i) {
    clock.advance(1s);
    h.nudge();
    REQUIRE(fleet.poll() == 1);
  }
  CHECK(checks == 1001);
  h.cancel();  // while the stale entries still wait in the timers: they must not free the node early
  fleet.poll();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].cause == cause::cancelled);
  CHECK(outcomes[0].nudges == 1000);
  CHECK(outcomes[0].attempts == 1001);
  CHECK(outcomes[0].last_value == 1001);
  CHECK(fleet.empty());
  const auto before = clock.now();
  CHECK(fleet.run() == 0);  // no poller is left: run() returns without waiting for the stale entries' time
  CHECK(clock.now() == before);
  CHECK(fleet.run_for(2h) == 0);  // they come out over the next hour of virtual time, and nothing runs
  CHECK(checks == 1001);
}

namespace {
/// A check aligned to 16 bytes, the arena's largest alignment; it checks its own address.
struct alignas(16) aligned_check {
  int calls = 0;
  step_type operator()() {
    CHECK(reinterpret_cast<std::uintptr_t>(this) % 16 == 0);
    ++calls;
    if (calls == 2) return pollster::done(calls);
    return pollster::pending(calls);
  }
};
}  // namespace

TEST_CASE("the node arena aligns what it hands out and leaves large or over-aligned nodes to operator new",
          "[runner]") {
  pollster::detail::node_arena arena;
  std::vector<void*> blocks;
  for (std::size_t alignment : {std::size_t{8}, std::size_t{16}, std::size_t{64}}) {
    for (std::size_t size : {std::size_t{24}, std::size_t{40}, std::size_t{112}, std::size_t{2000}}) {
      void* p = arena.allocate(size, alignment);
      CHECK(reinterpret_cast<std::uintptr_t>(p) % alignment == 0);
      std::memset(p, 0xab, size);  // (ASan: the whole block is usable)
      arena.deallocate(p, size, alignment);
      void* again = arena.allocate(size, alignment);
      if (size <= 1024 && alignment <= 16) CHECK(again == p);  // a freed block serves the next of its size
      blocks.push_back(again);
      std::memset(again, 0xcd, size);
      arena.deallocate(again, size, alignment);
    }
  }
  CHECK(blocks.size() == 12);
}

TEST_CASE("pollers with 16-byte aligned checks get aligned nodes", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<outcome_type> outcomes;
  for (int i = 0; i < 5; ++i) {
    fleet.submit(aligned_check{}, pollster::constant{1s}, pollster::never{},
                 [&](outcome_type o) { outcomes.push_back(std::move(o)); });
  }
  CHECK(fleet.run() == 10);
  REQUIRE(outcomes.size() == 5);
  for (const outcome_type& o : outcomes) CHECK(o.value() == 2);
}

TEST_CASE("bad submissions are refused with invalid_argument", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  pollster::submit_options unknown;
  unknown.budget = pollster::budget_id{7};
  auto check = []() -> step_type { return pollster::pending(); };
  CHECK_THROWS_WITH(fleet.submit(
                        check, pollster::constant{1s}, pollster::never{}, [](outcome_type) {}, unknown),
                    "pollster::runner: budget must be an id returned by add_budget, got 7");
  pollster::cancel_source source;
  pollster::submit_options with_token;
  with_token.poll.cancel = source.get_token();
  CHECK_THROWS_AS(fleet.submit(
                      check, pollster::constant{1s}, pollster::never{}, [](outcome_type) {}, with_token),
                  std::invalid_argument);
  CHECK_THROWS_WITH(pollster::token_bucket(pollster::budget_options{0.0, 1}),
                    "pollster::token_bucket: rate must be finite and in (0, 1e9] per second, got 0");
  CHECK_THROWS_WITH(pollster::token_bucket(pollster::budget_options{1.0, 0}),
                    "pollster::token_bucket: burst must be >= 1, got 0");
}

TEST_CASE("a poller cancelled while it waits for its budget gives its turn to the next", "[runner][budget]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  const auto api = fleet.add_budget("api", pollster::budget_options{1.0, 1});
  pollster::submit_options options;
  options.budget = api;
  std::vector<std::pair<int, pollster::duration>> served;
  std::vector<outcome_type> outcomes;
  std::vector<pollster::handle> handles;
  for (int id = 0; id < 3; ++id) {
    handles.push_back(fleet.submit(
        [&served, &clock, id]() -> step_type {
          served.emplace_back(id, since_start(clock));
          return pollster::done(id);
        },
        pollster::constant{1s}, pollster::never{}, [&](outcome_type o) { outcomes.push_back(std::move(o)); }, options));
  }
  CHECK(fleet.poll() == 1);  // poller 0 takes the token; 1 and 2 wait
  CHECK(handles[1].status() == poll_status::waiting_for_budget);
  CHECK(fleet.stats(api).waiting == 2);
  handles[1].cancel();
  fleet.run();
  CHECK(served == std::vector<std::pair<int, pollster::duration>>{{0, 0s}, {2, 1s}});
  REQUIRE(outcomes.size() == 3);
  CHECK(outcomes[1].cause == cause::cancelled);
  CHECK(outcomes[1].attempts == 0);
  CHECK(outcomes[2].budget_wait == 1s);
  CHECK(fleet.stats(api).waiting == 0);
}

TEST_CASE("the radix timer heap pops in key order, equal keys first in first out, like a sorted reference",
          "[runner][timer_heap]") {
  pollster::detail::radix_heap<std::uint64_t> heap;
  std::multimap<std::uint64_t, std::uint64_t> reference;  // key -> sequence; equal keys keep insertion order
  pollster::splitmix64 random{7};
  std::uint64_t now = 1000;
  std::uint64_t sequence = 0;
  std::uint64_t popped = 0;
  for (int round = 0; round < 2000; ++round) {
    const auto pushes = random() % 64;
    for (std::uint64_t i = 0; i < pushes; ++i) {
      // Timers: never before now; often exactly now, sometimes far ahead, sometimes across a power of two.
      const std::uint64_t r = random();
      const std::uint64_t key = now + (r % 4 == 0 ? 0 : (r >> 8) % (r % 3 == 0 ? 1000000000ULL : 100ULL));
      heap.push(key, sequence);
      reference.emplace(key, sequence);
      ++sequence;
    }
    REQUIRE(heap.size() == reference.size());
    if (!reference.empty()) REQUIRE(heap.min_key() == reference.begin()->first);
    const auto pops = random() % 64;
    for (std::uint64_t i = 0; i < pops && !reference.empty(); ++i) {
      const auto expected = reference.begin();
      const auto got = heap.pop();
      REQUIRE(got.key == expected->first);
      REQUIRE(got.item == expected->second);
      now = got.key;  // time moves to what was due
      reference.erase(expected);
      ++popped;
      if (random() % 8 == 0) {  // a nudge: due exactly now, while other timers wait further ahead
        heap.push(now, sequence);
        reference.emplace(now, sequence);
        ++sequence;
      }
      if (!reference.empty()) REQUIRE(heap.min_key() == reference.begin()->first);
    }
    if (round % 500 == 499) {  // drop every third entry, as the runner sweeps stale timers
      const std::size_t removed = heap.remove_if([](const auto& e) { return e.item % 3 == 0; });
      std::size_t expected_removed = 0;
      for (auto it = reference.begin(); it != reference.end();) {
        if (it->second % 3 == 0) {
          it = reference.erase(it);
          ++expected_removed;
        } else {
          ++it;
        }
      }
      REQUIRE(removed == expected_removed);
    }
  }
  CHECK(popped > 10000);
  std::size_t drained = 0;
  heap.drain([&](const auto&) { ++drained; });
  CHECK(drained == reference.size());
  CHECK(heap.empty());
}

TEST_CASE("a completion callback that throws leaves the runner consistent and usable", "[runner]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<int> finished;
  fleet.submit([]() -> step_type { return pollster::done(1); }, pollster::constant{1s}, pollster::never{},
               [](outcome_type) { throw std::runtime_error("callback failed"); });
  std::vector<pollster::duration> calls;
  fleet.submit(counting_check{3, &calls, &clock}, pollster::constant{1s}, pollster::never{},
               [&](outcome_type o) { finished.push_back(o.value()); });
  CHECK_THROWS_WITH(fleet.run(), "callback failed");  // like asio: a handler's exception leaves run()
  CHECK(fleet.size() == 1);
  CHECK(fleet.run() == 3);  // the other poller goes on, from where it was: not yet checked
  CHECK(finished == std::vector<int>{3});
  CHECK(calls == std::vector<pollster::duration>{0s, 1s, 2s});
}

TEST_CASE("throttles and recoveries never let a budget exceed rate x window + burst", "[runner][budget]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  pollster::budget_options limits;
  limits.rate = 20.0;
  limits.burst = 4;
  limits.recovery = 5s;
  const auto api = fleet.add_budget("api", limits);
  pollster::submit_options options;
  options.budget = api;
  request_log log;
  pollster::splitmix64 random{99};
  for (int i = 0; i < 200; ++i) {
    fleet.submit(
        [&log, &clock, &random, n = 0]() mutable -> step_type {
          log.times.push_back(since_start(clock));
          if (++n >= 20) return pollster::done(n);
          return random() % 20 == 0 ? step_type{pollster::throttled()} : step_type{pollster::pending()};
        },
        pollster::constant{300ms}, pollster::never{}, [](outcome_type) {}, options);
  }
  CHECK(fleet.run() == 200 * 20);
  CHECK(fleet.stats(api).throttles > 100);
  for (const pollster::duration window :
       {pollster::duration{100ms}, pollster::duration{1s}, pollster::duration{5s}, pollster::duration{60s}}) {
    const double bound = 20.0 * std::chrono::duration<double>(window).count() + 4;
    INFO("window " << std::chrono::duration<double>(window).count() << " s");
    CHECK(static_cast<double>(log.most_in_window(window)) <= bound);
  }
}

// --- asynchronous checks on the runner (issue 10) --------------------------------------------------------------

namespace {

using async_step = pollster::step<int, std::string>;
using async_completion = pollster::completion<int, std::string>;

/// An asynchronous check whose answer arrives on the manual clock's timers: attempt n answers after `latency` (a
/// negative one never answers: the completion is kept, as a hung endpoint keeps its socket) with pending(n), or
/// done(n) from attempt `done_at` on. Records when each attempt began, and counts aborts.
struct network_check {
  manual_clock* clock;
  pollster::duration latency;
  int done_at = 0;
  std::vector<pollster::duration>* began = nullptr;
  std::shared_ptr<int> aborts = std::make_shared<int>(0);
  std::shared_ptr<std::vector<async_completion>> hung = std::make_shared<std::vector<async_completion>>();

  void operator()(const pollster::poll_state& s, async_completion c) const {
    if (began != nullptr) began->push_back(since_start(*clock));
    c.on_abort([n = aborts] { ++*n; });
    if (latency < pollster::duration::zero()) {
      hung->push_back(std::move(c));
      return;
    }
    const int n = static_cast<int>(s.attempt);
    const bool done = done_at != 0 && n >= done_at;
    auto shared = std::make_shared<async_completion>(std::move(c));
    clock->call_after(latency, [shared, n, done] {
      (*shared)(done ? async_step(pollster::done(n)) : async_step(pollster::pending(n)));
    });
  }
};

}  // namespace

TEST_CASE("a thousand asynchronous checks are in flight at once on one thread", "[runner][async]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<outcome_type> outcomes;
  for (int i = 0; i < 1000; ++i) {
    fleet.submit(network_check{&clock, 500ms}, pollster::constant{1s}, pollster::after_attempts{3},
                 [&](outcome_type o) { outcomes.push_back(std::move(o)); });
  }
  fleet.run_until(manual_clock::time_point{100ms});
  CHECK(fleet.in_flight() == 1000);
  CHECK(fleet.size() == 1000);
  fleet.run();
  REQUIRE(outcomes.size() == 1000);
  for (const outcome_type& o : outcomes) {
    CHECK(o.cause == cause::exhausted);
    CHECK(o.attempts == 3);
    CHECK(o.elapsed == 3500ms);  // answers at 0.5, 2.0, 3.5: each next attempt 1 s after the answer
    CHECK(o.last_value == 3);
    CHECK(o.last_attempt == pollster::attempt_end::reported);
  }
  CHECK(fleet.in_flight() == 0);
}

TEST_CASE("in-flight limits per budget group and overall queue the rest, granted, until a check ends",
          "[runner][async][limits]") {
  manual_clock clock;
  std::vector<pollster::duration> began;
  std::vector<outcome_type> outcomes;
  SECTION("a group's limit") {
    runner<manual_clock> fleet{clock};
    pollster::budget_options pool;
    pool.rate = 1000;
    pool.burst = 100;
    pool.max_in_flight = 2;  // a connection pool of two
    pollster::submit_options options;
    options.budget = fleet.add_budget("pool of two", pool);
    std::vector<pollster::handle> handles;
    for (int i = 0; i < 5; ++i) {
      handles.push_back(fleet.submit(network_check{&clock, 1s, 1, &began}, pollster::constant{1s}, pollster::never{},
                                     [&](outcome_type o) { outcomes.push_back(std::move(o)); }, options));
    }
    fleet.poll();
    CHECK(fleet.in_flight() == 2);
    CHECK(handles[0].status() == poll_status::in_flight);
    CHECK(handles[2].status() == poll_status::waiting_for_slot);
    CHECK(fleet.stats(options.budget).in_flight == 2);
    CHECK(fleet.stats(options.budget).waiting_for_slot == 3);
    fleet.run();
    CHECK(began == std::vector<pollster::duration>{0s, 0s, 1s, 1s, 2s});
    REQUIRE(outcomes.size() == 5);
    CHECK(outcomes[4].budget_wait == 2s);  // it waited two seconds for a slot
    CHECK(outcomes[4].elapsed == 3s);
  }
  SECTION("the runner's overall limit, across groups and pollers without one") {
    runner<manual_clock> fleet{clock, pollster::runner_options{1, 3}};
    for (int i = 0; i < 7; ++i) {
      fleet.submit(network_check{&clock, 1s, 1, &began}, pollster::constant{1s}, pollster::never{},
                   [&](outcome_type o) { outcomes.push_back(std::move(o)); });
    }
    fleet.run();
    CHECK(began == std::vector<pollster::duration>{0s, 0s, 0s, 1s, 1s, 1s, 2s});
    CHECK(outcomes.size() == 7);
  }
  SECTION("synchronous checks never wait for a slot") {
    runner<manual_clock> fleet{clock, pollster::runner_options{1, 1}};
    std::vector<pollster::duration> calls;
    fleet.submit(network_check{&clock, 1s, 1, &began}, pollster::constant{1s}, pollster::never{},
                 [&](outcome_type o) { outcomes.push_back(std::move(o)); });
    fleet.submit(counting_check{3, &calls, &clock}, pollster::constant{100ms}, pollster::never{},
                 [&](outcome_type o) { outcomes.push_back(std::move(o)); });
    fleet.run();
    CHECK(calls == std::vector<pollster::duration>{0ms, 100ms, 200ms});
  }
}

TEST_CASE("an attempt that passes its timeout is a transient timeout; its abort runs and its late answer is ignored",
          "[runner][async][timeout]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<pollster::duration> began;
  std::vector<outcome_type> outcomes;
  pollster::submit_options options;
  options.poll.attempt_timeout = 1s;
  network_check slow{&clock, 3s, 2, &began};
  fleet.submit(slow, pollster::constant{2s}, pollster::after_attempts{3},
               [&](outcome_type o) { outcomes.push_back(std::move(o)); }, options);
  fleet.run();
  CHECK(began == std::vector<pollster::duration>{0s, 3s, 6s});  // timeouts at 1, 4, 7; each next attempt 2 s later
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].cause == cause::exhausted);
  CHECK(outcomes[0].timeouts == 3);
  CHECK(outcomes[0].last_attempt == pollster::attempt_end::timed_out);
  CHECK(outcomes[0].elapsed == 7s);
  CHECK_FALSE(outcomes[0].last_value);  // every answer came late: none was taken
  CHECK(*slow.aborts == 3);
  CHECK(clock.pending_timers() == 1);  // the last late answer (at 9 s) is still to come: harmless
  clock.advance(10s);
  CHECK(fleet.poll() == 0);
}

TEST_CASE("a check that never completes can neither stall others nor leak", "[runner][async][hung]") {
  manual_clock clock;
  std::vector<outcome_type> outcomes;
  {
    runner<manual_clock> fleet{clock};
    network_check hung{&clock, -1ns};
    pollster::submit_options with_deadline;
    with_deadline.poll.deadline = pollster::at(clock.now() + 5s);
    fleet.submit(hung, pollster::constant{1s}, pollster::never{},
                 [&](outcome_type o) { outcomes.push_back(std::move(o)); }, with_deadline);
    // And one without any timeout: it is only ever in flight, until the runner goes.
    fleet.submit(hung, pollster::constant{1s}, pollster::never{},
                 [&](outcome_type o) { outcomes.push_back(std::move(o)); });
    std::vector<pollster::duration> calls;
    fleet.submit(counting_check{4, &calls, &clock}, pollster::constant{1s}, pollster::never{},
                 [&](outcome_type o) { outcomes.push_back(std::move(o)); });
    fleet.run_until(manual_clock::time_point{1min});
    CHECK(calls == std::vector<pollster::duration>{0s, 1s, 2s, 3s});
    REQUIRE(outcomes.size() == 2);
    CHECK(outcomes[1].cause == cause::deadline);
    CHECK(outcomes[1].elapsed == 5s);  // at the deadline, not later
    CHECK(outcomes[1].last_attempt == pollster::attempt_end::aborted);
    CHECK(fleet.size() == 1);
    CHECK(fleet.in_flight() == 1);
    CHECK(*hung.aborts == 1);
  }
  // The runner is gone: its in-flight poller was destroyed (and its check told), nothing leaked (ASan's business).
  CHECK(outcomes.size() == 2);
}

TEST_CASE("cancelling a poller aborts its check in flight; the answer that still comes is ignored",
          "[runner][async][cancel]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<outcome_type> outcomes;
  network_check check{&clock, 2s, 1};
  auto h = fleet.submit(check, pollster::constant{1s}, pollster::never{},
                        [&](outcome_type o) { outcomes.push_back(std::move(o)); });
  fleet.run_until(manual_clock::time_point{500ms});
  CHECK(h.status() == poll_status::in_flight);
  h.cancel();
  fleet.poll();
  CHECK(h.status() == poll_status::finished);
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].cause == cause::cancelled);
  CHECK(outcomes[0].last_attempt == pollster::attempt_end::aborted);
  CHECK(outcomes[0].elapsed == 500ms);
  CHECK(*check.aborts == 1);
  fleet.run_until(manual_clock::time_point{5s});  // the answer arrives at 2 s: dropped
  CHECK(outcomes.size() == 1);
  CHECK(fleet.empty());
}

TEST_CASE("a hung endpoint beside 99 healthy pollers leaves their schedule untouched", "[runner][async][hung]") {
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<std::vector<pollster::duration>> began(100);
  std::vector<outcome_type> outcomes(100);
  pollster::submit_options options;
  options.poll.deadline = pollster::at(clock.now() + 6s);
  options.poll.attempt_timeout = 2s;
  for (std::size_t i = 0; i < 100; ++i) {
    // Poller 0 is the hung endpoint; the others answer in 50 ms and are done at their 20th check.
    network_check check{&clock, i == 0 ? -1ns : pollster::duration{50ms}, i == 0 ? 0 : 20, &began[i]};
    fleet.submit(check, pollster::constant{200ms}, pollster::never{}, [&outcomes, i](outcome_type o) {
      outcomes[i] = std::move(o);
    }, options);
  }
  fleet.run();
  pollster::duration worst_gap{};
  for (std::size_t i = 1; i < 100; ++i) {
    CHECK(outcomes[i].cause == cause::done);
    CHECK(outcomes[i].elapsed == 4800ms);  // 19 x (50 ms + 200 ms) + 50 ms
    for (std::size_t k = 1; k < began[i].size(); ++k) {
      worst_gap = std::max(worst_gap, began[i][k] - began[i][k - 1] - 50ms);  // from one answer to the next check
    }
  }
  CHECK(worst_gap == 200ms);  // exactly the schedule: within 5 % of it, with room to spare
  CHECK(outcomes[0].cause == cause::deadline);
  CHECK(outcomes[0].timeouts == 2);  // 0-2, 2.2-4.2, then aborted at the deadline (6 s)
  CHECK(outcomes[0].elapsed == 6s);
}

TEST_CASE("completions from other threads reach a started runner through its command queue", "[runner][async]") {
  pollster::steady_clock clock;
  runner<pollster::steady_clock> fleet{clock};
  std::mutex mutex;
  std::vector<outcome_type> outcomes;
  std::vector<std::thread> network;
  std::mutex network_mutex;
  auto remote = [&](const pollster::poll_state& s, async_completion c) {
    std::lock_guard<std::mutex> lock(network_mutex);
    network.emplace_back([c = std::move(c), n = static_cast<int>(s.attempt)]() mutable {
      std::this_thread::sleep_for(2ms);
      c(n == 3 ? async_step(pollster::done(n)) : async_step(pollster::pending(n)));
    });
  };
  fleet.start();
  for (int i = 0; i < 4; ++i) {
    fleet.submit(remote, pollster::constant{1ms}, pollster::before_deadline{5s}, [&](outcome_type o) {
      std::lock_guard<std::mutex> lock(mutex);
      outcomes.push_back(std::move(o));
    });
  }
  const auto give_up = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (outcomes.size() == 4 || std::chrono::steady_clock::now() > give_up) break;
    }
    std::this_thread::sleep_for(1ms);
  }
  fleet.stop();
  {
    std::lock_guard<std::mutex> lock(network_mutex);
    for (auto& t : network) t.join();
  }
  REQUIRE(outcomes.size() == 4);
  for (const outcome_type& o : outcomes) CHECK(o.value() == 3);
}

TEST_CASE("the runner agrees with a reference model on thousands of random operation sequences",
          "[runner][async][model]") {
  // Operations: submit, nudge bursts, cancel, and time advancing; answers after a latency, never, or past the
  // attempt timeout. Every outcome and every attempt's start time must be the model's.
  std::uint64_t state = 12345;
  auto next = [&state](std::uint64_t bound) {
    pollster::splitmix64 mix{state++};
    return mix() % bound;
  };
  const std::int64_t latencies[] = {100, 700, 1500, 2500, runner_model::never};  // timeout 2000: the last two time out
  std::size_t sequences = 0;
  std::size_t finished = 0;
  std::map<std::string, std::size_t> causes;
  std::size_t timeouts = 0;
  std::size_t storms = 0;
  std::size_t nudged_in_flight = 0;
  for (int sequence = 0; sequence < 2000; ++sequence) {
    manual_clock clock;
    runner<manual_clock> fleet{clock};
    runner_model::fleet model;
    std::vector<pollster::handle> handles;
    std::vector<std::vector<pollster::duration>> began;
    began.reserve(8);
    std::vector<std::optional<outcome_type>> outcomes;
    outcomes.reserve(8);
    std::vector<std::shared_ptr<std::vector<async_completion>>> hung;
    const auto at = [&clock] { return since_start(clock) / 1ms; };
    for (int op = 0; op < 24; ++op) {
      const std::uint64_t what = next(10);
      if ((what < 3 || model.pollers.empty()) && model.pollers.size() < 6) {
        runner_model::poller p;
        p.start = p.due = at();
        p.max_attempts = 1 + next(4);
        p.done_at = next(4);
        p.latency = {latencies[next(5)], latencies[next(5)], latencies[next(5)]};
        model.pollers.push_back(p);
        began.emplace_back();
        outcomes.emplace_back();
        const std::size_t index = outcomes.size() - 1;
        struct scripted {
          manual_clock* clock;
          std::vector<std::int64_t> latency;
          int done_at;
          std::vector<pollster::duration>* began;
          std::shared_ptr<std::vector<async_completion>> hung;
          void operator()(const pollster::poll_state& s, async_completion c) const {
            began->push_back(since_start(*clock));
            const std::int64_t lat = latency[std::min<std::size_t>(s.attempt - 1, latency.size() - 1)];
            if (lat == runner_model::never) {
              hung->push_back(std::move(c));
              return;
            }
            const int n = static_cast<int>(s.attempt);
            auto shared = std::make_shared<async_completion>(std::move(c));
            const bool done = n == done_at;
            clock->call_after(std::chrono::milliseconds(lat), [shared, n, done] {
              (*shared)(done ? async_step(pollster::done(n)) : async_step(pollster::pending(n)));
            });
          }
        };
        hung.push_back(std::make_shared<std::vector<async_completion>>());
        pollster::submit_options options;
        options.poll.attempt_timeout = 2s;
        handles.push_back(fleet.submit(
            scripted{&clock, p.latency, static_cast<int>(p.done_at), &began.back(), hung.back()},
            pollster::constant{1s}, pollster::after_attempts{p.max_attempts},
            [&outcomes, index](outcome_type o) { outcomes[index].emplace(std::move(o)); }, options));
        fleet.poll();
        model.advance_to(at());
      } else if (what < 6) {
        const std::size_t i = next(model.pollers.size());
        const std::uint64_t burst = next(10) == 0 ? 300 : 1 + next(3);  // now and then a webhook storm
        if (model.pollers[i].state == runner_model::poller::phase::flying) ++nudged_in_flight;
        for (std::uint64_t k = 0; k < burst; ++k) {
          handles[i].nudge();
          model.pollers[i].nudge(at());
        }
        fleet.poll();
        model.advance_to(at());
      } else if (what < 7) {
        const std::size_t i = next(model.pollers.size());
        handles[i].cancel();
        model.pollers[i].cancel(at());
        fleet.poll();
        model.advance_to(at());
      } else {
        const std::int64_t to = at() + static_cast<std::int64_t>(next(3000));
        fleet.run_until(manual_clock::time_point{std::chrono::milliseconds(to)});
        model.advance_to(to);
      }
    }
    const std::int64_t end = at() + 3600 * 1000;
    fleet.run_until(manual_clock::time_point{std::chrono::milliseconds(end)});
    model.advance_to(end);
    for (std::size_t i = 0; i < model.pollers.size(); ++i) {
      const runner_model::poller& p = model.pollers[i];
      INFO("sequence " << sequence << ", poller " << i);
      REQUIRE(outcomes[i]);
      const outcome_type& o = *outcomes[i];
      CHECK(pollster::to_string(o.cause) == p.cause);
      CHECK(o.attempts == p.attempts);
      CHECK(o.timeouts == p.timeouts);
      CHECK(o.nudges == p.nudges);
      CHECK(o.elapsed == std::chrono::milliseconds(p.end - p.start));
      std::vector<std::int64_t> starts;
      for (const pollster::duration d : began[i]) starts.push_back(d / 1ms);
      CHECK(starts == p.starts);
      ++finished;
      ++causes[p.cause];
      timeouts += p.timeouts;
      if (p.nudges >= 300) ++storms;
    }
    CHECK(fleet.empty());
    CHECK(fleet.in_flight() == 0);
    ++sequences;
  }
  CHECK(sequences == 2000);
  CHECK(finished > 4000);
  // The sequences cover every way a run ends, timeouts, storms of nudges and nudges during an attempt.
  INFO("done " << causes["done"] << ", exhausted " << causes["exhausted"] << ", cancelled " << causes["cancelled"]
               << ", timeouts " << timeouts << ", storms " << storms << ", nudged in flight " << nudged_in_flight);
  CHECK(causes["done"] > 500);
  CHECK(causes["exhausted"] > 500);
  CHECK(causes["cancelled"] > 500);
  CHECK(timeouts > 1000);
  CHECK(storms > 100);
  CHECK(nudged_in_flight > 500);
}

TEST_CASE("cancel, stop and nudge wake every runner driver at once, on the steady clock and on a custom clock",
          "[runner][cancel][real-time]") {
  // A bounded real-time smoke test: each driver sleeps on an hour-long schedule; only a wake-up returns it in time.
  const auto each_clock = [](auto& clock, const char* clock_name) {
    using clock_type = std::remove_reference_t<decltype(clock)>;
    const std::string on = std::string(" on ") + clock_name;
    auto pending = [] { return false; };
    {
      runner<clock_type> fleet{clock};
      auto h = fleet.submit(pending, pollster::constant{1h}, pollster::never{}, [](const auto&) {});
      const double ms = cancel_latency::measure(("runner::run, handle.cancel()" + on).c_str(), [&] { fleet.run(); },
                                                [&] { h.cancel(); });
      CHECK(ms < 250);
    }
    {
      runner<clock_type> fleet{clock};
      auto h = fleet.submit(pending, pollster::constant{1h}, pollster::never{}, [](const auto&) {});
      fleet.poll();  // the first check; the next is an hour away
      const double ms = cancel_latency::measure(("runner::run_one, handle.cancel()" + on).c_str(),
                                                [&] { fleet.run_one(); }, [&] { h.cancel(); });
      CHECK(ms < 250);
    }
    {
      runner<clock_type> fleet{clock};
      fleet.submit(pending, pollster::constant{1h}, pollster::never{}, [](const auto&) {});
      fleet.start();
      std::this_thread::sleep_for(10ms);
      const auto asked = std::chrono::steady_clock::now();
      fleet.stop();
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - asked).count();
      std::printf("cancel-to-return %-40s %8.3f ms\n", ("runner thread, stop()" + on).c_str(), ms);
      CHECK(ms < 250);
    }
    {
      runner<clock_type> fleet{clock};
      std::atomic<int> checks{0};
      std::atomic<std::int64_t> second_check_ns{0};
      auto h = fleet.submit(
          [&] {
            if (++checks == 2) second_check_ns = std::chrono::steady_clock::now().time_since_epoch().count();
            return false;
          },
          pollster::constant{1h}, pollster::never{}, [](const auto&) {});
      fleet.start();
      std::this_thread::sleep_for(20ms);
      const auto asked = std::chrono::steady_clock::now();
      h.nudge();
      const auto give_up = asked + 2s;
      while (checks < 2 && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(100us);
      fleet.stop();
      REQUIRE(checks == 2);
      const double ms = (static_cast<double>(second_check_ns.load()) -
                         static_cast<double>(asked.time_since_epoch().count())) / 1e6;
      std::printf("nudge-to-check   %-40s %8.3f ms\n", ("runner thread, handle.nudge()" + on).c_str(), ms);
      CHECK(ms < 250);
    }
  };
  pollster::steady_clock steady;
  each_clock(steady, "steady_clock");
  cancel_latency::wall_clock custom;
  each_clock(custom, "a custom clock (system_clock time points)");
}

TEST_CASE("the runner decides every step as a poller stepped by hand does, synchronous or asynchronous",
          "[runner][equivalence]") {
  using step = pollster::step<int, std::string>;
  const std::vector<step> script{pollster::pending(1), pollster::pending(2, pollster::retry_after(7s)),
                                 pollster::transient(std::string("503")), pollster::poll_again_in(3s),
                                 pollster::throttled(pollster::retry_after(2s)), pollster::pending(6),
                                 pollster::done(7)};
  struct scripted {
    std::vector<step> script;
    std::vector<std::string>* seen;
    const manual_clock* clock;
    step operator()(const pollster::poll_state& s) const {
      seen->push_back(std::to_string(s.attempt) + "@" + pollster::detail::duration_text(since_start(*clock)));
      return script[std::min<std::size_t>(s.attempt - 1, script.size() - 1)];
    }
  };
  /// The same answers, 250 ms after each check starts.
  struct scripted_async {
    std::vector<step> script;
    std::vector<std::string>* seen;
    manual_clock* clock;
    void operator()(const pollster::poll_state& s, async_completion c) const {
      seen->push_back(std::to_string(s.attempt) + "@" + pollster::detail::duration_text(since_start(*clock)));
      auto shared = std::make_shared<async_completion>(std::move(c));
      const step answer = script[std::min<std::size_t>(s.attempt - 1, script.size() - 1)];
      clock->call_after(250ms, [shared, answer] { (*shared)(answer); });
    }
  };
  const auto compare = [](const outcome_type& a, const outcome_type& b) {
    CHECK(a.cause == b.cause);
    CHECK(a.attempts == b.attempts);
    CHECK(a.elapsed == b.elapsed);
    CHECK(a.slept == b.slept);
    CHECK(a.last_value == b.last_value);
    CHECK(a.last_error == b.last_error);
    CHECK(a.last_attempt == b.last_attempt);
  };
  const auto by_hand = [](auto check, manual_clock& clock) {
    auto p = pollster::make_poller(std::move(check), pollster::presets::heat(), pollster::after_attempts{10},
                                   clock.now());
    // Like any driver of an asynchronous check, it is told when an answer arrives: the answer's timer wakes the sleep.
    auto listener = std::make_shared<pollster::detail::wake_listener>();
    p.attach(listener);
    while (!p.done()) {
      if (p.in_flight()) {
        listener->signal.rearm();
        if (!p.ready()) clock.sleep_until(p.next_due(), listener->signal.token());
        if (p.ready()) {
          p.complete(clock.now());
        } else {
          p.step(clock.now());
        }
        continue;
      }
      clock.advance_to(p.next_due());
      p.step(clock.now());
    }
    return p.take_outcome();
  };
  SECTION("a synchronous check") {
    std::vector<std::string> on_runner, stepped;
    manual_clock clock_a;
    runner<manual_clock> fleet{clock_a};
    std::optional<outcome_type> a;
    fleet.submit(scripted{script, &on_runner, &clock_a}, pollster::presets::heat(), pollster::after_attempts{10},
                 [&](outcome_type o) { a = std::move(o); });
    fleet.run();
    manual_clock clock_b;
    const outcome_type b = by_hand(scripted{script, &stepped, &clock_b}, clock_b);
    REQUIRE(a);
    compare(*a, b);
    CHECK(on_runner == stepped);
    CHECK(on_runner == std::vector<std::string>{"1@0s", "2@1s", "3@8s", "4@9.21s", "5@12.21s", "6@14.21s",
                                                "7@15.6741s"});
  }
  SECTION("an asynchronous check") {
    std::vector<std::string> on_runner, stepped;
    manual_clock clock_a;
    runner<manual_clock> fleet{clock_a};
    std::optional<outcome_type> a;
    fleet.submit(scripted_async{script, &on_runner, &clock_a}, pollster::presets::heat(), pollster::after_attempts{10},
                 [&](outcome_type o) { a = std::move(o); });
    fleet.run();
    manual_clock clock_b;
    const outcome_type b = by_hand(scripted_async{script, &stepped, &clock_b}, clock_b);
    manual_clock clock_c;
    std::vector<std::string> blocking;
    const outcome_type c = pollster::poll_until(clock_c, scripted_async{script, &blocking, &clock_c},
                                                pollster::presets::heat(), pollster::after_attempts{10});
    REQUIRE(a);
    compare(*a, b);
    compare(c, b);
    CHECK(on_runner == stepped);
    CHECK(blocking == stepped);
    CHECK(b.elapsed == 17424100us);  // each answer 250 ms after its check; the delays count from the answers
  }
}

namespace {
/// A check that counts its live copies (so a test sees when the runner destroys the node that holds it) and its
/// calls, and says done on call `done_at` (0: never).
struct tracked_check {
  int* alive;
  int* calls;
  int done_at = 0;
  tracked_check(int* a, int* c, int d = 0) : alive(a), calls(c), done_at(d) { ++*alive; }
  tracked_check(const tracked_check& o) : alive(o.alive), calls(o.calls), done_at(o.done_at) { ++*alive; }
  tracked_check& operator=(const tracked_check&) = delete;
  ~tracked_check() { --*alive; }
  step_type operator()() const {
    ++*calls;
    if (*calls == done_at) return pollster::done(*calls);
    return pollster::pending(*calls);
  }
};
}  // namespace

TEST_CASE("257 nudges of a due poller add no timer entries, and its check ending it frees it once", "[runner]") {
  // Issue 12, bug 1: every nudge pushed an entry at the node's due key, which the stale sweep could not tell from
  // the live one, and the node's 8-bit reference count wrapped: a use after free (AddressSanitizer) in dispatch.
  manual_clock clock;
  int alive = 0;
  int calls = 0;
  std::vector<outcome_type> outcomes;
  {
    runner<manual_clock> fleet{clock};
    auto h = fleet.submit(tracked_check{&alive, &calls, 2}, pollster::constant{1s}, pollster::never{},
                          [&](outcome_type o) { outcomes.push_back(std::move(o)); });
    CHECK(fleet.poll() == 1);
    for (int i = 0; i < 257; ++i) h.nudge();
    CHECK(fleet.poll() == 1);  // the check says done
    REQUIRE(outcomes.size() == 1);
    CHECK(outcomes[0].cause == cause::done);
    CHECK(outcomes[0].attempts == 2);
    CHECK(outcomes[0].nudges == 257);
    CHECK(fleet.empty());
    CHECK(fleet.run_for(1s) == 0);  // the one stale entry (due at 1 s) comes out and frees the node
    CHECK(alive == 0);
    CHECK(calls == 2);
  }
  CHECK(alive == 0);
}

TEST_CASE("256 nudges then cancel end a poller once, cancelled, and free it", "[runner]") {
  manual_clock clock;
  int alive = 0;
  int calls = 0;
  std::vector<outcome_type> outcomes;
  {
    runner<manual_clock> fleet{clock};
    auto h = fleet.submit(tracked_check{&alive, &calls}, pollster::constant{1s}, pollster::never{},
                          [&](outcome_type o) { outcomes.push_back(std::move(o)); });
    CHECK(fleet.poll() == 1);
    for (int i = 0; i < 256; ++i) h.nudge();
    h.cancel();
    CHECK(fleet.poll() == 0);  // the cancel comes before any dispatch
    REQUIRE(outcomes.size() == 1);
    CHECK(outcomes[0].cause == cause::cancelled);
    CHECK(outcomes[0].attempts == 1);
    CHECK(outcomes[0].nudges == 256);
    CHECK(h.finished());
    CHECK(fleet.run_for(1s) == 0);  // the stale entry at 1 s comes out and frees the node
    CHECK(alive == 0);
  }
  CHECK(alive == 0);
  CHECK(calls == 1);
}

TEST_CASE("stale timer entries at the live entry's own key are swept too (a nudge storm under a retry-at hint)",
          "[runner]") {
  // The server says "come back at 10 min" on every answer, and a webhook storm nudges between checks: every cycle
  // leaves an entry at exactly the 10-minute key, the live one's. Sweeps must still drop all but one, or 255
  // cycles bring the node's references to 256 and a cancel frees it under them.
  manual_clock clock;
  const auto come_back = clock.now() + std::chrono::minutes(10);
  const int cycles = GENERATE(255, 600);
  INFO(cycles << " nudge cycles");
  int alive = 0;
  int calls = 0;
  std::vector<pollster::duration> checked_at;
  std::vector<outcome_type> outcomes;
  {
    runner<manual_clock> fleet{clock};
    auto h = fleet.submit(
        [&, tracked = tracked_check{&alive, &calls}]() -> step_type {
          (void)tracked();
          checked_at.push_back(since_start(clock));
          return pollster::pending(calls, pollster::retry_at(come_back));
        },
        pollster::constant{1ms}, pollster::never{}, [&](outcome_type o) { outcomes.push_back(std::move(o)); });
    CHECK(fleet.poll() == 1);
    for (int i = 0; i < cycles; ++i) {
      clock.advance(1ms);
      h.nudge();
      REQUIRE(fleet.poll() == 1);
    }
    CHECK(calls == cycles + 1);
    int expected_attempts = cycles + 1;
    if (cycles == 600) {
      CHECK(fleet.run_until(come_back) == 1);  // one check at 10 min, whatever number of entries carried its key
      CHECK(checked_at.back() == std::chrono::minutes(10));
      ++expected_attempts;
    }
    h.cancel();
    CHECK(fleet.poll() == 0);
    REQUIRE(outcomes.size() == 1);
    CHECK(outcomes[0].cause == cause::cancelled);
    CHECK(outcomes[0].nudges == static_cast<std::uint32_t>(cycles));
    CHECK(outcomes[0].attempts == static_cast<std::uint64_t>(expected_attempts));
    CHECK(fleet.run_for(1h) == 0);  // the stale entries come out and the last one frees the node
    CHECK(alive == 0);
  }
  CHECK(alive == 0);
}

TEST_CASE("a poller first due at time_point::max() waits; it is not taken for finished", "[runner]") {
  // Issue 12, bug 7: its due key equalled the runner's "finished" key, so it completed at once, cause running.
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  int calls = 0;
  std::vector<outcome_type> outcomes;
  pollster::submit_options options;
  options.poll.wait_first = true;
  auto h = fleet.submit(
      [&calls]() -> step_type {
        ++calls;
        return pollster::pending(calls);
      },
      pollster::constant{pollster::duration::max()}, pollster::never{},
      [&](outcome_type o) { outcomes.push_back(std::move(o)); }, options);
  CHECK(fleet.run_for(std::chrono::hours(24 * 365)) == 0);
  CHECK(outcomes.empty());
  CHECK(fleet.size() == 1);
  CHECK(h.status() == poll_status::scheduled);
  h.nudge();  // a nudge still brings it forward
  CHECK(fleet.poll() == 1);
  CHECK(calls == 1);
  h.cancel();
  fleet.poll();
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].cause == cause::cancelled);
  CHECK(outcomes[0].attempts == 1);
  CHECK(fleet.empty());
}

// What a test needs to reach the end of a slot's generations without 2^29 real reuses (minutes of work): the
// slot behind a handle. Declared a friend by pollster::handle for tests only.
POLLSTER_NAMESPACE_BEGIN
namespace detail {
struct handle_test_access {
  static std::uint32_t slot(const handle& h) { return h.slot_; }
  static slot_entry& word(const handle& h) { return h.shared_->slots[h.slot_]; }
};
}  // namespace detail
POLLSTER_NAMESPACE_END

TEST_CASE("a slot at its last generation is retired for good: a dead handle never reads or acts on a newcomer",
          "[runner]") {
  // Issue 12, bug 2: generations are 29 bits (beside a 3-bit status) and slots are reused last in, first out. After
  // 2^29 reuses a dead handle read "not finished" again, and its cancel() cancelled the slot's new, innocent occupant.
  using access = pollster::detail::handle_test_access;
  constexpr std::uint32_t last_generation = pollster::detail::slot_table::last_generation;
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  std::vector<std::string> ended;
  auto quick = []() -> step_type { return pollster::done(1); };
  int slow_calls = 0;
  auto slow = [&slow_calls]() -> step_type { return pollster::pending(++slow_calls); };
  auto record = [&ended](const char* name) {
    return [&ended, name](outcome_type o) { ended.push_back(std::string(name) + " " + pollster::to_string(o.cause)); };
  };

  pollster::handle first = fleet.submit(quick, pollster::constant{1s}, pollster::never{}, record("first"));
  fleet.poll();
  REQUIRE(first.finished());
  // As if the slot had been reused 2^30 - 2 times since: the next occupant gets the last generation.
  access::word(first).store(pollster::detail::slot_word(last_generation - 1, poll_status::finished));
  pollster::handle second = fleet.submit(quick, pollster::constant{1s}, pollster::never{}, record("second"));
  REQUIRE(access::slot(second) == access::slot(first));
  fleet.poll();
  pollster::handle last = fleet.submit(quick, pollster::constant{1s}, pollster::never{}, record("last"));
  REQUIRE(access::slot(last) == access::slot(first));
  REQUIRE(pollster::detail::generation_of(access::word(last).load()) == last_generation);
  fleet.poll();
  CHECK(last.finished());

  pollster::handle newcomer = fleet.submit(slow, pollster::constant{1s}, pollster::never{}, record("newcomer"));
  fleet.poll();
  CHECK(access::slot(newcomer) != access::slot(first));  // the worn-out slot is not handed out again
  for (const pollster::handle* dead : {&first, &second, &last}) {
    CHECK(dead->finished());
    dead->cancel();
    dead->nudge();
  }
  fleet.poll();
  CHECK(newcomer.status() == poll_status::scheduled);
  CHECK(slow_calls == 1);
  newcomer.cancel();
  fleet.poll();
  CHECK(ended == std::vector<std::string>{"first done", "second done", "last done", "newcomer cancelled"});
}

namespace {
/// Heap bytes in use from glibc's allocator (0 where it cannot tell: another C library, or a sanitizer's
/// allocator, which mallinfo2 does not see).
std::size_t heap_in_use() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
#else
  return 0;
#endif
}

/// A check whose node is too big for the small size classes (its block is about 700 bytes).
struct large_check {
  std::array<char, 600> payload{};
  int calls = 0;
  step_type operator()() {
    payload[static_cast<std::size_t>(calls)] = 'x';
    return ++calls >= 2 ? step_type{pollster::done(calls)} : step_type{pollster::pending(calls)};
  }
};
}  // namespace

TEST_CASE("a drained fleet gives its memory back: on its own past a threshold, and all of it on shrink()",
          "[runner][memory]") {
  // Issue 12, bug 11: after a fleet had finished, the runner kept every node slab until it was destroyed.
  constexpr int small = 100000;
  constexpr int large = 10000;
  manual_clock clock;
  const std::size_t heap_before = heap_in_use();
  runner<manual_clock> fleet{clock};
  std::vector<pollster::handle> handles;
  handles.reserve(small + large);
  int ended = 0;
  auto count = [&ended](outcome_type) { ++ended; };
  for (int i = 0; i < small; ++i) {
    handles.push_back(fleet.submit(
        [n = 0]() mutable -> step_type { return ++n >= 3 ? step_type{pollster::done(n)} : step_type{}; },
        pollster::constant{1s}, pollster::never{}, count));
  }
  for (int i = 0; i < large; ++i) {
    handles.push_back(fleet.submit(large_check{}, pollster::constant{2s}, pollster::never{}, count));
  }
  CHECK(fleet.poll() == small + large);
  clock.advance(500ms);
  for (std::size_t i = 0; i < handles.size(); i += 10) handles[i].nudge();  // their entries at 1 s or 2 s go stale
  CHECK(fleet.poll() == (small + large) / 10);
  const std::size_t peak = fleet.memory_bytes();
  const std::size_t heap_peak = heap_in_use();
  fleet.run();
  REQUIRE(ended == small + large);
  REQUIRE(fleet.empty());

  // Handles of finished pollers may read their slot at any time: the slots stay (4 bytes each, 4 more on the
  // free list). Node slabs: at most node_arena::auto_trim_bytes of empty ones, plus one being carved per size.
  // (Slot pages hold 4096 slots of 4 bytes; the free list's capacity is at most twice the slots it holds.)
  const std::size_t slots = (small + large + 4095) / 4096 * 16384 + 2 * 4 * static_cast<std::size_t>(small + large);
  constexpr std::size_t slab = 16 * 1024;
  const std::size_t drained = fleet.memory_bytes();
  INFO("bytes held: " << peak << " at the peak, " << drained << " once drained");
  CHECK(peak > 15 * 1000 * 1000);
  CHECK(drained <= slots + 64 * 1024 + pollster::detail::node_arena::auto_trim_bytes + 2 * slab + 4 * 4096);

  const std::size_t freed = fleet.shrink();
  const std::size_t shrunk = fleet.memory_bytes();
  INFO("shrink() freed " << freed << " bytes; " << shrunk << " held after");
  CHECK(freed == drained - shrunk);
  CHECK(shrunk <= slots + 64 * 1024 + 2 * slab);
  const std::size_t heap_after = heap_in_use();
  if (heap_before != 0) {  // glibc without a sanitizer: what malloc says agrees
    INFO("heap in use: " << heap_before << " before, " << heap_peak << " at the peak, " << heap_after << " after");
    CHECK(heap_peak - heap_before > 15 * 1000 * 1000);
    CHECK(heap_after - heap_before <= shrunk + handles.capacity() * sizeof(pollster::handle) + 128 * 1024);
  }
  // The runner still works after shrink().
  int late = 0;
  fleet.submit([]() -> step_type { return pollster::done(1); }, pollster::constant{1s}, pollster::never{},
               [&late](outcome_type) { ++late; });
  CHECK(fleet.run() == 1);
  CHECK(late == 1);
}

TEST_CASE("a completion callback may add budgets while the runner serves a budget's queue", "[runner][budget]") {
  // The queue of a budget was walked through a reference into the list of budgets, which a callback's add_budget
  // could move (AddressSanitizer: heap-use-after-free).
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  pollster::budget_options one_per_second;
  one_per_second.rate = 1.0;
  const auto api = fleet.add_budget("api", one_per_second);
  pollster::submit_options options;
  options.budget = api;
  std::vector<std::string> ended;
  for (int i = 0; i < 3; ++i) {
    fleet.submit([]() -> step_type { return pollster::done(1); }, pollster::constant{1s}, pollster::never{},
                 [&, i](outcome_type o) {
                   for (int b = 0; b < 40; ++b) (void)fleet.add_budget("more", one_per_second);
                   ended.push_back(std::to_string(i) + " after " + pollster::detail::duration_text(o.budget_wait));
                 },
                 options);
  }
  CHECK(fleet.run() == 3);  // the first at once; the others from the budget's queue, one per second
  CHECK(ended == std::vector<std::string>{"0 after 0s", "1 after 1s", "2 after 2s"});
  CHECK(fleet.stats(api).granted == 3);
}

// --- issue 12's fixes on the asynchronous engine: the paths the old fixes could not know about -------------------

namespace {

/// An asynchronous check that hands every completion to the test (the "network" is the test itself), counts its
/// live copies (a node that is never freed keeps one) and its aborts.
struct held_check {
  std::vector<async_completion>* pending;
  int* alive;
  int* aborts;
  held_check(std::vector<async_completion>* p, int* a, int* b) : pending(p), alive(a), aborts(b) { ++*alive; }
  held_check(const held_check& o) : pending(o.pending), alive(o.alive), aborts(o.aborts) { ++*alive; }
  held_check& operator=(const held_check&) = delete;
  ~held_check() { --*alive; }
  void operator()(async_completion c) const {
    c.on_abort([n = aborts] { ++*n; });
    pending->push_back(std::move(c));
  }
};

/// Answers every completion the test holds with pending(n), n counting from `first`.
int answer_all(std::vector<async_completion>& pending, int first) {
  int n = first;
  for (async_completion& c : pending) c(async_step(pollster::pending(n++)));
  pending.clear();
  return n;
}

}  // namespace

TEST_CASE("an asynchronous poller answered 300 times, its timeout far ahead, keeps its node's count in range",
          "[runner][async][refs]") {
  // Each answered attempt leaves its timeout entry behind (stale) and arms the next check: 255 answers between two
  // sweeps wrapped the node's 8-bit reference count, and the node was freed under its entries (a use after free).
  manual_clock clock;
  int alive = 0;
  int aborts = 0;
  std::vector<async_completion> pending;
  std::vector<outcome_type> outcomes;
  pollster::submit_options options;
  const bool with_timeout = GENERATE(true, false);
  INFO((with_timeout ? "attempt timeout 1 h" : "no attempt timeout (entries at the 'never' key)"));
  if (with_timeout) options.poll.attempt_timeout = 1h;
  {
    runner<manual_clock> fleet{clock};
    auto h = fleet.submit(held_check{&pending, &alive, &aborts}, pollster::constant{1ms}, pollster::never{},
                          [&](outcome_type o) { outcomes.push_back(std::move(o)); }, options);
    int answered = 1;
    for (int cycle = 0; cycle < 300; ++cycle) {
      REQUIRE(fleet.poll() == 1);  // the check starts; its completion is the test's
      REQUIRE(pending.size() == 1);
      answered = answer_all(pending, answered);
      fleet.poll();  // the answer: the next check is due 1 ms later
      clock.advance(1ms);
    }
    CHECK(h.status() == poll_status::scheduled);
    h.cancel();
    CHECK(fleet.poll() == 0);
    REQUIRE(outcomes.size() == 1);
    CHECK(outcomes[0].cause == cause::cancelled);
    CHECK(outcomes[0].attempts == 300);
    CHECK(outcomes[0].last_value == 300);
    CHECK(outcomes[0].timeouts == 0);
    CHECK(aborts == 0);
    const auto before = clock.now();
    CHECK(fleet.run() == 0);  // no poller left: the stale entries go at once, and the node with them
    CHECK(clock.now() == before);
    CHECK(alive == 0);
  }
  CHECK(alive == 0);
}

TEST_CASE("a storm of nudges during an attempt in flight adds no timer entry; the next check follows the answer",
          "[runner][async][nudge]") {
  manual_clock clock;
  int alive = 0;
  int aborts = 0;
  std::vector<async_completion> pending;
  std::vector<outcome_type> outcomes;
  {
    runner<manual_clock> fleet{clock};
    pollster::submit_options options;
    options.poll.attempt_timeout = 1h;
    auto h = fleet.submit(held_check{&pending, &alive, &aborts}, pollster::constant{1min}, pollster::never{},
                          [&](outcome_type o) { outcomes.push_back(std::move(o)); }, options);
    int answered = 1;
    for (int round = 0; round < 3; ++round) {
      REQUIRE(fleet.poll() == 1);
      CHECK(h.status() == poll_status::in_flight);
      for (int i = 0; i < 300; ++i) h.nudge();
      CHECK(fleet.poll() == 0);  // nothing to start while the attempt is out
      clock.advance(10ms);
      answered = answer_all(pending, answered);  // the answer: the nudged check follows at once, in the same poll
    }
    REQUIRE(fleet.poll() == 1);
    CHECK(since_start(clock) == 30ms);
    for (int i = 0; i < 300; ++i) h.nudge();
    h.cancel();  // in flight: its check is told
    CHECK(fleet.poll() == 0);
    REQUIRE(outcomes.size() == 1);
    CHECK(outcomes[0].cause == cause::cancelled);
    CHECK(outcomes[0].attempts == 4);
    CHECK(outcomes[0].nudges == 1200);
    CHECK(outcomes[0].last_value == 3);
    CHECK(outcomes[0].last_attempt == pollster::attempt_end::aborted);
    CHECK(aborts == 1);
    CHECK(fleet.run() == 0);
    CHECK(alive == 0);
    CHECK(pending.size() == 1);
    pending.front()(async_step(pollster::done(99)));  // a late answer to a cancelled poller: dropped
    CHECK(fleet.poll() == 0);
  }
  CHECK(outcomes.size() == 1);
  CHECK(alive == 0);
}

TEST_CASE("a storm of late answers after 300 timed-out attempts changes nothing and frees every record",
          "[runner][async][timeout]") {
  manual_clock clock;
  int alive = 0;
  int aborts = 0;
  std::vector<async_completion> pending;
  std::vector<outcome_type> outcomes;
  {
    runner<manual_clock> fleet{clock};
    pollster::submit_options options;
    options.poll.attempt_timeout = 10ms;
    fleet.submit(held_check{&pending, &alive, &aborts}, pollster::constant{1ms}, pollster::after_attempts{300},
                 [&](outcome_type o) { outcomes.push_back(std::move(o)); }, options);
    // Each attempt times out at 10 ms while the test still holds its completion: its record stays with it, and the
    // next attempt gets a fresh one.
    fleet.run();
    CHECK(pending.size() == 300);
    REQUIRE(outcomes.size() == 1);
    CHECK(outcomes[0].cause == cause::exhausted);
    CHECK(outcomes[0].attempts == 300);
    CHECK(outcomes[0].timeouts == 300);
    CHECK(outcomes[0].elapsed == 300 * 10ms + 299 * 1ms);
    CHECK(aborts == 300);
    CHECK(answer_all(pending, 1) == 301);  // all late at once: dropped before they reach the runner
    CHECK(fleet.poll() == 0);
    CHECK(outcomes.size() == 1);
    CHECK(alive == 0);
  }
}

TEST_CASE("an answer queued for a poller that ends before it is applied never touches the freed node",
          "[runner][async][generation]") {
  // The answer's command waits in the queue while the poller ends (its timeout comes in the same sweep and takes the
  // answer itself) and its node is freed. The command must then be dropped by its slot: the generation moved on, or,
  // in a slot retired for good at its last generation, the status says finished (issue 12, bug 2).
  using access = pollster::detail::handle_test_access;
  constexpr std::uint32_t last_generation = pollster::detail::slot_table::last_generation;
  const bool at_last_generation = GENERATE(false, true);
  INFO((at_last_generation ? "in a slot at its last generation" : "in a fresh slot"));
  manual_clock clock;
  runner<manual_clock> fleet{clock};
  int alive = 0;
  int aborts = 0;
  std::vector<async_completion> pending;
  std::vector<std::string> ended;
  auto record = [&ended](const char* name) {
    return [&ended, name](auto o) { ended.push_back(std::string(name) + " " + pollster::to_string(o.cause)); };
  };
  pollster::handle a_handle;
  {
    if (at_last_generation) {  // as if the slot had been reused 2^29 - 1 times: the next occupant gets the last one
      pollster::handle first = fleet.submit([] { return true; }, pollster::constant{1s}, pollster::never{},
                                            record("first"));
      fleet.poll();
      REQUIRE(first.finished());
      access::word(first).store(pollster::detail::slot_word(last_generation, poll_status::finished));
    }
    pollster::submit_options timeout;
    timeout.poll.attempt_timeout = 1s;
    a_handle = fleet.submit(held_check{&pending, &alive, &aborts}, pollster::constant{1s}, pollster::never{},
                            record("a"), timeout);
    pollster::submit_options later;
    later.poll.wait_first = true;
    // B's first check at 1 s comes out before A's timeout entry at 1 s (it went in first), and answers A "done"
    // from the runner's own thread: the answer's command is queued, then A's timeout takes the answer.
    fleet.submit(
        [&pending]() {
          if (!pending.empty()) pending.front()(async_step(pollster::done(7)));
          return true;
        },
        pollster::constant{1s}, pollster::never{}, record("b"), later);
  }
  CHECK(fleet.poll() == 1);  // A's check goes out
  if (at_last_generation) {
    REQUIRE(pollster::detail::generation_of(access::word(a_handle).load()) == last_generation);
  }
  clock.advance(1s);
  CHECK(fleet.poll() == 1);  // B's check (A's answer arrives), then A's timeout entry: A is done and freed
  CHECK(alive == 0);
  CHECK(a_handle.finished());
  CHECK(fleet.poll() == 0);  // the queued answer: dropped by its slot, without touching A's node
  CHECK(fleet.empty());
  const std::vector<std::string> expected_end{"b done", "a done"};
  if (at_last_generation) {
    CHECK(ended == std::vector<std::string>{"first done", "b done", "a done"});
    // The worn-out slot is never handed out again.
    pollster::handle next = fleet.submit([] { return true; }, pollster::constant{1s}, pollster::never{},
                                         record("next"));
    CHECK(access::slot(next) != access::slot(a_handle));
    fleet.poll();
  } else {
    CHECK(ended == expected_end);
  }
  CHECK(aborts == 0);
}

TEST_CASE("shrink() with attempt records still held by late answers and by queued steps", "[runner][async][memory]") {
  manual_clock clock;
  int alive = 0;
  int aborts = 0;
  std::vector<async_completion> hung;     // answers that come after their attempt timed out
  std::vector<async_completion> answers;  // answers in time
  hung.reserve(1000);
  answers.reserve(1000);
  std::vector<outcome_type> outcomes;
  auto fleet = std::make_unique<runner<manual_clock>>(clock);
  pollster::submit_options options;
  options.poll.attempt_timeout = 100ms;
  std::vector<pollster::handle> handles;
  for (int i = 0; i < 2000; ++i) {
    handles.push_back(fleet->submit(held_check{i % 2 == 0 ? &hung : &answers, &alive, &aborts}, pollster::constant{1s},
                                    pollster::after_attempts{2},
                                    [&](outcome_type o) { outcomes.push_back(std::move(o)); }, options));
  }
  CHECK(fleet->poll() == 2000);
  REQUIRE(answers.size() == 1000);
  CHECK(answer_all(answers, 1) == 1001);  // queued in the runner's command queue, not applied yet
  const std::size_t peak = fleet->memory_bytes();
  CHECK(fleet->shrink() <= peak);     // with every step still queued: nothing of theirs may go
  CHECK(fleet->poll() == 0);          // the queued steps are applied after shrink()
  CHECK(fleet->in_flight() == 1000);  // the hung ones
  clock.advance(100ms);
  CHECK(fleet->poll() == 0);  // the hung ones time out: their records stay with the test's completions
  CHECK(fleet->in_flight() == 0);
  CHECK(aborts == 1000);
  for (pollster::handle& h : handles) h.cancel();
  fleet->run();
  REQUIRE(outcomes.size() == 2000);
  for (const outcome_type& o : outcomes) {
    CHECK(o.cause == cause::cancelled);
    CHECK(o.attempts == 1);
  }
  CHECK(alive == 0);
  const std::size_t drained = fleet->memory_bytes();
  const std::size_t freed = fleet->shrink();
  const std::size_t after = fleet->memory_bytes();
  INFO("bytes: " << peak << " at the peak, " << drained << " drained, " << after << " after shrink()");
  CHECK(freed == drained - after);
  CHECK(after <= 16384 + 2 * 4 * 2000 + 2 * 16384 + 4096);  // one slot page, its free list, two carved slabs
  CHECK(hung.size() == 1000);
  std::vector<async_completion> first_half(std::make_move_iterator(hung.begin()),
                                           std::make_move_iterator(hung.begin() + 500));
  hung.erase(hung.begin(), hung.begin() + 500);
  CHECK(answer_all(first_half, 1) == 501);  // late: dropped
  CHECK(fleet->poll() == 0);
  fleet.reset();  // the runner goes while 500 late answers are still out
  CHECK(answer_all(hung, 1) == 501);  // and they come: nothing to reach, nothing touched
  CHECK(outcomes.size() == 2000);
}

TEST_CASE("a soak of rounds of pollers submitted, nudged in bursts and cancelled: memory plateaus and falls back",
          "[runner][memory][soak]") {
  // Issue 12's soak, bounded for CI (about a second without sanitizers): 6 rounds of 30 000 pollers each, a quarter
  // of them asynchronous (answering at once, or dropping their completion: an abandoned attempt), every 10th nudged
  // in a burst of 5 between checks, every 7th cancelled, each round run until the fleet drains. What the runner
  // holds at each round's peak must not grow from round to round, and once a round has drained it must fall back
  // to what it held after the first round drained (its slots, 8 bytes per poller of the peak, and spare buffers).
  constexpr int rounds = 6;
  constexpr int pollers = 30000;
  manual_clock clock;
  const std::size_t heap_before = heap_in_use();
  runner<manual_clock> fleet{clock};
  std::vector<pollster::handle> handles;
  handles.reserve(pollers);
  std::vector<std::size_t> peaks;
  std::vector<std::size_t> drained;
  std::size_t heap_after_first = 0;
  std::map<cause, int> causes;
  int ended = 0;
  auto count = [&](outcome_type o) {
    ++ended;
    ++causes[o.cause];
  };
  for (int round = 0; round < rounds; ++round) {
    ended = 0;
    handles.clear();
    for (int i = 0; i < pollers; ++i) {
      pollster::submit_options options;
      options.poll.attempt_timeout = 2s;
      if (i % 8 == 1) {
        handles.push_back(fleet.submit(
            [](const pollster::poll_state& s, async_completion c) {
              const int n = static_cast<int>(s.attempt);
              c(n >= 3 ? async_step(pollster::done(n)) : async_step(pollster::pending(n)));
            },
            pollster::constant{1s}, pollster::never{}, count, options));
      } else if (i % 8 == 3) {
        handles.push_back(fleet.submit([](async_completion) {}, pollster::constant{1s}, pollster::after_attempts{3},
                                       count, options));
      } else {
        handles.push_back(fleet.submit(
            [n = 0]() mutable -> step_type { return ++n >= 4 ? step_type{pollster::done(n)} : step_type{}; },
            pollster::constant{(1 + i % 5) * 1s}, pollster::never{}, count, options));
      }
    }
    CHECK(fleet.poll() == pollers);
    clock.advance(500ms);
    for (std::size_t i = 0; i < handles.size(); i += 10) {
      for (int k = 0; k < 5; ++k) handles[i].nudge();
    }
    for (std::size_t i = 3; i < handles.size(); i += 7) handles[i].cancel();
    fleet.poll();
    peaks.push_back(fleet.memory_bytes());
    fleet.run();
    REQUIRE(ended == pollers);
    REQUIRE(fleet.empty());
    CHECK(fleet.in_flight() == 0);
    drained.push_back(fleet.memory_bytes());
    if (round == 0) heap_after_first = heap_in_use();
  }
  INFO("peaks: " << peaks.front() << " .. " << *std::max_element(peaks.begin(), peaks.end()) << " bytes; drained: "
                 << drained.front() << " .. " << *std::max_element(drained.begin(), drained.end()) << " bytes");
  for (int round = 0; round < rounds; ++round) {
    INFO("round " << round);
    CHECK(peaks[static_cast<std::size_t>(round)] <= peaks.front() + peaks.front() / 20);  // a plateau
    CHECK(drained[static_cast<std::size_t>(round)] <= drained.front() + 64 * 1024);       // no creep
    CHECK(drained[static_cast<std::size_t>(round)] < peaks[static_cast<std::size_t>(round)] / 3);  // falls back
  }
  // Every way a run ends in the soak: done, exhausted (the abandoned attempts), cancelled.
  CHECK(causes[cause::done] > rounds * pollers / 2);
  CHECK(causes[cause::exhausted] >= rounds * (pollers / 8 - pollers / 7));
  CHECK(causes[cause::cancelled] >= rounds * (pollers / 7 - 1));
  const std::size_t shrunk_by = fleet.shrink();
  CHECK(fleet.memory_bytes() + shrunk_by == drained.back());
  const std::size_t heap_end = heap_in_use();
  if (heap_before != 0) {  // glibc without a sanitizer: the heap agrees
    INFO("heap in use: " << heap_before << " before, " << heap_after_first << " after round 1, " << heap_end
                         << " at the end");
    CHECK(heap_end <= heap_after_first + 256 * 1024);
  }
}
