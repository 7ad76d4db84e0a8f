// StackStorm rules / Event Grid subscriptions on a polled fleet, in virtual time: an enStratus-like fleet of 100
// servers, each changing about once a day (reboots, shutdowns, replacements), watched for a simulated week by one
// watcher with two subscriptions:
//
//   provision   status became ACTIVE  -> configure monitoring (fails twice for one event: the config service is
//                                        down; Event Grid's default retry brings it through on the third attempt)
//   deregister  removed                -> take the server out of the load balancer
//
// The program prints a timeline (the first hour of the week, the whole story of the event that failed, one line a
// day), one event as CloudEvents JSON, and checks its own numbers against the simulated truth: every activation and
// every removal delivered exactly once, the failed event redelivered at +10 s and +40 s with the same id, no dead
// letter, and not one list call more than the same week without the failure. It exits non-zero if one does not hold
// (it runs as a CTest test). Each simulated week (about 13 600 list calls) takes well under a second.
//
// A third week restarts the process at the end of day 3, with deregistrations failing (the load balancer is down
// since the third-last removal of the day): the watch's state (`pollster::save_state`) is written as JSON, the
// process is down for 2 minutes, and a new one resumes from the JSON: the changes made while it was down arrive as
// changes (no initial list), the undelivered deregistrations at the retries they were waiting for, with their ids.

#include <pollster/pollster.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>   // stable_sort
#include <chrono>      // literals, system_clock
#include <cinttypes>   // PRIu64
#include <cmath>       // log
#include <cstdint>     // uint64_t
#include <cstdio>      // printf
#include <functional>  // ref
#include <map>         // map, multimap
#include <set>         // set
#include <stdexcept>   // runtime_error
#include <string>      // string
#include <vector>      // vector

using namespace std::chrono_literals;
using pollster::duration;

namespace {

constexpr duration week = 7 * 24h;  // (the model's horizon; the watch runs seven days of 24 h)

struct server {
  std::string id;
  int version = 0;  // bumped by every change, as a server-assigned resource version is
  std::string status;
};

/// What happens to one server at one time ("" status: it is deleted).
struct fleet_change {
  duration at;
  std::string id;
  std::string status;
};

/// The simulated cloud: 100 servers, ACTIVE at the start; each is disrupted about once a day (a seeded Poisson
/// process) and each state lasts long enough (3 minutes or more) for a 1-minute poll to see it.
struct fleet_model {
  std::vector<fleet_change> changes;  // in time order
  std::uint64_t in_week = 0;          // changes after the start and before the week ends
  std::uint64_t activations = 0;      // of which: to ACTIVE
  std::uint64_t deletions = 0;        // of which: deletions

  explicit fleet_model(std::uint64_t seed) {
    pollster::splitmix64 random{seed};
    const auto uniform = [&random] { return (static_cast<double>(random() >> 11) + 0.5) * 0x1p-53; };
    const auto minutes = [](double m) {
      return std::chrono::duration_cast<duration>(std::chrono::duration<double, std::ratio<60>>(m));
    };
    std::multimap<duration, std::string> disruptions;  // when each live server is next disrupted
    int next_id = 100;
    const auto name = [](int n) {
      char text[16];
      std::snprintf(text, sizeof text, "srv-%03d", n);
      return std::string(text);
    };
    const auto schedule_disruption = [&](duration active_at, const std::string& id) {
      disruptions.emplace(active_at + 5min + minutes(-std::log(uniform()) * 24 * 60), id);
    };
    for (int n = 0; n < 100; ++n) {
      changes.push_back({0s, name(n), "ACTIVE"});
      schedule_disruption(0s, name(n));
    }
    while (!disruptions.empty() && disruptions.begin()->first < week) {
      const duration t = disruptions.begin()->first;
      const std::string id = disruptions.begin()->second;
      disruptions.erase(disruptions.begin());
      const double r = uniform();
      if (r < 0.6) {  // a reboot: 3 to 10 minutes
        const duration back = t + minutes(3 + 7 * uniform());
        changes.push_back({t, id, "REBOOT"});
        changes.push_back({back, id, "ACTIVE"});
        schedule_disruption(back, id);
      } else if (r < 0.85) {  // shut off for 1 to 6 hours
        const duration back = t + minutes(60 + 300 * uniform());
        changes.push_back({t, id, "SHUTOFF"});
        changes.push_back({back, id, "ACTIVE"});
        schedule_disruption(back, id);
      } else {  // replaced: deleted, and a new server builds for 5 to 15 minutes
        const std::string replacement = name(next_id++);
        const duration created = t + minutes(1 + 4 * uniform());
        const duration active = created + minutes(5 + 10 * uniform());
        changes.push_back({t, id, ""});
        changes.push_back({created, replacement, "BUILD"});
        changes.push_back({active, replacement, "ACTIVE"});
        schedule_disruption(active, replacement);
      }
    }
    std::stable_sort(changes.begin(), changes.end(),
                     [](const fleet_change& a, const fleet_change& b) { return a.at < b.at; });
    for (const fleet_change& c : changes) {
      if (c.at >= week || c.at == 0s) continue;
      ++in_week;
    }
    activations = activations_until(week);
    deletions = deletions_until(week);
  }
  std::uint64_t activations_until(duration end) const { return count_until(end, false); }
  std::uint64_t deletions_until(duration end) const { return count_until(end, true); }

