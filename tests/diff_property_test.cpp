// Property test for pollster/diff.hpp and snapshot.hpp: thousands of seeded random snapshot pairs, every path of the
// differ (hash, sorted merge, sort of indices for keys without a hash), compared event for event with a std::map
// reference model, and a snapshot fed a random sequence of lists.
#include <pollster/diff.hpp>
#include <pollster/snapshot.hpp>

#include "pollster_catch.hpp"

#include <algorithm>  // shuffle, stable_sort
#include <cstdint>    // uint64_t
#include <map>        // map
#include <optional>   // optional
#include <random>     // mt19937_64, uniform_int_distribution
#include <stdexcept>  // invalid_argument
#include <string>     // string, to_string
#include <vector>     // vector

namespace {

struct record {
  std::uint64_t key;
  int version;
  int tag;  // unique per record, so the events show which of two duplicates won
};

// A key with < and no std::hash: drives the sort-of-indices path.
struct ordered_key {
  std::uint64_t value;
  bool operator<(const ordered_key& other) const { return value < other.value; }
};

std::string describe(const std::vector<record>& records) {
  std::string out;
  for (const record& r : records) {
    out += std::to_string(r.key) + ":v" + std::to_string(r.version) + "#" + std::to_string(r.tag) + " ";
  }
  return out;
}

// The rules, written as plainly as possible: the last record of a key wins; removals in the old order; then
// additions and changes in the new order. nullopt when a duplicate is an error.
std::optional<std::vector<std::string>> reference_diff(const std::vector<record>& before,
                                                       const std::vector<record>& after,
                                                       pollster::duplicate_keys duplicates, bool report_unchanged) {
  std::map<std::uint64_t, std::size_t> old_winner;
  std::map<std::uint64_t, std::size_t> new_winner;
  for (std::size_t at = 0; at < before.size(); ++at) {
    if (!old_winner.emplace(before[at].key, at).second) {
      if (duplicates == pollster::duplicate_keys::error) return std::nullopt;
      old_winner[before[at].key] = at;
    }
  }
  for (std::size_t at = 0; at < after.size(); ++at) {
    if (!new_winner.emplace(after[at].key, at).second) {
      if (duplicates == pollster::duplicate_keys::error) return std::nullopt;
      new_winner[after[at].key] = at;
    }
  }
  std::vector<std::string> events;
  for (std::size_t at = 0; at < before.size(); ++at) {
    const record& r = before[at];
    if (old_winner[r.key] == at && new_winner.count(r.key) == 0) {
      events.push_back("removed " + std::to_string(r.key) + "#" + std::to_string(r.tag));
    }
  }
  for (std::size_t at = 0; at < after.size(); ++at) {
    const record& r = after[at];
    if (new_winner[r.key] != at) continue;
    const auto old = old_winner.find(r.key);
    if (old == old_winner.end()) {
      events.push_back("added " + std::to_string(r.key) + "#" + std::to_string(r.tag));
    } else if (before[old->second].version != r.version) {
      events.push_back("changed " + std::to_string(r.key) + "#" + std::to_string(before[old->second].tag) + "->" +
                       std::to_string(r.tag));
    } else if (report_unchanged) {
      events.push_back("unchanged " + std::to_string(r.key) + "#" + std::to_string(r.tag));
    }
  }
  return events;
}

template <class K>
struct recorder {
  std::vector<std::string>* events;
  static std::uint64_t number(std::uint64_t key) { return key; }
  static std::uint64_t number(const ordered_key& key) { return key.value; }
  static std::uint64_t number(const std::string& key) { return std::stoull(key); }
  void operator()(const pollster::added<const record&>& e) const {
    events->push_back("added " + std::to_string(e.element.key) + "#" + std::to_string(e.element.tag));
  }
  void operator()(const pollster::removed<const record&, K>& e) const {
    events->push_back("removed " + std::to_string(number(e.key)) + "#" + std::to_string(e.last_known.tag));
  }
  void operator()(const pollster::changed<const record&>& e) const {
    events->push_back("changed " + std::to_string(e.after.key) + "#" + std::to_string(e.before.tag) + "->" +
                      std::to_string(e.after.tag));
  }
  void operator()(const pollster::unchanged<const record&>& e) const {
    events->push_back("unchanged " + std::to_string(e.element.key) + "#" + std::to_string(e.element.tag));
  }
};

// Runs the differ; nullopt when it threw std::invalid_argument (and then it must not have reported anything).
template <class Key, class Same = int record::*>
std::optional<std::vector<std::string>> pollster_diff(const std::vector<record>& before,
                                                      const std::vector<record>& after, Key key,
                                                      const pollster::diff_options& options,
                                                      Same same = &record::version) {
  using K = pollster::detail::key_type_t<Key, record>;
  std::vector<std::string> events;
  try {
    pollster::diff_each(before, after, key, same, recorder<K>{&events}, options);
  } catch (const std::invalid_argument&) {
    if (!events.empty()) return std::vector<std::string>{"events were reported before the duplicate-key error"};
    return std::nullopt;
  }
  return events;
}

struct generator {
  std::mt19937_64 random;
  int next_tag = 0;

  std::size_t below(std::size_t bound) {
    return static_cast<std::size_t>(std::uniform_int_distribution<std::uint64_t>(0, bound - 1)(random));
  }

