#include "pollster_catch.hpp"

#include <pollster/poll.hpp>

#include "cancel_latency.hpp"
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <atomic>
#include <memory>
#include <thread>
#include <type_traits>
#include <variant>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pollster::cause;
using pollster::delay_reason;
using pollster::duration;
using pollster::manual_clock;
using pollster::poll_state;
using pollster::stop_reason;

namespace {

using status_step = pollster::step<std::string, std::string>;

duration since_start(const manual_clock& clock) { return clock.now().time_since_epoch(); }

/// Records every hook call as text, the way Heat's scheduler tests record calls on their mocks.
struct recorder {
  std::vector<std::string>* log;
  void before_sleep(const poll_state& s, delay_reason) const {
    log->push_back("sleep " + pollster::detail::duration_text(s.next_delay));
  }
};

/// A Heat task as TaskRunner drives it: each call of the check is one TaskRunner step; the task does its work
/// ("stepN"), then yields `period` times before the next piece of work, and finishes after the last yields.
struct heat_task {
  std::vector<int> periods;
  std::vector<std::string>* log;
  std::size_t work = 0;  // pieces of work done
  int yields_left = 0;

  pollster::step<int, std::string> operator()(const poll_state& state) {
    if (yields_left == 0) {
      if (work == periods.size()) return pollster::done(static_cast<int>(work));
      log->push_back("step" + std::to_string(work + 1));
      yields_left = periods[work++];
    }
    --yields_left;
    // Heat's TaskRunner.start() sleeps 0 s once after the first step (an eventlet yield); then wait_time each.
    if (state.attempt == 1) return pollster::poll_again_in(0s);
    return pollster::pending();
  }
};

}  // namespace

TEST_CASE("factories build the steps a check returns", "[poll][step]") {
  const status_step waiting = pollster::pending();
  CHECK(waiting.kind == pollster::step_kind::pending);
  CHECK_FALSE(waiting.value);
  CHECK_FALSE(waiting.hint);

  const status_step building = pollster::pending("BUILD", pollster::retry_after(30s));
  CHECK(building.value == std::string("BUILD"));
  CHECK(building.hint.kind() == pollster::retry_hint::form::after);
  CHECK(building.hint.value() == 30s);

  const status_step active = pollster::done("ACTIVE");
  CHECK(active.is_done());
  CHECK(active.value == std::string("ACTIVE"));

  const status_step broken = pollster::failed("ERROR: no valid host");
  CHECK(broken.is_failed());
  CHECK(broken.error == std::string("ERROR: no valid host"));

  const status_step flaky = pollster::transient("503 Service Unavailable");
  CHECK(flaky.kind == pollster::step_kind::transient);
  CHECK(flaky.error == std::string("503 Service Unavailable"));

  const status_step directed = pollster::poll_again_in(7s);
  CHECK(directed.directed == duration{7s});

  const status_step limited = pollster::throttled(pollster::retry_after(2min));
  CHECK(limited.kind == pollster::step_kind::pending);
  CHECK(limited.throttled);
  CHECK(limited.hint.value() == 2min);

  const status_step limited_error = pollster::throttled("429 Too Many Requests", pollster::retry_after(5s));
  CHECK(limited_error.kind == pollster::step_kind::transient);
  CHECK(limited_error.throttled);

  const status_step unchanged = pollster::not_modified(pollster::retry_after(60s));
  CHECK(unchanged.kind == pollster::step_kind::pending);
  CHECK(unchanged.not_modified);
  CHECK_FALSE(unchanged.value);
  CHECK_FALSE(unchanged.error);
  CHECK(unchanged.hint.value() == 60s);
  CHECK_FALSE(waiting.not_modified);

  CHECK(pollster::retry_after(-5s).value() == 0s);                   // "come back in the past" is "now"
  CHECK_FALSE(pollster::retry_after(std::optional<duration>{}));     // a missing header is no hint
  CHECK_THROWS_WITH(pollster::poll_again_in(-1s), "pollster::poll_again_in: delay must be >= 0, got -1s");
}

namespace {
/// A value type with no default constructor and no assignment, as some API clients' models are.
struct server {
  explicit server(std::string s) : status(std::move(s)) {}
  server(const server&) = default;
  server(server&&) = default;
  server& operator=(const server&) = delete;
  server& operator=(server&&) = delete;
  std::string status;
};
}  // namespace

TEST_CASE("a value or error type needs neither a default constructor nor assignment", "[poll][step]") {
  manual_clock clock;
  int calls = 0;
  auto check = [&]() -> pollster::step<server, server> {
    if (++calls == 1) return pollster::pending(server{"BUILD"});
    if (calls == 2) return pollster::transient(server{"503"});
    return pollster::done(server{"ACTIVE"});
  };
  const auto result = pollster::poll_until(clock, check, pollster::constant{1s});
  CHECK(result.value().status == "ACTIVE");
  CHECK(result.last_error->status == "503");
}

TEST_CASE("Heat's scheduler test: a task polled every 2nd step for 3 steps with a 1 s wait", "[poll][heat]") {
  std::vector<std::string> log;
  manual_clock clock;
  const auto result = pollster::poll_until(clock, heat_task{{2, 2, 2}, &log}, pollster::constant{1s}, pollster::never{},
                                           {}, recorder{&log});
  const std::vector<std::string> heat = {"step1", "sleep 0s", "sleep 1s", "step2", "sleep 1s",
                                         "sleep 1s", "step3", "sleep 1s", "sleep 1s"};
  CHECK(log == heat);
  CHECK(result.cause == cause::done);
  CHECK(result.attempts == 7);
  CHECK(result.elapsed == 5s);
}

TEST_CASE("Heat's scheduler test: dynamic periods 2, 4, 1", "[poll][heat]") {
  std::vector<std::string> log;
  manual_clock clock;
  const auto result = pollster::poll_until(clock, heat_task{{2, 4, 1}, &log}, pollster::constant{1s}, pollster::never{},
                                           {}, recorder{&log});
  const std::vector<std::string> heat = {"step1",    "sleep 0s", "sleep 1s", "step2",    "sleep 1s",
                                         "sleep 1s", "sleep 1s", "sleep 1s", "step3",    "sleep 1s"};
  CHECK(log == heat);
  CHECK(result.attempts == 8);
  CHECK(result.elapsed == 6s);
}

TEST_CASE("the 10-minute Heat operation: 53 checks including the immediate one, done at 601.14 s", "[poll][heat]") {
  manual_clock clock;
  auto check = [&]() -> status_step {
    if (since_start(clock) >= 600s) return pollster::done("CREATE_COMPLETE");
    return pollster::pending("CREATE_IN_PROGRESS");
  };
  const auto result = pollster::poll_until(clock, check, pollster::presets::heat());
  CHECK(result.cause == cause::done);
  CHECK(result.value() == "CREATE_COMPLETE");
  CHECK(result.attempts == 53);
  CHECK(result.elapsed == pollster::plan_for(pollster::presets::heat(), 600s).noticed_at);
  CHECK(result.elapsed > 601135ms);
  CHECK(result.elapsed < 601145ms);
  CHECK(result.slept == result.elapsed);  // virtual checks take no time
  CHECK(clock.sleep_count() == 52);
}

TEST_CASE("Heat's Delay resource: a 60 s wait is checked at 0, 30, 45, 52, 56, 58, 59, 60", "[poll][heat]") {
  manual_clock clock;
  std::vector<duration> checked_at;
  auto check = [&](const poll_state& s) -> pollster::step<bool, std::string> {
    checked_at.push_back(s.elapsed);
    const duration remaining = 60s - s.elapsed;
    if (remaining <= 0s) return pollster::done(true);
    return pollster::poll_again_in(pollster::halve_toward(remaining));
  };
  const auto result = pollster::poll_until(clock, check, pollster::constant{1s});
  const std::vector<duration> heat = {0s, 30s, 45s, 52s, 56s, 58s, 59s, 60s};
  CHECK(checked_at == heat);
  CHECK(result.cause == cause::done);
  CHECK(pollster::halve_toward(15s) == 7s);  // Python's 15 // 2
  CHECK(pollster::halve_toward(3500ms) == 1s);
  CHECK(pollster::halve_toward(500ms) == 1s);  // Heat polls again one whole step later
  CHECK(pollster::halve_toward(-1s) == 0s);
}

