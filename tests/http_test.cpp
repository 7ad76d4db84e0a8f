#include "pollster_catch.hpp"

#include <pollster/http.hpp>
#include <pollster/poll.hpp>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pollster::duration;
using pollster::http_error;
using pollster::http_error_kind;
using pollster::http_response;
using pollster::http_rules;
using pollster::http_verdict;
using pollster::step_kind;
using pollster::transport_error;
using sys = std::chrono::system_clock;

namespace {

// RFC 9110's example date, Sun, 06 Nov 1994 08:49:37 GMT, is 784111777 s after the epoch.
const sys::time_point rfc_example{std::chrono::seconds{784111777}};

http_response response(int status, pollster::http_headers headers = {}, std::string body = {}) {
  http_response r;
  r.status = status;
  r.headers = std::move(headers);
  r.body = std::move(body);
  r.received_at = rfc_example;
  return r;
}

http_response no_response(transport_error why, std::string message, int status = 0, std::string body = {}) {
  http_response r = response(status, {}, std::move(body));
  r.transport = why;
  r.transport_message = std::move(message);
  return r;
}

struct job {
  std::string state;
};

/// The mapper of these tests: the body is the state; "FAILED" is a failure the mapper reports itself, and an
/// empty body is one it cannot read.
pollster::step<job, http_error> read_job(const http_response& r) {
  if (r.body.empty()) throw std::runtime_error("empty body, expected a state");
  if (r.body == "ACTIVE") return pollster::done(job{r.body});
  if (r.body == "FAILED") {
    http_error e;
    e.kind = http_error_kind::body;
    e.status = r.status;
    e.reason = "job failed";
    return pollster::failed(std::move(e));
  }
  return pollster::pending(job{r.body});
}

duration hint_delay(const pollster::retry_hint& h) {
  REQUIRE(h.kind() == pollster::retry_hint::form::after);
  return h.value();
}

}  // namespace

TEST_CASE("header names compare case-insensitively and every value is kept", "[http]") {
  pollster::http_headers h{{"Retry-After", "120"}, {"RateLimit", "\"burst\";r=0;t=5"}};
  h.add("ratelimit", "\"daily\";r=900;t=80000");
  CHECK(h.get("retry-after") == "120");
  CHECK(h.get("RETRY-AFTER") == "120");
  CHECK_FALSE(h.get("Retry-After-Not"));
  CHECK(h.count("RateLimit") == 2);
  CHECK(h.combined("RATELIMIT") == "\"burst\";r=0;t=5, \"daily\";r=900;t=80000");
  h.set("RETRY-AFTER", "5");
  CHECK(h.count("Retry-After") == 1);
  CHECK(h.get("retry-after") == "5");
  h.remove("ratelimit");
  CHECK_FALSE(h.contains("RateLimit"));
  CHECK(h.size() == 1);
}

TEST_CASE("every status class gets the verdict of the table", "[http]") {
  struct row {
    int status;
    http_verdict verdict;
  };
  const std::vector<row> table = {
      {200, http_verdict::read_body}, {201, http_verdict::read_body},    {204, http_verdict::read_body},
      {202, http_verdict::accepted},  {304, http_verdict::not_modified}, {408, http_verdict::transient},
      {425, http_verdict::transient}, {429, http_verdict::throttled},    {503, http_verdict::transient},
      {500, http_verdict::transient}, {502, http_verdict::transient},    {504, http_verdict::transient},
      {599, http_verdict::transient}, {404, http_verdict::failed},       {400, http_verdict::failed},
      {401, http_verdict::failed},    {403, http_verdict::failed},       {409, http_verdict::failed},
      {410, http_verdict::failed},    {413, http_verdict::failed},       {301, http_verdict::failed},
      {302, http_verdict::failed},    {100, http_verdict::failed},       {600, http_verdict::failed},
  };
  for (const row& r : table) {
    INFO("status " << r.status);
    CHECK(pollster::classify(response(r.status)) == r.verdict);
  }
  SECTION("the switches") {
    http_rules rules;
    rules.not_found_is_transient = true;
    rules.throttle_on_503 = true;
    rules.map_accepted_body = true;
    CHECK(pollster::classify(response(404), rules) == http_verdict::transient);
    CHECK(pollster::classify(response(503), rules) == http_verdict::throttled);
    CHECK(pollster::classify(response(202), rules) == http_verdict::read_body);
    CHECK(pollster::classify(response(410), rules) == http_verdict::failed);  // gone is gone
  }
  SECTION("no complete response is transient, whatever status came before the failure") {
    for (const transport_error e :
         {transport_error::refused, transport_error::timeout, transport_error::reset, transport_error::truncated,
          transport_error::resolve, transport_error::aborted, transport_error::other}) {
      INFO(pollster::to_string(e));
      CHECK(pollster::classify(no_response(e, "x")) == http_verdict::transient);
      CHECK(pollster::classify(no_response(e, "x", 200)) == http_verdict::transient);
    }
  }
  SECTION("reclassify has the last word, and sees the default verdict") {
    http_rules rules;
    std::vector<http_verdict> seen;
    rules.reclassify = [&seen](const http_response& r, http_verdict v) {
      seen.push_back(v);
      return r.status == 409 ? http_verdict::transient : v;  // this API's 409 means "busy, come back"
    };
    CHECK(pollster::classify(response(409), rules) == http_verdict::transient);
    CHECK(pollster::classify(response(400), rules) == http_verdict::failed);
    CHECK(seen == std::vector<http_verdict>{http_verdict::failed, http_verdict::failed});
  }
}

