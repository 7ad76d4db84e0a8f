// libFuzzer target for pollster/diff.hpp and snapshot.hpp: the bytes become a sequence of lists, options, and a fault
// to inject into each update: an exception thrown by the key projection, the key's hash or ==, the version
// projection, the filter or the visitor, at a chosen call. Each list is diffed one-shot and fed to a snapshot; the
// events must be exactly what a std::map reference model reports, a duplicate-key error must come before any event,
// and after every injected exception the snapshot must still hold its last list and the next update must report the
// whole diff from it. Keys are integers (the key-and-version index), keys with their own hash and == (the flat index
// of handles, and with every hash equal, the fall-back to sorting) or strings built on every call. Aborts on the
// first disagreement.
//
// Build: cmake -DPOLLSTER_BUILD_FUZZERS=ON with clang; run: ./diff_fuzz -max_total_time=60
#include <pollster/diff.hpp>
#include <pollster/snapshot.hpp>

#include <algorithm>   // stable_sort
#include <cstddef>     // size_t
#include <cstdint>     // uint8_t, uint64_t
#include <cstdio>      // fprintf
#include <cstdlib>     // abort
#include <functional>  // hash
#include <map>         // map
#include <stdexcept>   // invalid_argument
#include <string>      // string, to_string
#include <vector>      // vector

namespace {

// ---------------------------------------------------------------------------------------------------------------------
// Fault injection: each site counts its calls down; the call that brings an armed count to zero throws.

enum site : int { key_site, hash_site, equal_site, version_site, filter_site, visitor_site, site_count };
const char* const site_names[site_count] = {"key", "hash", "==", "version", "filter", "visitor"};

struct injected_fault {
  int site;
};

int countdown[site_count] = {};  // 0: not armed
bool fired = false;
int last_armed_site = site_count;  // for the failure message
int last_armed_call = 0;

void call(site at) {
  if (countdown[at] > 0 && --countdown[at] == 0) {
    fired = true;
    throw injected_fault{at};
  }
}
void disarm() {
  for (int& count : countdown) count = 0;
}

[[noreturn]] void fail(const char* what, const std::vector<std::string>& got, const std::vector<std::string>& expected) {
  std::fprintf(stderr, "diff_fuzz: %s (last fault armed: %s, call %d)\n  got:", what,
               last_armed_site < site_count ? site_names[last_armed_site] : "none", last_armed_call);
  for (const std::string& line : got) std::fprintf(stderr, " [%s]", line.c_str());
  std::fprintf(stderr, "\n  expected:");
  for (const std::string& line : expected) std::fprintf(stderr, " [%s]", line.c_str());
  std::fprintf(stderr, "\n");
  std::abort();
}

// ---------------------------------------------------------------------------------------------------------------------
// Records, keys, and the reference model

struct record {
  std::uint8_t key;  // few keys, so matches, collisions and duplicates are common
  std::uint8_t version;
  int tag;  // unique per record: the events show which record they carry
};

// A key with a hash and == of its own (both may throw) and <, for the flat index of handles and the sort.
struct own_key {
  std::uint8_t value;
  static inline bool colliding = false;  // every hash equal: the index floods and the diff sorts instead
  friend bool operator==(const own_key& left, const own_key& right) {
    call(equal_site);
    return left.value == right.value;
  }
  friend bool operator<(const own_key& left, const own_key& right) { return left.value < right.value; }
};

}  // namespace

template <>
struct std::hash<own_key> {
  std::size_t operator()(const own_key& key) const {
    call(hash_site);
    return own_key::colliding ? 7U : key.value;
  }
};

