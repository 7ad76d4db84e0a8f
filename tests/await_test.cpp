#include "pollster_catch.hpp"

#include <pollster/await.hpp>
#include <pollster/runner.hpp>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pollster::cause;
using pollster::duration;
using pollster::manual_clock;
using pollster::rule_state;

namespace {

struct attachment {
  std::string volume;
  std::string state;
};

struct server {
  std::string state;
  std::vector<attachment> attachments;
  std::vector<std::string> volume_states;
};

struct http_error {
  int status = 0;
  friend bool operator==(const http_error& a, const http_error& b) { return a.status == b.status; }
};

duration since_start(const manual_clock& clock) { return clock.now().time_since_epoch(); }

/// A status resource that follows a timeline: `states[i]` from `at[i]` on (virtual time).
struct timeline {
  const manual_clock* clock;
  std::vector<duration> at;
  std::vector<std::string> states;
  std::vector<duration>* checked_at;

  server operator()() const {
    checked_at->push_back(since_start(*clock));
    std::size_t i = 0;
    while (i + 1 < at.size() && since_start(*clock) >= at[i + 1]) ++i;
    return server{states[i], {}, {}};
  }
};

auto server_rules() {
  return pollster::rules(pollster::succeed_when(pollster::path(&server::state, "state") == "ACTIVE"),
                         pollster::fail_when(pollster::path(&server::state, "state") == "ERROR"));
}

}  // namespace

TEST_CASE("await_operation polls until a success rule matches, on a constant schedule in virtual time") {
  manual_clock clock;
  std::vector<duration> checked;
  const timeline api{&clock, {0s, 5s, 12s}, {"PENDING", "BUILDING", "ACTIVE"}, &checked};

  const auto result = pollster::await_operation(clock, api, server_rules(), pollster::constant{2s});

  CHECK(result.cause == cause::done);
  REQUIRE(result.ok());
  CHECK(result.value().state == "ACTIVE");
  CHECK(checked == std::vector<duration>{0s, 2s, 4s, 6s, 8s, 10s, 12s});
  CHECK(result.attempts == 7);
  CHECK(result.elapsed == 12s);
  REQUIRE(result.report.matched);
  CHECK(result.report.matched->index == 0);
  CHECK(result.report.matched->state == rule_state::success);
  CHECK(result.report.matched->description == "state == \"ACTIVE\"");
  CHECK_FALSE(result.report.matched->on_error);
  CHECK(result.report.why == "rule 0 (success) matched the value: state == \"ACTIVE\", after 7 checks");
}

TEST_CASE("the first matching rule wins, even when a later rule matches too") {
  manual_clock clock;
  auto fetch = [] { return server{"ERROR", {}, {}}; };
  SECTION("failure listed first") {
    const auto result = pollster::await_operation(
        clock, fetch,
        pollster::rules(pollster::fail_when(pollster::path(&server::state, "state") == "ERROR"),
                        pollster::succeed_when(pollster::path(&server::state, "state") != "ACTIVE")),
        pollster::constant{1s});
    CHECK(result.cause == cause::failed);
    REQUIRE(result.report.matched);
    CHECK(result.report.matched->index == 0);
    CHECK(result.report.matched->state == rule_state::failure);
    REQUIRE(result.last_value);
    CHECK(result.last_value->state == "ERROR");
    CHECK_FALSE(result.last_error);  // the failure is in the value, no error was invented
  }
  SECTION("success listed first") {
    const auto result = pollster::await_operation(
        clock, fetch,
        pollster::rules(pollster::succeed_when(pollster::path(&server::state, "state") != "ACTIVE"),
                        pollster::fail_when(pollster::path(&server::state, "state") == "ERROR")),
        pollster::constant{1s});
    CHECK(result.cause == cause::done);
    REQUIRE(result.report.matched);
    CHECK(result.report.matched->index == 0);
    CHECK(result.report.matched->description == "state != \"ACTIVE\"");
  }
  CHECK(since_start(clock) == 0s);
}

TEST_CASE("an error that matches no rule ends the await at once, explicitly") {
  manual_clock clock;
  int calls = 0;
  auto fetch = [&]() -> pollster::step<server, http_error> {
    ++calls;
    if (calls < 3) return pollster::pending(server{"BUILDING", {}, {}});
    return pollster::transient(http_error{403});
  };
  const auto result = pollster::await_operation(
      clock, fetch,
      pollster::rules(pollster::succeed_when(pollster::path(&server::state, "state") == "ACTIVE"),
                      pollster::retry_when(pollster::error_is(http_error{503}))),
      pollster::constant{10s}, pollster::after_elapsed{1h});
  CHECK(result.cause == cause::failed);
  CHECK(result.report.unmatched_error);
  CHECK_FALSE(result.report.matched);
  REQUIRE(result.last_error);
  CHECK(result.last_error->status == 403);
  REQUIRE(result.last_value);
  CHECK(result.last_value->state == "BUILDING");  // the last value seen is kept
  CHECK(result.attempts == 3);
  CHECK(result.elapsed == 20s);
  CHECK(result.report.why == "an error matched no rule, after 3 checks");
}