TEST_CASE("a 2xx body goes to the mapper, which decides done, pending or failed", "[http]") {
  SECTION("done") {
    const auto s = pollster::step_from_response(response(200, {}, "ACTIVE"), read_job);
    CHECK(s.kind == step_kind::done);
    REQUIRE(s.value);
    CHECK(s.value->state == "ACTIVE");
    CHECK_FALSE(s.error);
  }
  SECTION("pending, with the server's hint") {
    const auto s = pollster::step_from_response(response(200, {{"X-Poll-Interval", "60"}}, "BUILD"), read_job);
    CHECK(s.kind == step_kind::pending);
    CHECK(s.value->state == "BUILD");
    CHECK(hint_delay(s.hint) == 60s);
  }
  SECTION("failed, as the mapper said") {
    const auto s = pollster::step_from_response(response(200, {}, "FAILED"), read_job);
    CHECK(s.kind == step_kind::failed);
    CHECK(s.error->reason == "job failed");
  }
  SECTION("a mapper that returns a plain value says pending: the await's rules or the watcher decide") {
    const auto s =
        pollster::step_from_response(response(200, {}, "BUILD"), [](const http_response& r) { return job{r.body}; });
    CHECK(s.kind == step_kind::pending);
    CHECK(s.value->state == "BUILD");
  }
  SECTION("a mapper's own hint is kept") {
    const auto s = pollster::step_from_response(response(200, {{"Retry-After", "60"}}, "x"),
                                                [](const http_response&) -> pollster::step<int, http_error> {
                                                  return pollster::pending(1, pollster::retry_after(5s));
                                                });
    CHECK(hint_delay(s.hint) == 5s);
  }
}

TEST_CASE("a body the mapper cannot read is an error the rules see, never a silent pending", "[http]") {
  const std::string long_body(300, 'x');
  SECTION("failed by default, with the status, the parser's message and an excerpt") {
    const auto s = pollster::step_from_response(response(200, {}, ""), read_job);
    CHECK(s.kind == step_kind::failed);
    REQUIRE(s.error);
    CHECK(s.error->kind == http_error_kind::body);
    CHECK(s.error->status == 200);
    CHECK(s.error->reason == "empty body, expected a state");
    CHECK_FALSE(s.error->retryable);
    CHECK(s.error->describe() == "HTTP 200, unreadable body: empty body, expected a state");
  }
  SECTION("transient when the rules say so; the excerpt is bounded") {
    http_rules rules;
    rules.body_errors_are_transient = true;
    rules.excerpt_bytes = 10;
    const auto s = pollster::step_from_response(
        response(200, {{"Retry-After", "7"}}, long_body),
        [](const http_response&) -> int { throw std::out_of_range("no field \"state\""); }, rules);
    CHECK(s.kind == step_kind::transient);
    CHECK(s.error->retryable);
    CHECK(s.error->body_excerpt == "xxxxxxxxxx...");
    CHECK(hint_delay(s.hint) == 7s);
  }
}