 private:
  std::uint64_t count_until(duration end, bool deletion) const {
    std::uint64_t n = 0;
    for (const fleet_change& c : changes) {
      if (c.at > 0s && c.at < end && (deletion ? c.status.empty() : c.status == "ACTIVE")) ++n;
    }
    return n;
  }
};

/// The list API: the fleet as it is at the clock's time; counts its calls.
struct list_api {
  const fleet_model* model;
  const pollster::manual_clock* clock;
  std::uint64_t calls = 0;
  std::size_t applied = 0;
  std::map<std::string, server> fleet;

  std::vector<server> operator()() {
    ++calls;
    const duration now = clock->now().time_since_epoch();
    for (; applied < model->changes.size() && model->changes[applied].at <= now; ++applied) {
      const fleet_change& c = model->changes[applied];
      if (c.status.empty()) {
        fleet.erase(c.id);
        continue;
      }
      server& s = fleet[c.id];
      s.id = c.id;
      s.status = c.status;
      ++s.version;
    }
    std::vector<server> list;
    list.reserve(fleet.size());
    for (const auto& entry : fleet) list.push_back(entry.second);
    return list;
  }
};

std::string when(duration t) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(t).count();
  char text[40];
  std::snprintf(text, sizeof text, "day %lld %02lld:%02lld:%02lld", static_cast<long long>(s / 86400),
                static_cast<long long>(s / 3600 % 24), static_cast<long long>(s / 60 % 60),
                static_cast<long long>(s % 60));
  return text;
}

using event_type = pollster::event<server, std::string>;

using subscriptions_type = pollster::subscriptions<server, std::string, pollster::manual_clock>;
using saved_state = pollster::watch_state<server, std::string>;

// The saved state as JSON (nlohmann/json): pollster's state is plain values, so this is all it takes. Times as
// nanoseconds since the epoch.
nlohmann::json server_json(const server& s) { return {{"id", s.id}, {"version", s.version}, {"status", s.status}}; }
server server_from(const nlohmann::json& j) {
  return {j.at("id").get<std::string>(), j.at("version").get<int>(), j.at("status").get<std::string>()};
}
std::int64_t nanoseconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
std::chrono::system_clock::time_point wall_time(const nlohmann::json& j) {
  return std::chrono::system_clock::time_point{
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(j.get<std::int64_t>()))};
}

std::string to_json_text(const saved_state& state) {
  nlohmann::json records = nlohmann::json::array();
  for (const server& s : state.records) records.push_back(server_json(s));
  nlohmann::json undelivered = nlohmann::json::array();
  for (const auto& u : state.delivery.undelivered) {
    nlohmann::json j{{"subscription", u.subscription}, {"kind", pollster::to_string(u.kind)},
                     {"filtered", u.filtered},         {"key", u.key},
                     {"initial", u.initial},           {"sequence", u.sequence},
                     {"time", nanoseconds(u.time)},    {"attempts", u.attempts}};
    if (u.before) j["before"] = server_json(*u.before);
    if (u.after) j["after"] = server_json(*u.after);
    if (u.due) j["due"] = nanoseconds(*u.due);
    undelivered.push_back(std::move(j));
  }
  return nlohmann::json{{"records", records}, {"sequence", state.delivery.sequence}, {"undelivered", undelivered}}
      .dump();
}

