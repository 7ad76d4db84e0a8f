#include "pollster_catch.hpp"

#include <pollster/redis_stream.hpp>

#include "servers/redis_server.hpp"

#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

pollster::redis_consumer_options consumer(const std::string& group, const std::string& name,
                                          pollster::duration claim_idle = 30s) {
  pollster::redis_consumer_options o;
  o.stream = "test:events";
  o.group = group;
  o.consumer = name;
  o.block = 20ms;
  o.claim_idle = claim_idle;
  return o;
}

void append_events(pollster::redis_connection& c, int from, int to) {
  pollster::redis_stream_writer writer("test:events");
  for (int i = from; i < to; ++i) {
    const std::string key = "op-" + std::to_string(i);
    writer.append(c, {{"id", key + "/1"}, {"type", "changed"}, {"key", key}});
  }
}

}  // namespace

TEST_CASE("each event reaches one consumer of a group, and every group reads every event", "[redis][stream]") {
  pollster_test::redis_server server;
  pollster::redis_connection c(server.options(1000ms));
  pollster::redis_consumer_options four = consumer("billing", "a");
  four.count = 4;  // reads of at most 4: both consumers get some
  pollster::redis_stream_reader a(four);
  four.consumer = "b";
  pollster::redis_stream_reader b(four);
  pollster::redis_stream_reader audit(consumer("audit", "only"));
  a.ensure_group(c);
  b.ensure_group(c);  // a second call finds the group there: no error
  audit.ensure_group(c);
  append_events(c, 0, 10);

  std::vector<std::string> by_a;
  std::vector<std::string> by_b;
  std::set<std::string> audited;
  for (int round = 0; round < 10 && by_a.size() + by_b.size() < 10; ++round) {
    a.consume(c, [&](const pollster::redis_stream_entry& e) { by_a.push_back(e.get("id")); });
    b.consume(c, [&](const pollster::redis_stream_entry& e) { by_b.push_back(e.get("id")); });
  }
  for (int round = 0; round < 5 && audited.size() < 10; ++round) {
    audit.consume(c, [&](const pollster::redis_stream_entry& e) { audited.insert(e.get("key")); });
  }
  std::set<std::string> all(by_a.begin(), by_a.end());
  all.insert(by_b.begin(), by_b.end());
  CHECK(all.size() == 10);
  CHECK(by_a.size() + by_b.size() == 10);  // none twice
  CHECK(by_a.size() == 6);                 // 4, then the last 2
  CHECK(by_b.size() == 4);
  CHECK(audited.size() == 10);
  CHECK(audit.acknowledged() == 10);
  CHECK(c.command({"XPENDING", "test:events", "billing"}).as_array().at(0).as_integer() == 0);
}

TEST_CASE("an event not acknowledged comes again: to its consumer after a restart, to another after claim_idle",
          "[redis][stream]") {
  pollster_test::redis_server server;
  pollster::redis_connection c(server.options(1000ms));
  {
    pollster::redis_stream_reader first(consumer("workers", "w1"));
    first.ensure_group(c);
    append_events(c, 0, 3);
    REQUIRE(first.read(c).size() == 3);  // given, never acknowledged: the consumer "dies"
  }
  // The same consumer, restarted: its pending events first, before anything new.
  append_events(c, 3, 4);
  pollster::redis_stream_reader again(consumer("workers", "w1"));
  std::vector<std::string> ids;
  for (const auto& e : again.read(c)) ids.push_back(e.get("id"));
  CHECK(ids == std::vector<std::string>{"op-0/1", "op-1/1", "op-2/1"});

  // A handler that throws leaves its event pending; after claim_idle another consumer of the group takes it over.
  std::size_t failed_handles = 0;
  std::size_t handled = again.consume(c, [&](const pollster::redis_stream_entry& e) {
    if (e.get("id") == "op-3/1") {
      ++failed_handles;
      throw std::runtime_error("handler failed");
    }
  });
  CHECK(handled == 0);
  CHECK(failed_handles == 1);
  CHECK(again.failures() == 1);
  pollster::redis_stream_reader heir(consumer("workers", "w2", 200ms));
  CHECK(heir.consume(c, [](const pollster::redis_stream_entry&) {}) == 0);  // op-0..3 are not idle long enough yet
  std::this_thread::sleep_for(250ms);
  std::set<std::string> taken;
  for (int round = 0; round < 3 && taken.size() < 4; ++round) {
    heir.consume(c, [&](const pollster::redis_stream_entry& e) { taken.insert(e.get("id")); });
  }
  // w1 acknowledged nothing: the three it read back and the one its handler refused all go to w2, once each.
  CHECK(taken == std::set<std::string>{"op-0/1", "op-1/1", "op-2/1", "op-3/1"});
  CHECK(heir.claimed() == 4);
  CHECK(heir.acknowledged() == 4);
  CHECK(c.command({"XPENDING", "test:events", "workers"}).as_array().at(0).as_integer() == 0);
}

TEST_CASE("append_if_leased appends only while the lease holds the writer's value", "[redis][stream]") {
  pollster_test::redis_server server;
  pollster::redis_connection c(server.options(1000ms));
  pollster::redis_stream_writer writer("test:fenced");
  c.command({"SET", "test:lease", "w1 7", "PX", "60000"}).check();
  CHECK(writer.append_if_leased(c, "test:lease", "w1 7", {{"type", "changed"}}).has_value());
  c.command({"SET", "test:lease", "w2 8", "PX", "60000"}).check();  // taken over: a higher fence
  CHECK_FALSE(writer.append_if_leased(c, "test:lease", "w1 7", {{"type", "changed"}}).has_value());
  c.command({"DEL", "test:lease"}).check();
  CHECK_FALSE(writer.append_if_leased(c, "test:lease", "w1 7", {{"type", "changed"}}).has_value());
  CHECK(c.command({"XLEN", "test:fenced"}).as_integer() == 1);
}

TEST_CASE("a stream keeps about max_length events", "[redis][stream]") {
  pollster_test::redis_server server;
  pollster::redis_connection c(server.options(1000ms));
  pollster::redis_stream_writer writer("test:trimmed", 50);
  for (int i = 0; i < 1000; ++i) writer.append(c, {{"n", std::to_string(i)}});
  const long long length = c.command({"XLEN", "test:trimmed"}).as_integer();
  // MAXLEN ~ trims whole nodes (100 entries each by default): at least 50 stay, and never more than 50 + 100.
  CHECK(length >= 50);
  CHECK(length <= 150);
}

TEST_CASE("stream writers and readers refuse options that cannot work, naming them", "[redis][stream]") {
  CHECK_THROWS_WITH(pollster::redis_stream_writer("s", 0),
                    "pollster::redis_stream_writer: max_length must be >= 1, got 0");
  pollster::redis_consumer_options o = consumer("g", "c");
  o.count = 0;
  CHECK_THROWS_WITH(pollster::redis_stream_reader{o}, "pollster::redis_stream_reader: count must be >= 1, got 0");
  o = consumer("g", "c");
  o.claim_idle = {};
  CHECK_THROWS_WITH(pollster::redis_stream_reader{o},
                    "pollster::redis_stream_reader: claim_idle must be > 0, got 0s");
  // A blocking read must end before the connection gives up on the command.
  pollster_test::redis_server server;
  pollster::redis_connection c(server.options(100ms));
  o = consumer("g", "c");
  o.block = 100ms;
  pollster::redis_stream_reader slow(o);
  CHECK_THROWS_AS(slow.read(c), std::invalid_argument);
}
