#include "pollster_catch.hpp"

#include <pollster/runner.hpp>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>
#include <pollster/watch.hpp>

#include "cancel_latency.hpp"

#include <atomic>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using pollster::cause;
using pollster::duration;
using pollster::manual_clock;

namespace Catch {
template <>
struct StringMaker<pollster::duration> {
  static std::string convert(pollster::duration d) { return pollster::detail::duration_text(d); }
};
}  // namespace Catch

namespace {

struct server {
  std::string id;
  int version = 0;
  std::string state;
  friend bool operator==(const server& a, const server& b) {
    return a.id == b.id && a.version == b.version && a.state == b.state;
  }
};

duration since_start(const manual_clock& clock) { return clock.now().time_since_epoch(); }
std::string at(const manual_clock& clock) { return pollster::detail::duration_text(since_start(clock)); }

/// A fake list API: a fleet that changes at given virtual times; each list call returns the fleet as it is then
/// and records when it was called.
struct fleet_api {
  struct change {
    duration when;
    std::string id;
    std::string state;  // empty: the server is deleted
  };
  const manual_clock* clock;
  std::vector<change> changes;
  std::vector<duration> calls;

  std::vector<server> operator()() {
    calls.push_back(since_start(*clock));
    std::map<std::string, server> fleet;
    for (const change& c : changes) {
      if (c.when > since_start(*clock)) break;
      if (c.state.empty()) {
        fleet.erase(c.id);
        continue;
      }
      server& s = fleet[c.id];
      s.id = c.id;
      s.state = c.state;
      ++s.version;
    }
    std::vector<server> list;
    for (const auto& entry : fleet) list.push_back(entry.second);
    return list;
  }
};

/// Records every event as a line of text, with the virtual time it was delivered at.
struct event_log {
  const manual_clock* clock;
  std::vector<std::string> lines;

  void operator()(const pollster::added<const server&>& e) {
    lines.push_back(at(*clock) + (e.initial ? " initial " : " added ") + e.element.id + " " + e.element.state);
  }
  void operator()(const pollster::removed<const server&, std::string>& e) {
    lines.push_back(at(*clock) + " removed " + e.key + " (was " + e.last_known.state + ")");
  }
  void operator()(const pollster::changed<const server&>& e) {
    lines.push_back(at(*clock) + " changed " + e.after.id + " " + e.before.state + " -> " + e.after.state);
  }
  void operator()(const pollster::unchanged<const server&>& e) {
    lines.push_back(at(*clock) + " resync " + e.element.id);
  }
};

/// Cancels through `stop` when it sees a change.
struct stopper {
  std::function<void()> stop;
  template <class Event>
  void operator()(const Event&) {
    if constexpr (std::is_same_v<Event, pollster::changed<const server&>>) stop();
  }
};

/// Exactly the three change events: a handler that takes no resyncs.
struct changes_only {
  int events = 0;
  void operator()(const pollster::added<const server&>&) { ++events; }
  void operator()(const pollster::removed<const server&, std::string>&) { ++events; }
  void operator()(const pollster::changed<const server&>&) { ++events; }
};

/// Counts whatever it is given (a generic handler also receives resyncs).
struct change_counter {
  int events = 0;
  template <class Event>
  void operator()(const Event&) {
    ++events;
  }
};

const pollster::geometric one_two_eight{1s, 2.0, 8s};

}  // namespace

TEST_CASE("a watcher reports the first list as initial, then removals, additions and changes as they happen") {
  manual_clock clock;
  fleet_api api{&clock,
                {{0s, "a", "ACTIVE"}, {0s, "b", "BUILD"}, {5s, "b", "ACTIVE"}, {5s, "c", "BUILD"}, {12s, "a", ""}},
                {}};
  pollster::watcher w(std::ref(api), &server::id, event_log{&clock, {}}, pollster::constant{4s},
                      pollster::after_attempts{5});
  const auto result = w.run(clock);

  CHECK(result.cause == cause::exhausted);
  CHECK(api.calls == std::vector<duration>{0s, 4s, 8s, 12s, 16s});
  CHECK(w.handler().lines == std::vector<std::string>{"0s initial a ACTIVE", "0s initial b BUILD",
                                                      "8s changed b BUILD -> ACTIVE", "8s added c BUILD",
                                                      "12s removed a (was ACTIVE)"});
  const pollster::watch_summary& summary = result.report;
  CHECK_FALSE(result.last_value);  // the summary is the report, never smuggled through last_value
  CHECK(summary.polls == 5);
  CHECK(summary.polls_with_changes == 3);
  CHECK(summary.initial == 2);
  CHECK(summary.added == 1);
  CHECK(summary.changed == 1);
  CHECK(summary.removed == 1);
  CHECK(summary.resyncs == 0);
  CHECK(summary.size == 2);
}