saved_state from_json_text(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text);
  saved_state state;
  for (const auto& r : j.at("records")) state.records.push_back(server_from(r));
  state.delivery.sequence = j.at("sequence").get<std::uint64_t>();
  for (const auto& e : j.at("undelivered")) {
    pollster::undelivered_event<server, std::string> u;
    u.subscription = e.at("subscription").get<std::string>();
    const std::string kind = e.at("kind").get<std::string>();
    u.kind = kind == "added" ? pollster::event_kind::added
                             : kind == "removed" ? pollster::event_kind::removed : pollster::event_kind::changed;
    u.filtered = e.at("filtered").get<bool>();
    u.key = e.at("key").get<std::string>();
    if (e.contains("before")) u.before = server_from(e.at("before"));
    if (e.contains("after")) u.after = server_from(e.at("after"));
    u.initial = e.at("initial").get<bool>();
    u.sequence = e.at("sequence").get<std::uint64_t>();
    u.time = wall_time(e.at("time"));
    u.attempts = e.at("attempts").get<std::uint32_t>();
    if (e.contains("due")) u.due = wall_time(e.at("due"));
    state.delivery.undelivered.push_back(std::move(u));
  }
  return state;
}

/// The subscriptions' watch handler, counting the changes of one poll (the first after a restart) on the way.
struct counting_handler {
  subscriptions_type::watch_handler forward;
  const pollster::manual_clock* clock;
  duration counted_at;
  std::uint64_t* count;
  void operator()(const pollster::added<const server&>& e) const { forward(count_one(e)); }
  void operator()(const pollster::removed<const server&, std::string>& e) const { forward(count_one(e)); }
  void operator()(const pollster::changed<const server&>& e) const { forward(count_one(e)); }
  template <class E>
  const E& count_one(const E& e) const {
    if (clock->now().time_since_epoch() == counted_at) ++*count;
    return e;
  }
};

/// One week of the fleet under one watcher and two subscriptions. `fail_event`: the provision handler fails the first
/// two attempts of this (1-based) distinct event; 0: it never fails. `restart`: the process stops at the end of
/// day 3 with deregistrations failing since the third-last removal of that day, and a new one resumes 2 min later.
struct week_run {
  std::uint64_t list_calls = 0;
  std::uint64_t provisioned = 0;  // successful provision deliveries
  std::uint64_t deregistered = 0;
  std::uint64_t redeliveries = 0;
  std::uint64_t dead_letters = 0;
  std::uint64_t distinct_provision_ids = 0;
  std::vector<duration> failed_event_attempts;
  std::vector<std::string> failed_event_ids;
  std::string sample_json;
  std::uint64_t distinct_deregister_ids = 0;
  std::size_t saved_records = 0;           // (restart) in the saved state
  std::size_t saved_undelivered = 0;
  std::size_t saved_bytes = 0;             // of its JSON
  std::uint64_t initial_after_restart = 0;  // records the resumed watch reported as an initial list
  std::uint64_t changes_after_restart = 0;  // changes its first poll reported (made while down)
  std::uint64_t restored_delivered = 0;     // saved events delivered by the new process (attempt > 1)
  duration end{};                           // when the watch ended
  bool same_ids_after_restart = false;      // the ids that failed before it are the ones delivered after it
};