namespace {

// The key projections; each counts as a key call.
struct integer_key {
  std::uint64_t operator()(const record& r) const {
    call(key_site);
    return r.key;
  }
};
struct own_key_of {
  own_key operator()(const record& r) const {
    call(key_site);
    return own_key{r.key};
  }
};
struct string_key {
  std::string operator()(const record& r) const {  // built on every call, past the small-string buffer
    call(key_site);
    return "a-key-long-enough-to-allocate-" + std::to_string(r.key);
  }
};
struct version_of {
  int operator()(const record& r) const {
    call(version_site);
    return r.version;
  }
};
struct keep_filter {
  bool operator()(const record& r) const {
    call(filter_site);
    return r.version != 3;
  }
};

// The rules, written as plainly as possible: the last record of a key wins; removals in the old order, then
// additions and changes in the new order. A duplicate without last_wins is the single line "error".
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
    call(visitor_site);
    events->push_back("added " + std::to_string(e.element.tag));
  }
  void operator()(const pollster::removed<const record&, K>& e) const {
    call(visitor_site);
    events->push_back("removed " + std::to_string(e.last_known.tag));
  }
  void operator()(const pollster::changed<const record&>& e) const {
    call(visitor_site);
    events->push_back("changed " + std::to_string(e.before.tag) + "->" + std::to_string(e.after.tag));
  }
  void operator()(const pollster::unchanged<const record&>& e) const {
    call(visitor_site);
    events->push_back("unchanged " + std::to_string(e.element.tag));
  }
};

std::vector<std::string> tags_of(const std::vector<record>& records) {
  std::vector<std::string> tags;
  for (const record& r : records) tags.push_back(std::to_string(r.tag));
  return tags;
}

// What one update brings: the list, and the fault to arm (site and call number; none when site is site_count).
struct update {
  std::vector<record> list;
  int fault_site = site_count;
  int fault_call = 0;
};

struct scenario {
  bool last_wins = false;
  bool report_unchanged = false;
  pollster::key_order order = pollster::key_order::unknown;
  bool filtered = false;
  bool sort_lists = false;
  std::vector<update> updates;
};

pollster::diff_options options_of(const scenario& s) {
  pollster::diff_options options;
  options.duplicates = s.last_wins ? pollster::duplicate_keys::last_wins : pollster::duplicate_keys::error;
  options.report_unchanged = s.report_unchanged;
  options.order = s.order;
  return options;
}

// Runs `attempt(events)` with the update's fault armed. Returns the events when it completed, {"error"} when it threw
// std::invalid_argument (then it must have reported nothing), and {"fault"} when the injected fault fired.
template <class Attempt>
std::vector<std::string> with_fault(const update& u, Attempt&& attempt) {
  disarm();
  fired = false;
  if (u.fault_site < site_count) {
    countdown[u.fault_site] = u.fault_call;
    last_armed_site = u.fault_site;
    last_armed_call = u.fault_call;
  }
  std::vector<std::string> events;
  try {
    attempt(events);
  } catch (const injected_fault&) {
    disarm();
    return {"fault"};
  } catch (const std::invalid_argument&) {
    disarm();
    if (!events.empty()) fail("events were reported before a duplicate-key error", events, {});
    return {"error"};
  }
  disarm();
  return events;
}

// A one-shot diff of `before` and `after` with the update's fault, then without: the second must match the model.
template <class Key>
void check_one_shot(const std::vector<record>& before, const update& u, const scenario& s) {
  using K = pollster::detail::key_type_t<Key, record>;
  const std::vector<std::string> expected = reference_diff(before, u.list, s.last_wins, s.report_unchanged);
  pollster::diff_options options = options_of(s);
  if (options.order == pollster::key_order::sorted && !s.sort_lists) options.order = pollster::key_order::unknown;
  const auto run = [&](std::vector<std::string>& events) {
    pollster::diff_each(before, u.list, Key{}, version_of{}, recorder<K>{&events}, options);
  };
  (void)with_fault(u, run);  // whatever it threw, it must not crash, leak or corrupt (the sanitizers watch)
  const update clean{u.list, site_count, 0};
  const std::vector<std::string> got = with_fault(clean, run);
  if (got != expected) fail("a one-shot diff disagrees with the reference model", got, expected);
}