TEST_CASE("adaptive cadence: a poll that saw a change restarts the schedule, a quiet one lets it grow") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}, {10s, "a", "ACTIVE"}, {17s, "b", "BUILD"}}, {}};
  SECTION("adaptive (the default)") {
    pollster::watcher w(std::ref(api), &server::id, change_counter{}, one_two_eight, pollster::after_attempts{12});
    const auto result = w.run(clock);
    // 0 1 3 7 15 (sees the change at 10 s: back to 1 s) 16 18 (sees the one at 17 s) 19 21 25 33 41
    CHECK(api.calls == std::vector<duration>{0s, 1s, 3s, 7s, 15s, 16s, 18s, 19s, 21s, 25s, 33s, 41s});
    CHECK(w.handler().events == 3);
    CHECK(result.report.polls_with_changes == 3);  // the initial list counts
  }
  SECTION("not adaptive") {
    pollster::watch_options options;
    options.adaptive = false;
    pollster::watcher w(std::ref(api), &server::id, change_counter{}, one_two_eight, pollster::after_attempts{8},
                        options);
    w.run(clock);
    CHECK(api.calls == std::vector<duration>{0s, 1s, 3s, 7s, 15s, 23s, 31s, 39s});
  }
}

TEST_CASE("changed is decided by the version projection given with keyed()") {
  manual_clock clock;
  int call = 0;
  // The second list has b with a new state but the same version: not a change by version.
  auto fetch = [&call] {
    ++call;
    if (call == 1) return std::vector<server>{{"a", 1, "BUILD"}, {"b", 1, "BUILD"}};
    return std::vector<server>{{"a", 2, "ACTIVE"}, {"b", 1, "ACTIVE"}};
  };
  pollster::watcher w(fetch, pollster::keyed(&server::id, &server::version), event_log{&clock, {}},
                      pollster::constant{1s}, pollster::after_attempts{2});
  w.run(clock);
  CHECK(w.handler().lines ==
        std::vector<std::string>{"0s initial a BUILD", "0s initial b BUILD", "1s changed a BUILD -> ACTIVE"});
}

TEST_CASE("a list the fetch returns by reference is diffed where it is and left as it was") {
  // Integer ids and versions: the snapshot's indexed path, through the watcher.
  struct machine {
    std::uint64_t id;
    int version;
    std::string state;
  };
  manual_clock clock;
  std::vector<machine> fleet{{7, 1, "BUILD"}, {9, 1, "ACTIVE"}};
  std::vector<std::string> seen;
  // The fleet the fetch hands out changes between polls: 7 goes ACTIVE at the second, 9 is deleted and 11 appears
  // at the third.
  int call = 0;
  auto fetch = [&]() -> std::vector<machine>& {
    ++call;
    if (call == 2) fleet[0] = {7, 2, "ACTIVE"};
    if (call == 3) fleet = {{11, 1, "BUILD"}, {7, 2, "ACTIVE"}};
    return fleet;
  };
  auto handler = [&seen](const auto& event) {
    using event_type = std::decay_t<decltype(event)>;
    if constexpr (std::is_same_v<event_type, pollster::added<const machine&>>) {
      seen.push_back("added " + std::to_string(event.element.id) + (event.initial ? " (initial)" : ""));
    } else if constexpr (std::is_same_v<event_type, pollster::removed<const machine&, std::uint64_t>>) {
      seen.push_back("removed " + std::to_string(event.key) + " was " + event.last_known.state);
    } else if constexpr (std::is_same_v<event_type, pollster::changed<const machine&>>) {
      seen.push_back("changed " + std::to_string(event.after.id) + " " + event.before.state + " -> " +
                     event.after.state);
    }
  };
  pollster::watcher w(std::ref(fetch), pollster::keyed(&machine::id, &machine::version), handler,
                      pollster::constant{1s}, pollster::after_attempts{4});
  const auto result = w.run(clock);

  CHECK(seen == std::vector<std::string>{"added 7 (initial)", "added 9 (initial)", "changed 7 BUILD -> ACTIVE",
                                         "removed 9 was ACTIVE", "added 11"});
  INFO("the watcher copied the list it keeps; the caller's list must still hold its records");
  REQUIRE(fleet.size() == 2);
  CHECK(fleet[0].id == 11);
  CHECK(fleet[0].state == "BUILD");
  CHECK(fleet[1].state == "ACTIVE");
  CHECK(result.report.size == 2);
  CHECK(result.report.polls == 4);
}

