// Tests for pollster/diff.hpp: the Kubernetes informer cases, ordering, duplicate keys, the sorted and hash paths,
// the snapshot tracker and its filtered view.
#include <pollster/diff.hpp>

#include "pollster_catch.hpp"

#include <algorithm>   // reverse, sort
#include <cstddef>     // size_t
#include <cstdint>     // uint32_t, uint64_t
#include <functional>  // hash
#include <list>        // list
#include <ostream>     // ostream
#include <random>      // mt19937_64, uniform_int_distribution
#include <set>         // set
#include <stdexcept>   // invalid_argument, runtime_error
#include <string>      // string, to_string
#include <type_traits>
#include <utility>  // pair
#include <vector>   // vector

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
  void operator()(const pollster::removed<std::string, const object&>& event) {
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

pollster::key_order any_order() { return GENERATE(pollster::key_order::unknown, pollster::key_order::unsorted); }

// A key that std::hash sends to one number whatever its value, so the hash path's index can tell two keys apart only
// by comparing them: the tag it keeps beside each handle (bits of the hash) rejects nothing.
struct colliding_key {
  int value;
  friend bool operator==(const colliding_key& left, const colliding_key& right) { return left.value == right.value; }
  friend std::ostream& operator<<(std::ostream& out, const colliding_key& key) { return out << key.value; }
};

struct keyed_record {
  colliding_key key;
  int version;
};

}  // namespace

template <>
struct std::hash<colliding_key> {
  std::size_t operator()(const colliding_key&) const noexcept { return 42; }
};

TEST_CASE("a key missing from the new list is removed with its last known object, like a Kubernetes delete") {
  pollster::diff_options options;
  options.order = any_order();
  const std::vector<object> after{{"foo", "5", ""}};

  event_log log;
  pollster::diff_each(informer_before, after, &object::name, &object::resource_version, log, options);

  CHECK(log.lines == lines{"removed bar last known 6", "removed baz last known 7"});
}

TEST_CASE("an object whose version did not change is not reported as changed") {
  const std::vector<object> after{{"foo", "5", "the payload moved but the version did not"}};
  const auto result = pollster::diff(informer_before, after, &object::name, &object::resource_version);

  INFO("foo kept resource version 5, so the differ must stay silent about it");
  CHECK(result.changes.empty());
  CHECK(result.unchanged.empty());
  REQUIRE(result.removals.size() == 2);
  CHECK(result.removals[0].key == "bar");
  CHECK(result.removals[0].last_known.resource_version == "6");
  CHECK(result.removals[1].key == "baz");
  CHECK(result.removals[1].last_known.resource_version == "7");
}

TEST_CASE("a new version of an object is one change carrying the old and the new object") {
  pollster::diff_options options;
  options.order = any_order();
  const std::vector<object> after{{"foo", "6", ""}};

  const auto result = pollster::diff(informer_before, after, &object::name, &object::resource_version, options);

  REQUIRE(result.changes.size() == 1);
  CHECK(result.changes[0].before.resource_version == "5");
  CHECK(result.changes[0].after.resource_version == "6");
  CHECK(result.additions.empty());
  CHECK(result.removals.size() == 2);
}

TEST_CASE("unchanged records are reported only when asked for, and on their own channel") {
  const std::vector<object> after{{"foo", "5", ""}, {"bar", "7", ""}};
  pollster::diff_options options;
  options.report_unchanged = true;
  options.order = any_order();

  event_log log;
  pollster::diff_each(informer_before, after, &object::name, &object::resource_version, log, options);

  CHECK(log.lines == lines{"removed baz last known 7", "unchanged foo:5", "changed bar 6 -> 7"});
}

TEST_CASE("removals come first in the old order, then additions and changes in the new order") {
  const std::vector<object> before{{"a", "1", ""}, {"b", "1", ""}, {"c", "1", ""}, {"d", "1", ""}, {"e", "1", ""}};
  const std::vector<object> after{{"z", "1", ""}, {"e", "2", ""}, {"y", "1", ""}, {"a", "2", ""}, {"c", "1", ""}};
  const lines expected{"removed b last known 1", "removed d last known 1", "added z:1", "changed e 1 -> 2", "added y:1",
                       "changed a 1 -> 2"};

  SECTION("on the hash path") {
    event_log log;
    pollster::diff_each(before, after, &object::name, &object::resource_version, log);
    CHECK(log.lines == expected);
  }
  SECTION("on the sorted merge, where the order is the key order of both inputs") {
    std::vector<object> sorted_after = after;
    std::sort(sorted_after.begin(), sorted_after.end(),
              [](const object& left, const object& right) { return left.name < right.name; });
    pollster::diff_options options;
    options.order = pollster::key_order::sorted;
    event_log log;
    pollster::diff_each(before, sorted_after, &object::name, &object::resource_version, log, options);
    CHECK(log.lines == lines{"removed b last known 1", "removed d last known 1", "changed a 1 -> 2", "changed e 1 -> 2",
                             "added y:1", "added z:1"});
  }
}

