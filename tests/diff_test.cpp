// Tests for pollster/diff.hpp: the Kubernetes informer cases, ordering, duplicate keys, the sorted and hash paths.
// The snapshot tracker (snapshot.hpp) has its own file, snapshot_test.cpp.
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

TEST_CASE("snapshots too large for a core's cache take the prefetching hash paths and report the same") {
  struct row {
    std::uint64_t id;
    std::uint64_t version;
  };
  // 20 000 rows of 16 bytes a side (640 KB, past pollster::detail::prefetch_from_bytes) go through the key-and-version
  // index; 40 000, past pollster::detail::index_path_max_records, through the flat index of handles.
  const std::uint64_t rows = GENERATE(std::uint64_t{20000}, std::uint64_t{40000});
  const bool indexed = rows <= pollster::detail::index_path_max_records;
  REQUIRE(2 * rows * sizeof(row) >= pollster::detail::prefetch_from_bytes);
  std::vector<row> before;
  std::vector<row> after;
  for (std::uint64_t n = 0; n < rows; ++n) before.push_back({n * 7919, 1});  // 7919 is prime: no two ids clash
  // In a scrambled order: every 100th row removed, every 50th (not removed) changed, 100 new rows at the end.
  for (std::uint64_t n = 0; n < rows; ++n) {
    const std::uint64_t at = (n * 7U) % rows;  // 7 is coprime with 20 000 and 40 000: a permutation
    if (at % 100 == 0) continue;
    after.push_back({at * 7919, at % 50 == 0 ? std::uint64_t{2} : std::uint64_t{1}});
  }
  for (std::uint64_t n = rows; n < rows + 100; ++n) after.push_back({n * 7919, 1});

  pollster::diff_options options;
  options.order = GENERATE(pollster::key_order::unknown, pollster::key_order::unsorted);
  const auto result = pollster::diff(before, after, &row::id, &row::version, options);
  CHECK(pollster::detail::last_diff.path ==
        (indexed ? pollster::detail::diff_path::index : pollster::detail::diff_path::hash));
  REQUIRE(result.removals.size() == rows / 100);
  REQUIRE(result.changes.size() == rows / 100);
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

namespace {

// A key projection that returns its key by value (as one that builds a string does) and throws on its `fail_at`-th
// call, counting from 1; 0 never fails. The count lives outside, so copies of the projection share it.
struct failing_name {
  int* calls;
  int fail_at;
  std::string operator()(const object& o) const {
    if (++*calls == fail_at) throw std::runtime_error("key projection failed");
    return o.name;
  }
};

// A key whose == throws on the `fail_at`-th comparison (0: never), and whose hash is one number for every value, so
// the hash path must compare keys to tell them apart.
struct fragile_key {
  int value;
  static inline int comparisons = 0;
  static inline int fail_at = 0;
  friend bool operator==(const fragile_key& left, const fragile_key& right) {
    if (++comparisons == fail_at) throw std::runtime_error("key comparison failed");
    return left.value == right.value;
  }
};

struct fragile_record {
  fragile_key key;
  int version;
};

}  // namespace

template <>
struct std::hash<fragile_key> {
  std::size_t operator()(const fragile_key&) const noexcept { return 7; }
};

TEST_CASE("a key projection that throws, wherever it throws, propagates its exception and reports nothing more") {
  const std::vector<object> before{{"a", "1", ""}, {"b", "1", ""}, {"c", "1", ""}, {"d", "1", ""}, {"e", "1", ""}};
  const std::vector<object> after{{"e", "2", ""}, {"z", "1", ""}, {"c", "1", ""}, {"a", "1", ""}, {"y", "1", ""}};
  pollster::diff_options options;
  options.order = any_order();

  int calls = 0;
  std::vector<std::string> complete;
  pollster::diff_each(before, after, failing_name{&calls, 0}, &object::resource_version,
                      [&](const auto&) { complete.push_back("event"); }, options);
  REQUIRE(complete.size() == 5);  // b and d removed, e changed, z and y added
  const int total_calls = calls;
  REQUIRE(total_calls > 10);
  for (int fail_at = 1; fail_at <= total_calls; ++fail_at) {
    INFO("the projection throws on call " << fail_at << " of " << total_calls);
    calls = 0;
    std::size_t events = 0;
    REQUIRE_THROWS_WITH(pollster::diff_each(before, after, failing_name{&calls, fail_at}, &object::resource_version,
                                            [&](const auto&) { ++events; }, options),
                        "key projection failed");
    CHECK(events < complete.size());
  }
}

TEST_CASE("a key == that throws propagates its exception instead of terminating") {
  std::vector<fragile_record> before;
  std::vector<fragile_record> after;
  for (int n = 0; n < 20; ++n) before.push_back({{n}, 1});
  for (int n = 5; n < 25; ++n) after.push_back({{n}, n % 4 == 0 ? 2 : 1});
  pollster::diff_options options;
  options.order = pollster::key_order::unsorted;  // fragile_key has no <: the hash path is the only path

  fragile_key::comparisons = 0;
  fragile_key::fail_at = 0;
  const auto complete = pollster::diff(before, after, &fragile_record::key, &fragile_record::version, options);
  CHECK(complete.removals.size() == 5);
  CHECK(complete.additions.size() == 5);
  CHECK(complete.changes.size() == 3);  // 8, 12, 16
  const int total = fragile_key::comparisons;
  REQUIRE(total > 20);
  for (int fail_at = 1; fail_at <= total; fail_at += 7) {
    INFO("== throws on comparison " << fail_at << " of " << total);
    fragile_key::comparisons = 0;
    fragile_key::fail_at = fail_at;
    REQUIRE_THROWS_WITH(pollster::diff(before, after, &fragile_record::key, &fragile_record::version, options),
                        "key comparison failed");
  }
  fragile_key::fail_at = 0;
}

TEST_CASE("duplicate null const char* keys are an invalid_argument that calls the key null") {
  struct named {
    const char* name;
    int version;
  };
  const std::vector<named> twice{{"web-1", 1}, {nullptr, 1}, {nullptr, 2}};
  const std::vector<named> none;
  pollster::diff_options options;
  options.order = GENERATE(pollster::key_order::unknown, pollster::key_order::unsorted);
  REQUIRE_THROWS_WITH(pollster::diff(twice, none, &named::name, &named::version, options),
                      Catch::Matchers::ContainsSubstring("duplicate key (null) in the before snapshot"));
  REQUIRE_THROWS_WITH(pollster::diff(none, twice, &named::name, &named::version, options),
                      Catch::Matchers::ContainsSubstring("duplicate key (null) in the after snapshot"));
}

namespace {

// A key an attacker chose: std::hash gives every value the same number (as chosen strings can for a known string
// hash), so only comparing keys tells them apart. It counts its comparisons, == and < alike.
struct flooding_key {
  std::uint32_t value;
  static inline std::uint64_t comparisons = 0;
  friend bool operator==(const flooding_key& left, const flooding_key& right) {
    ++comparisons;
    return left.value == right.value;
  }
  friend bool operator<(const flooding_key& left, const flooding_key& right) {
    ++comparisons;
    return left.value < right.value;
  }
};

struct flooding_record {
  flooding_key key;
  int version;
};

// `size` records with distinct keys in a scrambled order, and the next list: 1% changed, 1% gone, 1% new.
std::pair<std::vector<flooding_record>, std::vector<flooding_record>> flooding_lists(std::uint32_t size) {
  std::vector<flooding_record> before;
  std::vector<flooding_record> after;
  for (std::uint32_t n = 0; n < size; ++n) {
    // 7919 is a prime, coprime with a power of 10: a permutation of 0 .. size - 1.
    const auto value = static_cast<std::uint32_t>(std::uint64_t{n} * 7919U % size);
    before.push_back({{value}, 1});
    if (value % 100 == 1) continue;                             // gone
    after.push_back({{value}, value % 100 == 2 ? 2 : 1});  // changed
  }
  for (std::uint32_t n = 0; n < size / 100; ++n) after.push_back({{size + n}, 1});  // new
  return {before, after};
}

}  // namespace

template <>
struct std::hash<flooding_key> {
  std::size_t operator()(const flooding_key&) const noexcept { return 0x5eed; }
};

TEST_CASE("keys whose hashes all collide cost O(n log n) comparisons, not O(n^2): the diff sorts them instead") {
  std::uint64_t comparisons_at[2] = {};
  const std::uint32_t sizes[2] = {10000, 40000};
  for (int at = 0; at < 2; ++at) {
    const auto lists = flooding_lists(sizes[at]);
    flooding_key::comparisons = 0;
    const auto result = pollster::diff(lists.first, lists.second, &flooding_record::key, &flooding_record::version,
                                       pollster::diff_options{pollster::duplicate_keys::error, false,
                                                              pollster::key_order::unsorted});
    comparisons_at[at] = flooding_key::comparisons;
    CHECK(pollster::detail::last_diff.path == pollster::detail::diff_path::hash_then_sort);
    CHECK(result.removals.size() == sizes[at] / 100);
    CHECK(result.changes.size() == sizes[at] / 100);
    CHECK(result.additions.size() == sizes[at] / 100);
  }
  const double per_record = static_cast<double>(comparisons_at[1]) / 40000.0;
  INFO("comparisons: " << comparisons_at[0] << " at 10 000 records, " << comparisons_at[1] << " at 40 000 ("
                       << per_record << " per record); O(n^2) would be about 8 * 10^8 at 40 000");
  CHECK(per_record < 100.0);
  // n log n grows 4.6-fold from 10 000 to 40 000; n^2 16-fold.
  CHECK(static_cast<double>(comparisons_at[1]) < 5.0 * static_cast<double>(comparisons_at[0]));
}

#if __cplusplus >= 202002L
TEST_CASE("options read as designated initializers in C++20") {
  const auto result = pollster::diff(informer_before, informer_before, &object::name,
                                     {.duplicates = pollster::duplicate_keys::last_wins, .report_unchanged = true});
  CHECK(result.unchanged.size() == 3);
}
#endif
