#include "pollster_catch.hpp"
#include "subscription_fixtures.hpp"

#include <pollster/runner.hpp>
#include <pollster/schedule.hpp>
#include <pollster/snapshot.hpp>
#include <pollster/stop.hpp>
#include <pollster/subscription.hpp>
#include <pollster/watch.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pollster::duration;
using pollster::event_kind;
using pollster::manual_clock;

using namespace subscription_fixtures;

TEST_CASE("a record that enters a subscription's filter is added for it, one that leaves is removed") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::vector<std::string> lines;
  subs.subscribe("eu", region == "eu", recorder{&clock, &lines, {}});
  publisher p{&subs, &clock};
  const server eu1{"a", 1, "BUILD", "eu"};
  const server eu2{"a", 2, "ACTIVE", "eu"};
  const server us3{"a", 3, "ACTIVE", "us"};
  const server eu4{"a", 4, "ACTIVE", "eu"};
  const server us1{"b", 1, "BUILD", "us"};
  p.add(eu1, 1s);          // added: in the view
  p.change(eu1, eu2, 2s);  // changed: in the view on both sides
  p.change(eu2, us3, 3s);  // removed: it left the view (the tombstone is the last record in it)
  p.change(us3, eu4, 4s);  // added: it entered the view again
  p.add(us1, 5s);          // nothing: never in the view
  p.remove(eu4, 6s);       // removed
  CHECK(lines == std::vector<std::string>{"1s added a/added/v1 #1", "2s changed a/changed/v2 #1",
                                          "3s removed a/removed/v2 #1", "4s added a/added/v4 #1",
                                          "6s removed a/removed/v4 #1"});
  CHECK(subs.stats(pollster::subscription_id{0}).matched == 5);
  CHECK(subs.sequence() == 6);  // every change of the diff is numbered, delivered to someone or not
}

