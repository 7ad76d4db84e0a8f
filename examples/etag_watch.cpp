// Watching a REST collection with ETags: a simulated day of a fleet of 20 servers that changes 48 times, polled
// three ways, with the calls, the bodies, the 304s and the detection delay of each:
//
//   fixed 10 s            GET every 10 s, unconditionally: every call returns the whole list
//   fixed 10 s + ETag     the same calls, with If-None-Match: an unchanged list costs a 304 and no body (GitHub,
//                         for one, does not count a 304 against its rate limit)
//   watcher + ETag        pollster's watcher: 5 s growing x1.5 to 1 min while quiet, back to 5 s after a change
//
// It runs in virtual time (pollster::manual_clock: the day takes milliseconds) against an in-process model of the API
// that answers as an HTTP server does (ETag on every list, 304 when If-None-Match matches), so the policy of
// pollster/http.hpp, conditional_request and the watcher run exactly as they would against a real server; the
// curl_test runs the same watch against a real one. The lists are JSON (nlohmann/json both ways). The program
// checks its own numbers and fails when they do not hold.

#include <pollster/http.hpp>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>
#include <pollster/watch.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>  // max, sort
#include <chrono>     // hours, seconds
#include <cstdint>    // uint64_t
#include <cstdio>     // printf
#include <map>        // map
#include <random>     // mt19937_64
#include <string>     // string, to_string
#include <vector>     // vector

using namespace std::chrono_literals;
using pollster::duration;

namespace {

struct server {
  std::string id;
  std::string state;
  std::int64_t version = 0;
};

/// The API: a fleet whose changes are known in advance (seeded), answering GET /servers as an HTTP server would.
class fleet_api {
 public:
  struct change {
    duration at;
    std::string id;
    std::string state;
  };

  explicit fleet_api(std::uint64_t seed) {
    std::mt19937_64 random(seed);
    std::uniform_int_distribution<std::int64_t> when(1, 86399);
    std::uniform_int_distribution<int> which(0, 19);
    const char* const states[] = {"ACTIVE", "SHUTOFF", "REBOOT", "RESIZE"};
    for (int i = 0; i < 48; ++i) {
      changes_.push_back({std::chrono::seconds{when(random)}, "vm-" + std::to_string(which(random)), states[i % 4]});
    }
    std::sort(changes_.begin(), changes_.end(), [](const change& a, const change& b) { return a.at < b.at; });
  }

  const std::vector<change>& changes() const { return changes_; }

  /// One GET /servers at virtual time `now`.
  pollster::http_response get(const pollster::http_request& request, duration now) {
    std::size_t version = 0;
    while (version < changes_.size() && changes_[version].at <= now) ++version;
    const std::string etag = "\"v" + std::to_string(version) + "\"";
    pollster::http_response r;
    r.headers.add("ETag", etag);
    if (request.headers.get("If-None-Match") == etag) {
      r.status = 304;
      ++not_modified_;
      return r;
    }
    std::map<std::string, server> fleet;
    for (int i = 0; i < 20; ++i) fleet["vm-" + std::to_string(i)] = {"vm-" + std::to_string(i), "ACTIVE", 1};
    for (std::size_t i = 0; i < version; ++i) {
      server& s = fleet[changes_[i].id];
      s.state = changes_[i].state;
      ++s.version;
    }
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [id, s] : fleet) list.push_back({{"id", s.id}, {"state", s.state}, {"version", s.version}});
    r.status = 200;
    r.body = list.dump();
    r.headers.add("Content-Type", "application/json");
    ++bodies_;
    body_bytes_ += r.body.size();
    return r;
  }

  std::uint64_t bodies() const { return bodies_; }
  std::uint64_t not_modified() const { return not_modified_; }
  std::uint64_t body_bytes() const { return body_bytes_; }

 private:
  std::vector<change> changes_;
  std::uint64_t bodies_ = 0;
  std::uint64_t not_modified_ = 0;
  std::uint64_t body_bytes_ = 0;
};

std::vector<server> read_fleet(const pollster::http_response& r) {
  std::vector<server> fleet;
  for (const nlohmann::json& s : nlohmann::json::parse(r.body)) {
    fleet.push_back(
        {s.at("id").get<std::string>(), s.at("state").get<std::string>(), s.at("version").get<std::int64_t>()});
  }
  return fleet;
}

struct day_result {
  std::uint64_t calls = 0;
  std::uint64_t bodies = 0;
  std::uint64_t not_modified = 0;
  std::uint64_t body_bytes = 0;
  std::uint64_t changes_seen = 0;
  std::uint64_t watcher_not_modified = 0;  // what the watcher counted, beside the API's own count
  double mean_delay_s = 0;
  double max_delay_s = 0;
};