TEST_CASE("without a version, records are compared with operator== or a predicate") {
  const std::vector<object> before{{"a", "1", "x"}, {"b", "1", "x"}};
  const std::vector<object> after{{"a", "1", "y"}, {"b", "1", "x"}};

  SECTION("operator== sees the payload change") {
    const auto result = pollster::diff(before, after, &object::name);
    REQUIRE(result.changes.size() == 1);
    CHECK(result.changes[0].after.payload == "y");
  }
  SECTION("a predicate that ignores the payload sees none") {
    const auto same_version = [](const object& left, const object& right) {
      return left.resource_version == right.resource_version;
    };
    const auto result = pollster::diff(before, after, &object::name, same_version);
    CHECK(result.empty());
  }
}

TEST_CASE("a removal is a tombstone type of its own, never an element") {
  using result_type = decltype(pollster::diff(informer_before, informer_before, &object::name));
  using tombstone = decltype(result_type::removals)::value_type;
  STATIC_REQUIRE_FALSE(std::is_same_v<tombstone, object>);
  STATIC_REQUIRE_FALSE(std::is_convertible_v<tombstone, object>);
  STATIC_REQUIRE(std::is_same_v<decltype(tombstone::key), std::string>);
  STATIC_REQUIRE(std::is_same_v<decltype(tombstone::last_known), object>);
}

TEST_CASE("empty, single-element and identical snapshots report what they should and nothing else") {
  pollster::diff_options options;
  options.order = GENERATE(pollster::key_order::unknown, pollster::key_order::sorted, pollster::key_order::unsorted);
  const std::vector<object> none;
  const std::vector<object> one{{"solo", "1", ""}};

  CHECK(pollster::diff(none, none, &object::name, options).empty());
  CHECK(pollster::diff(one, one, &object::name, options).empty());
  CHECK(pollster::diff(informer_before, informer_before, &object::name, &object::resource_version,
                       pollster::diff_options{pollster::duplicate_keys::error, false, pollster::key_order::unsorted})
            .empty());

  const auto appeared = pollster::diff(none, one, &object::name, options);
  REQUIRE(appeared.additions.size() == 1);
  CHECK(appeared.additions[0].element.name == "solo");
  CHECK_FALSE(appeared.additions[0].initial);

  const auto vanished = pollster::diff(one, none, &object::name, options);
  REQUIRE(vanished.removals.size() == 1);
  CHECK(vanished.removals[0].key == "solo");
}

TEST_CASE("a duplicate key is an error that names the key and the snapshot, before any event") {
  struct record {
    int id;
    int version;
  };
  const std::vector<record> before{{1, 1}, {2, 1}};
  const std::vector<record> after{{3, 1}, {7, 1}, {2, 1}, {7, 2}};
  pollster::diff_options options;
  options.order = any_order();

  int events = 0;
  const auto count = [&events](const auto&) { ++events; };
  try {
    pollster::diff_each(before, after, &record::id, &record::version, count, options);
    FAIL("a key that occurs twice in the new snapshot must throw");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()).find("duplicate key 7 in the after snapshot") != std::string::npos);
  }
  INFO("events before the error would leave the caller half-updated");
  CHECK(events == 0);
}

TEST_CASE("a duplicate string key is quoted, and one that cannot be printed is still reported") {
  SECTION("a string key is named in quotes") {
    const std::vector<object> twice{{"web-1", "1", ""}, {"web-1", "2", ""}};
    REQUIRE_THROWS_WITH(pollster::diff(twice, informer_before, &object::name),
                        Catch::Matchers::ContainsSubstring("duplicate key \"web-1\" in the before snapshot"));
  }
  SECTION("an unprintable key is called a duplicate key") {
    struct opaque_key {
      int value;
      bool operator<(const opaque_key& other) const { return value < other.value; }
    };
    struct record {
      opaque_key key;
    };
    const std::vector<record> twice{{{4}}, {{4}}};
    REQUIRE_THROWS_WITH(pollster::diff(twice, twice, &record::key, [](const record&, const record&) { return true; }),
                        Catch::Matchers::ContainsSubstring("a duplicate key in the before snapshot"));
  }
}

