// The one real-thread test of the runner (run it under ThreadSanitizer): several threads submit, nudge, cancel and
// read the status of pollers while the runner's own thread steps them, and completion callbacks submit more.
// Bounded: a fixed number of operations on sub-millisecond schedules, well under a second of real time.

#include "pollster_catch.hpp"

#include <pollster/runner.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using step_type = pollster::step<int, int>;
using outcome_type = pollster::outcome<int, int>;

constexpr int producers = 4;
constexpr int pollers_per_producer = 250;
constexpr int follow_ups = 100;  // submitted by completion callbacks, on the runner's thread

/// Waits (bounded) until `done()`; the runner thread does the work.
template <class Done>
bool wait_for(Done done) {
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST_CASE("threads submit, nudge and cancel while the runner thread works", "[runner][threads]") {
  pollster::steady_clock clock;
  pollster::runner<> fleet{clock};
  const auto api = fleet.add_budget("api", pollster::budget_options{200000.0, 50});

  std::atomic<int> completed{0};
  std::atomic<int> done_count{0};
  std::atomic<int> cancelled_count{0};
  std::atomic<int> follow_ups_left{follow_ups};
  std::atomic<std::uint64_t> checks{0};
  std::mutex handles_mutex;
  std::vector<pollster::handle> handles;

  auto check = [&checks, n = 0]() mutable -> step_type {
    checks.fetch_add(1, std::memory_order_relaxed);
    return ++n >= 5 ? step_type{pollster::done(n)} : step_type{pollster::pending(n)};
  };
  std::function<void(outcome_type)> on_complete;
  on_complete = [&](outcome_type o) {
    if (o.cause == pollster::cause::done) done_count.fetch_add(1);
    if (o.cause == pollster::cause::cancelled) cancelled_count.fetch_add(1);
    if (follow_ups_left.fetch_sub(1) > 0) {
      fleet.submit(check, pollster::constant{50us}, pollster::never{}, on_complete);  // from the runner thread
    }
    completed.fetch_add(1);
  };

  fleet.start();
  std::vector<std::thread> threads;
  for (int t = 0; t < producers; ++t) {
    threads.emplace_back([&, t] {
      pollster::submit_options options;
      if (t % 2 == 0) options.budget = api;
      for (int i = 0; i < pollers_per_producer; ++i) {
        pollster::handle h = fleet.submit(check, pollster::constant{100us}, pollster::never{}, on_complete, options);
        {
          std::lock_guard<std::mutex> lock(handles_mutex);
          handles.push_back(h);
        }
        h.nudge();
        (void)h.status();
        if (i % 7 == 0) h.cancel();
        if (i % 5 == 0) {
          // Poke a poller some other thread submitted: it may be running, finished, or its slot reused.
          pollster::handle other;
          {
            std::lock_guard<std::mutex> lock(handles_mutex);
            other = handles[static_cast<std::size_t>(i * 31 + t) % handles.size()];
          }
          other.nudge();
          other.cancel();
          (void)other.finished();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();

  const int total = producers * pollers_per_producer + follow_ups;
  const bool all_completed = wait_for([&] { return completed.load() == total; });
  fleet.stop();
  REQUIRE(all_completed);
  CHECK(done_count.load() + cancelled_count.load() == total);
  CHECK(cancelled_count.load() >= producers * (pollers_per_producer / 7));
  CHECK(fleet.empty());
  for (const auto& h : handles) CHECK(h.finished());
  CHECK(checks.load() <= static_cast<std::uint64_t>(total) * 5);

  // The runner can be started again after stop(), and stop() is idempotent.
  fleet.start();
  std::atomic<bool> late_done{false};
  fleet.submit(check, pollster::constant{10us}, pollster::never{}, [&](outcome_type) { late_done.store(true); });
  CHECK(wait_for([&] { return late_done.load(); }));
  fleet.stop();
  fleet.stop();
}

TEST_CASE("a runner destroyed with pollers pending, while a thread still holds their handles", "[runner][threads]") {
  std::vector<pollster::handle> handles;
  std::atomic<int> callbacks{0};
  {
    pollster::steady_clock clock;
    pollster::runner<> fleet{clock};
    fleet.start();
    for (int i = 0; i < 100; ++i) {
      handles.push_back(fleet.submit([]() -> step_type { return pollster::pending(); }, pollster::constant{1h},
                                     pollster::never{}, [&](outcome_type) { callbacks.fetch_add(1); }));
    }
    std::thread poker([&] {
      for (const auto& h : handles) h.nudge();
    });
    poker.join();
  }  // the destructor stops the thread and frees every node: the leak checker sees nothing left
  CHECK(callbacks.load() == 0);
  for (const auto& h : handles) {
    CHECK(h.finished());
    h.cancel();
  }
}

TEST_CASE("a callback that throws on the runner's thread is handed over by stop()", "[runner][threads]") {
  pollster::steady_clock clock;
  pollster::runner<> fleet{clock};
  std::atomic<bool> called{false};
  fleet.start();
  fleet.submit([]() -> step_type { return pollster::done(1); }, pollster::constant{1ms}, pollster::never{},
               [&](outcome_type) {
                 called.store(true);
                 throw std::runtime_error("callback failed");
               });
  CHECK(wait_for([&] { return called.load(); }));
  CHECK_THROWS_WITH(fleet.stop(), "callback failed");
  CHECK_NOTHROW(fleet.stop());
}

TEST_CASE("four threads nudging one handle 100 times each on a started runner", "[runner][threads]") {
  // Issue 12, bug 1: a burst of nudges from several threads must neither overflow the node's reference count nor
  // free it under its timer entries. Every nudge arrives before the cancel, so the outcome counts all 400.
  pollster::steady_clock clock;
  pollster::runner<> fleet{clock};
  std::atomic<int> callbacks{0};
  std::atomic<std::uint32_t> nudges_seen{0};
  std::atomic<std::uint64_t> attempts_seen{0};
  std::atomic<int> checks{0};
  pollster::handle h = fleet.submit(
      [&checks]() -> step_type {
        checks.fetch_add(1, std::memory_order_relaxed);
        return pollster::pending(1);
      },
      pollster::constant{1h}, pollster::never{},
      [&](outcome_type o) {
        nudges_seen.store(o.nudges);
        attempts_seen.store(o.attempts);
        callbacks.fetch_add(1);
      });
  fleet.start();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([h] {
      for (int i = 0; i < 100; ++i) h.nudge();
    });
  }
  for (auto& thread : threads) thread.join();
  h.cancel();
  const bool ended = wait_for([&] { return callbacks.load() == 1; });
  fleet.stop();
  REQUIRE(ended);
  CHECK(callbacks.load() == 1);
  CHECK(nudges_seen.load() == 400);
  CHECK(attempts_seen.load() == static_cast<std::uint64_t>(checks.load()));
  CHECK(checks.load() >= 1);
  CHECK(checks.load() <= 401);
  CHECK(fleet.empty());
  CHECK(h.finished());
}

TEST_CASE("add_budget, stats, memory_bytes and shrink refuse another thread while the runner is driven",
          "[runner][threads]") {
  // Issue 12: they read or change what only the driving thread may touch. From the driving thread (a completion
  // callback) and from any thread while nothing drives the runner they work; from another thread while it is
  // driven they throw std::logic_error instead of racing. size() and empty() may be read from any thread.
  pollster::steady_clock clock;
  pollster::runner<> fleet{clock};
  const auto api = fleet.add_budget("api", pollster::budget_options{1000.0, 10});  // not driven: fine
  CHECK(fleet.stats(api).granted == 0);

  std::atomic<bool> in_callback{false};
  std::atomic<bool> callback_done{false};
  std::atomic<bool> callback_ok{false};
  pollster::submit_options options;
  options.budget = api;
  fleet.submit([]() -> step_type { return pollster::done(1); }, pollster::constant{1ms}, pollster::never{},
               [&](outcome_type) {
                 in_callback.store(true);
                 // On the driving thread: all of them work, and a second budget can be added.
                 const auto more = fleet.add_budget("more", pollster::budget_options{5.0, 1});
                 callback_ok.store(fleet.stats(api).granted == 1 && fleet.stats(more).granted == 0 &&
                                   fleet.memory_bytes() > 0);
                 (void)fleet.shrink();
                 callback_done.store(true);
               },
               options);
  fleet.start();
  REQUIRE(wait_for([&] { return callback_done.load(); }));
  CHECK(in_callback.load());
  CHECK(callback_ok.load());
  // From this thread while the runner's own thread drives it: refused, every time.
  for (int i = 0; i < 50; ++i) {
    CHECK_THROWS_AS(fleet.add_budget("late", pollster::budget_options{}), std::logic_error);
    CHECK_THROWS_AS(fleet.stats(api), std::logic_error);
    CHECK_THROWS_AS(fleet.memory_bytes(), std::logic_error);
    CHECK_THROWS_AS(fleet.shrink(), std::logic_error);
    CHECK(fleet.size() == 0);
    CHECK(fleet.empty());
  }
  fleet.stop();
  // Not driven any more: fine again, from this thread.
  CHECK(fleet.stats(api).granted == 1);
  CHECK(fleet.memory_bytes() > 0);
  CHECK(fleet.add_budget("after", pollster::budget_options{}).value == 2);
}