/// Watches the API for a day with `schedule`, conditionally or not; every change event is matched to the change
/// that caused it to measure the detection delay.
template <class Schedule>
day_result watch_a_day(Schedule schedule, bool conditional, bool adaptive) {
  pollster::manual_clock clock;
  fleet_api api(2024);
  pollster::conditional_request validators;
  const auto now = [&clock] { return clock.now().time_since_epoch(); };
  auto fetch = [&]() -> pollster::step<std::vector<server>, pollster::http_error> {
    pollster::http_request request("https://api.example/servers");
    if (conditional) validators.apply(request);
    return validators.read(api.get(request, now()), read_fleet);
  };
  std::map<std::string, std::int64_t> seen_version;  // per server: the version last reported
  std::vector<double> delays;
  auto handler = [&](const auto& event) {
    using event_type = std::decay_t<decltype(event)>;
    if constexpr (std::is_same_v<event_type, pollster::changed<const server&>>) {
      // Every change of this server since the last one seen was detected now.
      const server& after = event.after;
      std::int64_t counted = 0;
      for (const fleet_api::change& c : api.changes()) {
        if (c.id != after.id) continue;
        ++counted;
        if (counted + 1 > seen_version[after.id] && counted + 1 <= after.version) {
          delays.push_back(std::chrono::duration<double>(now() - c.at).count());
        }
      }
      seen_version[after.id] = after.version;
    } else if constexpr (std::is_same_v<event_type, pollster::added<const server&>>) {
      seen_version[event.element.id] = event.element.version;
    }
  };
  pollster::watch_options options;
  options.adaptive = adaptive;
  pollster::watcher w(fetch, pollster::keyed(&server::id, &server::version), handler, schedule,
                      pollster::after_elapsed{24h}, options);
  const auto outcome = w.run(clock);
  day_result r;
  r.calls = outcome.attempts;
  r.bodies = api.bodies();
  r.not_modified = api.not_modified();
  r.body_bytes = api.body_bytes();
  r.changes_seen = delays.size();
  for (const double d : delays) {
    r.mean_delay_s += d / static_cast<double>(delays.size());
    r.max_delay_s = std::max(r.max_delay_s, d);
  }
  r.watcher_not_modified = outcome.report.not_modified;
  return r;
}

}  // namespace

int main() {
  const day_result fixed = watch_a_day(pollster::constant{10s}, false, false);
  const day_result fixed_etag = watch_a_day(pollster::constant{10s}, true, false);
  const day_result watcher = watch_a_day(pollster::geometric{5s, 1.5, 1min}, true, true);

  std::printf("one simulated day, 20 servers, 48 changes (virtual time, an in-process model of the API):\n\n");
  std::printf("%-20s %9s %9s %9s %12s %14s %14s\n", "", "calls", "200s", "304s", "body bytes", "mean delay s",
              "worst delay s");
  const auto row = [](const char* name, const day_result& r) {
    std::printf("%-20s %9llu %9llu %9llu %12llu %14.1f %14.1f\n", name, static_cast<unsigned long long>(r.calls),
                static_cast<unsigned long long>(r.bodies), static_cast<unsigned long long>(r.not_modified),
                static_cast<unsigned long long>(r.body_bytes), r.mean_delay_s, r.max_delay_s);
  };
  row("fixed 10 s", fixed);
  row("fixed 10 s + ETag", fixed_etag);
  row("watcher + ETag", watcher);
  std::printf(
      "\nwith ETags, %llu of %llu calls a day are 304s; the watcher makes %.1fx fewer calls than fixed polling\n",
      static_cast<unsigned long long>(fixed_etag.not_modified), static_cast<unsigned long long>(fixed_etag.calls),
      static_cast<double>(fixed.calls) / static_cast<double>(watcher.calls));

  // The numbers must hold: a day of 10 s polls is 8 641 calls (t = 0 and every 10 s to 24 h); every change is
  // detected by every strategy; fixed polling never detects later than its period, the watcher never later than its
  // cap; with ETags, a body is sent only when the list changed (at most once per change, plus the first list).
  bool ok = true;
  const auto expect = [&ok](bool condition, const char* what) {
    if (!condition) {
      std::printf("FAILED: %s\n", what);
      ok = false;
    }
  };
  expect(fixed.calls == 8641 && fixed_etag.calls == 8641, "a day of 10 s polls is 8 641 calls");
  expect(fixed.bodies == fixed.calls && fixed.not_modified == 0, "unconditional polls all return the list");
  expect(fixed_etag.bodies + fixed_etag.not_modified == fixed_etag.calls, "every conditional call is a 200 or a 304");
  expect(fixed_etag.bodies <= 1 + 48 && watcher.bodies <= 1 + 48, "a body only when the list changed");
  expect(fixed.changes_seen == 48 && fixed_etag.changes_seen == 48 && watcher.changes_seen == 48,
         "every change detected");
  expect(fixed.max_delay_s <= 10.0 && fixed_etag.max_delay_s <= 10.0, "fixed polling detects within its period");
  expect(watcher.max_delay_s <= 60.0, "the watcher detects within its cap");
  expect(watcher.calls < fixed.calls / 4, "the watcher makes far fewer calls");
  expect(fixed_etag.watcher_not_modified == fixed_etag.not_modified &&
             watcher.watcher_not_modified == watcher.not_modified,
         "the watcher counted every 304 the API sent");
  return ok ? 0 : 1;
}