TEST_CASE("each subscription sees the diff exactly as a filtered snapshot would, from one unfiltered diff") {
  // Random fleets, diffed once unfiltered and fed to subscriptions; each subscription's events must equal those of a
  // snapshot that keeps only the records its filter takes.
  std::mt19937_64 random(20240229);
  const char* regions[] = {"eu", "us", "ap"};
  const char* states[] = {"BUILD", "ACTIVE", "SHUTOFF"};
  auto make_fleet = [&] {
    std::vector<server> fleet;
    for (int i = 0; i < 40; ++i) {
      if (random() % 4 == 0) continue;
      // The version names the content, as a server-assigned version does: same version, same record.
      const auto s = static_cast<int>(random() % 3), r = static_cast<int>(random() % 3);
      const auto c = static_cast<int>(random() % 16);
      fleet.push_back(server{"s" + std::to_string(i), s * 48 + r * 16 + c, states[s], regions[r], c});
    }
    return fleet;
  };
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  struct collected {
    std::vector<std::string> lines;
  };
  collected eu, big, eu_or_active;
  auto collect = [](collected& c) {
    return [&c](const event_type& e) {
      std::string line = pollster::to_string(e.kind()) + std::string(" ") + e.subject();
      if (e.before() != nullptr) line += " from v" + std::to_string(e.before()->version) + e.before()->status;
      if (e.after() != nullptr) line += " to v" + std::to_string(e.after()->version) + e.after()->status;
      c.lines.push_back(line);
    };
  };
  const auto cpus = pollster::field("cpus", &server::cpus);
  subs.subscribe("eu", region == "eu", collect(eu), {{}, pollster::event_grid_retry(), 10000, true});
  subs.subscribe("big", cpus >= 8, collect(big), {{}, pollster::event_grid_retry(), 10000, true});
  subs.subscribe("eu-or-active", region == "eu" || status == "ACTIVE", collect(eu_or_active),
                 {{}, pollster::event_grid_retry(), 10000, true});

  auto snapshot_of = [](auto predicate) {
    return pollster::make_filtered_snapshot<server>(predicate, &server::id, &server::version);
  };
  auto eu_snapshot = snapshot_of([](const server& s) { return s.region == "eu"; });
  auto big_snapshot = snapshot_of([](const server& s) { return s.cpus >= 8; });
  auto either_snapshot = snapshot_of([](const server& s) { return s.region == "eu" || s.status == "ACTIVE"; });
  auto unfiltered = pollster::make_snapshot<server>(&server::id, &server::version);
  const auto handler = subs.handler(clock);

  struct expect {
    std::vector<std::string> lines;
    void operator()(const pollster::added<const server&>& e) {
      lines.push_back("added " + e.element.id + " to v" + std::to_string(e.element.version) + e.element.status);
    }
    void operator()(const pollster::removed<const server&, std::string>& e) {
      lines.push_back("removed " + e.key + " from v" + std::to_string(e.last_known.version) + e.last_known.status);
    }
    void operator()(const pollster::changed<const server&>& e) {
      lines.push_back("changed " + e.after.id + " from v" + std::to_string(e.before.version) + e.before.status +
                      " to v" + std::to_string(e.after.version) + e.after.status);
    }
  };
  expect eu_expected, big_expected, either_expected;
  // Within one poll the events come in the unfiltered diff's order (a record leaving a view is a removal there, in
  // the order of changes), where a filtered snapshot puts its removals first: compare each poll's events as a set.
  auto sort_from = [](std::vector<std::string>& lines, std::size_t from) {
    std::sort(lines.begin() + static_cast<std::ptrdiff_t>(from), lines.end());
  };
  for (int round = 0; round < 200; ++round) {
    const std::vector<server> fleet = make_fleet();
    const std::size_t marks[] = {eu.lines.size(), big.lines.size(), eu_or_active.lines.size(),
                                 eu_expected.lines.size(), big_expected.lines.size(), either_expected.lines.size()};
    unfiltered.update(fleet, handler);
    eu_snapshot.update(fleet, eu_expected);
    big_snapshot.update(fleet, big_expected);
    either_snapshot.update(fleet, either_expected);
    sort_from(eu.lines, marks[0]);
    sort_from(big.lines, marks[1]);
    sort_from(eu_or_active.lines, marks[2]);
    sort_from(eu_expected.lines, marks[3]);
    sort_from(big_expected.lines, marks[4]);
    sort_from(either_expected.lines, marks[5]);
  }
  REQUIRE(eu_expected.lines.size() > 1000);
  CHECK(eu.lines == eu_expected.lines);
  CHECK(big.lines == big_expected.lines);
  CHECK(eu_or_active.lines == either_expected.lines);
}

TEST_CASE("event kinds narrow what a subscription receives, after its filter decided the kind") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::vector<std::string> removals, all;
  pollster::subscription_options only_removed;
  only_removed.kinds = {event_kind::removed};
  subs.subscribe("left-eu", region == "eu", recorder{&clock, &removals, {}}, only_removed);
  subs.subscribe("all", recorder{&clock, &all, {}});
  publisher p{&subs, &clock};
  const server a1{"a", 1, "ACTIVE", "eu"};
  const server a2{"a", 2, "ACTIVE", "us"};
  p.add(a1, 1s);
  p.change(a1, a2, 2s);  // moved out of eu: a removal for "left-eu"
  p.remove(a2, 3s);      // no longer in eu: nothing for "left-eu"
  CHECK(removals == std::vector<std::string>{"2s removed a/removed/v1 #1"});
  CHECK(all == std::vector<std::string>{"1s added a/added/v1 #1", "2s changed a/changed/v2 #1",
                                        "3s removed a/removed/v2 #1"});
}

TEST_CASE("the first list reaches only the subscriptions that ask for it, marked initial") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::vector<std::string> changes, everything;
  subs.subscribe("changes", recorder{&clock, &changes, {}});
  pollster::subscription_options with_initial;
  with_initial.initial = true;
  bool saw_initial = false;
  subs.subscribe("everything", [&](const event_type& e) {
    everything.push_back(e.id());
    saw_initial = saw_initial || e.initial();
  }, with_initial);
  publisher p{&subs, &clock};
  p.add({"a", 1, "ACTIVE"}, 0s, true);
  p.add({"b", 1, "ACTIVE"}, 0s, true);
  p.add({"c", 1, "BUILD"}, 5s);
  CHECK(changes == std::vector<std::string>{"5s added c/added/v1 #1"});
  CHECK(everything == std::vector<std::string>{"a/added/v1", "b/added/v1", "c/added/v1"});
  CHECK(saw_initial);
}

