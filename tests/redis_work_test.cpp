#include "pollster_catch.hpp"

#include <pollster/poll.hpp>
#include <pollster/redis_stream.hpp>
#include <pollster/redis_work.hpp>
#include <pollster/runner.hpp>

#include "servers/redis_server.hpp"

#include <signal.h>    // kill, SIGKILL
#include <sys/wait.h>  // waitpid
#include <unistd.h>    // fork, _exit, getpid

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

using step_type = pollster::step<int, std::string>;

/// Every check any worker of the test made: which key, which worker, which attempt, when.
struct poll_log {
  struct entry {
    std::string key;
    std::string worker;
    std::uint64_t attempt;
    steady::time_point at;
  };
  std::mutex mutex;
  std::vector<entry> entries;
  void add(const std::string& key, const std::string& worker, std::uint64_t attempt) {
    std::lock_guard<std::mutex> lock(mutex);
    entries.push_back({key, worker, attempt, steady::now()});
  }
  std::map<std::string, std::vector<entry>> by_key() {
    std::lock_guard<std::mutex> lock(mutex);
    std::map<std::string, std::vector<entry>> out;
    for (const entry& e : entries) out[e.key].push_back(e);
    return out;
  }
};

/// A check for key `item`: pending for ever (or done at attempt `done_at`), with the attempt number as its value.
struct logging_check {
  poll_log* log;
  std::string key;
  std::string worker;
  std::uint64_t done_at;
  step_type operator()(const pollster::poll_state& s) const {
    log->add(key, worker, s.attempt);
    if (done_at != 0 && s.attempt >= done_at) return pollster::done(static_cast<int>(s.attempt));
    return pollster::pending(static_cast<int>(s.attempt));
  }
};

struct make_logging_check {
  poll_log* log;
  std::string worker;
  std::uint64_t done_at = 0;
  logging_check operator()(const pollster::redis_work_item& item) const { return {log, item.key, worker, done_at}; }
};

using worker_type = pollster::redis_worker<pollster::steady_clock, make_logging_check, pollster::constant,
                                           pollster::never>;

/// A worker process, in-process: a runner on its own thread and a worker beside it.
struct node {
  pollster::steady_clock clock;
  pollster::runner<pollster::steady_clock> runner{clock};
  std::unique_ptr<worker_type> worker;

  node(const pollster::redis_work_options& options, poll_log& log, std::string name, pollster::duration every,
       std::uint64_t done_at = 0, worker_type::on_done_type on_done = {}) {
    pollster::redis_work_options o = options;
    o.worker = name;
    runner.start();
    worker = std::make_unique<worker_type>(runner, o, make_logging_check{&log, name, done_at},
                                           pollster::constant{every}, pollster::never{}, pollster::text_codec{},
                                           pollster::submit_options{}, std::move(on_done));
  }
  ~node() {
    worker.reset();  // the worker first: it lets its keys go while the runner still runs
    runner.stop();
  }
};

pollster::redis_work_options work_options(const pollster_test::redis_server& server, const std::string& name,
                                          pollster::duration lease) {
  pollster::redis_work_options o;
  o.name = name;
  o.lease = lease;
  o.redis = server.options(200ms);
  return o;
}