week_run run_week(const fleet_model& model, std::uint64_t fail_event, bool restart, bool print) {
  pollster::manual_clock clock;
  list_api api{&model, &clock, 0, 0, {}};
  pollster::subscriptions_options options;
  options.source.source = "https://compute.example.com/v2/tenant-42/servers";
  options.source.type_prefix = "com.example.compute.server";
  options.wall_clock = pollster::wall_clock_of(clock, std::chrono::system_clock::time_point{} + 20513 * 24h);  // 2026-03-01

  // (restart) The load balancer is down from the third-last removal of day 3 until the process stops.
  constexpr int restart_after_day = 3;
  constexpr duration down_for = 2min;
  duration outage_from = duration::max();
  std::vector<duration> removals_before_restart;
  for (const fleet_change& c : model.changes) {
    if (c.status.empty() && c.at < (restart_after_day + 1) * 24h) removals_before_restart.push_back(c.at);
  }
  if (restart && removals_before_restart.size() >= 3) outage_from = removals_before_restart.end()[-3];
  bool restarted = false;
  duration resumed_at = duration::max();
  std::set<std::string> failed_before_restart, delivered_after_restart;  // deregistration ids

  week_run result;
  std::set<std::string> provision_ids, deregister_ids;
  std::string failing_id;
  int failures_left = 2;
  const auto status = pollster::field("status", &server::status);
  // One process: its subscriptions and its watcher, for days [first, last); resumed from `saved` if there is one.
  // Returns the state it stops with, as JSON.
  const auto run_process = [&](int first, int last, const std::string* saved) {
    subscriptions_type subs(pollster::keyed(&server::id, &server::version), options);
    subs.subscribe("provision", status.became("ACTIVE"), [&](const event_type& e, const pollster::delivery& d) {
      const duration now = clock.now().time_since_epoch();
      if (provision_ids.insert(e.id()).second && provision_ids.size() == fail_event) failing_id = e.id();
      const bool failing = e.id() == failing_id;
      if (failing) {
        result.failed_event_attempts.push_back(now);
        result.failed_event_ids.push_back(e.id());
      }
      if ((print && now < 1h) || failing) {
        std::printf("  %s  provision   %-9s %-18s attempt %u%s\n", when(now).c_str(), e.subject().c_str(),
                    e.id().c_str(), d.attempt, failing && failures_left > 0 ? "  FAILED: config service unavailable" : "");
      }
      if (failing && failures_left > 0) {
        --failures_left;
        throw std::runtime_error("config service unavailable");
      }
      ++result.provisioned;
      if (result.sample_json.empty() && e.before() != nullptr && e.before()->status == "BUILD") {
        result.sample_json = pollster::to_json(e, [](const event_type& ev) {
          return nlohmann::json{{"id", ev.after()->id}, {"from", ev.before()->status}, {"to", ev.after()->status},
                                {"version", ev.after()->version}}
              .dump();
        });
      }
    });
    pollster::subscription_options removals;
    removals.kinds = {pollster::event_kind::removed};
    subs.subscribe("deregister", [&](const event_type& e, const pollster::delivery& d) {
      const duration now = clock.now().time_since_epoch();
      const bool outage = !restarted && now >= outage_from;
      if ((print && now < 1h) || outage || (restarted && d.attempt > 1)) {
        std::printf("  %s  deregister  %-9s %-18s attempt %u%s\n", when(now).c_str(), e.subject().c_str(),
                    e.id().c_str(), d.attempt, outage ? "  FAILED: load balancer down" : "");
      }
      if (outage) {
        failed_before_restart.insert(e.id());
        throw std::runtime_error("load balancer down");
      }
      if (restarted && d.attempt > 1) {
        ++result.restored_delivered;
        delivered_after_restart.insert(e.id());
      }
      deregister_ids.insert(e.id());
      ++result.deregistered;
    }, removals);
    subs.on_dead_letter([&](const pollster::dead_letter<server, std::string>&) { ++result.dead_letters; });

    // Poll fast (5 s) after a change, back off to once a minute while quiet. One run a day, to print a line a day:
    // each run goes on from the list the last one ended with, and wakes between polls for due redeliveries.
    pollster::watcher watch(std::ref(api), pollster::keyed(&server::id, &server::version),
                            counting_handler{subs.handler(clock), &clock, resumed_at, &result.changes_after_restart},
                            pollster::geometric{5s, 2.0, 1min}, pollster::before_deadline{24h});
    if (saved != nullptr) pollster::resume(watch, subs, from_json_text(*saved), clock.now());
    std::uint64_t day_calls = api.calls, day_provisioned = result.provisioned,
                  day_deregistered = result.deregistered;
    for (int day = first; day < last; ++day) {
      const auto outcome = watch.run(clock, subs);
      if (day == first && saved != nullptr) result.initial_after_restart = outcome.report.initial;
      if (print) {
        std::printf("  %s  end of day %d: %" PRIu64 " list calls, %" PRIu64 " provisioned, %" PRIu64
                    " deregistered\n",
                    when(clock.now().time_since_epoch()).c_str(), day, api.calls - day_calls,
                    result.provisioned - day_provisioned, result.deregistered - day_deregistered);
      }
      day_calls = api.calls;
      day_provisioned = result.provisioned;
      day_deregistered = result.deregistered;
    }
    if (last == 7) subs.drain(clock);  // anything still waiting for a retry (nothing, here)
    result.redeliveries += subs.stats("provision").redeliveries + subs.stats("deregister").redeliveries;
    const saved_state state = pollster::save_state(watch, subs);
    if (last != 7) {
      result.saved_records = state.records.size();
      result.saved_undelivered = state.delivery.undelivered.size();
    }
    return to_json_text(state);
  };

  if (restart) {
    const std::string saved = run_process(0, restart_after_day + 1, nullptr);
    result.saved_bytes = saved.size();
    {
      std::printf("  %s  the process stops: %zu records and %zu undelivered events saved as %zu bytes of JSON\n",
                  when(clock.now().time_since_epoch()).c_str(), result.saved_records, result.saved_undelivered,
                  saved.size());
    }
    clock.advance(down_for);
    restarted = true;
    resumed_at = clock.now().time_since_epoch();
    std::printf("  %s  a new process resumes from the JSON\n", when(clock.now().time_since_epoch()).c_str());
    run_process(restart_after_day + 1, 7, &saved);
  } else {
    run_process(0, 7, nullptr);
  }
  result.list_calls = api.calls;
  result.end = clock.now().time_since_epoch();
  result.distinct_provision_ids = provision_ids.size();
  result.distinct_deregister_ids = deregister_ids.size();
  result.same_ids_after_restart = failed_before_restart == delivered_after_restart;
  return result;
}

}  // namespace

