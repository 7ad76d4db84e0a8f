// Shared by subscription_test and redelivery_test: a server record, a fake list API whose fleet changes at given
// virtual times, a handler that records its deliveries (and fails on demand), and a publisher that stands in for a
// watch's handler.
#pragma once

#include "pollster_catch.hpp"

#include <pollster/clock.hpp>
#include <pollster/subscription.hpp>

#include <chrono>
#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace Catch {
template <>
struct StringMaker<pollster::duration> {
  static std::string convert(pollster::duration d) { return pollster::detail::duration_text(d); }
};
}  // namespace Catch

namespace subscription_fixtures {

using namespace std::chrono_literals;
using pollster::duration;
using pollster::manual_clock;

struct server {
  std::string id;
  int version = 0;
  std::string status;
  std::string region = "eu";
  int cpus = 2;
};

using event_type = pollster::event<server, std::string>;
using subs_type = pollster::subscriptions<server, std::string, manual_clock>;
using time_point = manual_clock::time_point;

inline time_point at(duration d) { return time_point{d}; }
inline duration since_start(const manual_clock& clock) { return clock.now().time_since_epoch(); }
inline std::string text(duration d) { return pollster::detail::duration_text(d); }

const auto status = pollster::field("status", &server::status);
const auto region = pollster::field("region", &server::region);

inline pollster::subscriptions_options virtual_time(const manual_clock& clock) {
  pollster::subscriptions_options o;
  o.wall_clock = pollster::wall_clock_of(clock, std::chrono::system_clock::time_point{});
  return o;
}

/// A subscription handler that records "<time> <kind> <id> #<attempt>" per call, and throws for the first
/// `failures` calls of the keys in `failing` (all keys when empty).
struct recorder {
  const manual_clock* clock;
  std::vector<std::string>* lines;
  std::map<std::string, int> failures_left;  // key -> how many more calls throw
  void operator()(const event_type& e, const pollster::delivery& d) {
    lines->push_back(text(since_start(*clock)) + " " + pollster::to_string(e.kind()) + " " + e.id() + " #" +
                     std::to_string(d.attempt));
    auto it = failures_left.find(e.subject());
    if (it != failures_left.end() && it->second > 0) {
      --it->second;
      throw std::runtime_error("handler down for " + e.subject());
    }
  }
};

/// Publishes changes as a watch's handler would, at the given virtual times (the clock is moved there first).
struct publisher {
  subs_type* subs;
  manual_clock* clock;
  void add(const server& s, duration when, bool initial = false) {
    clock->advance_to(at(when));
    subs->publish(pollster::added<const server&>{s, initial}, at(when));
  }
  void remove(const server& s, duration when) {
    clock->advance_to(at(when));
    subs->publish(pollster::removed<const server&, std::string>{s.id, s}, at(when));
  }
  void change(const server& before, const server& after, duration when) {
    clock->advance_to(at(when));
    subs->publish(pollster::changed<const server&>{before, after}, at(when));
  }
};

/// A fake list API over a fleet that changes at given virtual times (each change bumps the server's version).
struct fleet_api {
  struct change {
    duration when;
    std::string id;
    std::string status;  // empty: deleted
    std::string region = "eu";
  };
  const manual_clock* clock;
  std::vector<change> changes;
  std::vector<duration> calls;

  std::vector<server> operator()() {
    calls.push_back(since_start(*clock));
    std::map<std::string, server> fleet;
    for (const change& c : changes) {
      if (c.when > since_start(*clock)) break;
      if (c.status.empty()) {
        fleet.erase(c.id);
        continue;
      }
      server& s = fleet[c.id];
      s.id = c.id;
      s.status = c.status;
      s.region = c.region;
      ++s.version;
    }
    std::vector<server> list;
    for (const auto& entry : fleet) list.push_back(entry.second);
    return list;
  }
};

inline std::string reason_text(std::exception_ptr error) {
  if (!error) return "(none)";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace subscription_fixtures
