// A real HTTP client (libcurl's easy interface) for the asynchronous REST pattern: start a job with POST, get
// 202 Accepted with a status URL and Retry-After, then await the status with pollster::await_operation (success
// rule ACTIVE, failure rule FAILED, transient errors retried, any other error explicit), printing each transition. Run against examples/http_operation_server (a real process on loopback):
//
//   http_operation http://127.0.0.1:PORT
//
// Exit status: 0 only when the job was seen ACTIVE; 1 when it ended otherwise (FAILED, a deadline, an error).
//
// How long to wait between checks, in pollster's order: the schedule (100 ms x 1.5, capped at 1 s) -> the server's
// Retry-After as a floor, itself capped by `max_hint` -> the time left before the deadline. The 202's own
// Retry-After decides the first wait the same way (a floor under the schedule's first value).

#include <pollster/await.hpp>
#include <pollster/poll.hpp>
#include <pollster/retry_after.hpp>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>

#include <curl/curl.h>

#include <algorithm>    // max, min
#include <chrono>       // system_clock, steady_clock
#include <cstdio>       // printf
#include <optional>     // optional
#include <string>       // string
#include <string_view>  // string_view

using namespace std::chrono_literals;

namespace {

/// The longest Retry-After this client obeys: a server asking for an hour gets 2 s (the example must stay short).
constexpr pollster::duration max_hint = 2s;
/// Give up on the whole operation after this long.
constexpr pollster::duration operation_budget = 8s;

struct http_response {
  long status = 0;
  std::string body;
  std::string location;
  std::string retry_after;  ///< the raw field value, parsed by pollster::parse_retry_after
  std::string curl_error;   ///< set when no response arrived at all
};

/// Case-insensitive "Name:" prefix test for a header line.
bool header_is(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(line[i]) != lower(name[i])) return false;
  }
  return true;
}

std::string header_value(std::string_view line, std::size_t name_size) {
  line.remove_prefix(name_size + 1);
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ')) line.remove_suffix(1);
  return std::string(line);
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  static_cast<http_response*>(user)->body.append(data, size * count);
  return size * count;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto& response = *static_cast<http_response*>(user);
  const std::string_view line(data, size * count);
  if (header_is(line, "location")) response.location = header_value(line, 8);
  if (header_is(line, "retry-after")) response.retry_after = header_value(line, 11);
  return size * count;
}

/// One request with the easy interface; a short timeout, so a stuck server costs one check, not the run.
http_response request(const std::string& url, bool post) {
  http_response response;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    response.curl_error = "curl_easy_init failed";
    return response;
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);
  if (post) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "{\"flavor\":\"m1.small\"}");
  }
  const CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) {
    response.curl_error = curl_easy_strerror(code);
  } else {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  }
  curl_easy_cleanup(curl);
  return response;
}

/// The `"state":"..."` field of the status document (the server's JSON is flat and known; no JSON library).
std::string state_of(const std::string& body) {
  constexpr std::string_view key = "\"state\":\"";
  const std::size_t at = body.find(key);
  if (at == std::string::npos) return "";
  const std::size_t end = body.find('"', at + key.size());
  return end == std::string::npos ? "" : body.substr(at + key.size(), end - at - key.size());
}

/// What one status check saw.
struct job_status {
  std::string state;
  long http_status = 0;
};

/// Why a check did not see a status.
struct http_error {
  long http_status = 0;  ///< 0: no response at all
  std::string message;
};

/// The hint a response carries, through pollster's RFC 9110 parser (delay-seconds or an HTTP-date).
pollster::retry_hint hint_of(const http_response& r) {
  if (r.retry_after.empty()) return {};
  return pollster::retry_after(pollster::parse_retry_after(r.retry_after, std::chrono::system_clock::now()));
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
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const auto start = std::chrono::steady_clock::now();

  // 1. Start the job.
  const http_response accepted = request(base + "/jobs", true);
  if (!accepted.curl_error.empty() || accepted.status != 202 || accepted.location.empty()) {
    std::printf("POST /jobs failed: %s (HTTP %ld)\n",
                accepted.curl_error.empty() ? "no 202 with a Location" : accepted.curl_error.c_str(), accepted.status);
    curl_global_cleanup();
    return 1;
  }
  const auto first_hint = pollster::parse_retry_after(accepted.retry_after, std::chrono::system_clock::now());
  std::printf("t=%.2fs POST /jobs -> %ld Accepted, Location: %s, Retry-After: %s\n", seconds_since(start),
              accepted.status, accepted.location.c_str(),
              accepted.retry_after.empty() ? "(none)" : accepted.retry_after.c_str());

  // 2. Await it. The schedule: 100 ms x 1.5 up to 1 s; the 202's Retry-After is a floor under the first wait,
  //    capped by max_hint like every hint. Later hints come from the status responses.
  const pollster::geometric growth{100ms, 1.5, 1s};
  const pollster::duration first_wait = std::max(growth.preview(1).front(), std::min(first_hint.value_or(0s), max_hint));
  const pollster::chain schedule{pollster::constant{first_wait}, 1, growth};
  pollster::poll_options options;
  options.wait_first = true;           // the 202 said when to come back: do not ask before then
  options.max_hint = max_hint;         // never obey a Retry-After longer than this
  options.hint_lifetime = 0s;          // a hint applies to the response that carried it (BUILDING carries none)
  const std::string status_url = base + accepted.location;

  // One status check: the rules below judge what it saw. Errors are kept apart from states: no response or a 5xx
  // is worth another try; anything else matches no rule and ends the await at once (never retried forever).
  auto fetch = [&]() -> pollster::step<job_status, http_error> {
    const http_response r = request(status_url, false);
    if (!r.curl_error.empty()) return pollster::transient(http_error{0, r.curl_error});
    if (r.status == 429) return pollster::throttled(http_error{429, "rate limited"}, hint_of(r));
    if (r.status != 200) return pollster::transient(http_error{r.status, "unexpected status"}, hint_of(r));
    return pollster::pending(job_status{state_of(r.body), r.status}, hint_of(r));
  };
  const auto rules = pollster::rules(
      pollster::succeed_when(pollster::path(&job_status::state, "state") == "ACTIVE"),
      pollster::fail_when(pollster::path(&job_status::state, "state") == "FAILED"),
      pollster::retry_when(pollster::error_if(
          [](const http_error& e) { return e.http_status == 0 || e.http_status == 429 || e.http_status >= 500; },
          "no response, 429 or 5xx")));
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
  if (outcome.last_error) {
    std::printf("last error: HTTP %ld, %s\n", outcome.last_error->http_status, outcome.last_error->message.c_str());
  }
  curl_global_cleanup();
  return outcome.ok() && outcome.value().state == "ACTIVE" ? 0 : 1;
}
