#include "pollster_catch.hpp"

#include <pollster/http.hpp>
#include <pollster/poll.hpp>
#include <pollster/progress.hpp>
#include <pollster/runner.hpp>
#include <pollster/schedule.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using pollster::manual_clock;

namespace {

using step_type = pollster::step<int, std::string>;
using progress_type = pollster::poll_progress<int, std::string>;

pollster::duration since_start(const manual_clock& clock) { return clock.now().time_since_epoch(); }

/// Pending with the attempt number as its value until attempt `done_at`; records what each attempt saw.
struct recording_check {
  int done_at;
  std::vector<pollster::poll_state>* seen;
  step_type operator()(const pollster::poll_state& s) const {
    seen->push_back(s);
    if (s.attempt >= static_cast<std::uint64_t>(done_at)) return pollster::done(static_cast<int>(s.attempt));
    return pollster::pending(static_cast<int>(s.attempt));
  }
};

std::string int_text(int v) { return std::to_string(v); }
int text_int(std::string_view s) { return std::stoi(std::string(s)); }
std::string same_text(const std::string& s) { return s; }
std::string view_text(std::string_view s) { return std::string(s); }

/// Drives `p` on `clock` until it is done or has made `attempts` attempts; returns the start time of each attempt.
template <class Poller>
std::vector<pollster::duration> drive(Poller& p, manual_clock& clock, std::uint64_t attempts) {
  std::vector<pollster::duration> at;
  for (std::uint64_t i = 0; i < attempts && !p.done(); ++i) {
    clock.advance_to(p.next_due());
    at.push_back(since_start(clock));
    p.step(clock.now());
  }
  return at;
}

}  // namespace

TEST_CASE("a resumed poller checks when the first owner would have, with the schedule where it stood", "[progress]") {
  // Heat-style doubling, 1 s x 2 capped at 20 s: uninterrupted, the checks are at 0, 1, 3, 7, 15, 31, 51.
  std::vector<pollster::poll_state> seen_a;
  manual_clock clock_a;
  auto first = pollster::make_poller(recording_check{7, &seen_a}, pollster::resumable{pollster::geometric{1s, 2.0, 20s}},
                                     pollster::never{}, clock_a.now());
  CHECK(drive(first, clock_a, 4) == std::vector<pollster::duration>{0s, 1s, 3s, 7s});
  const progress_type saved = first.progress();
  CHECK(saved.attempts == 4);
  CHECK(saved.elapsed == 7s);
  CHECK(saved.next_wait == 8s);
  CHECK(saved.last_delay == 8s);
  CHECK(saved.slept == 7s);
  CHECK(saved.schedule == pollster::schedule_position{4, 4, std::nullopt});
  CHECK(saved.last_value == std::optional<int>{4});

  // The second owner runs on its own clock (another process: another epoch) and takes over 2 s after the save.
  std::vector<pollster::poll_state> seen_b;
  manual_clock clock_b{manual_clock::time_point{1000s}};
  auto second = pollster::make_poller(recording_check{7, &seen_b},
                                      pollster::resumable{pollster::geometric{1s, 2.0, 20s}}, pollster::never{},
                                      clock_b.now());
  second.resume(saved, clock_b.now(), 2s);
  CHECK(second.next_due() == manual_clock::time_point{1006s});  // saved at 7 s, due at 15 s: 8 s after, 6 s from now
  CHECK(drive(second, clock_b, 10) == std::vector<pollster::duration>{1006s, 1022s, 1042s});  // 15, 31, 51 s
  REQUIRE(second.done());
  const auto outcome = second.outcome();
  CHECK(outcome.cause == pollster::cause::done);
  CHECK(outcome.attempts == 7);
  CHECK(outcome.elapsed == 51s);
  CHECK(outcome.slept == 51s);
  REQUIRE(seen_b.size() == 3);
  CHECK(seen_b[0].attempt == 5);
  CHECK(seen_b[0].elapsed == 15s);
  CHECK(seen_b[0].last_delay == 8s);
  CHECK(seen_b[2].attempt == 7);
  CHECK(seen_b[2].last_delay == 20s);
}

TEST_CASE("a resumed jittered schedule draws the same delays as the run it continues", "[progress]") {
  pollster::exponential_options o;
  o.base = 1s;
  o.cap = 60s;
  o.jitter = pollster::jitter::full;
  auto uninterrupted = pollster::resumable{pollster::exponential{o}};
  uninterrupted.reseed(42);
  const std::vector<pollster::duration> expected = uninterrupted.preview(12);

  auto first = uninterrupted;
  for (int i = 0; i < 5; ++i) (void)first.next();
  first.reset();  // a nudge with reset_on_nudge, say
  for (int i = 0; i < 2; ++i) (void)first.next();
  const pollster::schedule_position where = first.position();
  CHECK(where == pollster::schedule_position{7, 2, std::uint64_t{42}});

  auto second = pollster::resumable{pollster::exponential{o}};  // a fresh prototype, never seeded
  second.seek(where);
  CHECK(second.preview(5) == first.preview(5));
  // And the draws before the reset are the uninterrupted run's first five: the generator went on across it.
  auto replay = pollster::resumable{pollster::exponential{o}};
  replay.reseed(42);
  std::vector<pollster::duration> drawn;
  for (int i = 0; i < 5; ++i) drawn.push_back(replay.next());
  CHECK(drawn == std::vector<pollster::duration>(expected.begin(), expected.begin() + 5));
}