// A snapshot fed every update: after a fault it must hold its last list, and the next update (without a fault) must
// report the whole diff from that list.
template <class Key, class Tracker>
void check_snapshot(Tracker& tracker, const scenario& s) {
  using K = pollster::detail::key_type_t<Key, record>;
  std::vector<record> kept;  // the filtered last list that did not fail
  bool has_baseline = false;
  const auto filter = [&s](const std::vector<record>& list) {
    std::vector<record> out;
    for (const record& r : list) {
      if (!s.filtered || r.version != 3) out.push_back(r);
    }
    return out;
  };
  for (const update& u : s.updates) {
    const std::vector<record> next = filter(u.list);
    const std::vector<std::string> expected = reference_diff(kept, next, s.last_wins, s.report_unchanged);
    const auto run = [&](std::vector<std::string>& events) { tracker.update(u.list, recorder<K>{&events}); };
    std::vector<std::string> got = with_fault(u, run);
    if (got == std::vector<std::string>{"fault"}) {
      if (tags_of(tracker.elements()) != tags_of(kept)) {
        fail("after an injected fault the snapshot does not hold its last list", tags_of(tracker.elements()),
             tags_of(kept));
      }
      if (tracker.has_baseline() != has_baseline) fail("an injected fault changed has_baseline()", {}, {});
      got = with_fault(update{u.list, site_count, 0}, run);
    }
    if (got != expected) fail("a snapshot update disagrees with the reference model", got, expected);
    if (got == std::vector<std::string>{"error"}) {
      if (tags_of(tracker.elements()) != tags_of(kept)) fail("a rejected list replaced the last one", {}, {});
      continue;
    }
    kept = next;
    has_baseline = true;
    if (tags_of(tracker.elements()) != tags_of(kept)) {
      fail("the snapshot holds another list than the last update's", tags_of(tracker.elements()), tags_of(kept));
    }
  }
}

template <class Key>
void run(const scenario& s) {
  std::vector<record> before;
  for (const update& u : s.updates) {
    check_one_shot<Key>(before, u, s);
    before = u.list;
  }
  const pollster::diff_options options = options_of(s);
  if (s.filtered) {
    auto tracker = pollster::make_filtered_snapshot<record>(keep_filter{}, Key{}, version_of{}, options);
    check_snapshot<Key>(tracker, s);
  } else {
    auto tracker = pollster::make_snapshot<record>(Key{}, version_of{}, options);
    check_snapshot<Key>(tracker, s);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // Byte 0: options and the kind of key; byte 1: the key range. Then per update: a length byte, a fault byte (site
  // in the low 3 bits, the call to fail at in the high 5), and two bytes per record (key, version).
  const std::uint8_t flags = data[0];
  scenario s;
  s.last_wins = (flags & 1U) != 0;
  s.report_unchanged = (flags & 2U) != 0;
  s.sort_lists = (flags & 4U) != 0;
  s.filtered = (flags & 8U) != 0;
  const unsigned order = (flags >> 4U) & 3U;  // unknown, unsorted, sorted (when the lists are), unknown
  s.order = order == 1   ? pollster::key_order::unsorted
            : order == 2 ? pollster::key_order::sorted
                         : pollster::key_order::unknown;
  const unsigned key_kind = flags >> 6U;  // integer, own key, own key with every hash equal, string
  const unsigned key_range = 1U + data[1] % 32U;
  std::size_t at = 2;
  int tag = 0;
  while (at + 2 <= size && s.updates.size() < 8) {
    update u;
    const std::size_t length = data[at] % 24U;
    const std::uint8_t fault = data[at + 1];
    at += 2;
    u.fault_site = fault % 8U < site_count ? static_cast<int>(fault % 8U) : site_count;
    u.fault_call = 1 + (fault >> 3U);
    for (std::size_t n = 0; n < length && at + 2 <= size; ++n, at += 2) {
      u.list.push_back({static_cast<std::uint8_t>(data[at] % key_range), static_cast<std::uint8_t>(data[at + 1] % 4U),
                        tag++});
    }
    if (s.sort_lists) {
      std::stable_sort(u.list.begin(), u.list.end(),
                       [](const record& left, const record& right) { return left.key < right.key; });
    }
    s.updates.push_back(std::move(u));
  }
  // Declared sorted only when it is: by key value, which is not the order of the string keys ("-10" < "-2").
  if ((!s.sort_lists || key_kind == 3) && s.order == pollster::key_order::sorted) s.order = pollster::key_order::unknown;

  own_key::colliding = key_kind == 2;
  switch (key_kind) {
    case 0:
      run<integer_key>(s);
      break;
    case 1:
    case 2:
      run<own_key_of>(s);
      break;
    default:
      run<string_key>(s);
      break;
  }
  return 0;
}