// The table comes from Heat's own code: delay.py's Delay._check_complete and scheduler.py's TaskRunner.step (Heat
// 26.0.1, openstack/heat at 526defd0), run on a clock that steps once a second. Heat checks one step after
// handle_create, so the run starts with a 1 s wait; a fractional wait is seen at the next whole step.
TEST_CASE("halve_toward reproduces Heat's Delay resource, fractional waits included", "[poll][heat]") {
  struct row {
    double wait_seconds;
    std::vector<int> heat_checks;  // seconds after handle_create
  };
  const row r = GENERATE(row{60, {1, 30, 45, 52, 56, 58, 59, 60}}, row{60.5, {1, 30, 45, 52, 56, 58, 59, 60, 61}},
                         row{61, {1, 31, 46, 53, 57, 59, 60, 61}}, row{0.5, {1}}, row{3.5, {1, 2, 3, 4}},
                         row{4, {1, 2, 3, 4}}, row{7.25, {1, 4, 5, 6, 7, 8}},
                         row{100.9, {1, 50, 75, 87, 93, 96, 98, 99, 100, 101}},
                         row{3600.5, {1, 1800, 2700, 3150, 3375, 3487, 3543, 3571, 3585, 3592, 3596, 3598, 3599, 3600,
                                      3601}});
  INFO("a Delay of " << r.wait_seconds << " s");
  const duration wait = std::chrono::duration_cast<duration>(std::chrono::duration<double>(r.wait_seconds));
  manual_clock clock;
  std::vector<duration> checked_at;
  auto check = [&](const poll_state& s) -> pollster::step<bool, std::string> {
    checked_at.push_back(s.elapsed);
    if (s.elapsed >= wait) return pollster::done(true);
    return pollster::poll_again_in(pollster::halve_toward(wait - s.elapsed));
  };
  pollster::poll_options options;
  options.wait_first = true;  // Heat's first check comes one scheduler step after handle_create
  const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::never{}, options);
  std::vector<duration> expected;
  for (const int t : r.heat_checks) expected.push_back(std::chrono::seconds(t));
  CHECK(checked_at == expected);
  CHECK(result.cause == cause::done);
}

TEST_CASE("Kubernetes: an immediate poll with an already-cancelled token runs the check once", "[poll][cancel]") {
  manual_clock clock;
  pollster::cancel_source cancel;
  cancel.request_cancel();
  int calls = 0;
  auto check = [&]() -> status_step {
    ++calls;
    return pollster::pending("BUILD");
  };
  pollster::poll_options options;
  options.cancel = cancel.get_token();
  const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::never{}, options);
  CHECK(calls == 1);
  CHECK(result.cause == cause::cancelled);
  CHECK(result.last_value == std::string("BUILD"));  // cancellation keeps what was seen
  CHECK(result.attempts == 1);
  CHECK(clock.sleep_count() == 0);
}

TEST_CASE("Kubernetes: without the immediate poll, a cancelled token runs the check zero times", "[poll][cancel]") {
  manual_clock clock;
  pollster::cancel_source cancel;
  cancel.request_cancel();
  int calls = 0;
  auto check = [&]() -> status_step {
    ++calls;
    return pollster::pending();
  };
  pollster::poll_options options;
  options.cancel = cancel.get_token();
  options.wait_first = true;
  const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::never{}, options);
  CHECK(calls == 0);
  CHECK(result.cause == cause::cancelled);
  CHECK(result.attempts == 0);
  CHECK_FALSE(result.last_value);
}

namespace {
/// A clock whose timer fires and whose stop request arrives at the same moment: the sleep reaches its end (and
/// reports success), but the token is stopped by then.
struct racing_clock {
  using duration = manual_clock::duration;
  using time_point = manual_clock::time_point;
  manual_clock inner;
  pollster::cancel_source* cancel;
  int cancel_on_sleep;
  int sleeps = 0;

  time_point now() const noexcept { return inner.now(); }
  bool sleep_until(time_point until, const pollster::cancel_token&) {
    inner.advance_to(until);
    if (++sleeps == cancel_on_sleep) cancel->request_cancel();
    return true;  // the timer fired
  }
};
}  // namespace

TEST_CASE("Kubernetes: after cancellation no further check runs, even if the timer fired at the same moment",
          "[poll][cancel]") {
  pollster::cancel_source cancel;
  racing_clock clock{{}, &cancel, 3};
  int calls = 0;
  auto check = [&]() -> status_step {
    ++calls;
    return pollster::pending(std::to_string(calls));
  };
  pollster::poll_options options;
  options.cancel = cancel.get_token();
  const auto result = pollster::poll_until(clock, check, pollster::constant{10s}, pollster::never{}, options);
  CHECK(calls == 3);  // t = 0, 10, 20; the timer of t = 30 fired with the stop request
  CHECK(result.cause == cause::cancelled);
  CHECK(result.last_value == std::string("3"));
  CHECK(result.elapsed == 30s);
  CHECK(result.slept == 30s);
}

TEST_CASE("Kubernetes: a deadline is reported as its own cause, after a last sleep shortened to land on it",
          "[poll][deadline]") {
  manual_clock clock;
  std::vector<std::string> log;
  std::vector<delay_reason> reasons;
  pollster::hook_functions<std::string, std::string> hooks;
  hooks.on_before_sleep = [&](const poll_state& s, delay_reason why) {
    log.push_back(pollster::detail::duration_text(s.next_delay));
    reasons.push_back(why);
  };
  auto check = []() -> status_step { return pollster::pending("BUILD"); };
  const auto result =
      pollster::poll_until(clock, check, pollster::constant{3s}, pollster::before_deadline{10s}, {}, hooks);
  CHECK(log == std::vector<std::string>{"3s", "3s", "3s", "1s"});
  CHECK(reasons.back() == delay_reason::deadline);
  CHECK(result.cause == cause::deadline);
  CHECK(result.stop == stop_reason::deadline);
  CHECK(result.attempts == 5);  // 0, 3, 6, 9 and the final check on the deadline at 10
  CHECK(result.elapsed == 10s);
  CHECK(result.last_value == std::string("BUILD"));
}

TEST_CASE("exhaustion keeps the last value and error and invents nothing", "[poll][stop]") {
  manual_clock clock;
  int calls = 0;
  auto check = [&]() -> status_step {
    ++calls;
    if (calls == 1) return pollster::pending("BUILD");
    return pollster::transient("503 Service Unavailable");
  };
  const auto result = pollster::poll_until(clock, check, pollster::presets::kubernetes_example(),
                                           pollster::after_attempts{4});
  CHECK(result.cause == cause::exhausted);
  CHECK(result.stop == stop_reason::attempts);
  CHECK(result.attempts == 4);
  CHECK(result.elapsed == 6s);  // 1 + 2 + 3: Kubernetes' wait.Backoff{1s, x2, cap 3s}
  CHECK(result.last_value == std::string("BUILD"));
  CHECK(result.last_error == std::string("503 Service Unavailable"));
  CHECK_THROWS_AS(result.value(), pollster::bad_outcome_access);
  CHECK_THROWS_WITH(result.error(), "pollster::outcome: error() needs cause failed, got exhausted");
}

TEST_CASE("a not_modified step keeps the last value and obeys its hint", "[poll][step]") {
  manual_clock clock;
  int calls = 0;
  auto check = [&]() -> status_step {
    ++calls;
    if (calls == 1) return pollster::pending("BUILD");
    return pollster::not_modified(pollster::retry_after(60s));
  };
  const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{3});
  CHECK(result.cause == cause::exhausted);
  CHECK(result.attempts == 3);
  CHECK(result.elapsed == 1s + 60s);  // the first response had no hint; the 304 asked for 60 s
  CHECK(result.last_value == std::string("BUILD"));
  CHECK_FALSE(result.last_error);
}

TEST_CASE("a permanent failure ends the run at once with the error", "[poll]") {
  manual_clock clock;
  auto check = []() -> status_step { return pollster::failed("ERROR"); };
  const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{10});
  CHECK(result.cause == cause::failed);
  CHECK(result.error() == "ERROR");
  CHECK(result.attempts == 1);
  CHECK_THROWS_WITH(result.value(), "pollster::outcome: value() needs cause done, got failed");
}