TEST_CASE("202, 304 and the error statuses become steps with the server's hint", "[http]") {
  int mapped = 0;
  const auto count_calls = [&mapped](const http_response&) {
    ++mapped;
    return job{"seen"};
  };
  SECTION("202 Accepted is pending without reading the body; Location stays in the response") {
    const http_response r = response(202, {{"Location", "/jobs/7"}, {"Retry-After", "3"}}, "{}");
    const auto s = pollster::step_from_response(r, count_calls);
    CHECK(s.kind == step_kind::pending);
    CHECK_FALSE(s.value);
    CHECK(hint_delay(s.hint) == 3s);
    CHECK(mapped == 0);
    CHECK(r.headers.get("location") == "/jobs/7");
  }
  SECTION("304 Not Modified says not_modified: pending, no value, no error") {
    const auto s = pollster::step_from_response(response(304, {{"X-Poll-Interval", "60"}}), count_calls);
    CHECK(s.kind == step_kind::pending);
    CHECK(s.not_modified);
    CHECK_FALSE(s.value);
    CHECK_FALSE(s.error);
    CHECK(hint_delay(s.hint) == 60s);
    CHECK(mapped == 0);
  }
  SECTION("429 is throttled, with the hint and a retryable error") {
    const auto s =
        pollster::step_from_response(response(429, {{"Retry-After", "120"}}, "{\"error\":\"slow down\"}"), count_calls);
    CHECK(s.kind == step_kind::transient);
    CHECK(s.throttled);
    CHECK(hint_delay(s.hint) == 120s);
    CHECK(s.error->kind == http_error_kind::status);
    CHECK(s.error->status == 429);
    CHECK(s.error->reason == "Too Many Requests");
    CHECK(s.error->retryable);
    CHECK(s.error->describe() == "HTTP 429 Too Many Requests [{\"error\":\"slow down\"}]");
  }
  SECTION("503 is transient with its hint; 500 is transient without one; the server's reason phrase wins") {
    const auto unavailable = pollster::step_from_response(response(503, {{"Retry-After", "30"}}), count_calls);
    CHECK(unavailable.kind == step_kind::transient);
    CHECK_FALSE(unavailable.throttled);
    CHECK(hint_delay(unavailable.hint) == 30s);
    http_response broken = response(500);
    broken.reason = "Database On Fire";
    const auto internal = pollster::step_from_response(broken, count_calls);
    CHECK(internal.kind == step_kind::transient);
    CHECK_FALSE(internal.hint);
    CHECK(internal.error->describe() == "HTTP 500 Database On Fire");
  }
  SECTION("404 fails for good unless it is eventual consistency") {
    const auto gone = pollster::step_from_response(response(404), count_calls);
    CHECK(gone.kind == step_kind::failed);
    CHECK_FALSE(gone.error->retryable);
    http_rules rules;
    rules.not_found_is_transient = true;
    const auto not_yet = pollster::step_from_response(response(404), count_calls, rules);
    CHECK(not_yet.kind == step_kind::transient);
    CHECK(not_yet.error->retryable);
  }
  SECTION("no complete response: a transient transport error with the transport's message") {
    const auto timeout = pollster::step_from_response(
        no_response(transport_error::timeout, "Operation timed out after 200 milliseconds"), count_calls);
    CHECK(timeout.kind == step_kind::transient);
    CHECK(timeout.error->kind == http_error_kind::transport);
    CHECK(timeout.error->transport == transport_error::timeout);
    CHECK(timeout.error->status == 0);
    CHECK(timeout.error->describe() == "no response (timeout): Operation timed out after 200 milliseconds");
    const auto cut = pollster::step_from_response(
        no_response(transport_error::truncated, "transfer closed with 9 bytes remaining to read", 200, "{\"state\":"),
        count_calls);
    CHECK(cut.kind == step_kind::transient);
    CHECK(cut.error->describe() ==
          "HTTP 200, then truncated: transfer closed with 9 bytes remaining to read [{\"state\":]");
    CHECK(mapped == 0);  // a partial body is never read
  }
}