TEST_CASE("a handler that throws gets the same event again on its schedule, at exact virtual times") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::vector<std::string> lines;
  pollster::subscription_options options;
  options.retry = pollster::retry_policy(pollster::geometric{1s, 2.0, 8s}, pollster::after_attempts{10});
  subs.subscribe("flaky", recorder{&clock, &lines, {{"a", 4}}}, options);
  publisher p{&subs, &clock};
  p.add({"a", 1, "BUILD"}, 100s);
  CHECK(subs.pending() == 1);
  CHECK(subs.next_due() == at(101s));
  CHECK(subs.run_due(at(100500ms)) == 0);  // not due yet
  const std::size_t retries = subs.drain(clock);
  CHECK(retries == 4);
  // Attempts at 100 s, then 1, 2, 4 and 8 s apart (the geometric schedule of this subscription's retry policy).
  CHECK(lines == std::vector<std::string>{"100s added a/added/v1 #1", "101s added a/added/v1 #2",
                                          "103s added a/added/v1 #3", "107s added a/added/v1 #4",
                                          "115s added a/added/v1 #5"});
  const pollster::subscription_stats& stats = subs.stats("flaky");
  CHECK(stats.delivered == 1);
  CHECK(stats.failed_attempts == 4);
  CHECK(stats.redeliveries == 4);
  CHECK(stats.pending == 0);
  CHECK(stats.most_pending == 1);
  CHECK(subs.next_due() == time_point::max());
}

TEST_CASE("Event Grid's default retries after 10 s, 30 s, 1 min ... and dead-letters at 24 h, after 12 attempts") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::vector<duration> attempts;
  subs.subscribe("down", [&](const event_type&) {
    attempts.push_back(since_start(clock));
    throw std::runtime_error("endpoint down");
  });  // the default subscription_options: pollster::event_grid_retry()
  std::vector<pollster::dead_letter<server, std::string>> letters;
  subs.on_dead_letter([&](const pollster::dead_letter<server, std::string>& d) { letters.push_back(d); });
  subs.publish(pollster::added<const server&>{server{"a", 1, "BUILD"}, false}, clock.now());
  subs.drain(clock);
  // 0, +10 s, +30 s, +1 min, +5 min, +10 min, +30 min, +1 h, +3 h, +6 h, +12 h, then the 12 h retry moved onto 24 h.
  CHECK(attempts == std::vector<duration>{0s, 10s, 40s, 100s, 400s, 1000s, 2800s, 6400s, 17200s, 38800s, 82000s,
                                          86400s});
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].reason == pollster::dead_letter_reason::deadline);
  CHECK(letters[0].attempts == 12);
  CHECK(letters[0].age == 24h);
  CHECK(letters[0].subscription == "down");
  CHECK(letters[0].event.id() == "a/added/v1");
  CHECK(reason_text(letters[0].error) == "endpoint down");
  CHECK(since_start(clock) == 24h);
  SECTION("fewer attempts, as Event Grid allows") {
    subs_type five(pollster::keyed(&server::id, &server::version), virtual_time(clock));
    const duration start = since_start(clock);
    std::vector<duration> times;
    pollster::subscription_options options;
    options.retry = pollster::event_grid_retry(5);
    five.subscribe("down", [&](const event_type&) {
      times.push_back(since_start(clock) - start);
      throw std::runtime_error("still down");
    }, options);
    std::vector<pollster::dead_letter_reason> reasons;
    five.on_dead_letter([&](const pollster::dead_letter<server, std::string>& d) { reasons.push_back(d.reason); });
    five.publish(pollster::added<const server&>{server{"a", 1, "BUILD"}, false}, clock.now());
    five.drain(clock);
    CHECK(times == std::vector<duration>{0s, 10s, 40s, 100s, 400s});
    CHECK(reasons == std::vector<pollster::dead_letter_reason>{pollster::dead_letter_reason::attempts});
  }
}