TEST_CASE("Retry-After: 120 with a 20 s cap waits 120 s, unless the named maximum hint is lower", "[poll][hint]") {
  manual_clock clock;
  std::vector<delay_reason> reasons;
  pollster::hook_functions<std::string, std::string> hooks;
  hooks.on_before_sleep = [&](const poll_state&, delay_reason why) { reasons.push_back(why); };
  int calls = 0;
  auto check = [&]() -> status_step {
    if (++calls == 2) return pollster::done("ACTIVE");
    const auto retry_after = pollster::parse_retry_after("120", std::chrono::system_clock::now());
    return pollster::pending("BUILD", pollster::retry_after(retry_after));
  };
  const pollster::geometric capped{20s, 1.1, 20s};

  SECTION("the hint is a floor over the schedule") {
    const auto result = pollster::poll_until(clock, check, capped, pollster::never{}, {}, hooks);
    CHECK(result.elapsed == 120s);
    CHECK(reasons == std::vector<delay_reason>{delay_reason::hint});
  }
  SECTION("max_hint caps the hint, not the schedule") {
    pollster::poll_options options;
    options.max_hint = 60s;
    const auto result = pollster::poll_until(clock, check, capped, pollster::never{}, options, hooks);
    CHECK(result.elapsed == 60s);
  }
  SECTION("a max_hint below the schedule's delay leaves the schedule in charge") {
    pollster::poll_options options;
    options.max_hint = 5s;
    const auto result = pollster::poll_until(clock, check, capped, pollster::never{}, options, hooks);
    CHECK(result.elapsed == 20s);
    CHECK(reasons == std::vector<delay_reason>{delay_reason::schedule});
  }
}

TEST_CASE("a hint past the deadline ends the run with cause deadline and the last value, without sleeping",
          "[poll][hint][deadline]") {
  manual_clock clock;
  int calls = 0;
  auto check = [&]() -> status_step {
    ++calls;
    if (calls == 1) return pollster::pending("BUILD");
    return pollster::pending("BUILD 50%", pollster::retry_after(120s));
  };
  const auto result = pollster::poll_until(clock, check, pollster::constant{10s}, pollster::before_deadline{100s});
  CHECK(calls == 2);
  CHECK(result.cause == cause::deadline);
  CHECK(result.stop == stop_reason::deadline);
  CHECK(result.last_value == std::string("BUILD 50%"));
  CHECK(result.elapsed == 10s);  // ended at the second check; no sleep towards 130 s
  CHECK(clock.sleep_count() == 1);
}

TEST_CASE("a remembered hint is the fallback for later responses while it is in force", "[poll][hint]") {
  manual_clock clock;
  std::vector<duration> delays;
  pollster::hook_functions<std::string, std::string> hooks;
  hooks.on_before_sleep = [&](const poll_state& s, delay_reason) { delays.push_back(s.next_delay); };
  int calls = 0;
  auto check = [&]() -> status_step {
    if (++calls == 1) return pollster::pending(pollster::retry_after(30s));
    return pollster::pending();
  };
  pollster::poll_options options;

  SECTION("by default, for the response that carried it only: a Retry-After speaks about the next request") {
    pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{4}, options, hooks);
    CHECK(delays == std::vector<duration>{30s, 1s, 1s});
  }
  SECTION("until a response brings a new one, with an unlimited lifetime") {
    options.hint_lifetime = duration::max();
    pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{4}, options, hooks);
    CHECK(delays == std::vector<duration>{30s, 30s, 30s});
  }
  SECTION("for hint_lifetime after the response that carried it") {
    options.hint_lifetime = 45s;
    pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{4}, options, hooks);
    CHECK(delays == std::vector<duration>{30s, 30s, 1s});  // at t = 60 the hint of t = 0 has expired
  }
  SECTION("not at all with a zero lifetime") {
    options.hint_lifetime = 0s;
    pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{4}, options, hooks);
    CHECK(delays == std::vector<duration>{30s, 1s, 1s});
  }
}

TEST_CASE("a hint at a time point of the poller's clock; another clock's is refused", "[poll][hint]") {
  manual_clock clock;
  int calls = 0;
  auto at_hint = [&]() -> status_step {
    if (++calls == 2) return pollster::done("ok");
    return pollster::pending(pollster::retry_at(clock.now() + 50s));
  };
  CHECK(pollster::poll_until(clock, at_hint, pollster::constant{1s}).elapsed == 50s);

  auto wrong_clock = []() -> status_step { return pollster::pending(pollster::retry_at(std::chrono::system_clock::now())); };
  CHECK_THROWS_WITH(pollster::poll_until(clock, wrong_clock, pollster::constant{1s}),
                    "pollster::poller: hint must be a time point of the poller's clock, got a time point of "
                    "another clock");
}

TEST_CASE("hooks see attempt, elapsed, last and next delay, and why", "[poll][hooks]") {
  struct hooks_log {
    std::vector<std::string>* log;
    void before_attempt(const poll_state& s) const {
      log->push_back("attempt " + std::to_string(s.attempt) + " at " + pollster::detail::duration_text(s.elapsed) +
                     " after " + pollster::detail::duration_text(s.last_delay));
    }
    void after_attempt(const poll_state& s, const pollster::step<int, std::string>& st) const {
      log->push_back("got " + std::to_string(static_cast<int>(st.kind)) + " at " +
                     pollster::detail::duration_text(s.elapsed));
    }
    void before_sleep(const poll_state& s, delay_reason why) const {
      log->push_back(std::string("sleep ") + pollster::detail::duration_text(s.next_delay) + " " +
                     pollster::to_string(why));
    }
  };
  std::vector<std::string> log;
  manual_clock clock;
  int calls = 0;
  auto check = [&]() -> pollster::step<int, std::string> {
    switch (++calls) {
      case 1: return pollster::pending(pollster::retry_after(5s));
      case 2: return pollster::poll_again_in(3s);
      case 3: return pollster::pending();
      default: return pollster::done(calls);
    }
  };
  pollster::poll_options options;
  options.hint_lifetime = 0s;  // each hint for its own response only
  const auto result = pollster::poll_until(clock, check, pollster::constant{2s}, pollster::before_deadline{9s},
                                           options, hooks_log{&log});
  const std::vector<std::string> expected = {
      "attempt 1 at 0s after 0s", "got 0 at 0s", "sleep 5s hint",
      "attempt 2 at 5s after 5s", "got 0 at 5s", "sleep 3s directed",
      "attempt 3 at 8s after 3s", "got 0 at 8s", "sleep 1s deadline",
      "attempt 4 at 9s after 1s", "got 1 at 9s",
  };
  CHECK(log == expected);
  CHECK(result.value() == 4);
}

TEST_CASE("wait_first sleeps the schedule's first delay before the first check", "[poll]") {
  manual_clock clock;
  std::vector<duration> checked_at;
  auto check = [&](const poll_state& s) -> status_step {
    checked_at.push_back(s.elapsed);
    return s.attempt == 3 ? status_step{pollster::done("ok")} : status_step{pollster::pending()};
  };
  pollster::poll_options options;
  options.wait_first = true;
  const auto result = pollster::poll_until(clock, check, pollster::presets::kubernetes_example(), pollster::never{},
                                           options);
  CHECK(checked_at == std::vector<duration>{1s, 3s, 6s});
  CHECK(result.slept == 6s);
}

TEST_CASE("an absolute deadline in the options ends the run like a stop rule's", "[poll][deadline]") {
  manual_clock clock{manual_clock::time_point{1h}};
  auto check = []() -> status_step { return pollster::pending(); };
  pollster::poll_options options;
  options.deadline = pollster::at(clock.now() + 25s);
  const auto result = pollster::poll_until(clock, check, pollster::constant{10s}, pollster::never{}, options);
  CHECK(result.cause == cause::deadline);
  CHECK(result.attempts == 4);  // 0, 10, 20, 25
  CHECK(result.elapsed == 25s);

  options.deadline = pollster::at(std::chrono::system_clock::now());
  CHECK_THROWS_WITH(pollster::poll_until(clock, check, pollster::constant{10s}, pollster::never{}, options),
                    "pollster::poll_options: deadline must be a time point of the poller's clock, got a time point "
                    "of another clock");
}

TEST_CASE("invalid options throw invalid_argument naming the option", "[poll][errors]") {
  manual_clock clock;
  auto check = []() -> status_step { return pollster::pending(); };
  pollster::poll_options options;
  options.max_hint = -1s;
  CHECK_THROWS_WITH(pollster::poll_until(clock, check, pollster::constant{1s}, pollster::never{}, options),
                    "pollster::poll_options: max_hint must be >= 0, got -1s");
  options = {};
  options.hint_lifetime = -2ms;
  CHECK_THROWS_AS(pollster::poll_until(clock, check, pollster::constant{1s}, pollster::never{}, options),
                  std::invalid_argument);
  CHECK_THROWS_WITH(pollster::halve_toward(10s, 0s), "pollster::halve_toward: granularity must be > 0, got 0s");
}

namespace {
struct check_error {
  int code;
};
}  // namespace