TEST_CASE("a nudge verifies at once through the list call, on the runner") {
  manual_clock clock;
  pollster::runner<manual_clock> runner(clock);
  fleet_api api{&clock, {{0s, "a", "BUILD"}, {100s, "a", "ACTIVE"}}, {}};
  event_log log{&clock, {}};
  std::vector<std::string> ended;
  auto h = runner.submit(pollster::watching(std::ref(api), &server::id, std::ref(log)), pollster::constant{60s},
                         pollster::never{}, [&](const pollster::watch_outcome<std::monostate>& result) {
                                    ended.push_back(std::string(pollster::to_string(result.cause)) + " at " +
                                                    at(clock) + " after " + std::to_string(result.attempts) +
                                                    " list calls, " + std::to_string(result.nudges) + " nudge");
                                  });
  runner.run_until(manual_clock::time_point{} + 101s);  // polls at 0 and 60; the change at 100 s is not seen yet
  h.nudge();                                            // a webhook said "a changed": verify now
  runner.run_until(manual_clock::time_point{} + 150s);
  h.cancel();
  runner.run();
  CHECK(api.calls == std::vector<duration>{0s, 60s, 101s});  // then due at 161 s: cancelled at 150 s first
  CHECK(log.lines == std::vector<std::string>{"0s initial a BUILD", "101s changed a BUILD -> ACTIVE"});
  CHECK(ended == std::vector<std::string>{"cancelled at 150s after 3 list calls, 1 nudge"});
}

TEST_CASE("a blocking watcher takes nudges from any thread, here from the fetch itself") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}, {30s, "a", "ACTIVE"}}, {}};
  using watcher_type = pollster::watcher<std::function<std::vector<server>()>, std::string server::*, event_log,
                                         pollster::constant, pollster::after_attempts>;
  watcher_type* self = nullptr;
  int calls = 0;
  std::function<std::vector<server>()> fetch = [&] {
    // During the second call a callback arrives (as from another thread): it nudges, so the next call is now.
    if (++calls == 2) self->nudge();
    return api();
  };
  watcher_type w(fetch, &server::id, event_log{&clock, {}}, pollster::constant{40s}, pollster::after_attempts{4});
  self = &w;
  const auto result = w.run(clock);
  CHECK(api.calls == std::vector<duration>{0s, 40s, 40s, 80s});
  CHECK(result.nudges == 1);
  CHECK(w.handler().lines == std::vector<std::string>{"0s initial a BUILD", "40s changed a BUILD -> ACTIVE"});
}

TEST_CASE("a resync every N polls delivers unchanged records on their own channel, never as changes") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}, {0s, "b", "BUILD"}, {15s, "b", "ACTIVE"}}, {}};
  pollster::watch_options options;
  options.adaptive = false;
  options.resync_every_polls = 2;
  pollster::watcher w(std::ref(api), &server::id, event_log{&clock, {}}, pollster::constant{10s},
                      pollster::after_attempts{5}, options);
  const auto result = w.run(clock);
  CHECK(w.handler().lines == std::vector<std::string>{"0s initial a BUILD", "0s initial b BUILD", "20s resync a",
                                                      "20s changed b BUILD -> ACTIVE", "40s resync a",
                                                      "40s resync b"});
  CHECK(result.report.resyncs == 2);
  CHECK(result.report.resynced == 3);
  CHECK(result.report.changed == 1);
}

TEST_CASE("a resync every so long rides on the first poll at or after the period, and a handler may ignore it") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}}, {}};
  pollster::watch_options options;
  options.resync_every = 25s;
  SECTION("the resync channel") {
    pollster::watcher w(std::ref(api), &server::id, event_log{&clock, {}}, pollster::constant{10s},
                        pollster::after_attempts{7}, options);
    w.run(clock);
    CHECK(w.handler().lines == std::vector<std::string>{"0s initial a BUILD", "30s resync a", "60s resync a"});
  }
  SECTION("a handler without unchanged() counts them, and sees none") {
    pollster::watcher w(std::ref(api), &server::id, changes_only{}, pollster::constant{10s},
                        pollster::after_attempts{7}, options);
    const auto result = w.run(clock);
    CHECK(w.handler().events == 1);
    CHECK(result.report.resyncs == 2);
  }
}