TEST_CASE("matched errors retry, fail or succeed as their rule says") {
  manual_clock clock;
  std::vector<int> statuses{503, 503, 404};
  std::size_t next = 0;
  auto fetch = [&]() -> pollster::step<server, http_error> {
    return pollster::transient(http_error{statuses[std::min(next++, statuses.size() - 1)]});
  };
  auto is_unavailable = [](const http_error& e) { return e.status == 503; };
  SECTION("a delete waiter: not found is success") {
    const auto result = pollster::await_operation(
        clock, fetch,
        pollster::rules(pollster::retry_when(pollster::error_if(is_unavailable, "service unavailable")),
                        pollster::succeed_when(pollster::error_is(http_error{404})).named("deleted")),
        pollster::constant{5s});
    CHECK(result.cause == cause::done);
    REQUIRE(result.report.matched);
    CHECK(result.report.matched->index == 1);
    CHECK(result.report.matched->on_error);
    CHECK(result.report.matched->description == "deleted");
    CHECK(result.attempts == 3);
    CHECK(result.elapsed == 10s);
  }
  SECTION("not found is a failure") {
    const auto result = pollster::await_operation(
        clock, fetch,
        pollster::rules(pollster::retry_when(pollster::error_if(is_unavailable, "service unavailable")),
                        pollster::fail_when(pollster::any_error())),
        pollster::constant{5s});
    CHECK(result.cause == cause::failed);
    CHECK_FALSE(result.report.unmatched_error);
    REQUIRE(result.report.matched);
    CHECK(result.report.matched->index == 1);
    CHECK(result.report.matched->description == "any error");
    REQUIRE(result.last_error);
    CHECK(result.last_error->status == 404);
  }
}

TEST_CASE("all_of and any_of look at every element of a projected list") {
  manual_clock clock;
  auto attached = pollster::path(&attachment::state, "state") == "attached";
  const auto all_attached = pollster::all_of(pollster::path(&server::attachments, "attachments"), attached);
  const auto any_failed = pollster::any_of(&server::volume_states, "error");

  CHECK(all_attached.describe() == "all attachments: state == \"attached\"");
  CHECK(any_failed.describe() == "any elements: == \"error\"");

  const server none{"ACTIVE", {}, {}};
  const server partly{"ACTIVE", {{"a", "attached"}, {"b", "attaching"}}, {"in-use", "creating"}};
  const server fully{"ACTIVE", {{"a", "attached"}, {"b", "attached"}}, {"in-use", "error"}};
  CHECK_FALSE(all_attached.matches(none));  // "all of nothing" is not success
  CHECK_FALSE(all_attached.matches(partly));
  CHECK(all_attached.matches(fully));
  CHECK_FALSE(any_failed.matches(none));
  CHECK_FALSE(any_failed.matches(partly));
  CHECK(any_failed.matches(fully));

  std::vector<server> responses{none, partly, fully};
  std::size_t at = 0;
  const auto result = pollster::await_operation(
      clock, [&] { return responses[std::min(at++, responses.size() - 1)]; },
      pollster::rules(pollster::succeed_when(all_attached)), pollster::constant{3s});
  CHECK(result.ok());
  CHECK(result.attempts == 3);
  CHECK(result.elapsed == 6s);
}

TEST_CASE("transitions are reported once per change of state, the first observation included") {
  manual_clock clock;
  std::vector<duration> checked;
  const timeline api{&clock, {0s, 5s, 12s}, {"PENDING", "BUILDING", "ACTIVE"}, &checked};
  std::vector<std::string> seen;
  const auto result = pollster::await_operation(
      clock, api, server_rules(), pollster::constant{2s}, pollster::never{}, {},
      pollster::on_transition(&server::state, [&](const pollster::transition<std::string>& t) {
        seen.push_back((t.from ? *t.from : std::string("(none)")) + " -> " + t.to + " at check " +
                       std::to_string(t.attempt) + ", " + pollster::detail::duration_text(t.elapsed));
      }));
  CHECK(result.ok());
  CHECK(result.report.transitions == 3);
  CHECK(seen == std::vector<std::string>{"(none) -> PENDING at check 1, 0s", "PENDING -> BUILDING at check 4, 6s",
                                         "BUILDING -> ACTIVE at check 7, 12s"});
}

TEST_CASE("a server hint lengthens the wait, and the stop rule's exhaustion keeps the last value") {
  manual_clock clock;
  std::vector<duration> checked;
  auto fetch = [&]() -> pollster::step<server, http_error> {
    checked.push_back(since_start(clock));
    return pollster::pending(server{"BUILDING", {}, {}}, pollster::retry_after(30s));
  };
  const auto result = pollster::await_operation(clock, fetch, server_rules(), pollster::constant{1s},
                                                pollster::after_attempts{4});
  CHECK(result.cause == cause::exhausted);
  CHECK(checked == std::vector<duration>{0s, 30s, 60s, 90s});
  REQUIRE(result.last_value);
  CHECK(result.last_value->state == "BUILDING");
  CHECK_FALSE(result.report.matched);
  CHECK(result.report.why == "the stop rule ended the wait (attempts) after 4 checks");
}

