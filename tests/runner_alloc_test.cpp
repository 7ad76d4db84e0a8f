// Memory exhaustion inside the runner (issue 12, bug 3): a replacement operator new fails the k-th allocation
// after the runner is set up, for every k the scenario reaches, and the scenario retries every call that threw
// std::bad_alloc. The promise pinned here (runner.hpp): a call that cannot get memory throws std::bad_alloc and
// leaves every poller where it was, so that once memory is back every poller ends exactly as it does when nothing
// fails: the same cause, attempts, nudges and elapsed time, one callback each, every node destroyed, nothing leaked.
// A binary of its own: the replacement operator new is global.

#if defined(__GNUC__) && !defined(__clang__)
// The replacement operator new below pairs malloc with free; GCC's check cannot see through the replacement.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "pollster_catch.hpp"

#include <pollster/await.hpp>
#include <pollster/detail/timer_heap.hpp>
#include <pollster/poll.hpp>
#include <pollster/runner.hpp>
#include <pollster/watch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace {

// Allocations to go before the failing one (0: none fails), how many fail in a row from there, and counters.
// The tests are single-threaded; the runner allocates on the calling thread.
long long allocations_until_failure = 0;
long long failures_left = 0;
long long failures_injected = 0;
long long allocations_made = 0;
long long blocks_outstanding = 0;

void fail_from(long long k, long long in_a_row) {
  allocations_until_failure = k;
  failures_left = in_a_row;
  failures_injected = 0;
}
void stop_failing() {
  allocations_until_failure = 0;
  failures_left = 0;
}

}  // namespace

