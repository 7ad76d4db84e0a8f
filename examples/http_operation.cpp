// The asynchronous REST pattern with pollster's HTTP parts: start a job with POST, get 202 Accepted with a status URL
// and Retry-After, then await the status with pollster::await_operation (success rule ACTIVE, failure rule FAILED,
// retryable HTTP errors retried, any other error explicit), printing each transition. The requests go through
// pollster::curl_client (libcurl); http.hpp's policy turns each response into a step; the status document is read with
// nlohmann/json, so {"state": "ACTIVE"} with a space after the colon is read, and a cut-off or garbled body is an
// error the rules see, never an empty state. Run against examples/http_operation_server (a real process on loopback):
//
//   http_operation http://127.0.0.1:PORT
//
// Exit status: 0 only when the job was seen ACTIVE; 1 when it ended otherwise (FAILED, a deadline, an error).
//
// How long to wait between checks, in pollster's order: the schedule (100 ms x 1.5, capped at 1 s) -> the server's
// Retry-After as a floor, itself capped by `max_hint` -> the time left before the deadline. The 202's own
// Retry-After decides the first wait the same way (a floor under the schedule's first value).

#include <pollster/await.hpp>
#include <pollster/curl.hpp>
#include <pollster/http.hpp>
#include <pollster/poll.hpp>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>  // max, min
#include <chrono>     // steady_clock
#include <cstdio>     // printf
#include <string>     // string

using namespace std::chrono_literals;

namespace {

/// The longest Retry-After this client obeys: a server asking for an hour gets 2 s (the example must stay short).
constexpr pollster::duration max_hint = 2s;
/// Give up on the whole operation after this long.
constexpr pollster::duration operation_budget = 8s;

/// What one status check saw.
struct job_status {
  std::string state;
};

/// The status document. A body that is not this JSON throws, and the policy makes that an http_error of kind body.
job_status read_status(const pollster::http_response& r) {
  return job_status{nlohmann::json::parse(r.body).at("state").get<std::string>()};
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s http://127.0.0.1:PORT\n", argv[0]);
    return 64;
  }
  const std::string base = argv[1];
  pollster::curl_client client;  // one I/O thread; connections kept and reused
  const auto start = std::chrono::steady_clock::now();

  // 1. Start the job.
  pollster::http_request post(base + "/jobs", "POST");
  post.body = R"({"flavor": "m1.small"})";
  post.headers.add("Content-Type", "application/json");
  post.timeout = 2s;
  const pollster::http_response accepted = client.perform(post);
  const auto location = accepted.headers.get("Location");
  if (accepted.status != 202 || !location) {
    std::printf("POST /jobs failed: HTTP %d %s\n", accepted.status,
                accepted.complete() ? "without a 202 and a Location" : accepted.transport_message.c_str());
    return 1;
  }
  const auto first_hint = pollster::read_hints(accepted).retry_after;
  std::printf("t=%.2fs POST /jobs -> %d %s, Location: %s, Retry-After: %.0f s\n", seconds_since(start), accepted.status,
              accepted.reason.c_str(), std::string(*location).c_str(),
              std::chrono::duration<double>(first_hint.value_or(0s)).count());

  // 2. Await it. The schedule: 100 ms x 1.5 up to 1 s; the 202's Retry-After is a floor under the first wait,
  //    capped by max_hint like every hint. Later hints come from the status responses.
  const pollster::geometric growth{100ms, 1.5, 1s};
  const pollster::duration first_wait =
      std::max(growth.preview(1).front(), std::min(first_hint.value_or(0s), max_hint));
  const pollster::chain schedule{pollster::constant{first_wait}, 1, growth};
  pollster::poll_options options;
  options.wait_first = true;    // the 202 said when to come back: do not ask before then
  options.max_hint = max_hint;  // never obey a Retry-After longer than this
  options.hint_lifetime = 0s;   // a hint applies to the response that carried it (BUILDING carries none)
  const std::string status_url = base + std::string(*location);

  // One status check, through the policy: a 2xx body is read; 429 throttles; 5xx, 408 and no response at all are
  // retryable errors; anything else is an error that ends the await at once (never retried forever).
  auto fetch = [&] {
    pollster::http_request request(status_url);
    request.timeout = 2s;  // a stuck server costs one check, not the run
    return pollster::step_from_response(client.perform(request), read_status);
  };
  const auto rules =
      pollster::rules(pollster::succeed_when(pollster::path(&job_status::state, "state") == "ACTIVE"),
                      pollster::fail_when(pollster::path(&job_status::state, "state") == "FAILED"),
                      pollster::retry_when(pollster::error_if([](const pollster::http_error& e) { return e.retryable; },
                                                              "a retryable HTTP error")));
  auto transitions = pollster::on_transition(&job_status::state, [&](const pollster::transition<std::string>& t) {
    std::printf("t=%.2fs check %llu: %s%s\n", seconds_since(start), static_cast<unsigned long long>(t.attempt),
                t.from ? (*t.from + " -> ").c_str() : "", t.to.c_str());
  });

  const auto outcome = pollster::await_operation(fetch, rules, schedule, pollster::before_deadline{operation_budget},
                                                 options, transitions);

  std::printf("outcome: %s after %llu checks, %.2fs (slept %.2fs); last state %s\n", pollster::to_string(outcome.cause),
              static_cast<unsigned long long>(outcome.attempts), std::chrono::duration<double>(outcome.elapsed).count(),
              std::chrono::duration<double>(outcome.slept).count(),
              outcome.last_value ? outcome.last_value->state.c_str() : "(none)");
  std::printf("why: %s\n", outcome.report.why.c_str());
  if (outcome.last_error) std::printf("last error: %s\n", outcome.last_error->describe().c_str());
  const pollster::curl_client_stats stats = client.stats();
  std::printf("requests: %llu on %llu connection(s)\n", static_cast<unsigned long long>(stats.completed),
              static_cast<unsigned long long>(stats.connections_opened));
  return outcome.ok() && outcome.value().state == "ACTIVE" ? 0 : 1;
}