TEST_CASE("a check that throws propagates out of poll_until unchanged", "[poll][errors]") {
  manual_clock clock;
  int calls = 0;
  auto check = [&]() -> status_step {
    if (++calls == 3) throw check_error{42};
    return pollster::pending();
  };
  try {
    pollster::poll_until(clock, check, pollster::constant{1s});
    FAIL("poll_until returned although the check threw");
  } catch (const check_error& e) {
    CHECK(e.code == 42);
  }
  CHECK(calls == 3);
}

TEST_CASE("a poller stays consistent when its check throws, and a driver can capture the exception",
          "[poll][poller][errors]") {
  int calls = 0;
  auto check = [&]() -> status_step {
    if (++calls == 2) throw std::runtime_error("connection reset");
    return pollster::pending("BUILD");
  };
  using tp = manual_clock::time_point;
  auto p = pollster::make_poller(check, pollster::constant{5s}, pollster::never{}, tp{});
  p.step(tp{});
  CHECK(p.next_due() == tp{5s});
  CHECK_THROWS_AS(p.step(tp{5s}), std::runtime_error);
  CHECK(p.outcome().attempts == 2);  // the attempt that threw is counted
  CHECK_FALSE(p.done());
  CHECK(p.next_due() == tp{5s});     // still due: the driver may step again
  p.step(tp{6s});
  CHECK(p.outcome().attempts == 3);
  CHECK(p.next_due() == tp{11s});

  calls = 1;
  try {
    p.step(tp{11s});
  } catch (...) {
    p.capture(std::current_exception(), tp{11s});
  }
  REQUIRE(p.done());
  CHECK(p.outcome().cause == cause::exception);
  CHECK(p.outcome().last_value == std::string("BUILD"));
  CHECK_THROWS_WITH(std::rethrow_exception(p.outcome().exception), "connection reset");
  CHECK(p.next_due() == tp::max());
}

TEST_CASE("a nudge makes the poller due now; the schedule resumes, or restarts with reset_on_nudge",
          "[poll][poller][nudge]") {
  using tp = manual_clock::time_point;
  std::vector<bool> nudged;
  auto check = [&](const poll_state& s) -> status_step {
    nudged.push_back(s.nudged);
    return pollster::pending();
  };
  pollster::poll_options options;

  SECTION("resume") {
    auto p = pollster::make_poller(check, pollster::presets::kubernetes_example(), pollster::never{}, tp{}, options);
    p.step(tp{});       // next in 1 s
    p.step(tp{1s});     // next in 2 s
    CHECK(p.next_due() == tp{3s});
    p.nudge(tp{2s});
    CHECK(p.next_due() == tp{2s});
    p.step(tp{2s});
    CHECK(p.next_due() == tp{5s});  // the schedule went on: 3 s
    CHECK(nudged == std::vector<bool>{false, false, true});
    CHECK(p.outcome().nudges == 1);
  }
  SECTION("reset") {
    options.reset_on_nudge = true;
    auto p = pollster::make_poller(check, pollster::presets::kubernetes_example(), pollster::never{}, tp{}, options);
    p.step(tp{});
    p.step(tp{1s});
    p.nudge(tp{2s});
    p.step(tp{2s});
    CHECK(p.next_due() == tp{3s});  // back to the first delay: 1 s
  }
  SECTION("a nudge never delays a poller that is already due") {
    auto p = pollster::make_poller(check, pollster::constant{5s}, pollster::never{}, tp{}, options);
    p.nudge(tp{1s});
    CHECK(p.next_due() == tp{});
  }
}

TEST_CASE("a poller reports throttling and carries the budget wait a runner adds", "[poll][poller][runner]") {
  using tp = manual_clock::time_point;
  int calls = 0;
  auto check = [&]() -> status_step {
    if (++calls == 1) return pollster::throttled(pollster::retry_after(8s));
    return pollster::done("ok");
  };
  auto p = pollster::make_poller(check, pollster::constant{1s}, pollster::never{}, tp{});
  p.step(tp{});
  CHECK(p.last_throttled());
  CHECK(p.last_kind() == pollster::step_kind::pending);
  CHECK(p.last_delay() == 8s);
  CHECK(p.last_reason() == delay_reason::hint);
  p.add_budget_wait(2s);  // the budget held the due check back from 8 s to 10 s
  p.step(tp{10s});
  CHECK_FALSE(p.last_throttled());
  CHECK(p.outcome().cause == cause::done);
  CHECK(p.outcome().budget_wait == 2s);
  CHECK(p.outcome().slept == 10s);
  CHECK(p.outcome().elapsed == 10s);
}

TEST_CASE("a copy of a poller owns its own options, remembered hint, nudges and budget wait", "[poll][poller]") {
  using tp = manual_clock::time_point;
  int calls = 0;
  auto check = [&]() -> status_step {
    if (++calls == 1) return pollster::pending("BUILD", pollster::retry_after(30s));
    return pollster::pending("BUILD");
  };
  pollster::poll_options options;
  options.max_hint = 20s;
  options.hint_lifetime = duration::max();  // remembered until a new one arrives
  auto p = pollster::make_poller(check, pollster::constant{5s}, pollster::never{}, tp{}, options);
  p.step(tp{});
  CHECK(p.next_due() == tp{20s});  // the 30 s hint, capped by max_hint
  auto copy = p;
  p.nudge(tp{1s});
  p.add_budget_wait(3s);
  CHECK(p.next_due() == tp{1s});
  CHECK(copy.next_due() == tp{20s});
  copy.step(tp{20s});
  CHECK(copy.next_due() == tp{40s});  // the copy remembers the hint too, and its own max_hint
  CHECK(copy.last_reason() == delay_reason::hint);
  copy.cancel(tp{25s});
  p.cancel(tp{2s});
  CHECK(copy.outcome().nudges == 0);
  CHECK(copy.outcome().budget_wait == 0s);
  CHECK(copy.outcome().attempts == 2);
  CHECK(p.outcome().nudges == 1);
  CHECK(p.outcome().budget_wait == 3s);
  CHECK(p.outcome().attempts == 1);
}

TEST_CASE("a poller moved from is left valid: its cold part and deadline went with the move", "[poll][poller]") {
  using tp = manual_clock::time_point;
  auto check = []() -> status_step { return pollster::pending("BUILD"); };
  pollster::poll_options options;
  options.deadline = pollster::at(tp{10s});
  auto p = pollster::make_poller(check, pollster::constant{4s}, pollster::never{}, tp{}, options);
  auto q = std::move(p);
  q.step(tp{});
  q.step(q.next_due());
  q.step(q.next_due());
  CHECK(q.next_due() == tp{10s});  // the deadline moved with q: the last sleep is cut to land on it
  p.restart(tp{});                 // the source has default options now, and no deadline to look up
  p.step(tp{});
  p.step(p.next_due());
  p.step(p.next_due());
  CHECK(p.next_due() == tp{12s});
  CHECK_FALSE(p.done());
}

TEST_CASE("cancel ends a poller at once and keeps what it saw", "[poll][poller][cancel]") {
  using tp = manual_clock::time_point;
  auto check = []() -> status_step { return pollster::pending("BUILD"); };
  auto p = pollster::make_poller(check, pollster::constant{5s}, pollster::never{}, tp{});
  p.step(tp{});
  p.cancel(tp{2s});
  CHECK(p.done());
  CHECK(p.outcome().cause == cause::cancelled);
  CHECK(p.outcome().elapsed == 2s);
  CHECK(p.outcome().last_value == std::string("BUILD"));
  p.step(tp{5s});  // a step after the end does nothing
  CHECK(p.outcome().attempts == 1);
}

TEST_CASE("a poller is small and hooks that are unset cost no space", "[poll][poller]") {
  using tp = std::chrono::steady_clock::time_point;
  auto check = []() -> pollster::step<int, int> { return pollster::pending(); };
  using minimal = decltype(pollster::make_poller(check, pollster::constant{1s}, pollster::never{}, tp{}));
  using heat = decltype(pollster::make_poller(check, pollster::presets::heat(), pollster::before_deadline{15min}, tp{}));
  using hooked = pollster::poller<decltype(check), pollster::geometric, pollster::before_deadline, tp,
                                  pollster::hook_functions<int, int>>;
  // An empty check, `never` and no hooks take no space at all. Per run: the schedule, the last value and error,
  // attempts, elapsed and slept; start and next due; the last delay; one pointer to the cold part (options that
  // are not the default, a remembered hint, nudges, budget wait, a captured exception); eight bytes of state.
  CHECK(sizeof(minimal) == sizeof(pollster::constant) + 2 * sizeof(std::optional<int>) + sizeof(std::uint64_t) +
                               2 * sizeof(tp) + 3 * sizeof(pollster::duration) + sizeof(void*) + 8);
  CHECK(sizeof(heat) == sizeof(minimal) - sizeof(pollster::constant) + sizeof(pollster::geometric) +
                            sizeof(pollster::before_deadline));
  CHECK(sizeof(hooked) == sizeof(heat) + sizeof(pollster::hook_functions<int, int>));
  UNSCOPED_INFO("sizeof poller: constant/never " << sizeof(minimal) << " B, heat/before_deadline " << sizeof(heat)
                                                  << " B, outcome<int, int> " << sizeof(pollster::outcome<int, int>)
                                                  << " B");
  CHECK(sizeof(minimal) <= 88);
}

