// libFuzzer target for pollster/diff.hpp: the bytes become two snapshots and a set of options; every path of the
// differ (hash, sorted merge, sort of indices) must report exactly what a std::map reference model reports, and a
// duplicate-key error must come before any event. Aborts on the first disagreement.
//
// Build: cmake -DPOLLSTER_BUILD_FUZZERS=ON with clang; run: ./diff_fuzz -max_total_time=60
#include <pollster/diff.hpp>

#include <algorithm>   // stable_sort
#include <cstddef>     // size_t
#include <cstdint>     // uint8_t
#include <cstdio>      // fprintf
#include <cstdlib>     // abort
#include <functional>  // hash
#include <map>         // map
#include <stdexcept>   // invalid_argument
#include <string>      // string, to_string
#include <vector>      // vector

namespace {

struct record {
  std::uint8_t key;  // few keys, so matches, collisions and duplicates are common
  std::uint8_t version;
  int tag;
};

// A key with < and no std::hash, for the sort-of-indices path.
struct ordered_key {
  std::uint8_t value;
  bool operator<(const ordered_key& other) const { return value < other.value; }
};

// A key whose std::hash is one number for every value: the hash path's index then finds the tag it keeps beside
// each handle equal everywhere, and only comparing keys tells them apart.
struct colliding_key {
  std::uint8_t value;
  bool operator==(const colliding_key& other) const { return value == other.value; }
};

}  // namespace

template <>
struct std::hash<colliding_key> {
  std::size_t operator()(const colliding_key&) const noexcept { return 7; }
};

namespace {

// The same rules as the property test's model: the last record of a key wins; removals in the old order, then
// additions and changes in the new order. Empty-with-error is encoded as the single line "error".
std::vector<std::string> reference_diff(const std::vector<record>& before, const std::vector<record>& after,
                                        bool last_wins, bool report_unchanged) {
  std::map<int, std::size_t> old_winner;
  std::map<int, std::size_t> new_winner;
  for (std::size_t at = 0; at < before.size(); ++at) {
    if (!old_winner.emplace(before[at].key, at).second && !last_wins) return {"error"};
    old_winner[before[at].key] = at;
  }
  for (std::size_t at = 0; at < after.size(); ++at) {
    if (!new_winner.emplace(after[at].key, at).second && !last_wins) return {"error"};
    new_winner[after[at].key] = at;
  }
  std::vector<std::string> events;
  for (std::size_t at = 0; at < before.size(); ++at) {
    if (old_winner[before[at].key] == at && new_winner.count(before[at].key) == 0) {
      events.push_back("removed " + std::to_string(before[at].tag));
    }
  }
  for (std::size_t at = 0; at < after.size(); ++at) {
    if (new_winner[after[at].key] != at) continue;
    const auto old = old_winner.find(after[at].key);
    if (old == old_winner.end()) {
      events.push_back("added " + std::to_string(after[at].tag));
    } else if (before[old->second].version != after[at].version) {
      events.push_back("changed " + std::to_string(before[old->second].tag) + "->" + std::to_string(after[at].tag));
    } else if (report_unchanged) {
      events.push_back("unchanged " + std::to_string(after[at].tag));
    }
  }
  return events;
}

template <class K>
struct recorder {
  std::vector<std::string>* events;
  void operator()(const pollster::added<const record&>& e) const {
    events->push_back("added " + std::to_string(e.element.tag));
  }
  void operator()(const pollster::removed<const record&, K>& e) const {
    events->push_back("removed " + std::to_string(e.last_known.tag));
  }
  void operator()(const pollster::changed<const record&>& e) const {
    events->push_back("changed " + std::to_string(e.before.tag) + "->" + std::to_string(e.after.tag));
  }
  void operator()(const pollster::unchanged<const record&>& e) const {
    events->push_back("unchanged " + std::to_string(e.element.tag));
  }
};

template <class Key>
std::vector<std::string> pollster_diff(const std::vector<record>& before, const std::vector<record>& after, Key key,
                                       const pollster::diff_options& options) {
  using K = pollster::detail::key_type_t<Key, record>;
  std::vector<std::string> events;
  try {
    pollster::diff_each(before, after, key, &record::version, recorder<K>{&events}, options);
  } catch (const std::invalid_argument&) {
    if (!events.empty()) return {"events before the error"};
    return {"error"};
  }
  return events;
}

void check(const std::vector<std::string>& got, const std::vector<std::string>& expected, const char* path) {
  if (got == expected) return;
  std::fprintf(stderr, "diff_fuzz: the %s path disagrees with the reference model\n  got:", path);
  for (const std::string& line : got) std::fprintf(stderr, " [%s]", line.c_str());
  std::fprintf(stderr, "\n  expected:");
  for (const std::string& line : expected) std::fprintf(stderr, " [%s]", line.c_str());
  std::fprintf(stderr, "\n");
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // Byte 0: options and the key range; byte 1: where `before` ends; then two bytes per record.
  const std::uint8_t flags = data[0];
  const bool last_wins = (flags & 1U) != 0;
  const bool report_unchanged = (flags & 2U) != 0;
  const bool sort_inputs = (flags & 4U) != 0;
  const unsigned key_range = 1U + (flags >> 3U);  // 1 .. 32
  const std::size_t records = (size - 2) / 2;
  const std::size_t split = records == 0 ? 0 : data[1] % (records + 1);

  std::vector<record> before;
  std::vector<record> after;
  for (std::size_t at = 0; at < records; ++at) {
    const record r{static_cast<std::uint8_t>(data[2 + 2 * at] % key_range),
                   static_cast<std::uint8_t>(data[3 + 2 * at] % 4), static_cast<int>(at)};
    (at < split ? before : after).push_back(r);
  }
  if (sort_inputs) {
    const auto by_key = [](const record& left, const record& right) { return left.key < right.key; };
    std::stable_sort(before.begin(), before.end(), by_key);
    std::stable_sort(after.begin(), after.end(), by_key);
  }

  const std::vector<std::string> expected = reference_diff(before, after, last_wins, report_unchanged);
  pollster::diff_options options;
  options.duplicates = last_wins ? pollster::duplicate_keys::last_wins : pollster::duplicate_keys::error;
  options.report_unchanged = report_unchanged;
  const auto ordered = [](const record& r) { return ordered_key{r.key}; };
  const auto colliding = [](const record& r) { return colliding_key{r.key}; };

  options.order = pollster::key_order::unsorted;
  check(pollster_diff(before, after, &record::key, options), expected, "hash");
  check(pollster_diff(before, after, ordered, options), expected, "sort-of-indices");
  check(pollster_diff(before, after, colliding, options), expected, "hash (every hash equal)");
  options.order = pollster::key_order::unknown;
  check(pollster_diff(before, after, &record::key, options), expected, "hash-or-merge");
  if (sort_inputs) {
    options.order = pollster::key_order::sorted;
    check(pollster_diff(before, after, &record::key, options), expected, "sorted merge");
    check(pollster_diff(before, after, ordered, options), expected, "sorted merge (ordered key)");
  }
  return 0;
}