void* operator new(std::size_t size) {
  if (allocations_until_failure > 0 && --allocations_until_failure == 0) {
    if (--failures_left > 0) allocations_until_failure = 1;  // the next one fails too
    ++failures_injected;
    throw std::bad_alloc{};
  }
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc{};
  ++allocations_made;
  ++blocks_outstanding;
  return p;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  --blocks_outstanding;
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
// Every form that must pair with these (AddressSanitizer checks the pairs): arrays, and nothrow (which returns
// null where the others throw).
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return operator new(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return operator new(size, std::nothrow); }
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { operator delete(p); }

namespace {

using namespace std::chrono_literals;
using pollster::manual_clock;
using step_type = pollster::step<int, int>;
using outcome_type = pollster::outcome<int, int>;

/// Calls `f` until it does not throw std::bad_alloc; counts the throws.
template <class F>
auto retry(long long& throws, F&& f) {
  for (;;) {
    try {
      return f();
    } catch (const std::bad_alloc&) {
      ++throws;
    }
  }
}

struct record {
  int callbacks = 0;
  pollster::cause cause = pollster::cause::running;
  std::uint64_t attempts = 0;
  std::uint32_t nudges = 0;
  pollster::duration elapsed{};
  pollster::duration budget_wait{};
  bool operator==(const record& o) const {
    return callbacks == o.callbacks && cause == o.cause && attempts == o.attempts && nudges == o.nudges &&
           elapsed == o.elapsed && budget_wait == o.budget_wait;
  }
};

struct scenario_result {
  std::vector<record> records;
  long long throws = 0;
  long long allocations = 0;  // while failures could be injected
  bool empty_at_end = false;
  int checks_alive_after = 0;
  long long blocks_leaked = 0;
};

/// A check that counts its live copies (a node that is never destroyed keeps one) and is done on call `done_at`.
struct counted_check {
  int* alive;
  int done_at;
  int calls = 0;
  counted_check(int* a, int d) : alive(a), done_at(d) { ++*alive; }
  counted_check(const counted_check& o) : alive(o.alive), done_at(o.done_at), calls(o.calls) { ++*alive; }
  counted_check& operator=(const counted_check&) = delete;
  ~counted_check() { --*alive; }
  step_type operator()() {
    ++calls;
    return calls >= done_at ? step_type{pollster::done(calls)} : step_type{pollster::pending(calls)};
  }
};

/// The asynchronous counterpart: attempt n answers at once, from inside the check (so the completion's command is
/// queued while the runner dispatches), when n is odd, and is parked otherwise, to be answered by the scenario before
/// its next driving call. The parking vector has room reserved: the check allocates nothing itself.
struct counted_async_check {
  int* alive;
  int done_at;
  std::vector<pollster::completion<int, int>>* parked;
  counted_async_check(int* a, int d, std::vector<pollster::completion<int, int>>* p) : alive(a), done_at(d), parked(p) {
    ++*alive;
  }
  counted_async_check(const counted_async_check& o) : alive(o.alive), done_at(o.done_at), parked(o.parked) {
    ++*alive;
  }
  counted_async_check& operator=(const counted_async_check&) = delete;
  ~counted_async_check() { --*alive; }
  void operator()(const pollster::poll_state& s, pollster::completion<int, int> c) const {
    const int n = static_cast<int>(s.attempt);
    if (n % 2 == 1) {
      c(n >= done_at ? step_type{pollster::done(n)} : step_type{pollster::pending(n)});
    } else {
      parked->push_back(std::move(c));
    }
  }
};

/// Answers every parked attempt (an even one: pending; the checks are done on an odd attempt or later).
void answer_parked(std::vector<pollster::completion<int, int>>& parked) {
  for (auto& c : parked) {
    const int n = static_cast<int>(c.state().attempt);
    c(pollster::pending(n));
  }
  parked.clear();  // (keeps its capacity: no allocation)
}

/// 120 pollers on 13 periods, a third of them on a rate budget that makes them wait, some with a deadline (their
/// cold part is made at submit) or wait_first, nudged in waves (the first nudge makes the cold part), some
/// cancelled, over 2 s of virtual time in 50 ms steps, then run to the end. Every fourth is asynchronous (see
/// counted_async_check; an attempt timeout of 400 ms), which adds the completions' commands and attempt records. `fail_at`: the allocation that fails
/// (counted from the first submit; 0: none), and `in_a_row` after it.
scenario_result run_scenario(long long fail_at, long long in_a_row) {
  constexpr int pollers = 120;
  scenario_result result;
  result.records.resize(pollers);
  const long long blocks_before = blocks_outstanding;
  std::vector<pollster::handle> handles;
  handles.reserve(pollers);
  int alive = 0;
  std::vector<pollster::completion<int, int>> parked;
  parked.reserve(4 * pollers);
  {
    manual_clock clock;
    pollster::runner<manual_clock> fleet{clock};
    pollster::budget_options limits;
    limits.rate = 100.0;
    limits.burst = 5;
    const pollster::budget_id api = fleet.add_budget("api", limits);
    const long long allocations_before = allocations_made;
    if (fail_at > 0) fail_from(fail_at, in_a_row);
    long long& throws = result.throws;
    for (int i = 0; i < pollers; ++i) {
      pollster::submit_options options;
      if (i % 3 == 0) options.budget = api;
      if (i % 7 == 0) options.poll.deadline = pollster::at(clock.now() + 1500ms);
      if (i % 5 == 0) options.poll.wait_first = true;
      record* slot = &result.records[static_cast<std::size_t>(i)];
      const auto on_complete = [slot](outcome_type o) {
        ++slot->callbacks;
        slot->cause = o.cause;
        slot->attempts = o.attempts;
        slot->nudges = o.nudges;
        slot->elapsed = o.elapsed;
        slot->budget_wait = o.budget_wait;
      };
      if (i % 4 == 1) options.poll.attempt_timeout = 400ms;
      handles.push_back(retry(throws, [&] {
        if (i % 4 == 1) {
          return fleet.submit(counted_async_check{&alive, 3 + i % 11, &parked},
                              pollster::constant{(1 + i % 13) * 100ms}, pollster::never{}, on_complete, options);
        }
        return fleet.submit(counted_check{&alive, 3 + i % 11}, pollster::constant{(1 + i % 13) * 100ms},
                            pollster::never{}, on_complete, options);
      }));
    }
    for (int round = 0; round < 40; ++round) {
      clock.advance(50ms);
      for (int j = 0; j < pollers; ++j) {
        if ((j + round) % 17 == 0) retry(throws, [&] { handles[static_cast<std::size_t>(j)].nudge(); });
        if (round == 20 && j % 29 == 0) retry(throws, [&] { handles[static_cast<std::size_t>(j)].cancel(); });
      }
      answer_parked(parked);
      retry(throws, [&] { return fleet.poll(); });
    }
    // To the end in 50 ms steps, the parked attempts answered before each (an answer never waits for a timeout).
    while (!fleet.empty()) {
      answer_parked(parked);
      const auto until = clock.now() + 50ms;
      retry(throws, [&] { return fleet.run_until(until); });
    }
    stop_failing();
    result.allocations = allocations_made - allocations_before;
    result.empty_at_end = fleet.empty();
  }
  parked.clear();
  parked.shrink_to_fit();
  handles.clear();
  handles.shrink_to_fit();
  result.checks_alive_after = alive;
  result.blocks_leaked = blocks_outstanding - blocks_before;
  return result;
}

}  // namespace

TEST_CASE("a runner that runs out of memory at any allocation loses no poller and leaks nothing", "[runner][alloc]") {
  const scenario_result reference = run_scenario(0, 0);
  REQUIRE(reference.throws == 0);
  REQUIRE(reference.empty_at_end);
  REQUIRE(reference.checks_alive_after == 0);
  REQUIRE(reference.blocks_leaked == 0);
  for (const record& r : reference.records) REQUIRE(r.callbacks == 1);
  const long long points = reference.allocations;
  INFO("allocation points in the scenario: " << points);
  REQUIRE(points > 50);

  const long long in_a_row = GENERATE(1, 3);
  long long swept = 0;
  long long injected = 0;
  long long absorbed = 0;
  for (long long k = 1; k <= points; ++k) {
    const scenario_result run = run_scenario(k, in_a_row);
    injected += failures_injected;
    ++swept;
    // One REQUIRE per run, with what went wrong, so that a failure names its allocation and stops the sweep.
    INFO("allocation " << k << " of " << points << " failed (" << in_a_row << " in a row); " << run.throws
                       << " calls threw std::bad_alloc");
    REQUIRE(failures_injected == in_a_row);
    // A failure the runner absorbs (a slot whose free-list entry cannot be stored is retired for good; a
    // captured exception without memory for its pointer) throws nothing; every other one throws once.
    REQUIRE(run.throws <= in_a_row);
    absorbed += in_a_row - run.throws;
    REQUIRE(run.empty_at_end);
    REQUIRE(run.checks_alive_after == 0);
    REQUIRE(run.blocks_leaked == 0);
    std::size_t differing = 0;
    for (std::size_t i = 0; i < run.records.size(); ++i) differing += run.records[i] == reference.records[i] ? 0 : 1;
    REQUIRE(differing == 0);
  }
  CHECK(swept == points);
  CHECK(injected == points * in_a_row);
  WARN(points << " allocation points swept, " << in_a_row << " failing in a row: " << injected
                << " failures injected, " << absorbed << " absorbed without a throw");
}

TEST_CASE("an answer whose command cannot be queued for want of memory is kept, not lost", "[runner][alloc][async]") {
  // The completion reports from any thread and cannot throw: when the command queue cannot grow, the runner keeps
  // the attempt on a list linked through the attempt records themselves, and the next driving call applies it.
  // (Right after the runner took the queue's buffer, the queue has no room: the answer's push must allocate.)
  manual_clock clock;
  pollster::runner<manual_clock> fleet{clock};
  std::vector<pollster::completion<int, int>> parked;
  parked.reserve(4);
  std::vector<outcome_type> outcomes;
  pollster::submit_options options;
  options.poll.attempt_timeout = 10s;
  fleet.submit([&parked](pollster::completion<int, int> c) { parked.push_back(std::move(c)); },
               pollster::constant{1s}, pollster::never{}, [&outcomes](outcome_type o) { outcomes.push_back(o); },
               options);
  CHECK(fleet.poll() == 1);  // the attempt starts; its completion is parked
  REQUIRE(parked.size() == 1);
  CHECK(fleet.in_flight() == 1);
  fail_from(1, 1);
  parked[0](pollster::done(7));  // the queue's push fails: the answer is kept
  const long long injected = failures_injected;
  stop_failing();
  CHECK(injected == 1);
  parked.clear();
  fleet.poll();  // applies the kept answer
  REQUIRE(outcomes.size() == 1);
  CHECK(outcomes[0].cause == pollster::cause::done);
  CHECK(outcomes[0].value() == 7);
  CHECK(outcomes[0].attempts == 1);
  CHECK(outcomes[0].timeouts == 0);
  CHECK(outcomes[0].elapsed == 0s);
  CHECK(fleet.empty());
}

TEST_CASE("a radix heap that runs out of memory in push or pop is left as it was", "[runner][alloc][timers]") {
  // Keys spread over many buckets, so that pops have to spread buckets (refill) and pushes need fresh chunks.
  constexpr std::uintptr_t entries = 1000;
  long long points = 0;
  auto run = [&points](long long fail_at, long long& throws) {
    std::vector<std::pair<std::uint64_t, std::uintptr_t>> popped;
    popped.reserve(entries);
    pollster::detail::radix_heap<std::uintptr_t> heap;
    pollster::splitmix64 random{7};
    const long long allocations_before = allocations_made;
    if (fail_at > 0) fail_from(fail_at, 1);
    std::uint64_t now = 0;
    for (std::uintptr_t i = 0; i < entries; ++i) {
      const std::uint64_t key = now + random() % (i % 2 == 0 ? 1000 : 1000000000);
      retry(throws, [&] { heap.push(key, i); });
      if (i % 3 == 2) {
        const auto e = retry(throws, [&] { return heap.pop(); });
        popped.emplace_back(e.key, e.item);
        now = e.key;
      }
    }
    while (!heap.empty()) {
      const auto e = retry(throws, [&] { return heap.pop(); });
      popped.emplace_back(e.key, e.item);
    }
    stop_failing();
    points = allocations_made - allocations_before;
    return popped;
  };
  long long no_throws = 0;
  const auto reference = run(0, no_throws);
  const long long reference_points = points;
  REQUIRE(reference.size() == entries);
  REQUIRE(reference_points > 10);
  for (std::size_t i = 1; i < reference.size(); ++i) REQUIRE(reference[i - 1].first <= reference[i].first);
  for (long long k = 1; k <= reference_points; ++k) {
    long long throws = 0;
    const auto popped = run(k, throws);
    INFO("allocation " << k << " of " << reference_points << " failed");
    REQUIRE(throws == 1);
    REQUIRE(popped == reference);
  }
}

namespace {

/// What a blocking run ended with, or that std::bad_alloc came out of it.
struct blocking_result {
  bool threw_bad_alloc = false;
  pollster::cause cause = pollster::cause::running;
  std::uint64_t attempts = 0;
  std::uint32_t timeouts = 0;
  pollster::duration elapsed{};
  std::string value;  // the last value, rendered (empty: none)
  std::uint64_t events = 0;  // a watch's: additions + removals + changes + initial records
  bool operator==(const blocking_result& o) const {
    return threw_bad_alloc == o.threw_bad_alloc && cause == o.cause && attempts == o.attempts &&
           timeouts == o.timeouts && elapsed == o.elapsed && value == o.value && events == o.events;
  }
};

template <class Outcome>
blocking_result summary_of(const Outcome& o) {
  blocking_result r;
  r.cause = o.cause;
  r.attempts = o.attempts;
  r.timeouts = o.timeouts;
  r.elapsed = o.elapsed;
  return r;
}

/// Runs `run` once with nothing failing (the reference, and its allocation count), then once per allocation k with
/// the k-th failing: each run either ends as the reference does or lets std::bad_alloc out, and leaks nothing.
template <class Run>
void sweep_blocking(const char* what, Run run) {
  const long long blocks_before = blocks_outstanding;
  const long long allocations_before = allocations_made;
  const blocking_result reference = run();
  const long long points = allocations_made - allocations_before;
  const long long leaked = blocks_outstanding - blocks_before;  // (before INFO, which allocates its message)
  INFO(what << ": " << points << " allocation points");
  REQUIRE_FALSE(reference.threw_bad_alloc);
  REQUIRE(leaked == 0);
  REQUIRE(points >= 1);
  const long long blocks_in_loop = blocks_outstanding;  // (the INFO above holds its message)
  long long threw = 0;
  for (long long k = 1; k <= points; ++k) {
    fail_from(k, 1);
    blocking_result r;
    try {
      r = run();
    } catch (const std::bad_alloc&) {
      r.threw_bad_alloc = true;
    }
    const long long injected = failures_injected;
    stop_failing();
    const long long leaked_now = blocks_outstanding - blocks_in_loop;
    INFO("allocation " << k << " of " << points << " failed");
    REQUIRE(injected == 1);
    if (r.threw_bad_alloc) {
      ++threw;
    } else {
      REQUIRE(r == reference);
    }
    REQUIRE(leaked_now == 0);
  }
  WARN(what << ": " << points << " allocation points swept, " << threw << " let std::bad_alloc out, "
            << points - threw << " ended as without failures");
}

struct vm {
  std::string id;
  int version = 0;
  std::string state;
};

}  // namespace

TEST_CASE("poll_until, await_operation and watcher::run out of memory at any allocation end as without it or throw",
          "[alloc][blocking]") {
  // Issue 12's allocation-failure suite for the blocking drivers: std::bad_alloc from anywhere (the library, the
  // check, the fetch) either leaves the run's outcome as it is without failures or propagates, and nothing leaks:
  // no attempt record, completion, snapshot or timer is left behind.
  SECTION("poll_until with a synchronous check") {
    sweep_blocking("poll_until (synchronous)", [] {
      manual_clock clock;
      pollster::poll_options options;
      options.deadline = pollster::at(clock.now() + 1h);
      const auto o = pollster::poll_until(
          clock,
          [calls = 0]() mutable -> step_type {
            ++calls;
            if (calls == 2) return pollster::pending(calls, pollster::retry_after(5s));  // its cold part: a hint
            return calls >= 6 ? step_type{pollster::done(calls)} : step_type{pollster::pending(calls)};
          },
          pollster::geometric{1s, 2.0, 30s}, pollster::after_attempts{10}, options);
      blocking_result r = summary_of(o);
      if (o.ok()) r.value = std::to_string(o.value());
      return r;
    });
  }
  SECTION("poll_until with an asynchronous check: answers at once, later from a clock timer, or never") {
    sweep_blocking("poll_until (asynchronous)", [] {
      manual_clock clock;
      pollster::poll_options options;
      options.attempt_timeout = 3s;
      const auto o = pollster::poll_until(
          clock,
          [&clock](const pollster::poll_state& s, pollster::completion<int, int> c) {
            const int n = static_cast<int>(s.attempt);
            if (n % 3 == 1) {
              c(n >= 7 ? step_type{pollster::done(n)} : step_type{pollster::pending(n)});
            } else if (n % 3 == 2) {
              auto shared = std::make_shared<pollster::completion<int, int>>(std::move(c));
              clock.call_after(500ms, [shared, n] { (*shared)(pollster::pending(n)); });
            }
            // n % 3 == 0: never answered (the completion is dropped: an abandoned attempt)
          },
          pollster::constant{1s}, pollster::after_attempts{12}, options);
      blocking_result r = summary_of(o);
      if (o.ok()) r.value = std::to_string(o.value());
      return r;
    });
  }
  SECTION("await_operation") {
    sweep_blocking("await_operation", [] {
      manual_clock clock;
      const auto o = pollster::await_operation(
          clock,
          [&clock]() -> vm {
            const auto t = clock.now().time_since_epoch();
            return vm{"vm-1", 1, t < 5s ? "PENDING" : t < 12s ? "BUILDING" : "ACTIVE"};
          },
          pollster::rules(pollster::succeed_when(pollster::path(&vm::state, "state") == "ACTIVE"),
                          pollster::fail_when(pollster::path(&vm::state, "state") == "ERROR")),
          pollster::constant{2s});
      blocking_result r = summary_of(o);
      if (o.ok()) r.value = o.value().state;
      return r;
    });
  }
  SECTION("watcher::run") {
    sweep_blocking("watcher::run", [] {
      manual_clock clock;
      std::uint64_t events = 0;
      pollster::watcher w(
          [&clock]() -> std::vector<vm> {
            const auto t = clock.now().time_since_epoch();
            std::vector<vm> list{{"a", 1, "BUILD"}, {"b", 1, "BUILD"}};
            if (t >= 3s) list[0] = vm{"a", 2, "ACTIVE"};
            if (t >= 6s) list.pop_back();
            if (t >= 9s) list.push_back(vm{"c", 1, "BUILD"});
            return list;
          },
          pollster::keyed(&vm::id, &vm::version), [&events](const auto&) { ++events; }, pollster::constant{1s},
          pollster::after_attempts{12});
      const auto o = w.run(clock);
      blocking_result r = summary_of(o);
      r.events = events;
      return r;
    });
  }
}
