#include "pollster_catch.hpp"

#include <pollster/fmt.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("fmt formats schedules as their parameters", "[fmt]") {
  CHECK(fmt::format("{}", pollster::presets::heat()) == "geometric(start 1s, factor 1.1, cap 20s)");
  CHECK(fmt::format("{}", pollster::constant{250ms}) == "constant(250ms)");
  pollster::exponential_options o;
  o.base = 100ms;
  o.cap = 30s;
  CHECK(fmt::format("{}", pollster::exponential{o}) ==
        "exponential(base 100ms, factor 2, cap 30s, jitter full)");
  CHECK(fmt::format("{}", pollster::presets::grpc_connect()) ==
        "grpc_backoff(initial 1s, multiplier 1.6, jitter 0.2, max 120s)");
  CHECK(fmt::format("{}", pollster::chain{pollster::constant{500ms}, 3, pollster::presets::heat()}) ==
        "chain(3 x constant(500ms), then geometric(start 1s, factor 1.1, cap 20s))");
  pollster::decorrelated_jitter_v2_options p;
  p.cap = 1min;
  CHECK(fmt::format("{}", pollster::decorrelated_jitter_v2{p}) ==
        "decorrelated_jitter_v2(median first delay 1s, cap 60s)");
}

TEST_CASE("fmt formats a plan so that it reads well", "[fmt][plan]") {
  const auto plan = pollster::plan_for(pollster::presets::heat(), 10min);
  const std::string text = fmt::format("{}", plan);
  CHECK(text == "52 polls (53 checks) for 600s: noticed at 601.14s, 1.14s late; worst 20s, mean 8.42s");
}

TEST_CASE("fmt honours width for pollster types, and leaves durations to fmt's chrono", "[fmt]") {
  CHECK(fmt::format("[{:>18}]", pollster::constant{1s}) == "[      constant(1s)]");
  CHECK(fmt::format("{}", pollster::stop_reason::deadline) == "deadline");
  CHECK(fmt::format("{}", pollster::after_attempts{5} ) == "after 5 attempts");
  CHECK(fmt::format("{}", pollster::jitter::equal) == "equal");
}

namespace {
struct server {
  int id;
  std::string name;
  int version;
};
}  // namespace
template <>
struct fmt::formatter<server> : fmt::formatter<fmt::string_view> {
  auto format(const server& s, fmt::format_context& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "{}@v{}", s.name, s.version);
  }
};

TEST_CASE("fmt formats diff events from diff() and from a visitor alike", "[fmt][diff]") {
  const std::vector<server> before{{1, "foo", 5}, {2, "bar", 6}};
  const std::vector<server> after{{1, "foo", 6}, {3, "baz", 1}};
  const auto result = pollster::diff(before, after, &server::id, &server::version);
  REQUIRE(result.removals.size() == 1);
  CHECK(fmt::format("{}", result.removals[0]) == "removed 2 (last known bar@v6)");
  CHECK(fmt::format("{}", result.changes[0]) == "changed foo@v5 -> foo@v6");
  CHECK(fmt::format("{}", result.additions[0]) == "added baz@v1");
  std::vector<std::string> lines;
  pollster::diff_each(before, after, &server::id, &server::version,
                      [&](const auto& event) { lines.push_back(fmt::format("{:>30}", event)); });
  const std::vector<std::string> expected{" removed 2 (last known bar@v6)", "      changed foo@v5 -> foo@v6",
                                          "                  added baz@v1"};
  CHECK(lines == expected);
}

TEST_CASE("fmt formats an outcome as one line that keeps the last value seen", "[fmt][poll]") {
  pollster::manual_clock clock;
  int calls = 0;
  const auto exhausted = pollster::poll_until(
      clock,
      [&]() -> pollster::step<std::string, int> {
        ++calls;
        return pollster::pending(std::string("BUILD"));
      },
      pollster::constant{2s}, pollster::after_attempts{4});
  CHECK(fmt::format("{}", exhausted) == "exhausted (attempts) after 4 attempts in 6s; last value BUILD");

  const auto done = pollster::poll_until(
      clock, []() -> pollster::step<std::string, int> { return pollster::done(std::string("ACTIVE")); },
      pollster::presets::heat());
  CHECK(fmt::format("{}", done) == "done: ACTIVE after 1 attempt in 0s");
  CHECK(fmt::format("{}", done.cause) == "done");
}

namespace {
struct machine {
  std::string id;
  int version;
  std::string state;
};
}  // namespace

template <>
struct fmt::formatter<machine> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(const machine& m, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "{} {}", m.id, m.state);
  }
};

TEST_CASE("fmt formats a subscription's events led by their id, dead letters and CloudEvents attributes", "[fmt]") {
  auto change = std::make_shared<pollster::detail::change<machine, std::string>>();
  change->key = "web-2";
  change->subject = "web-2";
  change->before = machine{"web-2", 1, "BUILD"};
  change->after = machine{"web-2", 2, "ACTIVE"};
  change->has_version = true;
  change->version_before = "1";
  change->version_after = "2";
  using event_type = pollster::event<machine, std::string>;
  const event_type changed(pollster::event_kind::changed, change);
  CHECK(fmt::format("{}", changed) == "web-2/changed/v2: changed web-2 BUILD -> web-2 ACTIVE");
  CHECK(fmt::format("{}", event_type(pollster::event_kind::added, change)) == "web-2/added/v2: added web-2 ACTIVE");
  CHECK(fmt::format("{}", event_type(pollster::event_kind::removed, change)) ==
        "web-2/removed/v1: removed web-2, last known web-2 BUILD");
  pollster::dead_letter<machine, std::string> letter{changed, "provision",
                                                     std::make_exception_ptr(std::runtime_error("timeout")), 12, 24h,
                                                     pollster::dead_letter_reason::deadline};
  CHECK(fmt::format("{}", letter) == "provision gave up on web-2/changed/v2 after 12 attempts in 86400s (deadline): timeout");
  CHECK(fmt::format("{}", pollster::event_kind::removed) == "removed");
  CHECK(fmt::format("{}", pollster::cloud_event{"1", "/s", "1.0", "t", "", "", ""}) ==
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}");
}
