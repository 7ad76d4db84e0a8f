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

#include <malloc.h>  // malloc_usable_size (glibc)

#include <cstdlib>  // malloc, free
#include <new>      // bad_alloc

// Allocation failure on demand: while `allocations_until_failure` is positive, each allocation counts it down, and
// the one that brings it to zero throws std::bad_alloc. Negative (the default): allocations never fail.
// `live_bytes` is the heap in use through operator new, so a test can see memory come back.
namespace {
long allocations_until_failure = -1;
long allocations_seen = 0;
long long live_bytes = 0;
}  // namespace

void* operator new(std::size_t size) {
  if (allocations_until_failure > 0) {
    ++allocations_seen;
    if (--allocations_until_failure == 0) throw std::bad_alloc();
  }
  void* memory = std::malloc(size == 0 ? 1 : size);
  if (memory == nullptr) throw std::bad_alloc();
  live_bytes += static_cast<long long>(malloc_usable_size(memory));
  return memory;
}
void operator delete(void* memory) noexcept {
  if (memory != nullptr) live_bytes -= static_cast<long long>(malloc_usable_size(memory));
  std::free(memory);
}
void operator delete(void* memory, std::size_t) noexcept { operator delete(memory); }
// The other forms too, so that every allocation and release of the program meets (AddressSanitizer replaces each
// form it is not given, and would see our free() of its operator new[]).
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return operator new(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t& nothrow) noexcept { return operator new(size, nothrow); }
void operator delete[](void* memory) noexcept { operator delete(memory); }
void operator delete[](void* memory, std::size_t) noexcept { operator delete(memory); }
void operator delete(void* memory, const std::nothrow_t&) noexcept { operator delete(memory); }
void operator delete[](void* memory, const std::nothrow_t&) noexcept { operator delete(memory); }