TEST_CASE("a dead letter after N attempts, and after an age, with the last exception") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  int calls = 0;
  auto always_fails = [&](const event_type& e, const pollster::delivery& d) {
    ++calls;
    throw std::runtime_error(e.subject() + " failed on attempt " + std::to_string(d.attempt));
  };
  pollster::subscription_options three;
  three.retry = pollster::retry_policy(pollster::constant{1min}, pollster::after_attempts{3});
  pollster::subscription_options five_minutes;
  five_minutes.retry = pollster::retry_policy(pollster::constant{1min}, pollster::after_elapsed{5min});
  subs.subscribe("three", always_fails, three);
  subs.subscribe("five-minutes", always_fails, five_minutes);
  std::vector<std::string> letters;
  subs.on_dead_letter([&](const pollster::dead_letter<server, std::string>& d) {
    letters.push_back(text(since_start(clock)) + " " + d.subscription + " " + d.event.id() + " after " +
                      std::to_string(d.attempts) + " in " + text(d.age) + " (" + pollster::to_string(d.reason) +
                      "): " + reason_text(d.error));
  });
  subs.publish(pollster::added<const server&>{server{"a", 7, "BUILD"}, false}, clock.now());
  subs.drain(clock);
  CHECK(letters == std::vector<std::string>{"120s three a/added/v7 after 3 in 120s (attempts): a failed on attempt 3",
                                            "300s five-minutes a/added/v7 after 6 in 300s (elapsed): a failed on "
                                            "attempt 6"});
  CHECK(calls == 9);
  CHECK(subs.stats("three").dead_lettered == 1);
  CHECK(subs.stats("five-minutes").dead_lettered == 1);
  CHECK(subs.pending() == 0);
}

TEST_CASE("later events for a key wait behind its failed one, in order; other keys and subscriptions flow") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::vector<std::string> flaky_lines, steady_lines;
  pollster::subscription_options options;
  options.retry = pollster::retry_policy(pollster::constant{10s}, pollster::after_attempts{5});
  subs.subscribe("flaky", recorder{&clock, &flaky_lines, {{"a", 2}}}, options);
  subs.subscribe("steady", recorder{&clock, &steady_lines, {}}, options);
  publisher p{&subs, &clock};
  const server a1{"a", 1, "BUILD"}, a2{"a", 2, "ACTIVE"}, b1{"b", 1, "BUILD"}, b2{"b", 2, "ACTIVE"};
  p.add(a1, 1s);  // fails: retried at 11 s (fails again), 21 s
  p.add(b1, 2s);  // another key: delivered at once
  p.change(a1, a2, 5s);  // waits behind a/added/v1
  p.change(b1, b2, 5s);
  CHECK(subs.stats("flaky").pending == 2);
  subs.drain(clock);
  CHECK(flaky_lines == std::vector<std::string>{"1s added a/added/v1 #1", "2s added b/added/v1 #1",
                                                "5s changed b/changed/v2 #1", "11s added a/added/v1 #2",
                                                "21s added a/added/v1 #3", "21s changed a/changed/v2 #1"});
  CHECK(steady_lines == std::vector<std::string>{"1s added a/added/v1 #1", "2s added b/added/v1 #1",
                                                 "5s changed a/changed/v2 #1", "5s changed b/changed/v2 #1"});
  CHECK(subs.stats("flaky").redeliveries == 2);
  CHECK(subs.stats("flaky").most_pending == 2);
  CHECK(subs.stats("steady").redeliveries == 0);
}