TEST_CASE("a transient error is retried on the schedule and its hint is a floor too", "[poll][hint]") {
  manual_clock clock;
  std::vector<duration> checked_at;
  auto check = [&](const poll_state& s) -> status_step {
    checked_at.push_back(s.elapsed);
    if (s.attempt == 1) return pollster::transient("503 Service Unavailable", pollster::retry_after(15s));
    if (s.attempt == 2) return pollster::transient("timeout");
    return pollster::done("ACTIVE");
  };
  pollster::poll_options options;
  options.hint_lifetime = 0s;
  const auto result = pollster::poll_until(clock, check, pollster::constant{2s}, pollster::never{}, options);
  CHECK(checked_at == std::vector<duration>{0s, 15s, 17s});
  CHECK(result.value() == "ACTIVE");
  CHECK(result.last_error == std::string("timeout"));  // kept even though the run succeeded
}

TEST_CASE("a remembered hint at a time point only holds until that time", "[poll][hint]") {
  manual_clock clock;
  std::vector<duration> checked_at;
  auto check = [&](const poll_state& s) -> status_step {
    checked_at.push_back(s.elapsed);
    if (s.attempt == 1) return pollster::pending(pollster::retry_at(clock.now() + 50s));
    if (s.attempt < 4) return pollster::pending();
    return pollster::done("ok");
  };
  pollster::poll_options remember;
  remember.hint_lifetime = duration::max();
  pollster::poll_until(clock, check, pollster::constant{5s}, pollster::never{}, remember);
  CHECK(checked_at == std::vector<duration>{0s, 50s, 55s, 60s});
}

TEST_CASE("a nudge brings a check forward past a server hint", "[poll][poller][nudge][hint]") {
  using tp = manual_clock::time_point;
  auto check = []() -> status_step { return pollster::pending(pollster::retry_after(120s)); };
  auto p = pollster::make_poller(check, pollster::constant{1s}, pollster::never{}, tp{});
  p.step(tp{});
  CHECK(p.next_due() == tp{120s});
  p.nudge(tp{7s});
  CHECK(p.next_due() == tp{7s});
  p.step(tp{7s});
  CHECK(p.next_due() == tp{127s});  // the fresh hint counts from the verifying check
}

TEST_CASE("a check that takes time: the next delay counts from its end", "[poll][poller]") {
  using tp = manual_clock::time_point;
  auto check = []() -> status_step { return pollster::pending(); };
  auto p = pollster::make_poller(check, pollster::constant{10s}, pollster::before_deadline{30s}, tp{});
  p.step(tp{}, [] { return tp{3s}; });
  CHECK(p.next_due() == tp{13s});
  CHECK(p.outcome().elapsed == 3s);
  CHECK(p.outcome().slept == 0s);
  p.step(tp{13s}, [] { return tp{25s}; });
  CHECK(p.next_due() == tp{30s});  // clamped to the deadline
  CHECK(p.last_reason() == delay_reason::deadline);
  p.step(tp{30s}, [] { return tp{31s}; });
  CHECK(p.outcome().cause == cause::deadline);
  CHECK(p.outcome().elapsed == 31s);
  CHECK(p.outcome().slept == 15s);
}

TEST_CASE("restart gives a poller a fresh run with a fresh schedule", "[poll][poller]") {
  using tp = manual_clock::time_point;
  auto check = [](const poll_state& s) -> status_step {
    return s.attempt == 3 ? status_step{pollster::done("ok")} : status_step{pollster::pending()};
  };
  pollster::poll_options options;
  options.wait_first = true;
  auto p = pollster::make_poller(check, pollster::presets::kubernetes_example(), pollster::never{}, tp{}, options);
  while (!p.done()) p.step(p.next_due());
  CHECK(p.outcome().elapsed == 6s);  // 1 + 2 + 3
  p.restart(tp{1h});
  CHECK(p.next_due() == tp{1h + 1s});  // wait_first kept; the schedule starts over
  while (!p.done()) p.step(p.next_due());
  CHECK(p.outcome().attempts == 3);
  CHECK(p.outcome().elapsed == 6s);
}

TEST_CASE("a deadline already passed ends the run before any check", "[poll][deadline]") {
  manual_clock clock{manual_clock::time_point{1h}};
  int calls = 0;
  auto check = [&]() -> status_step {
    ++calls;
    return pollster::pending();
  };
  pollster::poll_options options;
  options.deadline = pollster::at(manual_clock::time_point{30min});
  const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::never{}, options);
  CHECK(calls == 0);
  CHECK(result.cause == cause::deadline);
  CHECK(result.attempts == 0);
}

TEST_CASE("poll_until on the real steady clock returns at once when the first check is done", "[poll]") {
  auto check = []() -> pollster::step<int, std::string> { return pollster::done(7); };
  const auto result = pollster::poll_until(check, pollster::constant{1h}, pollster::before_deadline{1h});
  CHECK(result.value() == 7);
  CHECK(result.attempts == 1);
  CHECK(result.slept == 0s);

  pollster::cancel_source cancel;
  cancel.request_cancel();
  pollster::poll_options options;
  options.wait_first = true;
  options.cancel = cancel.get_token();
  const auto cancelled = pollster::poll_until(check, pollster::constant{1h}, pollster::never{}, options);
  CHECK(cancelled.cause == cause::cancelled);  // never slept the hour
  CHECK(cancelled.attempts == 0);
}

TEST_CASE("a million steps saturate instead of overflowing", "[poll][poller][saturation]") {
  using tp = manual_clock::time_point;
  auto check = []() -> pollster::step<int, int> { return pollster::pending(pollster::retry_after(pollster::duration::max())); };
  auto p = pollster::make_poller(check, pollster::geometric{1s, 2.0, pollster::duration::max()}, pollster::never{},
                                 tp{});
  for (int i = 0; i < 1000000; ++i) p.step(p.next_due());
  CHECK(p.next_due() == tp::max());
  CHECK(p.outcome().attempts == 1000000);
  CHECK(p.outcome().elapsed == pollster::duration::max());
  CHECK(p.outcome().slept == pollster::duration::max());
  CHECK_FALSE(p.done());
}

TEST_CASE("causes, step kinds and delay reasons have names for logs", "[poll]") {
  CHECK(std::string(pollster::to_string(cause::running)) == "running");
  CHECK(std::string(pollster::to_string(cause::exhausted)) == "exhausted");
  CHECK(std::string(pollster::to_string(cause::exception)) == "exception");
  CHECK(std::string(pollster::to_string(pollster::step_kind::transient)) == "transient");
  CHECK(std::string(pollster::to_string(delay_reason::directed)) == "directed");
}

#if POLLSTER_HAS_STD_STOP_TOKEN
namespace {
/// A clock whose third sleep is interrupted half-way by a std::stop_source (a std::jthread asking to stop).
struct interrupted_clock {
  using duration = manual_clock::duration;
  using time_point = manual_clock::time_point;
  manual_clock inner;
  std::stop_source* std_source;
  int sleeps = 0;

  time_point now() const noexcept { return inner.now(); }
  bool sleep_until(time_point until, const pollster::cancel_token& token) {
    if (++sleeps == 3) {
      inner.advance((until - inner.now()) / 2);
      std_source->request_stop();  // forwarded at once to the pollster token the sleep waits on
      return !token.cancel_requested();
    }
    return inner.sleep_until(until, token);
  }
};
}  // namespace

TEST_CASE("C++20: a std::stop_token cancels poll_until and interrupts its sleep", "[poll][cancel][cxx20]") {
  std::stop_source std_source;
  interrupted_clock clock{{}, &std_source};
  int calls = 0;
  auto check = [&]() -> status_step {
    ++calls;
    return pollster::pending("BUILD");
  };
  const auto result = pollster::poll_until(std_source.get_token(), clock, check, pollster::constant{10s});
  CHECK(calls == 3);  // 0, 10, 20; the sleep towards 30 was cut at 25
  CHECK(result.cause == cause::cancelled);
  CHECK(result.elapsed == 25s);
  CHECK(result.slept == 25s);
  CHECK(result.last_value == std::string("BUILD"));

  std::stop_source already;
  already.request_stop();
  manual_clock virtual_time;
  const auto immediate = pollster::poll_until(already.get_token(), virtual_time, check, pollster::constant{1s});
  CHECK(immediate.attempts == 1);
  CHECK(immediate.cause == cause::cancelled);
}
#endif