int main() {
  const fleet_model model(20260301);
  std::printf("A week of a 100-server fleet: %" PRIu64 " changes, %" PRIu64 " activations, %" PRIu64 " removals.\n\n",
              model.in_week, model.activations, model.deletions);
  std::printf("Timeline (the first hour, the event that failed, one line a day):\n");
  const week_run with_failure = run_week(model, 30, false, true);
  const week_run without = run_week(model, 0, false, false);
  std::printf("\nThe same week with a restart (the process stops at the end of day 3, the load balancer down):\n");
  const week_run restarted = run_week(model, 0, true, false);

  std::printf("\nOne event as CloudEvents JSON:\n  %s\n\n", with_failure.sample_json.c_str());
  std::printf("provision:  %" PRIu64 " delivered, %" PRIu64 " redeliveries, %" PRIu64 " dead letters\n",
              with_failure.provisioned, with_failure.redeliveries, with_failure.dead_letters);
  std::printf("deregister: %" PRIu64 " delivered\n", with_failure.deregistered);
  std::printf("list calls: %" PRIu64 " with the failure, %" PRIu64 " without (redelivery costs no list call)\n",
              with_failure.list_calls, without.list_calls);
  std::printf("restart: %zu records and %zu undelivered events saved in %zu bytes of JSON (%zu a record); changes "
              "made while down, reported by the first poll after it: %" PRIu64 "; initial records: %" PRIu64
              "; saved events delivered by the new process: %" PRIu64 "\n",
              restarted.saved_records, restarted.saved_undelivered, restarted.saved_bytes,
              restarted.saved_records == 0 ? std::size_t{0} : restarted.saved_bytes / restarted.saved_records,
              restarted.changes_after_restart, restarted.initial_after_restart, restarted.restored_delivered);

  bool ok = true;
  const auto check = [&ok](bool holds, const char* what) {
    if (!holds) {
      std::printf("CHECK FAILED: %s\n", what);
      ok = false;
    }
  };
  check(with_failure.provisioned == model.activations, "every activation delivered once to provision");
  check(with_failure.distinct_provision_ids == model.activations, "one distinct event id per activation");
  check(with_failure.deregistered == model.deletions, "every removal delivered once to deregister");
  check(with_failure.redeliveries == 2, "two redeliveries");
  check(with_failure.dead_letters == 0, "no dead letter");
  check(with_failure.failed_event_attempts.size() == 3, "the failed event had three attempts");
  if (with_failure.failed_event_attempts.size() == 3) {
    const duration first = with_failure.failed_event_attempts[0];
    check(with_failure.failed_event_attempts[1] - first == 10s, "the second attempt 10 s after the first");
    check(with_failure.failed_event_attempts[2] - first == 40s, "the third attempt 30 s after the second");
    check(with_failure.failed_event_ids[0] == with_failure.failed_event_ids[2], "the same id on every attempt");
  }
  check(with_failure.list_calls == without.list_calls, "no extra list call for the redeliveries");
  check(without.provisioned == model.activations && without.redeliveries == 0, "the week without the failure");
  check(!with_failure.sample_json.empty(), "a CloudEvents sample");
  // The restart loses nothing and repeats nothing (the watch ran 2 minutes past the week: the counts go there).
  check(restarted.provisioned == model.activations_until(restarted.end) &&
            restarted.distinct_provision_ids == restarted.provisioned,
        "restart: every activation delivered once to provision");
  check(restarted.deregistered == model.deletions_until(restarted.end) &&
            restarted.distinct_deregister_ids == restarted.deregistered,
        "restart: every removal delivered once to deregister");
  check(restarted.saved_undelivered == 3, "restart: three undelivered deregistrations saved");
  check(restarted.restored_delivered == 3 && restarted.same_ids_after_restart,
        "restart: the new process delivered the three saved events, with their ids");
  check(restarted.initial_after_restart == 0, "restart: no initial list after the restart");
  check(restarted.dead_letters == 0, "restart: no dead letter");
  std::printf("%s\n", ok ? "all checks hold" : "some checks failed");
  return ok ? 0 : 1;
}