TEST_CASE("a cancelled await reports cancelled with the last value") {
  manual_clock clock;
  pollster::cancel_source stop;
  pollster::poll_options options;
  options.cancel = stop.get_token();
  int calls = 0;
  auto fetch = [&] {
    if (++calls == 2) stop.request_cancel();
    return server{"BUILDING", {}, {}};
  };
  const auto result = pollster::await_operation(clock, fetch, server_rules(), pollster::constant{1s},
                                                pollster::never{}, options);
  CHECK(result.cause == cause::cancelled);
  CHECK(result.attempts == 2);
  REQUIRE(result.last_value);
  CHECK(result.last_value->state == "BUILDING");
  CHECK(result.report.why == "cancelled after 2 checks");
}

TEST_CASE("awaits run on a runner through runner.submit(awaiting(...)), many in virtual time") {
  manual_clock clock;
  pollster::runner<manual_clock> runner(clock);
  std::vector<std::string> finished;
  std::vector<duration> checked;
  for (int i = 0; i < 3; ++i) {
    const duration ready = std::chrono::seconds(10 * (i + 1));
    auto fetch = [&clock, ready] { return server{since_start(clock) >= ready ? "ACTIVE" : "BUILDING", {}, {}}; };
    runner.submit(pollster::awaiting(fetch, server_rules()), pollster::constant{4s}, pollster::never{},
                           [&finished, &clock, i](const auto& result) {
                             finished.push_back(std::to_string(i) + ": " + pollster::to_string(result.cause) +
                                                " at " + pollster::detail::duration_text(since_start(clock)) +
                                                " (" + result.report.why + ")");
                           });
  }
  auto cancelled = runner.submit(pollster::awaiting([] { return server{"BUILDING", {}, {}}; }, server_rules()),
                                 pollster::constant{4s}, pollster::never{}, [&finished](const auto& result) {
                                            finished.push_back(std::string("x: ") + pollster::to_string(result.cause));
                                          });
  runner.run_until(manual_clock::time_point{} + 15s);
  cancelled.cancel();
  runner.run();
  CHECK(finished == std::vector<std::string>{
                        "0: done at 12s (rule 0 (success) matched the value: state == \"ACTIVE\", after 4 checks)",
                        "x: cancelled",
                        "1: done at 20s (rule 0 (success) matched the value: state == \"ACTIVE\", after 6 checks)",
                        "2: done at 32s (rule 0 (success) matched the value: state == \"ACTIVE\", after 9 checks)"});
}

TEST_CASE("a fetch that throws propagates out of the blocking await, and is captured on the runner") {
  manual_clock clock;
  auto fetch = []() -> server { throw std::runtime_error("connection refused"); };
  CHECK_THROWS_AS(pollster::await_operation(clock, fetch, server_rules(), pollster::constant{1s}), std::runtime_error);

  pollster::runner<manual_clock> runner(clock);
  std::string why;
  runner.submit(pollster::awaiting(fetch, server_rules()), pollster::constant{1s}, pollster::never{},
                [&](const auto& result) { why = result.report.why; });
  runner.run();
  CHECK(why == "the fetch threw, at check 1");
}

TEST_CASE("a nudge that arrives while a check runs brings exactly one check forward on the runner") {
  // Regression: the radix heap kept a cached minimum for an entry already taken out, so the runner made the check
  // after the nudged one at once too, then a third one.
  manual_clock clock;
  pollster::runner<manual_clock> runner(clock);
  pollster::handle h;
  std::vector<duration> checked;
  auto fetch = [&] {
    checked.push_back(since_start(clock));
    if (checked.size() == 2) h.nudge();  // a callback arrives during the second check
    return server{"BUILDING", {}, {}};
  };
  std::uint32_t nudges = 0;
  h = runner.submit(pollster::awaiting(fetch, server_rules()), pollster::constant{40s}, pollster::after_attempts{5},
                             [&](const auto& result) { nudges = result.nudges; });
  runner.run();
  CHECK(checked == std::vector<duration>{0s, 40s, 40s, 80s, 120s});
  CHECK(nudges == 1);
}

namespace {
/// A status type that can be moved but neither default-constructed nor assigned.
struct frozen_status {
  explicit frozen_status(std::string s) : state(std::move(s)) {}
  frozen_status(frozen_status&&) = default;
  frozen_status(const frozen_status&) = default;
  frozen_status& operator=(const frozen_status&) = delete;
  frozen_status& operator=(frozen_status&&) = delete;
  std::string state;
};
}  // namespace

TEST_CASE("await_operation needs only movable value types") {
  manual_clock clock;
  int calls = 0;
  auto fetch = [&] { return frozen_status(++calls < 3 ? "BUILD" : "ACTIVE"); };
  const auto result = pollster::await_operation(
      clock, fetch, pollster::succeed_when(pollster::path(&frozen_status::state, "state") == "ACTIVE"),
      pollster::constant{1s});
  REQUIRE(result.ok());
  CHECK(result.value().state == "ACTIVE");
  CHECK(result.attempts == 3);
}