namespace {

/// A check that plays a script of steps (the last one repeats), optionally requests a stop at one attempt, and
/// writes down what it saw: the poll_state and the time.
struct scripted_check {
  std::vector<status_step> script;
  std::vector<std::string>* seen;
  const manual_clock* clock;
  pollster::cancel_source* cancel_at_source = nullptr;
  std::uint64_t cancel_at = 0;
  std::size_t next = 0;

  status_step operator()(const poll_state& s) {
    seen->push_back(std::to_string(s.attempt) + " at " + pollster::detail::duration_text(since_start(*clock)) +
                    " elapsed " + pollster::detail::duration_text(s.elapsed) + " after " +
                    pollster::detail::duration_text(s.last_delay));
    if (cancel_at_source != nullptr && s.attempt == cancel_at) cancel_at_source->request_cancel();
    const status_step result = script[std::min(next, script.size() - 1)];
    ++next;
    return result;
  }
};

/// The manual clock without `is_steady`: poll_until then guards against a clock that goes back.
struct unsteady_clock {
  using duration = manual_clock::duration;
  using time_point = manual_clock::time_point;
  manual_clock* inner;
  time_point now() const noexcept { return inner->now(); }
  bool sleep_until(time_point t, const pollster::cancel_token& token) { return inner->sleep_until(t, token); }
};

/// What poll_until did before it had a loop of its own: a poller stepped by hand on the clock.
template <class Clock, class Check, class Schedule, class Stop>
pollster::outcome<std::string, std::string> stepped_by_hand(Clock& clock, Check check, Schedule schedule, Stop stop,
                                                            const pollster::poll_options& options) {
  const auto start = clock.now();
  auto p = pollster::make_poller(std::move(check), std::move(schedule), std::move(stop), start, options);
  auto last = start;
  const auto finished = [&] { return last = clock.now(); };
  if (!options.wait_first && !p.done()) p.step(start, finished);
  while (!p.done()) {
    const auto due = p.next_due();
    if (due > last && !clock.sleep_until(due, options.cancel)) break;
    if (options.cancel.cancel_requested()) break;
    p.step(clock.now(), finished);
  }
  if (!p.done()) p.cancel(clock.now());
  return p.take_outcome();
}

struct run_record {
  pollster::outcome<std::string, std::string> outcome;
  std::vector<std::string> seen;
  std::int64_t sleeps = 0;
  duration slept_on_clock{};
};

/// Runs the script through poll_until (on the manual clock, or on it without `is_steady`) or by hand.
template <class Schedule, class Stop>
run_record run_script(int how, const std::vector<status_step>& script, const Schedule& schedule, const Stop& stop,
                      pollster::poll_options options, std::uint64_t cancel_at) {
  manual_clock clock{manual_clock::time_point{1h}};
  if (options.deadline) options.deadline = pollster::at(clock.now() + options.deadline->since_epoch);  // relative
  pollster::cancel_source cancel;
  options.cancel = cancel.get_token();
  run_record r;
  scripted_check check{script, &r.seen, &clock, &cancel, cancel_at};
  if (how == 0) {
    r.outcome = pollster::poll_until(clock, check, schedule, stop, options);
  } else if (how == 1) {
    unsteady_clock unsteady{&clock};
    r.outcome = pollster::poll_until(unsteady, check, schedule, stop, options);
  } else {
    r.outcome = stepped_by_hand(clock, check, schedule, stop, options);
  }
  r.sleeps = clock.sleep_count();
  r.slept_on_clock = clock.time_slept();
  return r;
}

template <class Schedule, class Stop>
run_record same_run_three_ways(const std::vector<status_step>& script, const Schedule& schedule, const Stop& stop,
                               const pollster::poll_options& options = {}, std::uint64_t cancel_at = 0) {
  const run_record by_hand = run_script(2, script, schedule, stop, options, cancel_at);
  for (int how = 0; how < 2; ++how) {
    INFO((how == 0 ? "poll_until on the manual clock" : "poll_until on a clock without is_steady"));
    const run_record r = run_script(how, script, schedule, stop, options, cancel_at);
    CHECK(r.seen == by_hand.seen);
    CHECK(r.outcome.cause == by_hand.outcome.cause);
    CHECK(r.outcome.stop == by_hand.outcome.stop);
    CHECK(r.outcome.attempts == by_hand.outcome.attempts);
    CHECK(r.outcome.elapsed == by_hand.outcome.elapsed);
    CHECK(r.outcome.slept == by_hand.outcome.slept);
    CHECK(r.outcome.last_value == by_hand.outcome.last_value);
    CHECK(r.outcome.last_error == by_hand.outcome.last_error);
    CHECK(r.sleeps == by_hand.sleeps);
    CHECK(r.slept_on_clock == by_hand.slept_on_clock);
  }
  return by_hand;
}

}  // namespace

TEST_CASE("poll_until decides every step as a poller stepped by hand does, whichever way the step goes",
          "[poll][equivalence]") {
  using pollster::retry_after;
  using pollster::done;
  using pollster::failed;
  using pollster::pending;
  using pollster::poll_again_in;
  using pollster::transient;
  const pollster::geometric heat = pollster::presets::heat();

  SECTION("plain pending steps, a value seen so far, a transient error, then done") {
    const run_record r = same_run_three_ways(
        {pending(), pending("BUILD"), transient("503"), pending(), done("ACTIVE")}, heat, pollster::never{});
    CHECK(r.outcome.cause == cause::done);
    CHECK(r.outcome.attempts == 5);
    CHECK(r.outcome.elapsed == 4641ms);  // 1 + 1.1 + 1.21 + 1.331
    CHECK(r.outcome.last_error == std::string("503"));
  }
  SECTION("a hint in the middle of a run, for its response only") {
    const run_record r = same_run_three_ways({pending(), pending("BUILD", retry_after(30s)), pending(), pending()}, heat,
                                             pollster::after_attempts{6});
    CHECK(r.outcome.cause == cause::exhausted);
    CHECK(r.outcome.elapsed == 35005100us);  // 1, 30 (the hint), then the schedule goes on: 1.21, 1.331, 1.4641
  }
  SECTION("a hint in the middle of a run, remembered afterwards") {
    pollster::poll_options remember;
    remember.hint_lifetime = duration::max();
    const run_record r = same_run_three_ways({pending(), pending("BUILD", retry_after(30s)), pending(), pending()}, heat,
                                             pollster::after_attempts{6}, remember);
    CHECK(r.outcome.cause == cause::exhausted);
    CHECK(r.outcome.elapsed == 121s);  // 1, then 30 s four times
  }
  SECTION("a directed delay and a throttled response") {
    const run_record r = same_run_three_ways(
        {pending(), poll_again_in(5s), pollster::throttled(retry_after(2s)), pending()}, pollster::constant{3s},
        pollster::after_attempts{5});
    CHECK(r.outcome.elapsed == 14s);  // 3 + 5 + 3 (the 2 s hint is shorter) + 3 (remembered, still shorter)
  }
  SECTION("a permanent failure") {
    const run_record r = same_run_three_ways({pending(), failed("gone")}, heat, pollster::never{});
    CHECK(r.outcome.cause == cause::failed);
    CHECK(r.outcome.elapsed == 1s);
  }
  SECTION("the last sleep shortened to land on a stop rule's deadline") {
    const run_record r = same_run_three_ways({pending()}, pollster::constant{4s}, pollster::before_deadline{10s});
    CHECK(r.outcome.cause == cause::deadline);
    CHECK(r.outcome.attempts == 4);  // 0, 4, 8, 10
  }
  SECTION("an absolute deadline in the options, with and without wait_first") {
    pollster::poll_options options;
    options.deadline = pollster::clock_time{25s, nullptr};  // made absolute by run_script
    const run_record r = same_run_three_ways({pending()}, pollster::constant{10s}, pollster::never{}, options);
    CHECK(r.outcome.attempts == 4);  // 0, 10, 20, 25
    options.wait_first = true;
    const run_record w = same_run_three_ways({pending()}, pollster::constant{10s}, pollster::never{}, options);
    CHECK(w.outcome.attempts == 3);  // 10, 20, 25
  }
  SECTION("a stop requested by the third check") {
    const run_record r = same_run_three_ways({pending("BUILD")}, heat, pollster::never{}, {}, 3);
    CHECK(r.outcome.cause == cause::cancelled);
    CHECK(r.outcome.attempts == 3);
    CHECK(r.outcome.last_value == std::string("BUILD"));
  }
}