TEST_CASE("event ids stay the same across redeliveries, with a version and without one") {
  manual_clock clock;
  SECTION("with a version projection: <subject>/<kind>/v<version>") {
    subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
    std::vector<std::string> ids;
    int failures = 2;
    subs.subscribe("s", [&](const event_type& e) {
      ids.push_back(e.id());
      if (failures-- > 0) throw std::runtime_error("again");
    }, {{}, pollster::retry_policy(pollster::constant{1s}, pollster::never{}), 100, false});
    subs.publish(pollster::removed<const server&, std::string>{"web-9", server{"web-9", 41, "ACTIVE"}}, clock.now());
    subs.drain(clock);
    CHECK(ids == std::vector<std::string>{"web-9/removed/v41", "web-9/removed/v41", "web-9/removed/v41"});
  }
  SECTION("without one: <subject>/<kind>/<the change's number>") {
    pollster::subscriptions<server, std::string, manual_clock> subs(&server::id, virtual_time(clock));
    std::vector<std::string> ids;
    int failures = 1;
    subs.subscribe("s", [&](const event_type& e) {
      ids.push_back(e.id() + " seq " + std::to_string(e.sequence()));
      if (failures-- > 0) throw std::runtime_error("again");
    }, {{}, pollster::retry_policy(pollster::constant{1s}, pollster::never{}), 100, false});
    publisher p{&subs, &clock};
    p.add({"a", 0, "BUILD"}, 0s);
    p.change({"a", 0, "BUILD"}, {"a", 0, "ACTIVE"}, 0s);
    subs.drain(clock);
    CHECK(ids == std::vector<std::string>{"a/added/1 seq 1", "a/added/1 seq 1", "a/changed/2 seq 2"});
  }
}

TEST_CASE("a subscription's queue is bounded: past max_pending an event is dead-lettered at once") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  pollster::subscription_options small;
  small.max_pending = 3;
  small.retry = pollster::retry_policy(pollster::constant{1min}, pollster::after_attempts{2});
  bool down = true;
  subs.subscribe("small", [&](const event_type&) {
    if (down) throw std::runtime_error("down");
  }, small);
  std::vector<std::string> letters;
  subs.on_dead_letter([&](const pollster::dead_letter<server, std::string>& d) {
    letters.push_back(d.event.id() + " " + pollster::to_string(d.reason) + " after " + std::to_string(d.attempts) +
                      ": " + reason_text(d.error));
  });
  publisher p{&subs, &clock};
  p.add({"a", 1, "BUILD"}, 0s);  // fails: held (1)
  p.change({"a", 1, "BUILD"}, {"a", 2, "ACTIVE"}, 0s);  // behind it (2)
  p.add({"b", 1, "BUILD"}, 0s);  // fails: held (3)
  p.add({"c", 1, "BUILD"}, 0s);  // fails, and the queue is full: dead-lettered at once, with its own error
  p.change({"b", 1, "BUILD"}, {"b", 2, "ACTIVE"}, 0s);  // would wait behind b: full, dead-lettered with no attempt
  CHECK(subs.pending() == 3);
  CHECK(letters == std::vector<std::string>{
                       "c/added/v1 queue full after 1: down",
                       "b/changed/v2 queue full after 0: pollster::subscriptions: subscription \"small\" already holds "
                       "its max_pending (3) undelivered events"});
  down = false;
  subs.drain(clock);
  CHECK(subs.pending() == 0);
  CHECK(subs.stats("small").delivered == 3);
  CHECK(subs.stats("small").dead_lettered == 2);
  CHECK(subs.stats("small").most_pending == 3);
}