TEST_CASE("a failed list call keeps the last list and retries; a permanent failure ends the watch") {
  manual_clock clock;
  int call = 0;
  auto fetch = [&call]() -> pollster::step<std::vector<server>, std::string> {
    ++call;
    if (call == 2) return pollster::transient(std::string("503"));
    if (call == 4) return pollster::failed(std::string("403"));
    return pollster::pending(std::vector<server>{{"a", call, "BUILD"}});
  };
  pollster::watcher w(fetch, pollster::keyed(&server::id, &server::version), change_counter{}, one_two_eight);
  const auto result = w.run(clock);
  CHECK(result.cause == cause::failed);
  REQUIRE(result.last_error);
  CHECK(*result.last_error == "403");
  CHECK(result.attempts == 4);
  CHECK(result.report.polls == 2);  // two lists arrived: the initial one and one change
  CHECK(result.report.changed == 1);
  CHECK(since_start(clock) == 0s + 1s + 1s + 2s);  // the change at the third call restarted the schedule
}

TEST_CASE("a fetch answered not_modified (HTTP 304) is counted, not diffed: no events, the last list stands") {
  manual_clock clock;
  int call = 0;
  // Calls 1 and 4 bring lists (the second one changed); 2, 3 and 5 are 304s.
  auto fetch = [&call]() -> pollster::step<std::vector<server>, std::string> {
    ++call;
    if (call == 1) return pollster::pending(std::vector<server>{{"a", 1, "BUILD"}});
    if (call == 4) return pollster::pending(std::vector<server>{{"a", 2, "ACTIVE"}});
    return pollster::not_modified();
  };
  pollster::watcher w(fetch, pollster::keyed(&server::id, &server::version), event_log{&clock, {}}, one_two_eight,
                      pollster::after_attempts{5});
  const auto result = w.run(clock);
  CHECK(result.cause == cause::exhausted);
  CHECK(w.handler().lines == std::vector<std::string>{"0s initial a BUILD", "7s changed a BUILD -> ACTIVE"});
  CHECK(result.report.polls == 2);  // lists received and diffed
  CHECK(result.report.not_modified == 3);
  CHECK(result.report.polls_with_changes == 2);
  CHECK(result.report.size == 1);
  // A 304 is a quiet poll: the schedule grows through it (0 1 3 7), and the change at 7 s restarts it (8).
  CHECK(since_start(clock) == 8s);
}

TEST_CASE("cancelling a blocking watcher: from the handler, before the run, and through the stop token") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}, {25s, "a", "ACTIVE"}}, {}};
  SECTION("from the handler") {
    pollster::watcher w(std::ref(api), &server::id, stopper{}, pollster::constant{10s});
    w.handler().stop = [&w] { w.cancel(); };
    const auto result = w.run(clock);
    CHECK(result.cause == cause::cancelled);
    CHECK(api.calls == std::vector<duration>{0s, 10s, 20s, 30s});
  }
  SECTION("before the run") {
    pollster::watcher w(std::ref(api), &server::id, change_counter{}, pollster::constant{10s});
    w.cancel();
    const auto result = w.run(clock);
    CHECK(result.cause == cause::cancelled);
    CHECK(result.attempts == 0);
    CHECK(api.calls.empty());
  }
  SECTION("through the stop token") {
    pollster::cancel_source source;
    pollster::poll_options poll;
    poll.cancel = source.get_token();
    auto fetch = [&] {
      if (api.calls.size() == 2) source.request_cancel();
      return api();
    };
    pollster::watcher w(fetch, &server::id, change_counter{}, pollster::constant{10s}, pollster::never{}, {}, poll);
    const auto result = w.run(clock);
    CHECK(result.cause == cause::cancelled);
    CHECK(api.calls == std::vector<duration>{0s, 10s, 20s});
  }
}

TEST_CASE("a handler that throws ends the blocking watch and the exception propagates") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}}, {}};
  auto throwing = [](const auto&) { throw std::runtime_error("consumer broke"); };
  pollster::watcher w(std::ref(api), &server::id, throwing, pollster::constant{10s});
  CHECK_THROWS_AS(w.run(clock), std::runtime_error);
}