// --- light checks, asynchronous checks, time left (issue 10) and hint limits (issue 13) ----------------------------

TEST_CASE("a check may return bool, an optional or factory drafts without naming a step type", "[poll][check]") {
  manual_clock clock;
  int calls = 0;
  SECTION("bool: true is done") {
    const auto result = pollster::poll_until(clock, [&] { return ++calls == 3; }, pollster::constant{1s});
    static_assert(std::is_same_v<decltype(result), const pollster::outcome<std::monostate, std::monostate>>);
    CHECK(result.ok());
    CHECK(result.attempts == 3);
    CHECK(result.elapsed == 2s);
  }
  SECTION("optional: a value is done, and is the result") {
    const auto result = pollster::poll_until(
        clock, [&]() -> std::optional<int> { return ++calls == 2 ? std::optional<int>{42} : std::nullopt; },
        pollster::constant{1s});
    CHECK(result.value() == 42);
    CHECK(result.attempts == 2);
  }
  SECTION("done(v) and pending(v) share a type: no -> step<...> needed; a string literal is a std::string") {
    auto check = [&](const poll_state& s) {
      if (s.attempt == 3) return pollster::done(std::string("ACTIVE"));
      return pollster::pending(std::string("BUILD"));
    };
    static_assert(std::is_same_v<pollster::check_step_t<decltype(check)>, pollster::step<std::string, std::monostate>>);
    const auto result = pollster::poll_until(clock, check, pollster::constant{1s});
    CHECK(result.value() == "ACTIVE");
    auto literal = [] { return pollster::done("x"); };
    STATIC_REQUIRE(std::is_same_v<pollster::check_step_t<decltype(literal)>::value_type, std::string>);
  }
  SECTION("traits tell checks, schedules, stop rules and clocks apart") {
    auto async_check = [](pollster::completion<int, std::string>) {};
    auto not_a_check = [](int) { return 1; };
    STATIC_REQUIRE(pollster::is_check_v<decltype(async_check)>);
    STATIC_REQUIRE(pollster::check_traits<decltype(async_check)>::is_async);
    STATIC_REQUIRE_FALSE(pollster::is_check_v<decltype(not_a_check)>);
    STATIC_REQUIRE(pollster::is_schedule_v<pollster::geometric>);
    STATIC_REQUIRE_FALSE(pollster::is_schedule_v<pollster::before_deadline>);
    STATIC_REQUIRE(pollster::is_stop_rule_v<pollster::before_deadline>);
    STATIC_REQUIRE_FALSE(pollster::is_stop_rule_v<pollster::geometric>);
    STATIC_REQUIRE(pollster::is_clock_v<manual_clock>);
    STATIC_REQUIRE_FALSE(pollster::is_clock_v<pollster::geometric>);
  }
}

TEST_CASE("a check sees the time left before the deadline and its own timeout", "[poll][check]") {
  manual_clock clock;
  std::vector<std::string> seen;
  auto check = [&](const poll_state& s) {
    seen.push_back(pollster::detail::duration_text(s.time_left) + "/" + pollster::detail::duration_text(s.timeout));
    return false;
  };
  pollster::poll_options options;
  options.attempt_timeout = 2s;
  options.deadline = pollster::at(clock.now() + 5s);
  const auto result = pollster::poll_until(clock, check, pollster::constant{2s}, pollster::before_deadline{10s}, options);
  CHECK(result.cause == cause::deadline);
  CHECK(seen == std::vector<std::string>{"5s/2s", "3s/2s", "1s/1s", "0s/0s"});
  seen.clear();
  pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{2});
  CHECK(seen == std::vector<std::string>{"max/max", "max/max"});
}

TEST_CASE("a hint is capped relative to the schedule's delay as well as absolutely", "[poll][hint]") {
  manual_clock clock;
  std::vector<duration> delays;
  pollster::hook_functions<std::string, std::string> hooks;
  hooks.on_before_sleep = [&](const poll_state& s, delay_reason) { delays.push_back(s.next_delay); };
  auto check = [&]() -> status_step { return pollster::pending(pollster::retry_after(30s)); };
  pollster::poll_options options;
  options.max_hint_extra = 5s;  // AWS: x-amz-retry-after is clamped to the delay + 5 s
  pollster::poll_until(clock, check, pollster::geometric{1s, 2.0, 60s}, pollster::after_attempts{4}, options, hooks);
  CHECK(delays == std::vector<duration>{6s, 7s, 9s});
  delays.clear();
  options.max_hint = 8s;  // both apply: the tighter wins
  pollster::poll_until(clock, check, pollster::geometric{1s, 2.0, 60s}, pollster::after_attempts{4}, options, hooks);
  CHECK(delays == std::vector<duration>{6s, 7s, 8s});
}

namespace {
/// An asynchronous check whose answers arrive on the manual clock's timers: attempt n completes after latency[n]
/// (the last repeats) with the step script[n]; a negative latency never completes (the completion is kept alive).
struct timed_async_check {
  manual_clock* clock;
  std::vector<duration> latency;
  std::vector<status_step> script;
  std::vector<std::string>* log;
  std::shared_ptr<std::vector<pollster::completion<std::string, std::string>>> hung =
      std::make_shared<std::vector<pollster::completion<std::string, std::string>>>();

  void operator()(const poll_state& s, pollster::completion<std::string, std::string> c) {
    const std::size_t i = static_cast<std::size_t>(s.attempt - 1);
    const duration d = latency[std::min(i, latency.size() - 1)];
    status_step answer = script[std::min(i, script.size() - 1)];
    std::vector<std::string>* out = log;
    const std::string name = "attempt " + std::to_string(s.attempt);
    c.on_abort([out, name] { out->push_back(name + " aborted"); });
    if (d < duration::zero()) {
      hung->push_back(std::move(c));
      return;
    }
    auto shared = std::make_shared<pollster::completion<std::string, std::string>>(std::move(c));
    clock->call_after(d, [shared, answer] { (*shared)(answer); });
  }
};
}  // namespace

TEST_CASE("poll_until drives an asynchronous check: the completion wakes it at the virtual time it arrives",
          "[poll][async]") {
  manual_clock clock;
  std::vector<std::string> log;
  timed_async_check check{&clock, {300ms}, {pollster::pending("BUILD"), pollster::pending("BUILD"),
                                            pollster::done("ACTIVE")}, &log};
  const auto result = pollster::poll_until(clock, check, pollster::constant{1s});
  CHECK(result.value() == "ACTIVE");
  CHECK(result.attempts == 3);
  CHECK(result.elapsed == 2900ms);  // 0.3, sleep 1, 1.6, sleep 1, 2.9: the next delay counts from each answer
  CHECK(result.last_attempt == pollster::attempt_end::reported);
  CHECK(result.timeouts == 0);
  CHECK(log.empty());
}

TEST_CASE("an attempt that passes its timeout is a transient failure; its abort action runs, its late step is ignored",
          "[poll][async]") {
  manual_clock clock;
  std::vector<std::string> log;
  timed_async_check check{&clock, {5s, 100ms}, {pollster::pending("late"), pollster::done("ACTIVE")}, &log};
  pollster::poll_options options;
  options.attempt_timeout = 2s;
  const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::never{}, options);
  CHECK(result.value() == "ACTIVE");
  CHECK(result.attempts == 2);
  CHECK(result.timeouts == 1);
  CHECK(result.elapsed == 3100ms);  // timed out at 2, sleep 1, answered at 3.1
  CHECK(log == std::vector<std::string>{"attempt 1 aborted"});
  clock.advance(10s);  // the first attempt's answer arrives at 5 s: ignored, nothing breaks
  CHECK(clock.pending_timers() == 0);
}

TEST_CASE("a check that never completes times out attempt after attempt; a dropped completion is abandoned",
          "[poll][async]") {
  manual_clock clock;
  std::vector<std::string> log;
  SECTION("never completes") {
    timed_async_check check{&clock, {-1ns}, {pollster::pending()}, &log};
    pollster::poll_options options;
    options.attempt_timeout = 1s;
    const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{3}, options);
    CHECK(result.cause == cause::exhausted);
    CHECK(result.attempts == 3);
    CHECK(result.timeouts == 3);
    CHECK(result.last_attempt == pollster::attempt_end::timed_out);
    CHECK(result.elapsed == 5s);  // 0-1, 2-3, 4-5
    CHECK(log.size() == 3);
  }
  SECTION("a completion destroyed without reporting") {
    int calls = 0;
    auto drop = [&](pollster::completion<int, std::string> c) {
      if (++calls == 3) c(pollster::done(7));
    };
    const auto result = pollster::poll_until(clock, drop, pollster::constant{1s});
    CHECK(result.value() == 7);
    CHECK(result.abandoned == 2);
    CHECK(result.elapsed == 2s);
  }
}