TEST_CASE("Retry-After in both forms, the date read against the response's own Date", "[http]") {
  const auto hints_of = [](pollster::http_headers h, sys::time_point received) {
    http_response r = response(503, std::move(h));
    r.received_at = received;
    return pollster::read_hints(r);
  };
  SECTION("seconds") { CHECK(hints_of({{"Retry-After", "120"}}, rfc_example).retry_after == duration{120s}); }
  SECTION("an HTTP-date without a Date field is read against the client's clock") {
    CHECK(hints_of({{"Retry-After", "Sun, 06 Nov 1994 08:50:07 GMT"}}, rfc_example).retry_after == duration{30s});
  }
  SECTION("with a Date, a client clock an hour fast or slow changes nothing") {
    const pollster::http_headers h{{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
                                   {"Retry-After", "Sun, 06 Nov 1994 08:50:07 GMT"}};
    CHECK(hints_of(h, rfc_example).retry_after == duration{30s});
    CHECK(hints_of(h, rfc_example + 1h).retry_after == duration{30s});  // without the Date: zero
    CHECK(hints_of(h, rfc_example - 1h).retry_after == duration{30s});  // without the Date: 1 h 30 s
  }
  SECTION("a server whose clock is an hour ahead of ours still means 30 s") {
    const pollster::http_headers h{{"Date", "Sun, 06 Nov 1994 09:49:37 GMT"},
                                   {"Retry-After", "Sun, 06 Nov 1994 09:50:07 GMT"}};
    CHECK(hints_of(h, rfc_example).retry_after == duration{30s});
  }
  SECTION("a date in the past asks for no wait; garbage is no hint; a garbage Date falls back to our clock") {
    CHECK(hints_of({{"Retry-After", "Sun, 06 Nov 1994 08:49:00 GMT"}}, rfc_example).retry_after == duration{0s});
    for (const char* garbage : {"soon", "-5", "1.5", "12 s", "", "Sun, 31 Nov 1994 08:49:37 GMT"}) {
      INFO("Retry-After: " << garbage);
      const auto hints = hints_of({{"Retry-After", garbage}}, rfc_example);
      CHECK_FALSE(hints.retry_after);
      CHECK_FALSE(hints.hint());
    }
    CHECK(
        hints_of({{"Date", "yesterday"}, {"Retry-After", "Sun, 06 Nov 1994 08:50:07 GMT"}}, rfc_example).retry_after ==
        duration{30s});
    // A Date no clock can hold (in nanoseconds: 1678 to 2262) is no Date: our clock again, without overflowing.
    for (const char* far : {"Fri, 31 Dec 9999 23:59:59 GMT", "Sat, 01 Jan 0000 00:00:00 GMT"}) {
      INFO("Date: " << far);
      CHECK(hints_of({{"Date", far}, {"Retry-After", "Sun, 06 Nov 1994 08:50:07 GMT"}}, rfc_example).retry_after ==
            duration{30s});
    }
  }
  SECTION("the hint reaches the step, and the poller, on the manual clock") {
    // 429 with a 2 s Retry-After, then 200 ACTIVE: the second check is 2 s later, not the schedule's 10 ms.
    std::vector<http_response> replies = {response(429, {{"Retry-After", "2"}}), response(200, {}, "ACTIVE")};
    std::size_t next = 0;
    pollster::manual_clock clock;
    const auto out = pollster::poll_until(
        clock, [&] { return pollster::step_from_response(replies.at(next++), read_job); }, pollster::constant{10ms},
        pollster::after_attempts{5});
    CHECK(out.cause == pollster::cause::done);
    CHECK(out.attempts == 2);
    CHECK(out.elapsed == 2s);
    CHECK(out.last_error->status == 429);
  }
}

TEST_CASE("X-Poll-Interval is a floor; Retry-After and an exhausted quota add to it", "[http]") {
  const auto delay_of = [](pollster::http_headers h) {
    return pollster::read_hints(response(200, std::move(h))).delay();
  };
  CHECK(delay_of({{"X-Poll-Interval", "60"}}) == duration{60s});
  CHECK(delay_of({{"X-Poll-Interval", "60"}, {"Retry-After", "30"}}) == duration{60s});
  CHECK(delay_of({{"X-Poll-Interval", "60"}, {"Retry-After", "90"}}) == duration{90s});
  CHECK_FALSE(delay_of({{"X-Poll-Interval", "sixty"}}));
  CHECK_FALSE(delay_of({{"X-Poll-Interval", "-1"}}));
  CHECK_FALSE(delay_of({}));
}

TEST_CASE("the IETF RateLimit fields: the quota left, its reset, the policy", "[http]") {
  SECTION("a quota with some left asks for no wait, and says how fast to spend it") {
    const auto limits = pollster::parse_ratelimit("\"default\";r=50;t=30", "\"default\";q=100;w=60");
    REQUIRE(limits.size() == 1);
    CHECK(limits[0].policy == "default");
    CHECK(limits[0].remaining == 50);
    CHECK(limits[0].reset == duration{30s});
    CHECK(limits[0].quota == std::uint64_t{100});
    CHECK(limits[0].window == duration{60s});
    REQUIRE(limits[0].sustainable_rate());
    CHECK(*limits[0].sustainable_rate() == Catch::Approx(50.0 / 30.0));
    CHECK_FALSE(pollster::read_hints(response(200, {{"RateLimit", "\"default\";r=50;t=30"}})).delay());
  }
  SECTION("an exhausted quota asks to wait for its reset; of several, the longest") {
    CHECK(pollster::read_hints(response(200, {{"RateLimit", "\"default\";r=0;t=30"}})).delay() == duration{30s});
    const auto split = pollster::read_hints(
        response(200, {{"RateLimit", "\"burst\";r=0;t=5"}, {"RateLimit", "\"daily\";r=900;t=80000"}}));
    REQUIRE(split.rate_limits.size() == 2);
    CHECK(split.delay() == duration{5s});
    CHECK(pollster::read_hints(response(200, {{"RateLimit", "\"burst\";r=0;t=5, \"daily\";r=0;t=80000"}})).delay() ==
          duration{80000s});
  }
  SECTION("Retry-After takes precedence over the effective window") {
    CHECK(pollster::read_hints(response(429, {{"RateLimit", "\"default\";r=0;t=30"}, {"Retry-After", "5"}})).delay() ==
          duration{5s});
  }
  SECTION("other parameters and a partition key are fine") {
    const auto limits = pollster::parse_ratelimit("\"peruser\";r=10;t=60;pk=:cHsdsRa894==:;acme-x=?1",
                                                  "\"peruser\";q=65535;qu=\"content-bytes\";w=10;pk=:sdfjLJUOUH==:");
    REQUIRE(limits.size() == 1);
    CHECK(limits[0].remaining == 10);
    CHECK(limits[0].quota == std::uint64_t{65535});
  }
  SECTION("a malformed field is ignored, all of it") {
    for (const char* bad : {"default;r=0;t=30",                   // a token, not a string (drafts before -08)
                            "\"default\";r=-1;t=30",              // negative
                            "\"default\";t=30",                   // no r
                            "\"default\";r=1.5",                  // a decimal
                            "\"default\";r=0;t=30,",              // a trailing comma
                            "\"default\";r=0;t=30, \"x\";r=",     // a parameter without a value after '='
                            "\"unterminated;r=0",                 // no closing quote
                            "limit=10, remaining=0, reset=7"}) {  // draft -07's dictionary
      INFO("RateLimit: " << bad);
      CHECK(pollster::parse_ratelimit(bad).empty());
      CHECK_FALSE(pollster::read_hints(response(200, {{"RateLimit", bad}})).delay());
    }
  }
  SECTION("a malformed policy loses only the policy's detail") {
    const auto limits = pollster::parse_ratelimit("\"default\";r=0;t=30", "\"default\";q=-3");
    REQUIRE(limits.size() == 1);
    CHECK_FALSE(limits[0].quota);
    CHECK(limits[0].reset == duration{30s});
  }
}

TEST_CASE("X-RateLimit-Remaining and -Reset, as epoch seconds read against Date, or as seconds", "[http]") {
  // 784111777 is the RFC's example date; the quota comes back 42 s after it.
  const pollster::http_headers github{{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
                                      {"X-RateLimit-Limit", "5000"},
                                      {"X-RateLimit-Remaining", "0"},
                                      {"X-RateLimit-Reset", "784111819"}};
  http_response r = response(403, github);
  CHECK(pollster::read_hints(r).delay() == duration{42s});
  r.received_at = rfc_example + 2h;  // our clock is two hours fast: the server's Date still rules
  const auto hints = pollster::read_hints(r);
  CHECK(hints.delay() == duration{42s});
  REQUIRE(hints.rate_limits.size() == 1);
  CHECK(hints.rate_limits[0].quota == std::uint64_t{5000});
  CHECK(hints.rate_limits[0].policy.empty());

  CHECK(pollster::read_hints(response(200, {{"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset", "42"}})).delay() ==
        duration{42s});
  CHECK(pollster::read_hints(response(200, {{"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset", "784111000"}}))
            .delay() == duration{0s});  // already past
  CHECK_FALSE(
      pollster::read_hints(response(200, {{"X-RateLimit-Remaining", "7"}, {"X-RateLimit-Reset", "42"}})).delay());
  CHECK(pollster::read_hints(response(200, {{"X-RateLimit-Remaining", "none"}})).rate_limits.empty());
  // The IETF fields win when both are there.
  const auto both = pollster::read_hints(response(
      200, {{"RateLimit", "\"default\";r=3;t=1"}, {"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset", "9"}}));
  REQUIRE(both.rate_limits.size() == 1);
  CHECK(both.rate_limits[0].remaining == 3);
  CHECK_FALSE(both.delay());
}

TEST_CASE("conditional requests: ETag and Last-Modified round trips", "[http]") {
  pollster::conditional_request validators;
  pollster::http_request next{"http://api/servers"};
  validators.apply(next);
  CHECK(next.headers.empty());  // nothing known yet: an unconditional request

  validators.remember(response(200, {{"ETag", "\"v1\""}, {"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}}));
  validators.apply(next);
  CHECK(next.headers.get("If-None-Match") == "\"v1\"");
  CHECK(next.headers.get("If-Modified-Since") == "Sun, 06 Nov 1994 08:49:37 GMT");

  SECTION("a 304 keeps them, or refreshes the ETag it carries") {
    validators.remember(response(304));
    CHECK(validators.etag() == "\"v1\"");
    validators.remember(response(304, {{"ETag", "W/\"v1b\""}}));
    CHECK(validators.etag() == "W/\"v1b\"");
    CHECK(validators.last_modified() == "Sun, 06 Nov 1994 08:49:37 GMT");
  }
  SECTION("a new body brings new validators; one without any forgets them") {
    validators.remember(response(200, {{"ETag", "\"v2\""}}));
    CHECK(validators.etag() == "\"v2\"");
    CHECK(validators.last_modified().empty());
    validators.apply(next);
    CHECK(next.headers.count("If-None-Match") == 1);  // replaced, not added
    CHECK(next.headers.get("If-None-Match") == "\"v2\"");
    validators.remember(response(200));
    CHECK(validators.empty());
  }
  SECTION("errors and transport failures change nothing") {
    validators.remember(response(500, {{"ETag", "\"error-page\""}}));
    validators.remember(no_response(transport_error::truncated, "cut", 200));
    CHECK(validators.etag() == "\"v1\"");
  }
  SECTION("read() remembers only a body that was read") {
    const auto rejected = validators.read(response(200, {{"ETag", "\"v3\""}}, ""), read_job);
    CHECK(rejected.kind == step_kind::failed);
    CHECK(validators.etag() == "\"v1\"");  // the next poll must see the body again, not a 304
    const auto accepted = validators.read(response(200, {{"ETag", "\"v3\""}}, "BUILD"), read_job);
    CHECK(accepted.kind == step_kind::pending);
    CHECK(validators.etag() == "\"v3\"");
    const auto same = validators.read(response(304), read_job);
    CHECK(same.not_modified);
    CHECK(validators.etag() == "\"v3\"");
  }
}

TEST_CASE("a run over canned responses: throttled, transient, then done, in exact virtual time", "[http]") {
  // 429 (Retry-After 3) -> 503 (no hint) -> 200 BUILD (X-Poll-Interval 5) -> 304 -> 200 ACTIVE, on a 1 s schedule.
  std::vector<http_response> replies = {response(429, {{"Retry-After", "3"}}), response(503),
                                        response(200, {{"X-Poll-Interval", "5"}}, "BUILD"), response(304),
                                        response(200, {}, "ACTIVE")};
  std::size_t next = 0;
  pollster::manual_clock clock;
  pollster::poll_options options;
  options.hint_lifetime = 0s;  // a hint holds for the response that carried it
  const auto out = pollster::poll_until(
      clock, [&] { return pollster::step_from_response(replies.at(next++), read_job); }, pollster::constant{1s},
      pollster::after_attempts{10}, options);
  CHECK(out.cause == pollster::cause::done);
  CHECK(out.attempts == 5);
  CHECK(out.elapsed == 3s + 1s + 5s + 1s);
  CHECK(out.value().state == "ACTIVE");
  CHECK(out.last_error->status == 503);  // the latest error seen, kept after success
}
