// Tests for pollster/snapshot.hpp: the tracker that remembers the last list, its initial additions, its filtered
// view, what happens when a visitor throws, and its key-and-version index against the one-shot diff.
#include <pollster/snapshot.hpp>

#include "pollster_catch.hpp"

#include <algorithm>  // sort, max
#include <cstddef>    // size_t
#include <cstdint>    // uint64_t
#include <random>     // mt19937_64, uniform_int_distribution
#include <set>        // set
#include <stdexcept>  // invalid_argument, runtime_error
#include <string>     // string, to_string
#include <vector>     // vector

namespace {

// A Kubernetes object as an informer sees it: a name and a server-assigned version.
struct object {
  std::string name;
  std::string resource_version;
  std::string payload;
  friend bool operator==(const object& left, const object& right) {
    return left.name == right.name && left.resource_version == right.resource_version && left.payload == right.payload;
  }
};

// Records every event as one line, so a test can state the whole sequence it expects.
struct event_log {
  std::vector<std::string> lines;
  void operator()(const pollster::added<const object&>& event) {
    lines.push_back("added " + event.element.name + ":" + event.element.resource_version +
                    (event.initial ? " (initial)" : ""));
  }
  void operator()(const pollster::removed<const object&, std::string>& event) {
    lines.push_back("removed " + event.key + " last known " + event.last_known.resource_version);
  }
  void operator()(const pollster::changed<const object&>& event) {
    lines.push_back("changed " + event.after.name + " " + event.before.resource_version + " -> " +
                    event.after.resource_version);
  }
  void operator()(const pollster::unchanged<const object&>& event) {
    lines.push_back("unchanged " + event.element.name + ":" + event.element.resource_version);
  }
};

using lines = std::vector<std::string>;

const std::vector<object> informer_before{{"foo", "5", ""}, {"bar", "6", ""}, {"baz", "7", ""}};

}  // namespace

TEST_CASE("a snapshot reports its first list as initial additions and later lists as changes") {
  auto tracker = pollster::make_snapshot<object>(&object::name, &object::resource_version);
  CHECK_FALSE(tracker.has_baseline());

  event_log first;
  tracker.update(informer_before, first);
  CHECK(first.lines == lines{"added foo:5 (initial)", "added bar:6 (initial)", "added baz:7 (initial)"});
  CHECK(tracker.has_baseline());

  event_log second;
  tracker.update(std::vector<object>{{"foo", "6", ""}, {"qux", "1", ""}}, second);
  CHECK(second.lines ==
        lines{"removed bar last known 6", "removed baz last known 7", "changed foo 5 -> 6", "added qux:1"});
  CHECK(tracker.elements().size() == 2);

  const auto third = tracker.update(std::vector<object>{{"foo", "6", ""}, {"qux", "1", ""}});
  CHECK(third.empty());
}

TEST_CASE("a snapshot whose visitor throws keeps its last list, so the events come again") {
  auto tracker = pollster::make_snapshot<object>(&object::name, &object::resource_version);
  tracker.update(informer_before);
  const std::vector<object> next{{"foo", "6", ""}};
  CHECK_THROWS_AS(tracker.update(next, [](const auto&) { throw std::runtime_error("consumer failed"); }),
                  std::runtime_error);
  CHECK(tracker.elements().size() == 3);

  const auto retried = tracker.update(next);
  CHECK(retried.changes.size() == 1);
  CHECK(retried.removals.size() == 2);
}

TEST_CASE("a filtered snapshot turns starting to match into an add and stopping into a remove") {
  struct server {
    std::uint64_t id;
    std::string status;
    int version;
  };
  auto active = pollster::make_filtered_snapshot<server>([](const server& s) { return s.status == "ACTIVE"; },
                                                         &server::id, &server::version);
  active.update(std::vector<server>{{1, "BUILD", 1}, {2, "ACTIVE", 1}, {3, "ACTIVE", 1}});

  const auto crossing = active.update(std::vector<server>{{1, "ACTIVE", 2}, {2, "ERROR", 2}, {3, "ACTIVE", 2}});
  REQUIRE(crossing.additions.size() == 1);
  CHECK(crossing.additions[0].element.id == 1);
  CHECK_FALSE(crossing.additions[0].initial);
  REQUIRE(crossing.removals.size() == 1);
  CHECK(crossing.removals[0].key == 2);
  INFO("the tombstone carries the last record that matched, not the one that stopped matching");
  CHECK(crossing.removals[0].last_known.status == "ACTIVE");
  REQUIRE(crossing.changes.size() == 1);
  CHECK(crossing.changes[0].after.id == 3);

  const auto quiet = active.update(std::vector<server>{{1, "ACTIVE", 2}, {2, "DELETED", 3}, {3, "ACTIVE", 2}});
  INFO("server 2 keeps not matching; it must not be reported again");
  CHECK(quiet.empty());
}