  // A snapshot of `size` records with keys below `key_range`; with `unique`, no key repeats.
  std::vector<record> snapshot(std::size_t size, std::uint64_t key_range, bool unique) {
    std::vector<record> out;
    std::map<std::uint64_t, bool> used;
    while (out.size() < size) {
      const std::uint64_t key = below(key_range);
      if (unique && !used.emplace(key, true).second) continue;
      out.push_back({key, static_cast<int>(below(3)), next_tag++});
    }
    return out;
  }
};

}  // namespace

TEST_CASE("the differ agrees with a std::map reference model on thousands of random snapshot pairs") {
  const std::uint64_t seed = GENERATE(1U, 2U, 3U);
  generator make{std::mt19937_64(seed)};
  constexpr int pairs = 1200;
  int compared = 0;
  for (int pair = 0; pair < pairs; ++pair) {
    // Small sizes find the corner cases; every 50th pair is large enough to make the index grow.
    const bool large = pair % 50 == 0;
    const std::size_t before_size = large ? make.below(8) : make.below(30);
    const std::size_t after_size = large ? 2000 + make.below(3000) : make.below(30);
    const std::uint64_t key_range = large ? 1U << 20U : 1 + make.below(60);
    const bool allow_duplicates = make.below(3) == 0;
    // Without duplicates, the key range must leave room for every record to get its own key.
    const auto range_for = [&](std::size_t size) {
      return allow_duplicates ? key_range : std::max<std::uint64_t>(key_range, 2 * size);
    };
    std::vector<record> before = make.snapshot(before_size, range_for(before_size), !allow_duplicates);
    std::vector<record> after = make.snapshot(after_size, range_for(after_size), !allow_duplicates);
    if (!allow_duplicates) {
      // Keep the pair overlapping: reuse some old keys with the same or a new version.
      for (record& r : after) {
        if (!before.empty() && make.below(2) == 0) {
          const record& old = before[make.below(before.size())];
          bool taken = false;
          for (const record& other : after) taken = taken || other.key == old.key;
          if (!taken) r = {old.key, make.below(2) == 0 ? old.version : old.version + 1, r.tag};
        }
      }
    }
    const bool sorted = make.below(2) == 0;
    if (sorted) {
      const auto by_key = [](const record& left, const record& right) { return left.key < right.key; };
      std::stable_sort(before.begin(), before.end(), by_key);
      std::stable_sort(after.begin(), after.end(), by_key);
    }

    pollster::diff_options options;
    options.duplicates = make.below(2) == 0 ? pollster::duplicate_keys::error : pollster::duplicate_keys::last_wins;
    options.report_unchanged = make.below(2) == 0;
    const auto expected = reference_diff(before, after, options.duplicates, options.report_unchanged);

    const auto orders =
        sorted ? std::vector<pollster::key_order>{pollster::key_order::unknown, pollster::key_order::sorted,
                                                  pollster::key_order::unsorted}
               : std::vector<pollster::key_order>{pollster::key_order::unknown, pollster::key_order::unsorted};
    // Every path: an integer key and version (the key-and-version index), the same key with an equality predicate
    // and a string key (the flat index of handles), a key with < and no hash (sort of indices); the sorted merge
    // wherever the input is sorted and the order is not declared unsorted.
    const auto same_version = [](const record& left, const record& right) { return left.version == right.version; };
    const auto string_key = [](const record& r) { return std::to_string(r.key); };
    for (const pollster::key_order order : orders) {
      options.order = order;
      const auto indexed = pollster_diff(before, after, &record::key, options);
      const auto handles = pollster_diff(before, after, &record::key, options, same_version);
      // A string key orders differently ("10" < "9"): diffed as unsorted unless the merge finds it sorted anyway.
      pollster::diff_options string_options = options;
      if (string_options.order == pollster::key_order::sorted) string_options.order = pollster::key_order::unknown;
      const auto strings = pollster_diff(before, after, string_key, string_options);
      const auto ordered = pollster_diff(
          before, after, [](const record& r) { return ordered_key{r.key}; }, options);
      if (indexed != expected || handles != expected || strings != expected || ordered != expected) {
        INFO("seed " << seed << ", pair " << pair << ", order " << static_cast<int>(order) << ", last_wins "
                     << (options.duplicates == pollster::duplicate_keys::last_wins) << ", report_unchanged "
                     << options.report_unchanged);
        INFO("before: " << describe(before));
        INFO("after:  " << describe(after));
        CHECK(indexed == expected);
        CHECK(handles == expected);
        CHECK(strings == expected);
        CHECK(ordered == expected);
        return;
      }
      ++compared;
    }
  }
  CHECK(compared >= pairs * 2);
}

TEST_CASE("a snapshot fed a random sequence of lists reports what the reference model reports between neighbours") {
  generator make{std::mt19937_64(42)};
  auto tracker = pollster::make_snapshot<record>(&record::key, &record::version);
  std::vector<record> previous;
  for (int step = 0; step < 500; ++step) {
    const std::vector<record> next = make.snapshot(make.below(25), 40, true);
    std::vector<std::string> seen;
    tracker.update(next, recorder<std::uint64_t>{&seen});
    const auto expected = reference_diff(previous, next, pollster::duplicate_keys::error, false);
    REQUIRE(expected.has_value());
    INFO("step " << step);
    REQUIRE(seen == *expected);
    previous = next;
  }
}