TEST_CASE("many watchers and awaits share one runner thread and one rate budget") {
  manual_clock clock;
  pollster::runner<manual_clock> runner(clock);
  pollster::budget_options budget;
  budget.rate = 1.0;  // one list call per second for everyone
  budget.burst = 1;
  pollster::submit_options submit;
  submit.budget = runner.add_budget("list", budget);

  std::vector<fleet_api> apis(5, fleet_api{&clock, {{0s, "a", "BUILD"}, {7s, "a", "ACTIVE"}}, {}});
  std::vector<change_counter> counters(5);
  std::vector<std::string> ended;
  std::vector<pollster::handle> handles;
  for (std::size_t i = 0; i < apis.size(); ++i) {
    handles.push_back(runner.submit(
        pollster::watching(std::ref(apis[i]), &server::id, std::ref(counters[i])), pollster::constant{2s},
        pollster::after_attempts{4}, [&ended, i](const auto& r) { ended.push_back(std::to_string(i) + " " + pollster::to_string(r.cause)); },
        submit));
  }
  runner.run();
  // Five watchers, one call per second between them: the first calls go at 0, 1, 2, 3, 4 s.
  CHECK(apis[0].calls.front() == 0s);
  CHECK(apis[4].calls.front() == 4s);
  std::size_t total = 0;
  for (const auto& api : apis) total += api.calls.size();
  CHECK(total == 20);
  const pollster::budget_stats stats = runner.stats(submit.budget);
  CHECK(stats.granted == 20);
  CHECK(ended.size() == 5);
  for (const auto& c : counters) CHECK(c.events == 2);  // the initial record and its change at 7 s
}

TEST_CASE("a second run goes on from the list the first run ended with: changes, not a new initial list") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}, {0s, "b", "BUILD"}, {25s, "a", "ACTIVE"}, {25s, "b", ""}}, {}};
  pollster::watcher w(std::ref(api), pollster::keyed(&server::id, &server::version), event_log{&clock, {}},
                      pollster::constant{10s}, pollster::after_attempts{2});
  w.run(clock);  // polls at 0 and 10 s
  CHECK(w.last_list().size() == 2);
  clock.advance(20s);
  const auto second = w.run(clock);  // polls at 30 and 40 s
  CHECK(w.handler().lines == std::vector<std::string>{"0s initial a BUILD", "0s initial b BUILD",
                                                      "30s removed b (was BUILD)", "30s changed a BUILD -> ACTIVE"});
  CHECK(second.report.initial == 0);
  CHECK(second.report.changed == 1);
  CHECK(second.report.removed == 1);
}

TEST_CASE("a handler that throws ends the run, and the next run reports the same change again") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}, {15s, "a", "ACTIVE"}}, {}};
  struct fails_once {
    std::vector<std::string> lines;
    bool failed = false;
    void operator()(const pollster::added<const server&>& e) { lines.push_back("added " + e.element.state); }
    void operator()(const pollster::removed<const server&, std::string>&) {}
    void operator()(const pollster::changed<const server&>& e) {
      if (!failed) {
        failed = true;
        throw std::runtime_error("consumer down");
      }
      lines.push_back("changed " + e.before.state + " -> " + e.after.state);
    }
  };
  pollster::watcher w(std::ref(api), pollster::keyed(&server::id, &server::version), fails_once{},
                      pollster::constant{10s}, pollster::after_attempts{5});
  CHECK_THROWS_AS(w.run(clock), std::runtime_error);  // at 20 s, on the change
  w.run(clock);
  CHECK(w.handler().lines == std::vector<std::string>{"added BUILD", "changed BUILD -> ACTIVE"});
}

TEST_CASE("resume_from gives the first poll a saved list to diff against") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "ACTIVE"}, {0s, "c", "BUILD"}}, {}};
  pollster::watcher w(std::ref(api), pollster::keyed(&server::id, &server::version), event_log{&clock, {}},
                      pollster::constant{10s}, pollster::after_attempts{1});
  w.resume_from({{"a", 1, "ACTIVE"}, {"b", 4, "ACTIVE"}});  // saved by an earlier process
  CHECK(w.last_list().size() == 2);
  const auto result = w.run(clock);
  CHECK(w.handler().lines == std::vector<std::string>{"0s removed b (was ACTIVE)", "0s added c BUILD"});
  CHECK(result.report.initial == 0);
  CHECK(result.report.resyncs == 0);
  REQUIRE(w.last_list().size() == 2);
  CHECK(w.last_list()[1].id == "c");
}