TEST_CASE("a dead-letter handler that throws loses the event (counted) and disturbs nothing else") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::vector<std::string> lines;
  pollster::subscription_options once;
  once.retry = pollster::retry_policy(pollster::constant{1s}, pollster::after_attempts{1});
  subs.subscribe("fails", [](const event_type&) { throw std::runtime_error("no"); }, once);
  subs.subscribe("works", recorder{&clock, &lines, {}});
  int letters = 0;
  subs.on_dead_letter([&](const pollster::dead_letter<server, std::string>&) {
    ++letters;
    throw std::runtime_error("the dead-letter store is down too");
  });
  publisher p{&subs, &clock};
  p.add({"a", 1, "BUILD"}, 0s);
  p.add({"b", 1, "BUILD"}, 0s);
  CHECK(letters == 2);
  CHECK(subs.dropped() == 2);
  CHECK(reason_text(subs.last_dead_letter_error()) == "the dead-letter store is down too");
  CHECK(lines == std::vector<std::string>{"0s added a/added/v1 #1", "0s added b/added/v1 #1"});
  CHECK(subs.pending() == 0);
  SECTION("without a dead-letter handler, given-up events are dropped and counted") {
    subs_type quiet(pollster::keyed(&server::id, &server::version), virtual_time(clock));
    quiet.subscribe("fails", [](const event_type&) { throw std::runtime_error("no"); }, once);
    quiet.publish(pollster::added<const server&>{server{"a", 1, "BUILD"}, false}, clock.now());
    CHECK(quiet.dropped() == 1);
    CHECK(quiet.stats("fails").dead_lettered == 1);
  }
}

TEST_CASE("a filter that throws is a failed attempt for its subscription only; the watch's snapshot goes on") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}, {0s, "b", "BUILD"}, {15s, "a", "ACTIVE"}, {35s, "b", "ACTIVE"}}, {}};
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  int projection_failures = 1;
  const auto fragile = pollster::field("status", [&projection_failures](const server& s) -> const std::string& {
    if (s.id == "a" && s.status == "ACTIVE" && projection_failures-- > 0) throw std::runtime_error("projection broke");
    return s.status;
  });
  std::vector<std::string> fragile_lines, other_lines;
  pollster::subscription_options options;
  options.retry = pollster::retry_policy(pollster::constant{3s}, pollster::after_attempts{4});
  subs.subscribe("fragile", fragile.became("ACTIVE"), recorder{&clock, &fragile_lines, {}}, options);
  subs.subscribe("other", status.became("ACTIVE"), recorder{&clock, &other_lines, {}}, options);
  pollster::watcher w(std::ref(api), pollster::keyed(&server::id, &server::version), subs.handler(clock),
                      pollster::constant{10s}, pollster::after_attempts{5});
  const auto outcome = w.run(clock, subs);
  // a's change is seen at 20 s; the fragile filter throws there and answers on the retry at 23 s.
  CHECK(fragile_lines == std::vector<std::string>{"23s changed a/changed/v2 #2", "40s changed b/changed/v2 #1"});
  CHECK(other_lines == std::vector<std::string>{"20s changed a/changed/v2 #1", "40s changed b/changed/v2 #1"});
  CHECK(subs.stats("fragile").filter_errors == 1);
  CHECK(subs.stats("fragile").failed_attempts == 1);
  // The snapshot moved on: a's change was reported once by the diff, never again.
  CHECK(outcome.report.changed == 2);
  CHECK(api.calls == std::vector<duration>{0s, 10s, 20s, 30s, 40s});  // the retry cost no list call
}

TEST_CASE("a handler that calls back into its subscriptions fails that attempt with a logic_error") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::string error;
  subs.subscribe("loops", [&](const event_type&) {
    try {
      subs.run_due(clock.now());
    } catch (const std::logic_error& e) {
      error = e.what();
      throw;
    }
  }, {{}, pollster::retry_policy(pollster::constant{1s}, pollster::after_attempts{1}), 10, false});
  subs.publish(pollster::added<const server&>{server{"a", 1, "BUILD"}, false}, clock.now());
  CHECK(error == "pollster::subscriptions: called from one of its own handlers (publish, run_due and restore are not "
                 "re-entrant)");
  CHECK(subs.stats("loops").failed_attempts == 1);
}