TEST_CASE("a schedule position that cannot be is refused with its numbers", "[progress]") {
  auto schedule = pollster::resumable{pollster::constant{1s}};
  CHECK_THROWS_WITH(schedule.seek(pollster::schedule_position{2, 3, std::nullopt}),
                    "pollster::resumable: position.since_reset must be <= position.draws (2), got 3");
  CHECK_THROWS_WITH(schedule.seek(pollster::schedule_position{2, 1, std::uint64_t{9}}),
                    "pollster::resumable: position.seed must be empty for a schedule without reseed(), got 9");
  CHECK(schedule.position() == pollster::schedule_position{});  // unchanged
}

TEST_CASE("a progress survives its text form, whatever bytes its value, error and check state hold", "[progress]") {
  pollster::poll_progress<std::string, std::string> p;
  p.attempts = 12;
  p.elapsed = 95s + 3ns;
  p.slept = 90s;
  p.next_wait = 7s;
  p.last_delay = 20s;
  p.schedule = {40, 12, std::uint64_t{0xffffffffffffffffULL}};
  p.nudges = 3;
  p.timeouts = 2;
  p.abandoned = 1;
  p.last_value = std::string("line one\nline two: 17:\0x", 25);
  p.last_error = "";
  p.check_state = "5:\"v42\"Tue, 15 Nov 1994 08:12:31 GMT";
  const std::string text = pollster::progress_to_text(p, same_text, same_text);
  const auto back = pollster::progress_from_text<std::string, std::string>(text, view_text, view_text);
  CHECK(back.attempts == 12);
  CHECK(back.elapsed == 95s + 3ns);
  CHECK(back.slept == 90s);
  CHECK(back.next_wait == 7s);
  CHECK(back.last_delay == 20s);
  CHECK(back.schedule == p.schedule);
  CHECK(back.nudges == 3);
  CHECK(back.timeouts == 2);
  CHECK(back.abandoned == 1);
  CHECK(back.last_value == p.last_value);
  CHECK(back.last_error == std::optional<std::string>{""});
  CHECK(back.check_state == p.check_state);

  SECTION("a field a newer writer added is skipped") {
    std::string newer = text;
    newer.insert(std::string("pollster-progress 1\n").size(), "region 2:eu\nshard 7\n");
    const auto read = pollster::progress_from_text<std::string, std::string>(newer, view_text, view_text);
    CHECK(read.attempts == 12);
    CHECK(read.last_value == p.last_value);
  }
  SECTION("a cut text is refused, naming where") {
    const std::string cut = text.substr(0, text.find("line two"));
    CHECK_THROWS_AS((pollster::progress_from_text<std::string, std::string>(cut, view_text, view_text)),
                    std::invalid_argument);
    CHECK_THROWS_WITH((pollster::progress_from_text<std::string, std::string>("hello", view_text, view_text)),
                      "pollster::progress_from_text: text must be one that starts with \"pollster-progress 1\", got "
                      "\"hello\"");
    CHECK_THROWS_WITH(
        (pollster::progress_from_text<std::string, std::string>("pollster-progress 1\nattempts x\n", view_text,
                                                               view_text)),
        "pollster::progress_from_text: text must be a number at byte 9, got no digit");
  }
}

namespace {
/// A check that asks with the validators it remembers (http.hpp's conditional_request) and keeps them across owners.
struct etag_check {
  pollster::conditional_request validators;
  std::vector<std::string>* sent;
  step_type operator()() {
    pollster::http_request request("http://api.example/servers/7");
    validators.apply(request);
    sent->push_back(std::string(request.headers.get("If-None-Match").value_or("(none)")));
    pollster::http_response response;
    response.status = 200;
    response.headers.set("ETag", "\"v" + std::to_string(sent->size()) + "\"");
    validators.remember(response);
    return pollster::pending(static_cast<int>(sent->size()));
  }
  std::string save_state() const { return validators.save_state(); }
  void restore_state(const std::string& state) { validators.restore_state(state); }
};
}  // namespace

TEST_CASE("the check's own state (a remembered ETag) goes with the progress", "[progress]") {
  manual_clock clock;
  std::vector<std::string> sent_a;
  auto first = pollster::make_poller(etag_check{{}, &sent_a}, pollster::resumable{pollster::constant{5s}},
                                     pollster::never{}, clock.now());
  (void)drive(first, clock, 2);
  CHECK(sent_a == std::vector<std::string>{"(none)", "\"v1\""});
  const auto saved = first.progress();
  CHECK(saved.check_state == "4:\"v2\"");
  const std::string text = pollster::progress_to_text(saved, int_text, same_text);

  std::vector<std::string> sent_b;
  auto second = pollster::make_poller(etag_check{{}, &sent_b}, pollster::resumable{pollster::constant{5s}},
                                      pollster::never{}, clock.now());
  second.resume(pollster::progress_from_text<int, std::string>(text, text_int, view_text), clock.now());
  (void)drive(second, clock, 1);
  CHECK(sent_b == std::vector<std::string>{"\"v2\""});  // the first owner's last ETag: a 304 if nothing changed
  CHECK_THROWS_WITH(second.resume([] {
    progress_type bad;
    bad.check_state = "9:\"v2\"";
    return bad;
  }(), clock.now()),
                    "pollster::conditional_request: state must be what save_state() returned, got \"9:\"v2\"\"");
}

