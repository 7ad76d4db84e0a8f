#include "pollster_catch.hpp"
#include "subscription_fixtures.hpp"

#include <pollster/redelivery.hpp>
#include <pollster/runner.hpp>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>
#include <pollster/watch.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace subscription_fixtures;
using pollster::duration;
using pollster::event_kind;
using pollster::manual_clock;

TEST_CASE("on a runner, a companion poller redelivers, costs no list call, and ends after the watch") {
  manual_clock clock;
  pollster::runner<manual_clock> runner(clock);
  fleet_api api{&clock, {{0s, "a", "BUILD"}, {0s, "b", "BUILD"}, {25s, "a", "ACTIVE"}, {25s, "b", ""}}, {}};
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::vector<std::string> provisioned, removed;
  pollster::subscription_options removals;
  removals.kinds = {event_kind::removed};
  subs.subscribe("provision", status.became("ACTIVE"), recorder{&clock, &provisioned, {{"a", 2}}});
  subs.subscribe("deregister", recorder{&clock, &removed, {}}, removals);
  std::string watch_end;
  const pollster::subscribed_handles handles = pollster::submit_with_redelivery(
      runner, subs, pollster::watching(std::ref(api), pollster::keyed(&server::id, &server::version),
                                       subs.handler(clock)),
      pollster::constant{30s}, pollster::after_attempts{3},
      [&](const auto& outcome) { watch_end = std::string(pollster::to_string(outcome.cause)) + " at " + text(since_start(clock)); });
  runner.run();  // returns: the watch ends at 60 s, the companion once its last retry got through
  CHECK(watch_end == "exhausted at 60s");
  CHECK(api.calls == std::vector<duration>{0s, 30s, 60s});
  CHECK(provisioned == std::vector<std::string>{"30s changed a/changed/v2 #1", "40s changed a/changed/v2 #2",
                                                "70s changed a/changed/v2 #3"});
  CHECK(removed == std::vector<std::string>{"30s removed b/removed/v1 #1"});
  CHECK(handles.watch.finished());
  CHECK(handles.redelivery.finished());
  CHECK(subs.closed());
  CHECK(since_start(clock) == 70s);
}

TEST_CASE("the companion's check asks to be checked when the next retry is due, never while none waits") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  pollster::subscription_options options;
  options.retry = pollster::retry_policy(pollster::constant{7s}, pollster::after_attempts{2});
  int calls = 0;
  subs.subscribe("flaky", [&calls](const event_type&) {
    if (++calls == 1) throw std::runtime_error("once");
  }, options);
  pollster::redelivery_check<server, std::string, manual_clock> check(subs, clock);
  auto idle = check();
  CHECK(idle.kind == pollster::step_kind::pending);
  REQUIRE(idle.directed);
  CHECK(*idle.directed == duration::max());  // nothing waits: "never", until a publish nudges it
  clock.advance(3s);
  subs.publish(pollster::added<const server&>{server{"a", 1, "BUILD"}, false}, clock.now());
  auto waiting = check();
  REQUIRE(waiting.directed);
  CHECK(*waiting.directed == 7s);
  clock.advance(7s);
  subs.close();
  auto last = check();  // the retry gets through; closed and nothing pending: done
  CHECK(last.kind == pollster::step_kind::done);
  CHECK(calls == 2);
}

TEST_CASE("a runner watch submitted by reference saves its state, and a new runner resumes from it with changes") {
  manual_clock clock;
  fleet_api api{&clock,
                {{0s, "a", "BUILD"}, {0s, "b", "ACTIVE"},                         // the first process sees these
                 {100s, "a", "ACTIVE"}, {100s, "b", ""}, {100s, "c", "BUILD"}},  // made while no process runs
                {}};
  const auto keys = pollster::keyed(&server::id, &server::version);
  pollster::watch_state<server, std::string> saved;
  {
    pollster::runner<manual_clock> runner(clock);
    subs_type subs(keys, virtual_time(clock));
    subs.subscribe("provision", status.became("ACTIVE"), [](const event_type&) {});
    auto watch = pollster::watching(std::ref(api), keys, subs.handler(clock));
    std::uint64_t initial = 0;
    pollster::submit_with_redelivery(runner, subs, std::ref(watch), pollster::constant{30s},
                                     pollster::after_attempts{2}, [&](const auto& outcome) {
                                       initial = outcome.report.initial;  // the kept watch's report reaches it
                                       saved = pollster::save_state(watch, subs);  // on the runner's thread
                                     });
    runner.run();
    CHECK(initial == 2);
  }
  REQUIRE(saved.records.size() == 2);
  CHECK(saved.records[0].id == "a");
  CHECK(saved.records[1].id == "b");
  CHECK(saved.delivery.sequence == 2);  // the first list's two records were published (to no subscription)

  clock.advance_to(at(200s));
  pollster::runner<manual_clock> runner(clock);
  subs_type subs(keys, virtual_time(clock));
  std::vector<std::string> provisioned, removed;
  pollster::subscription_options removals;
  removals.kinds = {event_kind::removed};
  subs.subscribe("provision", status.became("ACTIVE"), recorder{&clock, &provisioned, {}});
  subs.subscribe("deregister", recorder{&clock, &removed, {}}, removals);
  auto watch = pollster::watching(std::ref(api), keys, subs.handler(clock));
  pollster::resume(watch, subs, saved, clock.now());
  pollster::watch_summary report;
  pollster::submit_with_redelivery(runner, subs, std::ref(watch), pollster::constant{30s},
                                   pollster::after_attempts{1}, [&](const auto& outcome) { report = outcome.report; });
  runner.run();
  CHECK(provisioned == std::vector<std::string>{"200s changed a/changed/v2 #1"});
  CHECK(removed == std::vector<std::string>{"200s removed b/removed/v1 #1"});
  CHECK(report.initial == 0);
  CHECK(report.added == 1);
  CHECK(report.changed == 1);
  CHECK(report.removed == 1);
  CHECK(watch.last_list().size() == 2);  // a and c
}