TEST_CASE("run(clock, side) wakes for the side's due work between polls, without a list call") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}}, {}};
  // Side work due at 5 s and 27 s (as a subscriptions' redeliveries would be).
  struct side_work {
    const manual_clock* clock;
    std::vector<duration> due{5s, 27s};
    std::vector<duration> ran;
    manual_clock::time_point next_due() const {
      return due.empty() ? manual_clock::time_point::max() : manual_clock::time_point{due.front()};
    }
    void run_due(manual_clock::time_point now) {
      ran.push_back(now.time_since_epoch());
      due.erase(due.begin());
    }
  } side{&clock, {5s, 27s}, {}};
  pollster::watcher w(std::ref(api), &server::id, change_counter{}, pollster::constant{10s},
                      pollster::after_attempts{4});
  w.run(clock, side);
  CHECK(api.calls == std::vector<duration>{0s, 10s, 20s, 30s});
  CHECK(side.ran == std::vector<duration>{5s, 27s});
}

TEST_CASE("cancel() and the cancel token return a blocking watcher at once, also on a custom clock",
          "[watch][cancel][real-time]") {
  const auto each_clock = [](auto& clock, const std::string& on) {
    auto list = [] { return std::vector<server>{{"a", 1, "ACTIVE"}}; };
    auto ignore = [](const auto&) {};
    {
      pollster::watcher w(list, &server::id, ignore, pollster::constant{1h});
      const double ms = cancel_latency::measure(("watcher::run, cancel()" + on).c_str(), [&] { w.run(clock); },
                                                [&] { w.cancel(); });
      CHECK(ms < 250);
    }
    {
      pollster::cancel_source cancel;
      pollster::poll_options poll;
      poll.cancel = cancel.get_token();
      pollster::watcher w(list, &server::id, ignore, pollster::constant{1h}, pollster::never{}, {}, poll);
      const double ms = cancel_latency::measure(("watcher::run, cancel token" + on).c_str(), [&] { w.run(clock); },
                                                [&] { cancel.request_cancel(); });
      CHECK(ms < 250);
    }
    {
      std::atomic<int> calls{0};
      auto counted = [&] {
        ++calls;
        return std::vector<server>{{"a", 1, "ACTIVE"}};
      };
      pollster::watcher w(counted, &server::id, ignore, pollster::constant{1h}, pollster::after_attempts{2});
      const double ms = cancel_latency::measure(("watcher::run, nudge() to the last check" + on).c_str(),
                                                [&] { w.run(clock); }, [&] { w.nudge(); });
      CHECK(ms < 250);
      CHECK(calls == 2);
    }
  };
  pollster::steady_clock steady;
  each_clock(steady, " on steady_clock");
  cancel_latency::wall_clock custom;
  each_clock(custom, " on a custom clock");
}

TEST_CASE("a blocking watcher's cancel() ends one run: the one in progress, or else the next one to start") {
  // Issue 12, bug 8: the request stayed set, so every later run was cancelled before its first list call.
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}, {25s, "a", "ACTIVE"}}, {}};
  pollster::watcher w(std::ref(api), &server::id, stopper{}, pollster::constant{10s}, pollster::after_attempts{5});
  SECTION("cancelled from the handler, the next run goes on") {
    w.handler().stop = [&w] { w.cancel(); };
    const auto first = w.run(clock);
    CHECK(first.cause == cause::cancelled);
    CHECK(first.attempts == 4);
    w.handler().stop = [] {};
    const auto second = w.run(clock);
    CHECK(second.cause == cause::exhausted);
    CHECK(second.attempts == 5);
    CHECK(api.calls == std::vector<duration>{0s, 10s, 20s, 30s, 30s, 40s, 50s, 60s, 70s});
  }
  SECTION("cancelled between runs, only the next run is") {
    w.handler().stop = [] {};
    w.cancel();
    const auto first = w.run(clock);
    CHECK(first.cause == cause::cancelled);
    CHECK(first.attempts == 0);
    const auto second = w.run(clock);
    CHECK(second.cause == cause::exhausted);
    CHECK(second.attempts == 5);
    CHECK(api.calls == std::vector<duration>{0s, 10s, 20s, 30s, 40s});
  }
}