TEST_CASE("resume refuses negative times, naming them", "[progress]") {
  manual_clock clock;
  std::vector<pollster::poll_state> seen;
  auto p = pollster::make_poller(recording_check{3, &seen}, pollster::resumable{pollster::constant{1s}},
                                 pollster::never{}, clock.now());
  progress_type saved;
  CHECK_THROWS_WITH(p.resume(saved, clock.now(), -1s), "pollster::poller::resume: since_saved must be >= 0, got -1s");
  saved.next_wait = -2ms;
  CHECK_THROWS_WITH(p.resume(saved, clock.now()),
                    "pollster::poller::resume: progress.next_wait must be >= 0, got -2ms");
}

TEST_CASE("a resumed run keeps to its stop rule: the time nobody polled counts as elapsed", "[progress]") {
  manual_clock clock;
  std::vector<pollster::poll_state> seen;
  auto p = pollster::make_poller(recording_check{100, &seen}, pollster::resumable{pollster::constant{8s}},
                                 pollster::after_elapsed{60s}, clock.now());
  progress_type saved;
  saved.attempts = 6;
  saved.elapsed = 50s;
  saved.next_wait = 8s;
  saved.last_delay = 8s;
  saved.schedule = {6, 6, std::nullopt};
  // Taken up 30 s after the save: the check that was due 8 s after it is overdue, so it happens now (t = 80 s of the
  // run), and the stop rule (60 s) ends the run after it.
  p.resume(saved, clock.now(), 30s);
  CHECK(p.next_due() == clock.now());
  p.step(clock.now());
  REQUIRE(p.done());
  CHECK(p.outcome().cause == pollster::cause::exhausted);
  CHECK(p.outcome().attempts == 7);
  CHECK(p.outcome().elapsed == 80s);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].attempt == 7);
  CHECK(seen[0].elapsed == 80s);
}

namespace {
/// Hooks that save the progress after every attempt, as a fleet worker does before it ships it to Redis.
struct saving_hooks {
  std::vector<progress_type>* saved;
  template <class Poller>
  void on_progress(const Poller& p) {
    saved->push_back(p.progress());
  }
};
}  // namespace

TEST_CASE("on_progress hooks hear of every concluded attempt, in a runner too", "[progress]") {
  manual_clock clock;
  pollster::runner<manual_clock> fleet{clock};
  std::vector<pollster::poll_state> seen;
  std::vector<progress_type> saved;
  pollster::poller<recording_check, pollster::resumable<pollster::geometric>, pollster::never,
                   manual_clock::time_point, saving_hooks>
      p(recording_check{3, &seen}, pollster::resumable{pollster::geometric{1s, 2.0, 20s}}, pollster::never{},
        clock.now(), {}, saving_hooks{&saved});
  std::optional<pollster::outcome<int, std::string>> result;
  fleet.submit_poller(std::move(p), [&](pollster::outcome<int, std::string> o) { result = std::move(o); });
  fleet.run();
  REQUIRE(result);
  CHECK(result->cause == pollster::cause::done);
  REQUIRE(saved.size() == 3);
  CHECK(saved[0].attempts == 1);
  CHECK(saved[0].next_wait == 1s);
  CHECK(saved[1].attempts == 2);
  CHECK(saved[1].elapsed == 1s);
  CHECK(saved[1].next_wait == 2s);
  CHECK(saved[2].attempts == 3);
  CHECK(saved[2].last_value == std::optional<int>{3});
}

TEST_CASE("an attempt in flight is left out of the progress: whoever resumes makes it again", "[progress]") {
  using completion_type = pollster::completion<int, std::string>;
  manual_clock clock;
  std::optional<completion_type> out;
  auto p = pollster::make_poller([&](completion_type c) { out.emplace(std::move(c)); },
                                 pollster::resumable{pollster::constant{10s}}, pollster::never{}, clock.now());
  p.step(clock.now());
  REQUIRE(out);
  (*out)(pollster::pending(1));
  out.reset();
  p.complete(clock.now());
  clock.advance_to(p.next_due());
  p.step(clock.now());  // the second attempt goes out at 10 s and is still out
  REQUIRE(p.in_flight());
  clock.advance(3s);
  const auto saved = p.progress();
  CHECK(saved.attempts == 1);
  CHECK(saved.elapsed == 10s);  // the run stood at the second attempt's start
  CHECK(saved.next_wait == 0s);  // ... which was due then: the next owner makes it at once
  CHECK(saved.last_value == std::optional<int>{1});
}
