// curl.hpp against a real server process (tests/servers/http_fault_server, cpp-httplib) on loopback, through the
// http.hpp policy: each fault class with its exact cause, last value and last error; 304s; a server restarted
// mid-poll; 1 000 requests in flight on one thread; aborts; the rate-limited route. The poller's schedule runs on the
// manual clock (its sleeps take no real time); the requests are real, and every real wait is bounded.
// CTest runs it twice: with the default event loop (socket_action on epoll, on Linux) and with
// POLLSTER_CURL_LOOP=multi_poll, the portable loop.
#include "pollster_catch.hpp"
#include "servers/server_process.hpp"

#include <pollster/curl.hpp>
#include <pollster/http.hpp>
#include <pollster/poll.hpp>
#include <pollster/runner.hpp>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>
#include <pollster/watch.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using pollster::duration;
using pollster::http_error;
using pollster::http_error_kind;
using pollster::http_request;
using pollster::http_response;
using pollster::transport_error;
using json = nlohmann::json;
using server_process = pollster_test::server_process;

namespace {

struct job {
  std::string id;
  std::string state;
};

/// The status document, read with a real JSON parser: garbage throws, and the policy makes it a body error.
pollster::step<job, http_error> read_job(const http_response& r) {
  const json doc = json::parse(r.body);
  job j{doc.at("id").get<std::string>(), doc.at("state").get<std::string>()};
  if (j.state == "ACTIVE") return pollster::done(std::move(j));
  if (j.state == "FAILED") {
    http_error e;
    e.kind = http_error_kind::body;
    e.status = r.status;
    e.reason = "the job failed";
    return pollster::failed(std::move(e));
  }
  return pollster::pending(std::move(j));
}

/// The client options of this run: the event loop comes from POLLSTER_CURL_LOOP (CTest sets it for the second run).
pollster::curl_options test_options() {
  pollster::curl_options options;
  const char* loop = std::getenv("POLLSTER_CURL_LOOP");
  if (loop != nullptr && std::string(loop) == "multi_poll") options.event_loop = pollster::curl_event_loop::multi_poll;
  return options;
}

server_process start_server(std::vector<std::string> arguments = {}) {
  arguments.insert(arguments.end(), {"--lifetime", "120"});
  return server_process(POLLSTER_HTTP_FAULT_SERVER, std::move(arguments));
}

json server_stats(pollster::curl_client& client, const server_process& server) {
  const http_response r = client.perform(http_request(server.url("/_/stats")));
  REQUIRE(r.status == 200);
  return json::parse(r.body);
}

std::string percent_encoded(const std::string& text) {
  static const char* const hex = "0123456789ABCDEF";
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

double seconds(duration d) { return std::chrono::duration<double>(d).count(); }

/// A synchronous check: one real request per attempt (a 300 ms timeout), judged by the policy.
auto http_check(pollster::curl_client& client, std::string url) {
  return [&client, url] {
    http_request request(url);
    request.timeout = 300ms;
    return pollster::step_from_response(client.perform(std::move(request)), read_job);
  };
}

/// One row of the fault table, printed for the report.
void print_row(const char* fault, const pollster::outcome<job, http_error>& out, double wall_seconds) {
  std::printf("| %-38s | %-9s | %-8s | %-78s | %5.1f s | %5.2f s |\n", fault, pollster::to_string(out.cause),
              out.last_value ? out.last_value->state.c_str() : "(none)",
              out.last_error ? out.last_error->describe().substr(0, 78).c_str() : "(none)", seconds(out.elapsed),
              wall_seconds);
}

/// Runs `check` on a 1 s schedule for at most 3 attempts on the manual clock, timing the real run too.
template <class Check>
pollster::outcome<job, http_error> run_three(const char* fault, Check check) {
  pollster::manual_clock clock;
  const auto start = std::chrono::steady_clock::now();
  auto out = pollster::poll_until(clock, std::move(check), pollster::constant{1s}, pollster::after_attempts{3});
  print_row(fault, out, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return out;
}

}  // namespace

TEST_CASE("each fault class ends the run with the expected cause, last value and last error", "[curl][faults]") {
  server_process server = start_server();
  pollster::curl_client client(test_options());

  SECTION("500: transient three times, then exhausted; nothing invented") {
    const auto out = run_three("500", http_check(client, server.url("/respond?status=500")));
    CHECK(out.cause == pollster::cause::exhausted);
    CHECK(out.attempts == 3);
    CHECK_FALSE(out.last_value);
    REQUIRE(out.last_error);
    CHECK(out.last_error->describe() == "HTTP 500 Internal Server Error [{\"error\":500}]");
    CHECK(out.last_error->retryable);
    CHECK(out.elapsed == 2s);
  }
  SECTION("429 with Retry-After in seconds: throttled, and the 7 s hint is obeyed twice") {
    const auto out =
        run_three("429, Retry-After: 7", http_check(client, server.url("/respond?status=429&retry_after=7")));
    CHECK(out.cause == pollster::cause::exhausted);
    CHECK(out.last_error->status == 429);
    CHECK(out.last_error->reason == "Too Many Requests");
    CHECK(out.elapsed == 14s);
  }
  SECTION("429 with Retry-After as an HTTP-date 7 s after the response's Date") {
    const auto out = run_three("429, Retry-After: <Date + 7 s>",
                               http_check(client, server.url("/respond?status=429&retry_after_date=7")));
    CHECK(out.cause == pollster::cause::exhausted);
    CHECK(out.last_error->status == 429);
    CHECK(out.elapsed == 14s);
  }
  SECTION("a server clock an hour ahead or behind: the HTTP-date is read against its Date, still 7 s") {
    const auto ahead =
        run_three("429, HTTP-date, server clock +1 h",
                  http_check(client, server.url("/respond?status=429&retry_after_date=7&date_skew=3600")));
    CHECK(ahead.elapsed == 14s);  // against our clock it would be 3607 s each
    const auto behind =
        run_three("429, HTTP-date, server clock -1 h",
                  http_check(client, server.url("/respond?status=429&retry_after_date=7&date_skew=-3600")));
    CHECK(behind.elapsed == 14s);  // against our clock, a date in the past: no wait at all
    CHECK(behind.last_error->status == 429);
  }
  SECTION("a garbage Retry-After is no hint: the schedule decides") {
    const auto out =
        run_three("503, Retry-After: soon", http_check(client, server.url("/respond?status=503&retry_after=soon")));
    CHECK(out.cause == pollster::cause::exhausted);
    CHECK(out.last_error->describe() == "HTTP 503 Service Unavailable [{\"error\":503}]");
    CHECK(out.elapsed == 2s);
  }
  SECTION("malformed JSON ends the run at once: a body error, never a silent pending") {
    const auto out = run_three(
        "200, malformed JSON",
        http_check(client, server.url("/respond?body=" + percent_encoded("{\"id\": \"a\", \"state\": ACTIVE}"))));
    CHECK(out.cause == pollster::cause::failed);
    CHECK(out.attempts == 1);
    CHECK_FALSE(out.last_value);
    REQUIRE(out.last_error);
    CHECK(out.last_error->kind == http_error_kind::body);
    CHECK(out.last_error->status == 200);
    CHECK_THAT(out.last_error->reason, Catch::Matchers::ContainsSubstring("[json.exception.parse_error.101]"));
    CHECK(out.last_error->body_excerpt == "{\"id\": \"a\", \"state\": ACTIVE}");
  }
  SECTION("valid JSON with a space after the colon is read") {
    const auto out = run_three(
        "200, {\"state\": \"ACTIVE\"}",
        http_check(client, server.url("/respond?body=" + percent_encoded("{\"id\": \"a\", \"state\": \"ACTIVE\"}"))));
    CHECK(out.cause == pollster::cause::done);
    CHECK(out.value().state == "ACTIVE");
  }
  SECTION("a connection closed mid-response: truncated, never a transition to \"\"") {
    const auto out =
        run_three("connection closed mid-body",
                  http_check(client, server.url("/respond?truncate=1&body=" +
                                                percent_encoded("{\"id\": \"a\", \"state\": \"ACTIVE\"}"))));
    CHECK(out.cause == pollster::cause::exhausted);
    CHECK_FALSE(out.last_value);
    REQUIRE(out.last_error);
    CHECK(out.last_error->kind == http_error_kind::transport);
    CHECK(out.last_error->transport == transport_error::truncated);
    CHECK(out.last_error->status == 200);
    CHECK(out.last_error->body_excerpt == "{\"id\": \"a\", \"st");  // the half that arrived, not read
  }
  SECTION("a server that never answers: each request times out after its 300 ms") {
    const auto started = std::chrono::steady_clock::now();
    const auto out = run_three("never answers (300 ms timeout)", http_check(client, server.url("/hang")));
    const auto wall = std::chrono::steady_clock::now() - started;
    CHECK(out.cause == pollster::cause::exhausted);
    CHECK(out.last_error->transport == transport_error::timeout);
    CHECK(out.last_error->status == 0);
    CHECK(wall >= 900ms);
    CHECK(wall < 5s);
  }
  SECTION("connection refused") {
    server_process gone = start_server();
    const std::string url = gone.url("/ok");
    gone.stop();
    const auto out = run_three("connection refused", http_check(client, url));
    CHECK(out.cause == pollster::cause::exhausted);
    CHECK(out.last_error->transport == transport_error::refused);
    CHECK_THAT(out.last_error->reason, Catch::Matchers::ContainsSubstring("Couldn't connect to server"));
  }
}

TEST_CASE("a server killed and restarted mid-poll: refused in between, then the job is seen through",
          "[curl][faults]") {
  server_process server = start_server();
  pollster::curl_client client(test_options());
  const std::string url = server.url("/jobs/restart?pending=3");
  int attempt = 0;
  std::vector<std::string> seen;
  auto check = [&] {
    ++attempt;
    if (attempt == 3) server.kill();     // a crash between two polls
    if (attempt == 4) server.restart();  // back on the same port, with its job counts lost
    http_request request(url);
    request.timeout = 2s;
    auto step = pollster::step_from_response(client.perform(std::move(request)), read_job);
    seen.push_back(step.value ? step.value->state : std::string("error: ") + to_string(step.error->transport));
    return step;
  };
  pollster::manual_clock clock;
  const auto start = std::chrono::steady_clock::now();
  const auto out = pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{10});
  print_row("server killed and restarted mid-poll", out,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  CHECK(out.cause == pollster::cause::done);
  CHECK(out.attempts == 7);
  CHECK(seen ==
        std::vector<std::string>{"PENDING", "PENDING", "error: refused", "PENDING", "PENDING", "PENDING", "ACTIVE"});
  CHECK(out.value().state == "ACTIVE");
  REQUIRE(out.last_error);  // the latest error seen, kept: the outage is on record
  CHECK(out.last_error->transport == transport_error::refused);
  CHECK(out.elapsed == 6s);
}

TEST_CASE("a watcher on an ETag'd collection: unchanged polls cost a 304 and report nothing", "[curl][etag]") {
  server_process server = start_server();
  pollster::curl_client client(test_options());
  struct item {
    int id = 0;
    std::string name;
    bool operator==(const item& o) const { return id == o.id && name == o.name; }
  };
  const auto put = [&](const char* body) {
    http_request r(server.url("/collection"), "PUT");
    r.body = body;
    REQUIRE(client.perform(std::move(r)).status == 200);
  };
  put(R"([{"id": 1, "name": "a"}])");
  REQUIRE(client.perform(http_request(server.url("/_/reset"), "POST")).status == 200);

  pollster::conditional_request validators;
  int polls = 0;
  auto fetch = [&]() -> pollster::step<std::vector<item>, http_error> {
    ++polls;
    if (polls == 4) put(R"([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])");  // one change, seen at poll 4
    http_request request(server.url("/collection"));
    request.timeout = 2s;
    validators.apply(request);
    return validators.read(client.perform(std::move(request)), [](const http_response& r) {
      std::vector<item> items;
      for (const json& e : json::parse(r.body))
        items.push_back({e.at("id").get<int>(), e.at("name").get<std::string>()});
      return items;
    });
  };
  std::vector<std::string> events;
  auto handler = [&events](const auto& e) {
    using event = std::decay_t<decltype(e)>;
    if constexpr (std::is_same_v<event, pollster::added<const item&>>)
      events.push_back("added " + e.element.name);
    else
      events.push_back("other");
  };
  pollster::manual_clock clock;
  pollster::watcher w(fetch, &item::id, handler, pollster::constant{10s}, pollster::after_attempts{6});
  const auto out = w.run(clock);
  CHECK(out.cause == pollster::cause::exhausted);
  CHECK(events == std::vector<std::string>{"added a", "added b"});
  CHECK(out.report.polls == 2);         // bodies read: the first, and the one after the change
  CHECK(out.report.not_modified == 4);  // polls 2, 3, 5, 6
  CHECK(validators.etag() == "\"v3\"");      // v2 was the first PUT's, v3 the change's
  const json stats = server_stats(client, server);
  CHECK(stats.at("by_status").value("304", 0) == 4);
  CHECK(stats.at("by_status").value("200", 0) == 2);  // the two GETs with a body (a PUT is not counted)
}

TEST_CASE("1 000 requests in flight at once on one client thread against one server", "[curl][scale]") {
  // The server holds each /gate request until 1 000 are held together: the run cannot finish otherwise.
  server_process server = start_server({"--threads", "1100"});
  pollster_test::raise_open_file_limit(2200);  // 1 000 connections here; a soft limit of 1 024 would not do
  pollster::curl_options options = test_options();
  options.max_transfers = 1000;
  options.connect_timeout = 45s;  // generous: a loaded CI machine under a sanitizer connects slowly
  pollster::curl_client client(options);
  REQUIRE(client.perform(http_request(server.url("/_/reset"), "POST")).status == 200);

  std::mutex mutex;
  std::condition_variable all_done;
  int ok = 0;
  int completed = 0;
  std::set<std::thread::id> callback_threads;
  std::string first_failure;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) {
    http_request request(server.url("/gate?n=1000"));
    request.timeout = 45s;
    client.start(std::move(request), [&](http_response&& r) {
      std::lock_guard<std::mutex> lock(mutex);
      const bool held = r.status == 200 && json::parse(r.body).at("held") == 1000;
      ok += held ? 1 : 0;
      if (!held && first_failure.empty())
        first_failure =
            pollster::step_from_response(r, [](auto&) { return 0; }).error.value_or(http_error{}).describe();
      ++completed;
      callback_threads.insert(std::this_thread::get_id());
      all_done.notify_one();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mutex);
    REQUIRE(all_done.wait_for(lock, 60s, [&] { return completed == 1000; }));
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  INFO("the first request that failed: " << first_failure);
  CHECK(ok == 1000);
  CHECK(callback_threads.size() == 1);  // every callback on the client's one I/O thread
  CHECK(callback_threads.count(std::this_thread::get_id()) == 0);
  const pollster::curl_client_stats stats = client.stats();
  CHECK(stats.peak_in_flight >= 1000);
  const json server_side = server_stats(client, server);
  CHECK(server_side.at("peak_in_flight") == 1000);  // the server held 1 000 at once
  CHECK(server_side.at("by_status").value("200", 0) == 1000);
  std::printf(
      "1000 in flight: all answered in %.2f s; %llu connections opened; client peak %llu in flight; server "
      "peak %d\n",
      wall, static_cast<unsigned long long>(stats.connections_opened),
      static_cast<unsigned long long>(stats.peak_in_flight), server_side["peak_in_flight"].get<int>());
}

TEST_CASE("the event loop is socket_action on Linux unless multi_poll is asked for", "[curl]") {
  pollster::curl_client client(test_options());
  const char* loop = std::getenv("POLLSTER_CURL_LOOP");
  const bool multi_poll = loop != nullptr && std::string(loop) == "multi_poll";
#if defined(__linux__)
  CHECK(client.event_loop() ==
        (multi_poll ? pollster::curl_event_loop::multi_poll : pollster::curl_event_loop::socket_action));
#else
  CHECK(client.event_loop() == pollster::curl_event_loop::multi_poll);
#endif
}

TEST_CASE("a callback that throws is counted, and the I/O thread goes on with the others", "[curl]") {
  server_process server = start_server();
  pollster::curl_client client(test_options());
  client.start(http_request(server.url("/ok")),
               [](http_response&&) { throw std::runtime_error("a bug in a callback"); });
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (client.stats().callback_exceptions == 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);  // bounded: the throw has happened once this is 1
  }
  CHECK(client.stats().callback_exceptions == 1);
  const http_response after = client.perform(http_request(server.url("/ok")));  // the I/O thread is still there
  CHECK(after.status == 200);
}

TEST_CASE("connections are reused: a hundred requests in a row open one", "[curl]") {
  server_process server = start_server();
  pollster::curl_client client(test_options());
  for (int i = 0; i < 100; ++i) REQUIRE(client.perform(http_request(server.url("/ok"))).status == 200);
  CHECK(client.stats().connections_opened == 1);
  CHECK(client.stats().completed == 100);
}

TEST_CASE("abort: the callback runs once with aborted, whenever the abort comes", "[curl][abort]") {
  server_process server = start_server();
  pollster::curl_client client(test_options());
  std::mutex mutex;
  std::condition_variable done;
  std::vector<transport_error> results;
  const auto record = [&](http_response&& r) {
    std::lock_guard<std::mutex> lock(mutex);
    results.push_back(r.transport);
    done.notify_one();
  };
  const auto wait_for = [&](std::size_t n) {
    std::unique_lock<std::mutex> lock(mutex);
    return done.wait_for(lock, 5s, [&] { return results.size() >= n; });
  };
  SECTION("in flight, against a server that never answers") {
    const auto started = std::chrono::steady_clock::now();
    const pollster::curl_transfer t = client.start(http_request(server.url("/hang")), record);
    std::this_thread::sleep_for(50ms);  // bounded: let it reach the server
    t.abort();
    REQUIRE(wait_for(1));
    CHECK(std::chrono::steady_clock::now() - started < 2s);
    t.abort();  // again, and after the callback: nothing more happens
    std::this_thread::sleep_for(20ms);
    CHECK(results == std::vector<transport_error>{transport_error::aborted});
    CHECK(client.stats().aborted == 1);
  }
  SECTION("before it starts: a reserved transfer aborted first completes as aborted") {
    const pollster::curl_transfer t = client.reserve();
    t.abort();
    client.start(t, http_request(server.url("/ok")), record);
    REQUIRE(wait_for(1));
    CHECK(results == std::vector<transport_error>{transport_error::aborted});
  }
  SECTION("after the response: nothing happens") {
    const pollster::curl_transfer t = client.start(http_request(server.url("/ok")), record);
    REQUIRE(wait_for(1));
    t.abort();
    std::this_thread::sleep_for(20ms);
    CHECK(results == std::vector<transport_error>{transport_error::none});
  }
  SECTION("a client destroyed with requests in flight and queued aborts them all, at once") {
    std::vector<transport_error> seen;
    {
      pollster::curl_options options = test_options();
      options.max_transfers = 2;  // two in flight, three queued
      pollster::curl_client short_lived(options);
      for (int i = 0; i < 5; ++i) short_lived.start(http_request(server.url("/hang")), record);
      std::this_thread::sleep_for(50ms);
    }
    std::lock_guard<std::mutex> lock(mutex);
    CHECK(results == std::vector<transport_error>(5, transport_error::aborted));
  }
}

namespace {
/// A stand-in for pollster::completion with the members start_check uses (state().time_left / .timeout,
/// on_abort(fn), operator()(step)), move-only as the real one: it lets a test set the time left directly and call
/// the registered abort itself. The tests below it use the real completion through poll_until and a runner.
struct fake_state {
  duration time_left = duration::max();
  duration timeout = duration::max();
};
struct fake_completion {
  struct shared {
    std::mutex mutex;
    std::condition_variable done;
    std::optional<pollster::step<job, http_error>> result;
    std::function<void()> abort;
    int completions = 0;
  };
  std::shared_ptr<shared> s = std::make_shared<shared>();
  fake_state st;

  fake_completion() = default;
  fake_completion(fake_completion&&) = default;
  fake_completion(const fake_completion&) = delete;
  const fake_state& state() const { return st; }
  void on_abort(std::function<void()> f) { s->abort = std::move(f); }
  void operator()(pollster::step<job, http_error> step) {
    std::lock_guard<std::mutex> lock(s->mutex);
    s->result.emplace(std::move(step));
    ++s->completions;
    s->done.notify_all();
  }
  bool wait(duration bound) const {
    std::unique_lock<std::mutex> lock(s->mutex);
    return s->done.wait_for(lock, bound, [this] { return s->completions != 0; });
  }
};
}  // namespace

TEST_CASE("start_check: an asynchronous check's request in one call, bounded by the time the run has left",
          "[curl][async]") {
  server_process server = start_server();
  pollster::curl_client client(test_options());
  SECTION("the response completes the check through the policy") {
    fake_completion c;
    auto shared = c.s;
    client.start_check(std::move(c), http_request(server.url("/jobs/x?pending=0")), read_job);
    REQUIRE(fake_completion{}.s != shared);  // (a fresh one is another; the moved one lives in the request)
    std::unique_lock<std::mutex> lock(shared->mutex);
    REQUIRE(shared->done.wait_for(lock, 5s, [&] { return shared->completions == 1; }));
    CHECK(shared->result->kind == pollster::step_kind::done);
    CHECK(shared->result->value->state == "ACTIVE");
  }
  SECTION("time left cuts the request's timeout: a hung server costs 200 ms, not the default 30 s") {
    fake_completion c;
    c.st.time_left = 200ms;
    auto shared = c.s;
    const auto started = std::chrono::steady_clock::now();
    client.start_check(std::move(c), http_request(server.url("/hang")), read_job);
    std::unique_lock<std::mutex> lock(shared->mutex);
    REQUIRE(shared->done.wait_for(lock, 5s, [&] { return shared->completions == 1; }));
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took >= 190ms);
    CHECK(took < 2s);
    CHECK(shared->result->kind == pollster::step_kind::transient);
    CHECK(shared->result->error->transport == transport_error::timeout);
  }
  SECTION("the abort it registers aborts the transfer (an attempt timed out or a poller cancelled)") {
    fake_completion c;
    auto shared = c.s;
    client.start_check(std::move(c), http_request(server.url("/hang")), read_job);
    REQUIRE(shared->abort);
    shared->abort();
    std::unique_lock<std::mutex> lock(shared->mutex);
    REQUIRE(shared->done.wait_for(lock, 5s, [&] { return shared->completions == 1; }));
    CHECK(shared->result->error->transport == transport_error::aborted);
  }
}

TEST_CASE("an asynchronous check in one call: start_check completes the attempt from the I/O thread",
          "[curl][async]") {
  server_process server = start_server();
  pollster::curl_client client(test_options());
  const std::string url = server.url("/jobs/async?pending=2");
  auto check = [&client, url](pollster::completion<job, http_error> c) {
    client.start_check(std::move(c), http_request(url), read_job);
  };
  pollster::steady_clock clock;
  const auto out = pollster::poll_until(clock, check, pollster::constant{10ms}, pollster::after_attempts{10});
  CHECK(out.cause == pollster::cause::done);
  CHECK(out.attempts == 3);  // PENDING, PENDING, ACTIVE
  CHECK(out.value().state == "ACTIVE");
  CHECK(out.timeouts == 0);
  CHECK(client.stats().completed == 3);
}

TEST_CASE("an attempt that outlives its timeout aborts its request: a hung server costs the attempt's time",
          "[curl][async]") {
  server_process server = start_server();
  pollster::curl_client client(test_options());
  const std::string url = server.url("/hang");
  auto check = [&client, url](pollster::completion<job, http_error> c) {
    client.start_check(std::move(c), http_request(url), read_job);
  };
  pollster::steady_clock clock;
  pollster::poll_options options;
  options.attempt_timeout = 200ms;  // the request's own timeout is cut to this too; the poller's fires first or with it
  const auto started = std::chrono::steady_clock::now();
  const auto out =
      pollster::poll_until(clock, check, pollster::constant{10ms}, pollster::after_attempts{2}, options);
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(out.cause == pollster::cause::exhausted);
  CHECK(out.attempts == 2);
  CHECK(took >= 400ms);
  CHECK(took < 3s);
  // Each attempt ended either by the poller's timeout (which aborts the transfer) or by the request's own timeout
  // at the same 200 ms: either way no request is left behind.
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (client.in_flight() != 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  CHECK(client.in_flight() == 0);
  CHECK(client.stats().transport_errors == 2);  // aborted or timed out, one per attempt
}

TEST_CASE("1 000 pollers with asynchronous HTTP checks on one runner thread keep the server under their budget",
          "[curl][async][budget]") {
  // The budget grants 100 checks a second (burst 1, so 10 ms apart) to 1 000 pollers that would each poll every
  // second. The server counts what arrives per wall-clock second of its own: never more than the budget's 100, +1 for
  // a second the budget's grid does not line up with, +1 for a request that crosses the server's second boundary in
  // transit; and at its own limit of 102 it never answers 429.
  server_process server = start_server({"--rate-limit", "102", "--threads", "300"});
  pollster::curl_client client(test_options());  // declared first: it outlives the runner's last abort
  REQUIRE(client.perform(http_request(server.url("/_/reset"), "POST")).status == 200);
  pollster::steady_clock clock;
  pollster::runner<pollster::steady_clock> fleet(clock);
  pollster::budget_options budget;
  budget.rate = 100;
  budget.burst = 1;
  const pollster::budget_id api = fleet.add_budget("api", budget);
  pollster::submit_options submit;
  submit.budget = api;
  int finished = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string url = server.url("/limited/servers/" + std::to_string(i));
    auto check = [&client, url](pollster::completion<int, http_error> c) {
      client.start_check(std::move(c), http_request(url), [](const http_response&) { return 1; });
    };
    fleet.submit(check, pollster::constant{1s}, pollster::never{}, [&finished](auto&&) { ++finished; }, submit);
  }
  fleet.run_for(3s);
  const json stats = server_stats(client, server);
  const json& limited = stats.at("limited");
  INFO("per second: " << limited.at("per_second").dump());
  CHECK(limited.at("max_per_second").get<int>() <= 102);
  CHECK(limited.at("rejected").get<int>() == 0);
  const int served = stats.at("requests").get<int>();
  // About 300 in 3 s at 100 a second (the first second is partly spent starting up); on a 2-core machine at a load
  // average of 72 the starved client thread managed 242 to 245. The bound only proves the pollers ran.
  CHECK(served >= 150);
  CHECK(served <= 302);
  CHECK(finished == 0);
  std::printf("budget 100/s, 1000 pollers, 3 s: the server saw %d requests, at most %d in one second\n", served,
              limited.at("max_per_second").get<int>());
}

TEST_CASE("the rate-limited route: 429 over the limit, read as throttled with the hint of the RateLimit fields",
          "[curl][ratelimit]") {
  server_process server = start_server({"--rate-limit", "20"});
  pollster::curl_client client(test_options());
  REQUIRE(client.perform(http_request(server.url("/_/reset"), "POST")).status == 200);
  int admitted = 0;
  int throttled = 0;
  for (int i = 0; i < 50; ++i) {
    const http_response r = client.perform(http_request(server.url("/limited/servers")));
    const auto step = pollster::step_from_response(r, [](const http_response&) { return 1; });
    const auto hints = pollster::read_hints(r);
    REQUIRE(hints.rate_limits.size() == 1);
    CHECK(hints.rate_limits[0].policy == "default");
    CHECK(hints.rate_limits[0].quota == std::uint64_t{20});
    if (r.status == 200) {
      ++admitted;
      CHECK(step.kind == pollster::step_kind::pending);
    } else {
      ++throttled;
      CHECK(r.status == 429);
      CHECK(step.throttled);
      CHECK(hints.rate_limits[0].remaining == 0);
      REQUIRE(hints.delay());
      CHECK(*hints.delay() > 0s);
      CHECK(*hints.delay() <= 1s);  // Retry-After: the rest of the server's second, rounded up
    }
  }
  const json stats = server_stats(client, server);
  CHECK(stats["limited"]["max_admitted_per_second"].get<int>() <= 20);
  CHECK(stats["limited"]["rejected"].get<int>() == throttled);
  CHECK(admitted + throttled == 50);
  CHECK(throttled > 0);
}

TEST_CASE("curl_perform: one blocking request with the easy interface", "[curl]") {
  server_process server = start_server();
  const http_response r = pollster::curl_perform(http_request(server.url("/jobs/p?pending=5")));
  CHECK(r.status == 200);
  CHECK(r.reason == "OK");
  CHECK(r.headers.get("content-type") == "application/json");
  CHECK(json::parse(r.body).at("state") == "PENDING");
  CHECK(r.received_at != std::chrono::system_clock::time_point{});
  const std::string url = server.url("/ok");
  server.stop();
  const http_response refused = pollster::curl_perform(http_request(url));
  CHECK(refused.transport == transport_error::refused);
  CHECK_FALSE(refused.complete());
}