namespace {

// A record with an integer key and version: the snapshot keeps these two in its index. `tag` is unique per record, so
// the events show which record they carry.
struct numbered {
  std::uint64_t id;
  int version;
  int tag;
};

struct numbered_log {
  std::vector<std::string> lines;
  void operator()(const pollster::added<const numbered&>& event) {
    lines.push_back("added " + std::to_string(event.element.id) + " #" + std::to_string(event.element.tag) +
                    (event.initial ? " (initial)" : ""));
  }
  void operator()(const pollster::removed<const numbered&, std::uint64_t>& event) {
    lines.push_back("removed " + std::to_string(event.key) + " last #" + std::to_string(event.last_known.tag));
  }
  void operator()(const pollster::changed<const numbered&>& event) {
    lines.push_back("changed " + std::to_string(event.after.id) + " #" + std::to_string(event.before.tag) + " -> #" +
                    std::to_string(event.after.tag));
  }
  void operator()(const pollster::unchanged<const numbered&>& event) {
    lines.push_back("unchanged " + std::to_string(event.element.id) + " #" + std::to_string(event.element.tag));
  }
};

std::vector<int> tags_of(const std::vector<numbered>& records) {
  std::vector<int> tags;
  for (const numbered& r : records) tags.push_back(r.tag);
  return tags;
}

}  // namespace

TEST_CASE("a snapshot with an integer key and version reports what a one-shot diff of neighbouring lists reports") {
  const bool last_wins = GENERATE(false, true);
  const bool report_unchanged = GENERATE(false, true);
  const bool filtered = GENERATE(false, true);
  pollster::diff_options options;
  options.duplicates = last_wins ? pollster::duplicate_keys::last_wins : pollster::duplicate_keys::error;
  options.report_unchanged = report_unchanged;
  const auto keep = [filtered](const numbered& r) { return !filtered || r.version % 3 != 0; };
  const auto kept_of = [&](const std::vector<numbered>& list) {
    std::vector<numbered> out;
    for (const numbered& r : list) {
      if (keep(r)) out.push_back(r);
    }
    return out;
  };
  auto tracker = pollster::make_filtered_snapshot<numbered>(keep, &numbered::id, &numbered::version, options);

  std::mt19937_64 random(filtered ? 11U : 7U);
  const auto below = [&random](std::uint64_t bound) {
    return std::uniform_int_distribution<std::uint64_t>(0, bound - 1)(random);
  };
  std::vector<numbered> kept;  // what the snapshot must hold: the last list that did not throw, filtered
  int tag = 0;
  int compared = 0;
  int threw = 0;
  for (int step = 0; step < 600; ++step) {
    // Mostly small lists, which find the corner cases; every 40th is large, so the index grows and later shrinks.
    const bool large = step % 40 == 20;
    const std::size_t size = large ? 3000 + below(3000) : below(30);
    const std::uint64_t key_range = large ? 1U << 20U : 1 + below(60);
    const bool duplicates_allowed = below(8) == 0;
    std::vector<numbered> next;
    std::set<std::uint64_t> used;
    while (next.size() < size) {
      std::uint64_t id = below(std::max<std::uint64_t>(key_range, 2 * size));
      int version = static_cast<int>(below(4));
      if (!kept.empty() && below(2) == 0) {  // an old key, with the same or a new version
        const numbered& old = kept[below(kept.size())];
        id = old.id;
        version = below(2) == 0 ? old.version : old.version + 1;
      }
      if (!duplicates_allowed && !used.insert(id).second) continue;
      next.push_back({id, version, tag++});
    }
    if (below(5) == 0) {
      std::sort(next.begin(), next.end(), [](const numbered& l, const numbered& r) { return l.id < r.id; });
    }

    numbered_log expected;
    bool expected_throws = false;
    try {
      pollster::diff_each(kept, kept_of(next), &numbered::id, &numbered::version, expected, options);
    } catch (const std::invalid_argument&) {
      expected_throws = true;
    }
    if (!tracker.has_baseline()) {
      for (std::string& line : expected.lines) line += " (initial)";
    }

    if (!expected_throws && !expected.lines.empty() && below(12) == 0) {
      INFO("step " << step << ": a visitor that throws leaves the last list as it was");
      CHECK_THROWS_AS(tracker.update(next, [](const auto&) { throw std::runtime_error("consumer failed"); }),
                      std::runtime_error);
      REQUIRE(tags_of(tracker.elements()) == tags_of(kept));
    }

    numbered_log seen;
    bool seen_throws = false;
    try {
      if (below(2) == 0) {
        tracker.update(std::vector<numbered>(next), seen);  // an rvalue vector, which the snapshot takes
      } else {
        tracker.update(next, seen);
      }
    } catch (const std::invalid_argument&) {
      seen_throws = true;
    }
    INFO("step " << step << ", " << next.size() << " records");
    REQUIRE(seen_throws == expected_throws);
    if (seen_throws) {
      ++threw;
      INFO("a duplicate key throws before any event and keeps the last list");
      CHECK(seen.lines.empty());
      REQUIRE(tags_of(tracker.elements()) == tags_of(kept));
      continue;
    }
    REQUIRE(seen.lines == expected.lines);
    kept = kept_of(next);
    REQUIRE(tags_of(tracker.elements()) == tags_of(kept));
    ++compared;
  }
  INFO("lists that diff and (with duplicate_keys::error) lists that throw must both have come up");
  CHECK(compared > 400);
  CHECK((last_wins ? threw == 0 : threw > 10));
}