TEST_CASE("with last_wins, the last record with a key is the one that counts") {
  const std::vector<object> before{{"a", "1", ""}, {"b", "1", ""}, {"a", "2", ""}};
  const std::vector<object> after{{"a", "3", ""}, {"b", "1", ""}, {"c", "1", ""}, {"a", "2", ""}, {"c", "2", ""}};
  pollster::diff_options options;
  options.duplicates = pollster::duplicate_keys::last_wins;
  options.order = any_order();

  event_log log;
  pollster::diff_each(before, after, &object::name, &object::resource_version, log, options);

  INFO("a was 2 (the later of 1, 2) and is 2 (the later of 3, 2): unchanged; c appears once, as version 2");
  CHECK(log.lines == lines{"added c:2"});
}

TEST_CASE("sorted input declared sorted is merged, and unsorted input declared sorted is rejected") {
  const std::vector<object> sorted{{"a", "1", ""}, {"b", "1", ""}};
  const std::vector<object> unsorted{{"b", "1", ""}, {"a", "1", ""}};
  pollster::diff_options options;
  options.order = pollster::key_order::sorted;

  CHECK(pollster::diff(sorted, sorted, &object::name, options).empty());
  REQUIRE_THROWS_WITH(pollster::diff(sorted, unsorted, &object::name, options),
                      Catch::Matchers::ContainsSubstring("the after snapshot is not sorted"));
}

TEST_CASE("any forward range works, and keys may be computed or merely ordered") {
  const std::list<object> before(informer_before.begin(), informer_before.end());
  const std::set<std::pair<int, int>> after_pairs{{1, 10}, {2, 20}};

  SECTION("a list against a vector") {
    const std::vector<object> after{{"foo", "6", ""}, {"new", "1", ""}};
    const auto result = pollster::diff(before, after, &object::name, &object::resource_version);
    CHECK(result.additions.size() == 1);
    CHECK(result.changes.size() == 1);
    CHECK(result.removals.size() == 2);
  }
  SECTION("a key computed by a lambda") {
    const auto qualified_name = [](const object& o) { return "default/" + o.name; };
    const std::vector<object> after{{"foo", "5", ""}};
    const auto result = pollster::diff(informer_before, after, qualified_name);
    REQUIRE(result.removals.size() == 2);
    CHECK(result.removals[0].key == "default/bar");
  }
  SECTION("a key with < but no std::hash goes through the sort path") {
    struct version_key {
      int major;
      int minor;
      bool operator<(const version_key& other) const {
        return major != other.major ? major < other.major : minor < other.minor;
      }
    };
    struct release {
      version_key key;
      std::string notes;
    };
    const std::vector<release> old_releases{{{1, 2}, "x"}, {{1, 0}, "y"}, {{2, 0}, "z"}};
    const std::vector<release> new_releases{{{2, 1}, "w"}, {{1, 2}, "x2"}, {{2, 0}, "z"}};
    const auto same_notes = [](const release& left, const release& right) { return left.notes == right.notes; };
    const auto result = pollster::diff(old_releases, new_releases, &release::key, same_notes);
    REQUIRE(result.removals.size() == 1);
    CHECK(result.removals[0].last_known.notes == "y");
    REQUIRE(result.additions.size() == 1);
    CHECK(result.additions[0].element.notes == "w");
    REQUIRE(result.changes.size() == 1);
    CHECK(result.changes[0].after.notes == "x2");
  }
  SECTION("a set of pairs keyed by first") {
    const std::set<std::pair<int, int>> before_pairs{{1, 10}, {3, 30}};
    const auto result = pollster::diff(before_pairs, after_pairs, &std::pair<int, int>::first);
    REQUIRE(result.removals.size() == 1);
    CHECK(result.removals[0].key == 3);
    REQUIRE(result.additions.size() == 1);
    CHECK(result.additions[0].element.second == 20);
  }
}