namespace {

// A Kubernetes object as an informer sees it: a name and a server-assigned version.
struct object {
  std::string name;
  std::string resource_version;
  std::string payload;
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

TEST_CASE("a restored snapshot reports nothing, and its next update reports changes since the restored list") {
  auto tracker = pollster::make_snapshot<object>(&object::name, &object::resource_version);
  tracker.restore(informer_before);
  CHECK(tracker.has_baseline());
  REQUIRE(tracker.elements().size() == 3);
  CHECK(tracker.elements()[2].name == "baz");
  event_log log;
  tracker.update(std::vector<object>{{"foo", "5", ""}, {"bar", "7", ""}, {"new", "1", ""}}, log);
  CHECK(log.lines == lines{"removed baz last known 7", "changed bar 6 -> 7", "added new:1"});
  SECTION("with an integer key and version (the indexed path), and with a filter") {
    struct numbered {
      std::uint64_t id;
      std::uint64_t version;
      bool wanted;
    };
    auto indexed = pollster::make_filtered_snapshot<numbered>([](const numbered& n) { return n.wanted; },
                                                              &numbered::id, &numbered::version);
    indexed.restore(std::vector<numbered>{{1, 1, true}, {2, 1, false}, {3, 1, true}});
    CHECK(indexed.elements().size() == 2);  // the record the filter does not take is not kept
    const auto next = indexed.update(std::vector<numbered>{{1, 2, true}, {2, 1, true}, {3, 1, true}});
    REQUIRE(next.changes.size() == 1);
    CHECK(next.changes[0].after.id == 1);
    REQUIRE(next.additions.size() == 1);
    CHECK(next.additions[0].element.id == 2);
    CHECK_FALSE(next.additions[0].initial);
    CHECK(next.removals.empty());
  }
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

namespace {

// Builds the key string of a record (so it allocates, and may meet bad_alloc) and throws on its `fail_at`-th call,
// counting from 1 (0: never). Copies share the count.
struct failing_name {
  int* calls;
  int fail_at;
  std::string operator()(const object& o) const {
    if (++*calls == fail_at) throw std::runtime_error("key projection failed");
    return "namespace-default/" + o.name;
  }
};

std::vector<std::string> names_of(const std::vector<object>& objects) {
  std::vector<std::string> names;
  for (const object& o : objects) names.push_back(o.name + ":" + o.resource_version);
  return names;
}

// What a snapshot must report from `last` to `next`: the one-shot diff of the two lists.
lines expected_events(const std::vector<object>& last, const std::vector<object>& next, bool initial) {
  event_log log;
  int calls = 0;
  pollster::diff_each(last, next, failing_name{&calls, 0}, &object::resource_version, log);
  if (initial) {
    for (std::string& line : log.lines) line += " (initial)";
  }
  return log.lines;
}

const std::vector<std::vector<object>> object_lists{
    {{"foo", "5", ""}, {"bar", "6", ""}, {"baz", "7", ""}, {"qux", "1", ""}},
    {{"qux", "1", ""}, {"foo", "6", ""}, {"new", "1", ""}, {"baz", "7", ""}},
    {{"new", "2", ""}, {"zed", "1", ""}, {"foo", "6", ""}},
    {},
    {{"foo", "1", ""}},
};

}  // namespace

TEST_CASE("a key projection that throws anywhere in an update propagates, and the snapshot keeps its last list") {
  int calls = 0;
  int fail_at = 0;
  struct shared_failure {
    int* calls;
    int* fail_at;
    std::string operator()(const object& o) const { return failing_name{calls, *fail_at}(o); }
  };
  auto tracker = pollster::make_snapshot<object>(shared_failure{&calls, &fail_at}, &object::resource_version);
  std::vector<object> kept;
  int failures = 0;
  for (std::size_t step = 0; step < object_lists.size(); ++step) {
    const std::vector<object>& next = object_lists[step];
    // Count the calls of a clean update on a copy, then fail at each of them in turn.
    auto probe = tracker;
    fail_at = 0;
    calls = 0;
    probe.update(next);
    const int total = calls;
    for (fail_at = 1; fail_at <= total; ++fail_at) {
      INFO("list " << step << ": the key projection throws on call " << fail_at << " of " << total);
      calls = 0;
      event_log partial;
      REQUIRE_THROWS_WITH(tracker.update(next, partial), "key projection failed");
      REQUIRE(names_of(tracker.elements()) == names_of(kept));
      ++failures;
    }
    fail_at = 0;
    event_log seen;
    tracker.update(next, seen);
    INFO("list " << step << ": the update after the failures reports the whole diff from the kept list");
    CHECK(seen.lines == expected_events(kept, next, step == 0));
    kept = next;
    CHECK(names_of(tracker.elements()) == names_of(kept));
  }
  CHECK(failures > 30);
}

TEST_CASE("an allocation that fails anywhere in an update throws bad_alloc, and the snapshot keeps its last list") {
  const bool indexed = GENERATE(false, true);  // a string key (one-shot diff) or integer id and version (the index)
  struct server {
    std::uint64_t id;
    std::string name;  // longer than the small-string buffer: copying a record allocates
    int version;
  };
  const auto list = [](std::initializer_list<int> ids, int version) {
    std::vector<server> out;
    for (const int id : ids) {
      out.push_back({static_cast<std::uint64_t>(id), "a-server-name-too-long-for-sso-" + std::to_string(id),
                     id % 3 == 0 ? version : 1});
    }
    return out;
  };
  const std::vector<std::vector<server>> lists{list({1, 2, 3, 4, 5, 6}, 1), list({6, 2, 7, 3, 9}, 2),
                                               list({9, 7, 3, 12, 15, 1, 2}, 3), list({}, 1), list({4, 3}, 4)};
  const auto ids_of = [](const std::vector<server>& servers) {
    std::vector<std::uint64_t> ids;
    for (const server& s : servers) ids.push_back(s.id * 1000 + static_cast<std::uint64_t>(s.version));
    return ids;
  };
  struct counter {
    std::size_t* events;
    void operator()(const pollster::added<const server&>&) const { ++*events; }
    void operator()(const pollster::removed<const server&, std::uint64_t>&) const { ++*events; }
    void operator()(const pollster::removed<const server&, std::string>&) const { ++*events; }
    void operator()(const pollster::changed<const server&>&) const { ++*events; }
  };
  // A key built by value: every call allocates (the name is past the small-string buffer), inside the lookups too.
  const auto by_name = [](const server& s) { return s.name; };
  auto by_id = pollster::make_snapshot<server>(&server::id, &server::version);
  auto by_name_tracker = pollster::make_snapshot<server>(by_name, &server::version);
  std::vector<server> kept;
  long failures = 0;
  for (std::size_t step = 0; step < lists.size(); ++step) {
    const std::vector<server>& next = lists[step];
    std::size_t expected = 0;
    if (indexed) {
      auto copy = by_id;
      copy.update(next, counter{&expected});
    } else {
      auto copy = by_name_tracker;
      copy.update(next, counter{&expected});
    }
    for (long k = 1;; ++k) {
      allocations_seen = 0;
      allocations_until_failure = k;
      std::size_t events = 0;
      bool failed = false;
      try {
        if (indexed) {
          by_id.update(next, counter{&events});
        } else {
          by_name_tracker.update(next, counter{&events});
        }
      } catch (const std::bad_alloc&) {
        failed = true;
      }
      allocations_until_failure = -1;
      const auto& elements = indexed ? by_id.elements() : by_name_tracker.elements();
      if (!failed) {
        INFO("list " << step << ": the update that no allocation failed reports every event, once");
        CHECK(events == expected);
        CHECK(ids_of(elements) == ids_of(next));
        break;
      }
      ++failures;
      INFO("list " << step << ": allocation " << k << " failed");
      REQUIRE(ids_of(elements) == ids_of(kept));
    }
    kept = next;
  }
  CHECK(failures > 10);
}

namespace {

// The inverse of pollster::detail::mix_hash (splitmix64's finaliser): an attacker who knows the library can turn any
// hash values into the ids that produce them.
std::uint64_t unmix(std::uint64_t h) {
  const auto inverse = [](std::uint64_t odd) {
    std::uint64_t x = odd;
    for (int i = 0; i < 6; ++i) x *= 2 - odd * x;  // Newton's iteration doubles the correct low bits
    return x;
  };
  h ^= (h >> 31U) ^ (h >> 62U);
  h *= inverse(0x94d049bb133111ebULL);
  h ^= (h >> 27U) ^ (h >> 54U);
  h *= inverse(0xbf58476d1ce4e5b9ULL);
  h ^= (h >> 30U) ^ (h >> 60U);
  return h;
}

}  // namespace

TEST_CASE("integer ids chosen to share one probe chain under the public hash mix cannot flood the index") {
  // 40 000 ids whose mix_hash values agree in their low 20 bits: without a seed they share a home entry in any
  // index of up to 2^20 entries, and each lookup walks the whole chain (8 * 10^8 probes in all).
  constexpr std::uint64_t count = 40000;
  std::vector<numbered> first;
  for (std::uint64_t n = 0; n < count; ++n) {
    const std::uint64_t id = unmix((n << 20U) | 0x2aU);
    REQUIRE(pollster::detail::mix_hash(id) == ((n << 20U) | 0x2aU));
    first.push_back({id, 1, static_cast<int>(n)});
  }
  std::vector<numbered> second = first;
  for (std::uint64_t n = 0; n < count; n += 100) second[n].version = 2;  // 400 changed
  second.resize(count - 200);                                            // 200 gone

  auto tracker = pollster::make_snapshot<numbered>(&numbered::id, &numbered::version);
  tracker.update(first);
  const auto result = tracker.update(second);
  CHECK(result.changes.size() == 398);
  CHECK(result.removals.size() == 200);
  CHECK(result.additions.empty());
  INFO("probe steps of the last update: " << pollster::detail::last_diff.probes);
  CHECK(pollster::detail::last_diff.probes <= pollster::detail::probe_budget(2 * count));

  const auto one_shot = pollster::diff(first, second, &numbered::id, &numbered::version);
  CHECK(one_shot.changes.size() == 398);
  INFO("probe steps of the one-shot diff: " << pollster::detail::last_diff.probes);
  CHECK(pollster::detail::last_diff.probes <= pollster::detail::probe_budget(2 * count));
}

TEST_CASE("a snapshot whose list shrinks for good returns its memory, and shrink_to_fit returns the rest") {
  struct server {
    std::uint64_t id;
    std::string name;
    std::uint64_t version;
  };
  const auto fleet = [](std::uint64_t count, std::uint64_t version) {
    std::vector<server> out;
    for (std::uint64_t n = 0; n < count; ++n) {
      // Ids in a scrambled order (so the index path runs), names past the small-string buffer.
      out.push_back({pollster::detail::mix_hash(n), "server-name-past-sso-" + std::to_string(n), version});
    }
    return out;
  };
  const bool moved_in = GENERATE(false, true);  // the list copied from a const reference, or a vector moved in
  {
    auto tracker = pollster::make_snapshot<server>(&server::id, &server::version);
    const std::vector<server> big = fleet(100000, 1);
    const std::vector<server> big_again = fleet(100000, 2);
    const std::vector<server> small = fleet(10, 3);
    const auto give = [&](const std::vector<server>& list) {
      if (moved_in) {
        tracker.update(std::vector<server>(list));
      } else {
        tracker.update(list);
      }
    };
    const long long test_data = live_bytes;  // the test's own lists: not the snapshot's
    give(big);
    give(big_again);
    const long long held_at_peak = live_bytes - test_data;  // the snapshot's buffers and its records' strings
    const std::size_t at_peak = tracker.memory_bytes();
    CHECK(at_peak >= 2 * 100000 * sizeof(server));  // the list and the list before last

    give(small);
    const long long held_small = live_bytes - test_data;
    const std::size_t after_shrinking = tracker.memory_bytes();
    // Every buffer within 4 times the need plus 1 024 records: the list, the spare, the scratch, the index.
    CHECK(after_shrinking <= 2 * (4 * 10 + 1024) * (sizeof(server) + 5) + 4 * 1024 * 24);
    tracker.shrink_to_fit();
    const long long held_trimmed = live_bytes - test_data;
    CHECK(tracker.memory_bytes() == 10 * sizeof(server));
    CHECK(tracker.elements().size() == 10);

    INFO("snapshot buffers: " << at_peak << " bytes with 100 000 records, " << after_shrinking << " with 10");
    INFO("heap the snapshot holds: " << held_at_peak << " bytes with 100 000 records, " << held_small
                                     << " after a list of 10, " << held_trimmed << " after shrink_to_fit");
    CHECK(held_small * 100 < held_at_peak);
    CHECK(held_trimmed <= static_cast<long long>(10 * (sizeof(server) + 64)));  // 10 records and their strings

    const auto next = tracker.update(fleet(20, 4));  // still works: the index is rebuilt
    CHECK(next.changes.size() == 10);
    CHECK(next.additions.size() == 10);
  }
}