TEST_CASE("a blocking watcher wakes for due redeliveries between its polls, without a list call") {
  manual_clock clock;
  fleet_api api{&clock, {{0s, "a", "BUILD"}, {50s, "a", "ACTIVE"}}, {}};
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::vector<std::string> lines;
  subs.subscribe("provision", status.became("ACTIVE"), recorder{&clock, &lines, {{"a", 2}}});  // Event Grid's
  pollster::watcher w(std::ref(api), pollster::keyed(&server::id, &server::version), subs.handler(clock),
                      pollster::constant{1min}, pollster::before_deadline{5min});
  w.run(clock, subs);
  CHECK(lines == std::vector<std::string>{"60s changed a/changed/v2 #1", "70s changed a/changed/v2 #2",
                                          "100s changed a/changed/v2 #3"});
  CHECK(api.calls == std::vector<duration>{0s, 60s, 120s, 180s, 240s, 300s});
  CHECK(subs.pending() == 0);
}

TEST_CASE("a restarted watcher resumes from its saved state: changes while down arrive as changes") {
  manual_clock clock;
  fleet_api api{&clock,
                {{0s, "a", "BUILD"}, {0s, "b", "ACTIVE"}, {0s, "c", "ACTIVE"},  // before the first process stops
                 {100s, "a", "ACTIVE"}, {100s, "b", ""}, {100s, "d", "BUILD"}},  // while no process runs
                {}};
  pollster::retry_policy slow(pollster::constant{1min}, pollster::after_attempts{5});
  pollster::watch_state<server, std::string> saved;
  {
    // The first process: c's event fails and is still undelivered when it stops at 20 s.
    subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
    subs.subscribe("audit", [](const event_type&) { throw std::runtime_error("audit log full"); },
                   {{}, slow, 100, true});
    pollster::watcher w(std::ref(api), pollster::keyed(&server::id, &server::version), subs.handler(clock),
                        pollster::constant{10s}, pollster::after_attempts{3});
    w.run(clock, subs);
    CHECK(subs.pending() == 3);
    saved = pollster::save_state(w, subs);
  }
  REQUIRE(saved.records.size() == 3);
  REQUIRE(saved.delivery.undelivered.size() == 3);
  CHECK(saved.delivery.sequence == 3);
  CHECK(saved.delivery.undelivered[0].subscription == "audit");
  CHECK(saved.delivery.undelivered[0].key == "a");
  CHECK(saved.delivery.undelivered[0].attempts == 1);
  clock.advance_to(at(200s));
  // The second process, restarted at 200 s from the saved state.
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::vector<std::string> lines;
  subs.subscribe("audit", recorder{&clock, &lines, {}}, {{}, slow, 100, true});
  pollster::watcher w(std::ref(api), pollster::keyed(&server::id, &server::version), subs.handler(clock),
                      pollster::constant{10s}, pollster::after_attempts{2});
  pollster::resume(w, subs, saved, clock.now());
  const auto outcome = w.run(clock, subs);
  // The first poll reports what changed while down (no initial list); the three saved events are due at once and
  // are delivered first, keeping their ids, with their attempt counts going on; a's change waits behind a's saved
  // event, b's removal behind b's.
  CHECK(lines == std::vector<std::string>{"200s added d/added/v1 #1", "200s added a/added/v1 #2",
                                          "200s changed a/changed/v2 #1", "200s added b/added/v1 #2",
                                          "200s removed b/removed/v1 #1", "200s added c/added/v1 #2"});
  CHECK(outcome.report.initial == 0);
  CHECK(outcome.report.added == 1);
  CHECK(outcome.report.changed == 1);
  CHECK(outcome.report.removed == 1);
  CHECK(subs.sequence() == 6);  // the saved count went on: 3 changes then, 3 now
}

TEST_CASE("a restored event whose subscription is gone is dead-lettered as unsubscribed") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  subs.subscribe("still-here", [](const event_type&) {});
  pollster::delivery_state<server, std::string> state;
  state.sequence = 9;
  pollster::undelivered_event<server, std::string> u;
  u.subscription = "renamed";
  u.kind = event_kind::added;
  u.key = "a";
  u.after = server{"a", 3, "ACTIVE"};
  u.sequence = 9;
  u.attempts = 4;
  state.undelivered.push_back(u);
  std::vector<std::string> letters;
  subs.on_dead_letter([&](const pollster::dead_letter<server, std::string>& d) {
    letters.push_back(d.subscription + " " + d.event.id() + " " + pollster::to_string(d.reason) + " after " +
                      std::to_string(d.attempts));
  });
  subs.restore(state, clock.now());
  CHECK(letters == std::vector<std::string>{"renamed a/added/v3 unsubscribed after 4"});
  CHECK(subs.sequence() == 9);
}