TEST_CASE("keys whose hashes all collide are told apart by comparing them") {
  // before: keys 0..99; after: keys 5..104, with the multiples of 10 at a new version.
  std::vector<keyed_record> before;
  std::vector<keyed_record> after;
  for (int n = 0; n < 100; ++n) before.push_back({{n}, 1});
  for (int n = 5; n < 105; ++n) after.push_back({{n}, n % 10 == 0 ? 2 : 1});

  const auto result = pollster::diff(before, after, &keyed_record::key, &keyed_record::version);
  std::vector<int> removed_keys;
  std::vector<int> added_keys;
  std::vector<int> changed_keys;
  for (const auto& removal : result.removals) removed_keys.push_back(removal.key.value);
  for (const auto& addition : result.additions) added_keys.push_back(addition.element.key.value);
  for (const auto& change : result.changes) {
    CHECK(change.before.version == 1);
    CHECK(change.after.version == 2);
    changed_keys.push_back(change.after.key.value);
  }
  CHECK(removed_keys == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(added_keys == std::vector<int>{100, 101, 102, 103, 104});
  CHECK(changed_keys == std::vector<int>{10, 20, 30, 40, 50, 60, 70, 80, 90});

  after.push_back({{7}, 3});
  REQUIRE_THROWS_WITH(pollster::diff(before, after, &keyed_record::key, &keyed_record::version),
                      Catch::Matchers::ContainsSubstring("duplicate key 7 in the after snapshot"));
}

TEST_CASE("snapshots too large for a core's cache take the prefetching hash path and report the same") {
  struct row {
    std::uint64_t id;
    std::uint64_t version;
  };
  // 20 000 rows of 16 bytes a side: 640 KB, past pollster::detail::prefetch_from_bytes.
  constexpr std::uint64_t rows = 20000;
  static_assert(2 * rows * sizeof(row) >= pollster::detail::prefetch_from_bytes, "the test must take that path");
  std::vector<row> before;
  std::vector<row> after;
  for (std::uint64_t n = 0; n < rows; ++n) before.push_back({n * 7919, 1});  // 7919 is prime: no two ids clash
  // In a scrambled order: every 100th row removed, every 50th (not removed) changed, 100 new rows at the end.
  for (std::uint64_t n = 0; n < rows; ++n) {
    const std::uint64_t at = (n * 7U) % rows;  // 7 is coprime with 20 000: a permutation
    if (at % 100 == 0) continue;
    after.push_back({at * 7919, at % 50 == 0 ? std::uint64_t{2} : std::uint64_t{1}});
  }
  for (std::uint64_t n = rows; n < rows + 100; ++n) after.push_back({n * 7919, 1});

  pollster::diff_options options;
  options.order = GENERATE(pollster::key_order::unknown, pollster::key_order::unsorted);
  const auto result = pollster::diff(before, after, &row::id, &row::version, options);
  REQUIRE(result.removals.size() == 200);
  REQUIRE(result.changes.size() == 200);
  REQUIRE(result.additions.size() == 100);
  for (std::size_t n = 0; n < result.removals.size(); ++n) {
    CHECK(result.removals[n].key == n * 100 * 7919);  // in the old order
  }
  for (const auto& change : result.changes) CHECK(change.after.id / 7919 % 50 == 0);
  CHECK(result.additions.front().element.id == rows * 7919);
  CHECK(result.additions.back().element.id == (rows + 99) * 7919);
}

TEST_CASE("the hash index compares a key only where the slot's tag fits the hash") {
  const std::uint64_t home = 5;
  const std::uint64_t first_hash = (std::uint64_t{0x1234} << 32U) | home;
  const std::uint64_t other_hash = (std::uint64_t{0x5678} << 32U) | home;  // the same home slot, another tag
  const auto no_growth = [](std::uint32_t) { return std::uint64_t{0}; };
  int compared = 0;
  const auto count_and_match = [&](std::uint32_t handle) {
    ++compared;
    return handle == 1U;
  };

  SECTION("tagged: handles up to 3 take two bits, the other thirty hold the tag") {
    pollster::detail::flat_index index(16, 3);
    std::uint32_t* slot = index.find(first_hash, count_and_match);
    REQUIRE(*slot == 0U);
    index.occupy(slot, index.entry(first_hash, 1), no_growth);

    slot = index.find(other_hash, count_and_match);
    CHECK(compared == 0);  // the occupied home slot was passed on its tag alone
    CHECK(*slot == 0U);
    CHECK(index.candidate(other_hash, 4) == 0U);

    slot = index.find(first_hash, count_and_match);
    CHECK(compared == 1);
    CHECK(index.handle_of(*slot) == 1U);
    CHECK(index.candidate(first_hash, 4) == 1U);
  }
  SECTION("untagged: every occupied slot on the way is compared") {
    pollster::detail::flat_index index(16);
    index.occupy(index.find(first_hash, count_and_match), index.entry(first_hash, 1), no_growth);
    CHECK(index.entry(first_hash, 1) == 1U);

    const std::uint32_t* slot = index.find(other_hash, [&](std::uint32_t) {
      ++compared;
      return false;
    });
    CHECK(compared == 1);
    CHECK(*slot == 0U);
    CHECK(index.candidate(other_hash, 4) == 1U);
  }
}

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
  void operator()(const pollster::removed<std::uint64_t, const numbered&>& event) {
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

#if __cplusplus >= 202002L
TEST_CASE("options read as designated initializers in C++20") {
  const auto result = pollster::diff(informer_before, informer_before, &object::name,
                                     {.duplicates = pollster::duplicate_keys::last_wins, .report_unchanged = true});
  CHECK(result.unchanged.size() == 3);
}
#endif