TEST_CASE("a hard deadline ends the run at the deadline, aborting the check in flight", "[poll][async][deadline]") {
  manual_clock clock;
  std::vector<std::string> log;
  timed_async_check check{&clock, {200ms, 10s}, {pollster::pending("BUILD")}, &log};
  const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::before_deadline{3s});
  CHECK(result.cause == cause::deadline);
  CHECK(result.elapsed == 3s);  // not 11.2 s: the second attempt (from 1.2 s) is aborted at the deadline
  CHECK(result.attempts == 2);
  CHECK(result.last_attempt == pollster::attempt_end::aborted);
  CHECK(result.timeouts == 0);
  CHECK(result.last_value == std::string("BUILD"));
  CHECK(log == std::vector<std::string>{"attempt 2 aborted"});
}

TEST_CASE("cancelling poll_until aborts the check in flight, from another thread on the real clock",
          "[poll][async][cancel]") {
  pollster::steady_clock clock;
  pollster::cancel_source cancel;
  std::atomic<int> aborted{0};
  std::vector<pollster::completion<int, int>> kept;
  auto hang = [&](pollster::completion<int, int> c) {
    c.on_abort([&] { ++aborted; });
    kept.push_back(std::move(c));
  };
  pollster::poll_options options;
  options.cancel = cancel.get_token();
  std::thread canceller([&] {
    std::this_thread::sleep_for(20ms);
    cancel.request_cancel();
  });
  const auto started = std::chrono::steady_clock::now();
  const auto result = pollster::poll_until(clock, hang, pollster::constant{1s}, pollster::never{}, options);
  const auto took = std::chrono::steady_clock::now() - started;
  canceller.join();
  CHECK(result.cause == cause::cancelled);
  CHECK(result.last_attempt == pollster::attempt_end::aborted);
  CHECK(aborted == 1);
  CHECK(took < 500ms);  // bounded: the attempt would otherwise never end
}

TEST_CASE("a completion reported from another thread wakes poll_until on the real clock", "[poll][async]") {
  pollster::steady_clock clock;
  std::vector<std::thread> threads;
  auto remote = [&](pollster::completion<int, int> c) {
    threads.emplace_back([c = std::move(c)]() mutable {
      std::this_thread::sleep_for(5ms);
      c(pollster::done(1));
    });
  };
  const auto result = pollster::poll_until(clock, remote, pollster::constant{1h}, pollster::before_deadline{10s});
  for (auto& t : threads) t.join();
  CHECK(result.value() == 1);
  CHECK(result.elapsed < 1s);
}

TEST_CASE("a nudge during an attempt in flight makes the next check due as soon as it ends", "[poll][async][nudge]") {
  using tp = manual_clock::time_point;
  std::vector<pollster::completion<int, int>> out;
  auto keep = [&](pollster::completion<int, int> c) { out.push_back(std::move(c)); };
  auto p = pollster::make_poller(keep, pollster::constant{10s}, pollster::never{}, tp{});
  p.step(tp{});
  CHECK(p.in_flight());
  CHECK(p.next_due() == tp::max());  // no deadline: the attempt's timeout is the time left, unlimited
  p.nudge(tp{1s});
  CHECK(p.in_flight());
  out.back()(pollster::pending());
  CHECK(p.ready());
  p.complete(tp{2s});
  CHECK(p.next_due() == tp{2s});  // not 12 s
  CHECK(p.outcome().nudges == 1);
  p.step(tp{2s});
  out.back()(pollster::done(5));
  p.complete(tp{3s});
  CHECK(p.outcome().value() == 5);
}

TEST_CASE("cancellation returns poll_until at once, on the steady clock and on a custom clock", "[poll][cancel][real-time]") {
  const auto each_clock = [](auto& clock, const std::string& on) {
    {
      pollster::cancel_source cancel;
      pollster::poll_options options;
      options.cancel = cancel.get_token();
      const double ms = cancel_latency::measure(
          ("poll_until, cancel token" + on).c_str(),
          [&] { pollster::poll_until(clock, [] { return false; }, pollster::constant{1h}, pollster::never{}, options); },
          [&] { cancel.request_cancel(); });
      CHECK(ms < 250);
    }
    {
      pollster::cancel_source cancel;
      pollster::poll_options options;
      options.cancel = cancel.get_token();
      std::vector<pollster::completion<int, int>> kept;
      const double ms = cancel_latency::measure(
          ("poll_until, check in flight" + on).c_str(),
          [&] {
            pollster::poll_until(clock, [&](pollster::completion<int, int> c) { kept.push_back(std::move(c)); },
                                 pollster::constant{1h}, pollster::never{}, options);
          },
          [&] { cancel.request_cancel(); });
      CHECK(ms < 250);
    }
  };
  pollster::steady_clock steady;
  each_clock(steady, " on steady_clock");
  cancel_latency::wall_clock custom;
  each_clock(custom, " on a custom clock");
}

TEST_CASE("a deadline at time_point::max() on a clock before its epoch leaves the run to its stop rule",
          "[poll][deadline][saturation]") {
  // Issue 12, bug 6: `deadline - now` overflowed (UBSan) and the run ended with cause deadline after 2 attempts.
  using tp = manual_clock::time_point;
  auto check = []() -> status_step { return pollster::pending("BUILD"); };
  pollster::poll_options options;
  options.deadline = pollster::at(tp::max());
  SECTION("poll_until") {
    manual_clock clock{tp{-1s}};
    const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{3}, options);
    CHECK(result.cause == cause::exhausted);
    CHECK(result.attempts == 3);
    CHECK(result.elapsed == 2s);
    CHECK(since_start(clock) == 1s);
  }
  SECTION("a poller stepped by hand") {
    auto p = pollster::make_poller(check, pollster::constant{1s}, pollster::after_attempts{3}, tp{-1s}, options);
    while (!p.done()) p.step(p.next_due());
    CHECK(p.outcome().cause == cause::exhausted);
    CHECK(p.outcome().attempts == 3);
    CHECK(p.outcome().elapsed == 2s);
  }
  SECTION("a deadline at time_point::min() is already past") {
    options.deadline = pollster::at(tp::min());
    manual_clock clock{tp{1s}};
    const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{3}, options);
    CHECK(result.cause == cause::deadline);
    CHECK(result.attempts == 0);
  }
}

TEST_CASE("a hint at time_point::min() on a clock after its epoch means no wait, not a 292-year sleep",
          "[poll][hint][saturation]") {
  // Issue 12, bug 6: `hint - now` overflowed to about +292 years.
  using tp = manual_clock::time_point;
  auto check = []() -> status_step { return pollster::pending("BUILD", pollster::retry_at(tp::min())); };
  SECTION("poll_until") {
    manual_clock clock{tp{1s}};
    const auto result = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{3});
    CHECK(result.cause == cause::exhausted);
    CHECK(result.attempts == 3);
    CHECK(result.elapsed == 2s);
    CHECK(since_start(clock) == 3s);
  }
  SECTION("remembered after the response that carried it") {
    int calls = 0;
    auto once = [&calls]() -> status_step {
      if (++calls == 1) return pollster::pending("BUILD", pollster::retry_at(tp::min()));
      return pollster::pending("BUILD");
    };
    auto p = pollster::make_poller(once, pollster::constant{1s}, pollster::after_attempts{3}, tp{1s});
    while (!p.done()) p.step(p.next_due());
    CHECK(p.outcome().cause == cause::exhausted);
    CHECK(p.outcome().elapsed == 2s);
    CHECK(p.last_reason() == delay_reason::schedule);
  }
  SECTION("a hint at time_point::max() with a deadline ends the run at once") {
    auto far = []() -> status_step { return pollster::pending("BUILD", pollster::retry_at(tp::max())); };
    pollster::poll_options options;
    options.deadline = pollster::at(tp{1h});
    manual_clock clock{tp{-1h}};
    const auto result = pollster::poll_until(clock, far, pollster::constant{1s}, pollster::never{}, options);
    CHECK(result.cause == cause::deadline);
    CHECK(result.attempts == 1);
    CHECK(result.elapsed == 0s);
  }
}