TEST_CASE("a restored event waits for the retry it was waiting for, and its schedule goes on where it was") {
  manual_clock clock;
  pollster::subscription_options options;
  options.retry = pollster::retry_policy(pollster::delay_steps({10s, 30s, 1min, 2min}), pollster::after_attempts{10});
  pollster::delivery_state<server, std::string> saved;
  {
    // The first process: a fails at 0 s and at 10 s (its retry then due at 40 s); a's change at 12 s waits behind.
    subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
    std::vector<std::string> lines;
    subs.subscribe("provision", recorder{&clock, &lines, {{"a", 100}}}, options);
    publisher p{&subs, &clock};
    p.add({"a", 1, "BUILD"}, 0s);
    clock.advance_to(at(10s));
    CHECK(subs.run_due(clock.now()) == 1);
    p.change({"a", 1, "BUILD"}, {"a", 2, "ACTIVE"}, 12s);
    CHECK(subs.next_due() == at(40s));
    clock.advance_to(at(15s));
    saved = subs.save();  // and the process stops
  }
  REQUIRE(saved.undelivered.size() == 2);
  CHECK(saved.undelivered[0].attempts == 2);
  CHECK(saved.undelivered[0].due == std::chrono::system_clock::time_point{} + 40s);
  CHECK(saved.undelivered[1].attempts == 0);
  CHECK_FALSE(saved.undelivered[1].due.has_value());  // behind a's first: no retry of its own yet

  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  std::vector<std::string> lines;
  subs.subscribe("provision", recorder{&clock, &lines, {{"a", 1}}}, options);
  SECTION("restarted before the retry was due: it comes at 40 s, the next one after the third delay (1 min)") {
    clock.advance_to(at(25s));
    subs.restore(saved, clock.now());
    CHECK(subs.next_due() == at(40s));
    subs.drain(clock);
    CHECK(lines == std::vector<std::string>{"40s added a/added/v1 #3", "100s added a/added/v1 #4",
                                            "100s changed a/changed/v2 #1"});
  }
  SECTION("restarted after the retry was due: it comes at once, the next one after the third delay (1 min)") {
    clock.advance_to(at(50s));
    subs.restore(saved, clock.now());
    CHECK(subs.next_due() == at(50s));
    subs.drain(clock);
    CHECK(lines == std::vector<std::string>{"50s added a/added/v1 #3", "110s added a/added/v1 #4",
                                            "110s changed a/changed/v2 #1"});
  }
  CHECK(subs.stats("provision").redeliveries == 2);
  CHECK(subs.pending() == 0);
}

TEST_CASE("subscriptions refuse bad parameters with a message that names them") {
  manual_clock clock;
  subs_type subs(pollster::keyed(&server::id, &server::version), virtual_time(clock));
  subs.subscribe("a", [](const event_type&) {});
  auto message = [&](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  CHECK(message([&] { subs.subscribe("", [](const event_type&) {}); }) ==
        "pollster::subscriptions: name must be not empty, got \"\"");
  CHECK(message([&] { subs.subscribe("a", [](const event_type&) {}); }) ==
        "pollster::subscriptions: name must be unique, got \"a\" (taken)");
  pollster::subscription_options none;
  none.max_pending = 0;
  CHECK(message([&] { subs.subscribe("b", [](const event_type&) {}, none); }) ==
        "pollster::subscription_options: max_pending must be >= 1, got 0");
  CHECK(message([&] { (void)subs.stats("zzz"); }) ==
        "pollster::subscriptions: name must be a subscribed name, got \"zzz\"");
  CHECK(subs.size() == 1);
}
