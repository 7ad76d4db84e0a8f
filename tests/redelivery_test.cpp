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