/// Waits (at most `limit`) until `done()`.
template <class F>
bool eventually(F done, std::chrono::milliseconds limit) {
  const auto until = steady::now() + limit;
  while (!done()) {
    if (steady::now() >= until) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

/// For each key, the workers that polled it in turn; a key polled by two workers at once shows up as A, B, A.
std::map<std::string, std::vector<std::string>> turns(poll_log& log) {
  std::map<std::string, std::vector<std::string>> out;
  for (auto& [key, polls] : log.by_key()) {
    std::sort(polls.begin(), polls.end(), [](const auto& a, const auto& b) { return a.at < b.at; });
    std::vector<std::string>& t = out[key];
    for (const auto& p : polls) {
      if (t.empty() || t.back() != p.worker) t.push_back(p.worker);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("a work set spreads its keys over its workers, one worker per key, and a joining worker gets its share",
          "[redis][work]") {
  pollster_test::redis_server server;
  const pollster::redis_work_options options = work_options(server, "spread", 600ms);
  pollster::redis_work_set set(server.options(), "spread");
  std::vector<std::pair<std::string, std::string>> keys;
  for (int i = 0; i < 24; ++i) keys.emplace_back("op-" + std::to_string(i), "spec-" + std::to_string(i));
  set.add(keys);
  REQUIRE(set.size() == 24);
  poll_log log;
  auto a = std::make_unique<node>(options, log, "a", 50ms);
  REQUIRE(eventually([&] { return a->worker->stats().owned == 24; }, 3000ms));  // alone, a takes the whole set
  auto b = std::make_unique<node>(options, log, "b", 50ms);
  CHECK(eventually([&] { return a->worker->stats().owned == 12 && b->worker->stats().owned == 12; }, 3000ms));
  CHECK(set.workers() == 2);

  auto c = std::make_unique<node>(options, log, "c", 50ms);
  CHECK(eventually(
      [&] {
        return a->worker->stats().owned == 8 && b->worker->stats().owned == 8 && c->worker->stats().owned == 8;
      },
      3000ms));
  std::this_thread::sleep_for(300ms);
  const auto sc = c->worker->stats();
  c.reset();
  b.reset();
  a.reset();

  CHECK(sc.claimed == 8);
  CHECK(sc.resumed == 8);  // the keys c took were let go with their progress
  std::size_t to_c = 0;
  for (const auto& [key, order] : turns(log)) {
    INFO(key);
    // a took every key while it was alone, let half go to b, then a third of the set went to c: a key moves on
    // when it moves, and never comes back while its last holder lives (two holders at once would show as a, b, a).
    CHECK(std::set<std::string>(order.begin(), order.end()).size() == order.size());
    CHECK(order.front() == "a");
    if (order.back() == "c") ++to_c;
  }
  CHECK(to_c == 8);
  // A key that moved went on counting its attempts where the first worker stopped: its progress travelled.
  for (auto& [key, polls] : log.by_key()) {
    std::sort(polls.begin(), polls.end(), [](const auto& x, const auto& y) { return x.at < y.at; });
    for (std::size_t i = 1; i < polls.size(); ++i) {
      INFO(key << " poll " << i << " by " << polls[i].worker);
      CHECK(polls[i].attempt == polls[i - 1].attempt + 1);
    }
  }
}

TEST_CASE("a worker that dies leaves its keys to the others within the lease, and they resume where it stopped",
          "[redis][work]") {
  pollster_test::redis_server server;
  const pollster::redis_work_options options = work_options(server, "takeover", 1000ms);
  pollster::redis_work_set set(server.options(), "takeover");
  for (int i = 0; i < 6; ++i) set.add("op-" + std::to_string(i));

  // The worker that dies is a child process (killed with SIGKILL: no goodbye, its leases simply stop being renewed).
  // It records its checks in Redis, since it shares no memory with this process.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      pollster::redis_connection log_connection(server.options(1000ms));
      struct redis_logging_check {
        pollster::redis_connection* connection;
        std::string key;
        step_type operator()(const pollster::poll_state& s) const {
          connection->command({"RPUSH", "test:child-polls", key + " " + std::to_string(s.attempt)});
          return pollster::pending(static_cast<int>(s.attempt));
        }
      };
      auto make = [&](const pollster::redis_work_item& item) { return redis_logging_check{&log_connection, item.key}; };
      pollster::steady_clock clock;
      pollster::runner<pollster::steady_clock> runner{clock};
      runner.start();
      pollster::redis_work_options o = options;
      o.worker = "doomed";
      pollster::redis_worker worker(runner, o, make, pollster::constant{100ms}, pollster::never{});
      std::this_thread::sleep_for(60s);  // until killed
    } catch (...) {
    }
    ::_exit(0);
  }
  pollster::redis_connection redis(server.options(1000ms));
  // Let the child take every key and poll a while.
  const bool child_polled = eventually(
      [&] { return redis.command({"LLEN", "test:child-polls"}).as_integer() >= 30; }, 5000ms);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  const steady::time_point killed = steady::now();
  REQUIRE(child_polled);
  std::map<std::string, std::uint64_t> last_attempt;
  for (const pollster::redis_value& v : redis.command({"LRANGE", "test:child-polls", "0", "-1"}).as_array()) {
    const std::string& line = v.as_string();
    const std::size_t space = line.find(' ');
    last_attempt[line.substr(0, space)] = std::stoull(line.substr(space + 1));
  }
  CHECK(last_attempt.size() == 6);

  poll_log log;
  node heir(options, log, "heir", 100ms);
  CHECK(eventually([&] { return heir.worker->stats().owned == 6; }, 4000ms));
  std::this_thread::sleep_for(300ms);
  const auto by_key = log.by_key();
  REQUIRE(by_key.size() == 6);
  steady::duration slowest{};
  for (const auto& [key, polls] : by_key) {
    INFO(key);
    slowest = std::max(slowest, polls.front().at - killed);
    // The heir goes on from the child's last saved progress: the attempts count on, never again from 1 (what the
    // child did after its last renewal, at most a third of the lease, is made again).
    CHECK(polls.front().attempt > 1);
    CHECK(polls.front().attempt <= last_attempt[key] + 1);
    CHECK(polls.front().attempt + 4 > last_attempt[key]);  // a third of a lease is about three polls of 100 ms
  }
  // Within the lease (1 s) plus a renewal period (a third of it), after the kill.
  CHECK(slowest < 1000ms + 334ms + 100ms);
  const auto s = heir.worker->stats();
  CHECK(s.claimed == 6);
  CHECK(s.resumed == 6);
  WARN("takeover of a killed worker's keys took at most "
       << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() << " ms (lease 1000 ms)");
}

TEST_CASE("a worker that finds its lease taken stops polling the key and writes nothing for it", "[redis][work]") {
  pollster_test::redis_server server;
  const pollster::redis_work_options options = work_options(server, "fence", 900ms);
  pollster::redis_work_set set(server.options(), "fence");
  set.add("op-1");
  poll_log log;
  node a(options, log, "a", 50ms);
  REQUIRE(eventually([&] { return a.worker->stats().owned == 1; }, 2000ms));
  std::this_thread::sleep_for(200ms);
  // Another holder got the key (as after an expiry): a higher fence, another value.
  pollster::redis_connection redis(server.options(1000ms));
  redis.command({"SET", set.keys().lease("op-1"), "intruder 999", "PX", "60000"}).check();
  redis.command({"HSET", set.keys().progress(), "op-1", "the intruder's progress"}).check();
  const steady::time_point taken = steady::now();
  CHECK(eventually([&] { return a.worker->stats().lost == 1; }, 1000ms));
  std::this_thread::sleep_for(400ms);
  const auto polls = log.by_key()["op-1"];
  REQUIRE_FALSE(polls.empty());
  // It stopped within a renewal period (300 ms) of the theft, and saved nothing over the new holder's progress.
  CHECK(polls.back().at - taken < 300ms + 60ms);
  CHECK(*set.progress("op-1") == "the intruder's progress");
  CHECK(*set.holder("op-1") == "intruder 999");
  CHECK(a.worker->stats().owned == 0);
}

TEST_CASE("a worker cut off from Redis stops polling at its local lease deadline, and takes its keys back after",
          "[redis][work]") {
  pollster_test::redis_server server;
  const pollster::redis_work_options options = work_options(server, "partition", 900ms);
  pollster::redis_work_set set(server.options(), "partition");
  for (int i = 0; i < 3; ++i) set.add("op-" + std::to_string(i));
  poll_log log;
  node a(options, log, "a", 50ms);
  REQUIRE(eventually([&] { return a.worker->stats().owned == 3; }, 2000ms));
  // Until a renewal has saved every key's progress (renewals come every 300 ms).
  REQUIRE(eventually(
      [&] {
        for (int i = 0; i < 3; ++i) {
          if (!set.progress("op-" + std::to_string(i))) return false;
        }
        return true;
      },
      2000ms));
  server.pause();
  const steady::time_point cut = steady::now();
  std::this_thread::sleep_for(1200ms);  // longer than the lease
  const std::size_t polls_before_resume = log.entries.size();
  const auto by_key = log.by_key();
  for (const auto& [key, polls] : by_key) {
    INFO(key);
    // No check after the local deadline: the last renewal (at most 300 ms before the cut) + 900 ms - 11 ms drift.
    CHECK(polls.back().at - cut < 900ms);
  }
  CHECK(a.worker->stats().lost == 3);
  server.resume();
  CHECK(eventually([&] { return a.worker->stats().owned == 3; }, 3000ms));
  CHECK(eventually([&] { return log.entries.size() > polls_before_resume + 3; }, 2000ms));
  const auto s = a.worker->stats();
  INFO("claimed " << s.claimed << ", bad progress " << s.bad_progress << ", failures " << s.failures << ": "
                  << a.worker->last_error());
  CHECK(s.resumed >= 3);
}

TEST_CASE("a key's end is recorded once: it leaves the set and a finished event reaches a consumer group",
          "[redis][work]") {
  pollster_test::redis_server server;
  const pollster::redis_work_options options = work_options(server, "finish", 900ms);
  pollster::redis_work_set set(server.options(), "finish");
  for (int i = 0; i < 10; ++i) set.add("op-" + std::to_string(i));
  poll_log log;
  std::mutex done_mutex;
  std::vector<std::string> done_keys;
  auto on_done = [&](const pollster::redis_work_item& item, const worker_type::outcome_type& o) {
    std::lock_guard<std::mutex> lock(done_mutex);
    done_keys.push_back(item.key + ":" + pollster::to_string(o.cause) + ":" + std::to_string(*o.last_value));
  };
  {
    node a(options, log, "a", 20ms, 3, on_done);
    node b(options, log, "b", 20ms, 3, on_done);
    CHECK(eventually([&] { return set.size() == 0; }, 4000ms));
    CHECK(eventually(
        [&] {
          std::lock_guard<std::mutex> lock(done_mutex);
          return done_keys.size() == 10;
        },
        2000ms));
    CHECK(a.worker->stats().finished + b.worker->stats().finished == 10);
  }
  std::sort(done_keys.begin(), done_keys.end());
  CHECK(done_keys.front() == "op-0:done:3");
  CHECK(std::set<std::string>(done_keys.begin(), done_keys.end()).size() == 10);

  pollster::redis_connection redis(server.options(1000ms));
  pollster::redis_stream_reader reader({set.keys().events(), "auditors", "auditor-1"});
  reader.ensure_group(redis);
  std::map<std::string, pollster::redis_stream_entry> events;
  for (int round = 0; round < 5 && events.size() < 10; ++round) {
    reader.consume(redis, [&](const pollster::redis_stream_entry& e) { events[e.get("key")] = e; });
  }
  REQUIRE(events.size() == 10);
  const pollster::redis_stream_entry& e = events["op-7"];
  CHECK(e.get("type") == "finished");
  CHECK(e.get("id") == "op-7/finished");
  CHECK(e.get("cause") == "done");
  CHECK(e.get("value") == "3");
  CHECK(e.get("attempts") == "3");
  CHECK((e.get("worker") == "a" || e.get("worker") == "b"));
  CHECK(reader.acknowledged() == 10);
}

namespace {
/// A check that remembers an ETag (the attempt that sent it) and saves it with the progress, as conditional_request.
struct etag_check {
  poll_log* log;
  std::string key;
  std::string worker;
  std::shared_ptr<std::vector<std::string>> restored;  // what restore_state was given, in order
  std::string etag = "(none)";
  step_type operator()(const pollster::poll_state& s) {
    log->add(key, worker + " sent " + etag, s.attempt);
    etag = "etag-" + std::to_string(s.attempt);
    return pollster::pending(static_cast<int>(s.attempt));
  }
  std::string save_state() const { return etag; }
  void restore_state(const std::string& state) {
    etag = state;
    restored->push_back(state);
  }
};
struct make_etag_check {
  poll_log* log;
  std::string worker;
  std::shared_ptr<std::vector<std::string>> restored;
  etag_check operator()(const pollster::redis_work_item& item) const { return {log, item.key, worker, restored}; }
};
}  // namespace

TEST_CASE("a key's remembered ETag goes with its progress to the next worker", "[redis][work]") {
  pollster_test::redis_server server;
  const pollster::redis_work_options options = work_options(server, "etag", 600ms);
  pollster::redis_work_set set(server.options(), "etag");
  set.add("collection");
  poll_log log;
  auto restored_a = std::make_shared<std::vector<std::string>>();
  auto restored_b = std::make_shared<std::vector<std::string>>();
  const auto run_worker = [&](const std::string& name, std::shared_ptr<std::vector<std::string>> restored,
                              std::size_t polls) {
    pollster::steady_clock clock;
    pollster::runner<pollster::steady_clock> runner{clock};
    runner.start();
    pollster::redis_work_options o = options;
    o.worker = name;
    {
      pollster::redis_worker worker(runner, o, make_etag_check{&log, name, restored}, pollster::constant{30ms},
                                    pollster::never{});
      CHECK(eventually([&] { return log.by_key()["collection"].size() >= polls; }, 3000ms));
    }  // stopped: the key is let go with its progress, ETag included
    runner.stop();
  };
  run_worker("a", restored_a, 4);
  const std::uint64_t a_last = log.by_key()["collection"].back().attempt;
  run_worker("b", restored_b, log.by_key()["collection"].size() + 2);
  CHECK(restored_a->empty());  // a started the poll: nothing to restore
  REQUIRE(restored_b->size() == 1);
  CHECK(restored_b->front() == "etag-" + std::to_string(a_last));
  // b's first request carries a's last ETag (a 304 if nothing changed), and counts on from a's attempts.
  std::vector<poll_log::entry> polls = log.by_key()["collection"];
  std::sort(polls.begin(), polls.end(), [](const auto& x, const auto& y) { return x.at < y.at; });
  const auto first_b = std::find_if(polls.begin(), polls.end(),
                                    [](const poll_log::entry& e) { return e.worker.compare(0, 1, "b") == 0; });
  REQUIRE(first_b != polls.end());
  CHECK(first_b->worker == "b sent etag-" + std::to_string(a_last));
  CHECK(first_b->attempt == a_last + 1);
}

TEST_CASE("a worker refuses options that cannot work, naming them", "[redis][work]") {
  pollster::steady_clock clock;
  pollster::runner<pollster::steady_clock> runner{clock};
  poll_log log;
  pollster::redis_work_options o;
  o.lease = 5ms;
  CHECK_THROWS_WITH((worker_type{runner, o, make_logging_check{&log, "x"}, pollster::constant{1s}, pollster::never{}}),
                    "pollster::redis_worker: lease must be > 10ms, got 5ms");
  o.lease = 1s;
  o.renew_every = 1s;
  CHECK_THROWS_WITH((worker_type{runner, o, make_logging_check{&log, "x"}, pollster::constant{1s}, pollster::never{}}),
                    "pollster::redis_worker: renew_every must be > 0 and < lease - drift, got 1s");
  o.renew_every = {};
  pollster::submit_options submit;
  submit.poll.deadline = pollster::at(clock.now() + 1s);
  CHECK_THROWS_AS((worker_type{runner, o, make_logging_check{&log, "x"}, pollster::constant{1s}, pollster::never{},
                               pollster::text_codec{}, submit}),
                  std::invalid_argument);
}
