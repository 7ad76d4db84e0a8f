// SPDX-License-Identifier: MIT
#pragma once

// The snapshot differ: two successive results of polling a list in, added / removed / changed out.
//
// Whoever polls "which servers exist now?" must diff two successive answers. Done by hand it is slow (a node and an
// allocation per record), quadratic, or wrong (a tombstone that is just another element; "changed" fired for every
// resync). pollster's differ keys records by a projection, decides "changed" by a version projection or an equality
// predicate, reports a removal as its own type carrying the key and the last known element, and always reports in
// the same order: removals in the order of the old snapshot, then additions and changes in the order of the new one.

#include "detail/config.hpp"
#include "detail/flat_index.hpp"
#include "detail/found_events.hpp"
#include "detail/record_views.hpp"
#include "detail/sorted_merge.hpp"
#include "detail/version_index.hpp"

#include <algorithm>    // stable_sort
#include <cstddef>      // size_t
#include <cstdint>      // uint8_t, uint32_t
#include <functional>   // hash, invoke
#include <iterator>     // begin, end, iterator_traits, random_access_iterator_tag
#include <memory>       // addressof
#include <numeric>      // iota
#include <sstream>      // ostringstream (naming a duplicate key)
#include <stdexcept>    // invalid_argument, length_error
#include <string>       // string
#include <string_view>  // string_view
#include <type_traits>  // is_invocable_v, enable_if_t, ...
#include <utility>      // declval, forward, move
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN

// ---------------------------------------------------------------------------------------------------------------------
// Options

/// What a key that occurs twice in one snapshot means. A list API that returns a key twice is broken or was read
/// mid-update; guessing silently hides that, so it is an error unless you say the later record is the truth.
enum class duplicate_keys {
  error,      ///< throw std::invalid_argument naming the key (when it can be printed) and the snapshot
  last_wins,  ///< the last record with that key replaces the earlier ones, as a map insertion would
};

/// Whether both snapshots are sorted by key. Sorted input is diffed by a merge: no hashing, no extra memory.
enum class key_order {
  unknown,   ///< check with one O(n) pass per snapshot; merge if both are sorted, hash otherwise
  sorted,    ///< promised: merge; a snapshot that is not sorted after all is an std::invalid_argument, not garbage
  unsorted,  ///< skip the check and hash (saves one pass when you know the answer)
};

/// How to diff. A plain aggregate, so C++20 callers can write `{.duplicates = pollster::duplicate_keys::last_wins}`.
struct diff_options {
  duplicate_keys duplicates = duplicate_keys::error;
  /// Also report records whose key is in both snapshots and that did not change (a resync). They arrive as their own
  /// event type, `unchanged`, so they never pass for a change (a visitor that takes no `unchanged` never sees them).
  bool report_unchanged = false;
  key_order order = key_order::unknown;
};

// ---------------------------------------------------------------------------------------------------------------------
// Events
//
// Each event is a template over how it holds the element: `added<const server&>` refers to a record in one of the
// inputs (what a visitor receives, valid during the call), `added<server>` owns a copy (what `diff()` returns).

/// A key that is in the new snapshot only.
template <class T>
struct added {
  T element;
  /// True for the records of the first list a `snapshot` sees (Kubernetes' isInInitialList): "these already existed
  /// when I started watching", not "these were just created".
  bool initial = false;
};

/// The tombstone of a key that is gone from the new snapshot. Its own type with the key and the last element seen
/// under it, so it can never be mistaken for a live element.
template <class T, class K>
struct removed {
  K key;
  T last_known;
};

/// A key in both snapshots whose record changed, by the version projection or equality predicate you gave.
template <class T>
struct changed {
  T before;
  T after;
};

/// A key in both snapshots whose record did not change (reported only with `diff_options::report_unchanged`).
template <class T>
struct unchanged {
  T element;  ///< the record from the new snapshot
};

/// Everything `diff()` found, as copies: the result stays valid after both inputs are gone. Use `diff_each()` to
/// receive references instead, without copying or materialising anything.
template <class T, class K>
struct diff_result {
  std::vector<pollster::removed<T, K>> removals;  ///< in the order of the old snapshot
  std::vector<pollster::added<T>> additions;      ///< in the order of the new snapshot
  std::vector<pollster::changed<T>> changes;      ///< in the order of the new snapshot
  std::vector<pollster::unchanged<T>> unchanged;  ///< empty unless `report_unchanged`

  /// True when nothing was added, removed or changed (unchanged records do not count).
  bool empty() const noexcept { return removals.empty() && additions.empty() && changes.empty(); }
};

/// The default notion of "changed": `!(before == after)`.
struct equal_elements {
  template <class T>
  bool operator()(const T& before, const T& after) const {
    return static_cast<bool>(before == after);
  }
};

// ---------------------------------------------------------------------------------------------------------------------
// Implementation

namespace detail {

template <class T>
using remove_cvref_t = std::remove_cv_t<std::remove_reference_t<T>>;

template <class Key, class T>
using key_type_t = remove_cvref_t<std::invoke_result_t<const Key&, const T&>>;

/// Keeps an options argument from being taken for a `same` or a visitor by the overloads that have those.
template <class T>
using not_options_t = std::enable_if_t<!std::is_same_v<remove_cvref_t<T>, diff_options>, int>;

template <class Range>
using range_element_t = remove_cvref_t<decltype(*std::begin(std::declval<Range&>()))>;

template <class K, class = void>
struct is_hashable : std::false_type {};
template <class K>
struct is_hashable<K, std::void_t<decltype(std::hash<K>{}(std::declval<const K&>())),
                                  decltype(std::declval<const K&>() == std::declval<const K&>())>>
    : std::is_default_constructible<std::hash<K>> {};

template <class K, class = void>
struct is_ordered : std::false_type {};
template <class K>
struct is_ordered<K, std::void_t<decltype(std::declval<const K&>() < std::declval<const K&>())>> : std::true_type {};

template <class K, class = void>
struct is_streamable : std::false_type {};
template <class K>
struct is_streamable<K, std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const K&>())>>
    : std::true_type {};

template <class It>
constexpr bool is_random_access_v =
    std::is_base_of_v<std::random_access_iterator_tag, typename std::iterator_traits<It>::iterator_category>;

/// Snapshots hold at most this many records: the index stores 32-bit handles and match entries keep one bit spare.
inline constexpr std::size_t max_records = 0x7FFFFFFEU;

/// Which way a diff went. `hash_then_sort` is a hash path that met too many colliding keys and sorted instead.
enum class diff_path : std::uint8_t { none, merge, hash, hash_then_sort, sort, index, index_then_hash };

/// What the last diff on this thread did (the path, and the probe steps its index took past the first slot), so
/// tests can check that flooding is caught by counting work, not by timing it. Two stores per diff.
struct diff_trace {
  diff_path path = diff_path::none;
  std::size_t probes = 0;
};
inline thread_local diff_trace last_diff{};

/// Says which key occurred twice and where; names the key only when it can be printed.
template <class K>
[[noreturn]] void throw_duplicate_key(const K& key, const char* which_snapshot) {
  std::string message = "pollster::diff: ";
  bool null = false;
  if constexpr (std::is_pointer_v<K> || std::is_same_v<K, std::nullptr_t>) null = key == nullptr;
  if (null) {
    message += "duplicate key (null)";  // a null `const char*` is not a string_view, and streams as nothing
  } else if constexpr (std::is_convertible_v<const K&, std::string_view>) {
    message += "duplicate key \"";
    message += std::string_view(key);
    message += '"';
  } else if constexpr (is_streamable<K>::value) {
    std::ostringstream printed;
    printed << key;
    message += "duplicate key " + printed.str();
  } else {
    message += "a duplicate key";
  }
  message += " in the ";
  message += which_snapshot;
  message += " snapshot (duplicates are an error by default; duplicate_keys::last_wins keeps the last record)";
  throw std::invalid_argument(message);
}

/// Calls `use` with an indexable view of `range`, building pointers only when the range is not random-access.
template <class Range, class Use>
void with_view(Range& range, Use&& use) {
  using std::begin;
  using std::end;
  auto first = begin(range);
  auto last = end(range);
  using It = decltype(first);
  static_assert(std::is_lvalue_reference_v<decltype(*first)>,
                "pollster::diff needs ranges of objects (whose iterators yield references), not of generated values");
  using T = remove_cvref_t<decltype(*first)>;
  if constexpr (is_random_access_v<It> && std::is_same_v<It, decltype(last)>) {
    use(span_view<It>(first, static_cast<std::size_t>(last - first)));
  } else {
    std::vector<const T*> pointers;
    for (; first != last; ++first) pointers.push_back(std::addressof(*first));
    use(pointer_view<T>(pointers));
  }
}

/// True when `before` and `after` are the same record as far as `same` is concerned. `same` is either an equality
/// predicate (two arguments) or a version projection (one argument, compared with ==).
template <class Same, class T>
bool same_record(const Same& same, const T& before, const T& after) {
  if constexpr (std::is_invocable_v<const Same&, const T&, const T&>) {
    return static_cast<bool>(std::invoke(same, before, after));
  } else {
    static_assert(std::is_invocable_v<const Same&, const T&>,
                  "pollster::diff: `same` must be an equality predicate bool(const T&, const T&) or a version "
                  "projection V(const T&) such as a member pointer");
    return static_cast<bool>(std::invoke(same, before) == std::invoke(same, after));
  }
}

/// Delivers events to a visitor; `unchanged` only when asked for and when the visitor takes it.
template <class T, class K, class Visitor>
struct emitter {
  Visitor& visit;
  bool report_unchanged;
  bool initial;

  /// Whether `unchanged` events are delivered at all: asked for, and the visitor takes them.
  static constexpr bool takes_unchanged = std::is_invocable_v<Visitor&, const unchanged<const T&>&>;
  bool delivers_unchanged() const noexcept { return takes_unchanged && report_unchanged; }

  static_assert(std::is_invocable_v<Visitor&, const added<const T&>&> &&
                    std::is_invocable_v<Visitor&, const removed<const T&, K>&> &&
                    std::is_invocable_v<Visitor&, const changed<const T&>&>,
                "pollster::diff_each: the visitor must accept added<const T&>, removed<const T&, K> and "
                "changed<const T&> (a generic lambda or an overload set)");

  void on_added(const T& element) const {
    const added<const T&> event{element, initial};
    visit(event);
  }
  template <class KeyRef>
  void on_removed(KeyRef&& key, const T& last_known) const {
    const removed<const T&, K> event{K(std::forward<KeyRef>(key)), last_known};
    visit(event);
  }
  void on_changed(const T& before, const T& after) const {
    const changed<const T&> event{before, after};
    visit(event);
  }
  void on_unchanged(const T& element) const {
    if constexpr (std::is_invocable_v<Visitor&, const unchanged<const T&>&>) {
      if (report_unchanged) {
        const unchanged<const T&> event{element};
        visit(event);
      }
    } else {
      (void)element;
    }
  }
};

enum class order_check { sorted, sorted_with_duplicates, unsorted };

/// One pass: is `view` sorted by key, and does a key repeat? Stops at the first pair out of order.
template <class View, class Key>
order_check check_order(const View& view, const Key& key, std::size_t& first_duplicate) {
  bool duplicates = false;
  for (std::size_t at = 1; at < view.size(); ++at) {
    const auto& previous = std::invoke(key, view[at - 1]);
    const auto& current = std::invoke(key, view[at]);
    if (current < previous) return order_check::unsorted;
    if (!duplicates && !(previous < current)) {
      duplicates = true;
      first_duplicate = at;
    }
  }
  return duplicates ? order_check::sorted_with_duplicates : order_check::sorted;
}

/// The fast path for snapshots sorted by key: two merges (removals, then additions and changes), no extra memory.
/// Returns false, having reported nothing, when the order is unknown and a snapshot turns out unsorted.
template <class BeforeView, class AfterView, class Key, class Same, class Emitter>
bool merge_if_sorted(const BeforeView& before, const AfterView& after, const Key& key, const Same& same,
                     const diff_options& options, const Emitter& emit) {
  const bool declared = options.order == key_order::sorted;
  std::size_t before_duplicate = 0;
  std::size_t after_duplicate = 0;
  const order_check before_order = check_order(before, key, before_duplicate);
  if (before_order == order_check::unsorted) {
    if (declared)
      throw std::invalid_argument("pollster::diff: key_order::sorted, but the before snapshot is not sorted");
    return false;
  }
  const order_check after_order = check_order(after, key, after_duplicate);
  if (after_order == order_check::unsorted) {
    if (declared)
      throw std::invalid_argument("pollster::diff: key_order::sorted, but the after snapshot is not sorted");
    return false;
  }
  const bool before_dedupe = before_order == order_check::sorted_with_duplicates;
  const bool after_dedupe = after_order == order_check::sorted_with_duplicates;
  if (options.duplicates == duplicate_keys::error) {
    if (before_dedupe) throw_duplicate_key(std::invoke(key, before[before_duplicate]), "before");
    if (after_dedupe) throw_duplicate_key(std::invoke(key, after[after_duplicate]), "after");
  }
  // With last_wins, a run of equal keys stands for its last record.
  const auto last_of_run = [&key](const auto& view, bool dedupe, std::size_t at) {
    if (dedupe) {
      while (at + 1 < view.size() && !(std::invoke(key, view[at]) < std::invoke(key, view[at + 1]))) ++at;
    }
    return at;
  };

  const std::size_t before_size = before.size();
  const std::size_t after_size = after.size();
  std::size_t b = 0;
  std::size_t a = 0;
  while (b < before_size) {
    b = last_of_run(before, before_dedupe, b);
    if (a == after_size) {
      emit.on_removed(std::invoke(key, before[b]), before[b]);
      ++b;
      continue;
    }
    a = last_of_run(after, after_dedupe, a);
    const auto& before_key = std::invoke(key, before[b]);
    const auto& after_key = std::invoke(key, after[a]);
    if (before_key < after_key) {
      emit.on_removed(before_key, before[b]);
      ++b;
    } else if (after_key < before_key) {
      ++a;
    } else {
      ++b;
      ++a;
    }
  }
  b = 0;
  a = 0;
  while (a < after_size) {
    a = last_of_run(after, after_dedupe, a);
    if (b == before_size) {
      emit.on_added(after[a]);
      ++a;
      continue;
    }
    b = last_of_run(before, before_dedupe, b);
    const auto& before_key = std::invoke(key, before[b]);
    const auto& after_key = std::invoke(key, after[a]);
    if (before_key < after_key) {
      ++b;
    } else if (after_key < before_key) {
      emit.on_added(after[a]);
      ++a;
    } else {
      if (same_record(same, before[b], after[a])) {
        emit.on_unchanged(after[a]);
      } else {
        emit.on_changed(before[b], after[a]);
      }
      ++b;
      ++a;
    }
  }
  return true;
}

/// What the unsorted paths learn about each record before anything is reported, so a duplicate key throws before
/// the first event: per old record whether it was matched (1 byte), per new record its match (4 bytes).
struct match_table {
  enum : std::uint8_t { unmatched = 0, matched = 1, superseded = 2 };
  static constexpr std::uint32_t no_match = 0xFFFFFFFFU;          // added
  static constexpr std::uint32_t superseded_match = 0xFFFFFFFEU;  // a later duplicate wins
  static constexpr std::uint32_t changed_bit = 0x80000000U;       // the match differs by `same`

  std::vector<std::uint8_t> before_state;
  std::vector<std::uint32_t> after_match;

  match_table(std::size_t before_size, std::size_t after_size)
      : before_state(before_size, unmatched), after_match(after_size, no_match) {}

  static std::uint32_t match(std::size_t before_index, bool same) noexcept {
    return static_cast<std::uint32_t>(before_index) | (same ? 0U : changed_bit);
  }
};

/// Reports what `matches` found: removals in the old order, then additions and changes in the new order. Touches the
/// old records only for removals and changes, so a quiet diff reads the old snapshot once, in order.
template <class BeforeView, class AfterView, class Key, class Emitter>
void report_matches(const BeforeView& before, const AfterView& after, const Key& key, const match_table& matches,
                    const Emitter& emit) {
  for (std::size_t b = 0; b < before.size(); ++b) {
    if (matches.before_state[b] == match_table::unmatched) emit.on_removed(std::invoke(key, before[b]), before[b]);
  }
  for (std::size_t a = 0; a < after.size(); ++a) {
    const std::uint32_t match = matches.after_match[a];
    if (match == match_table::superseded_match) continue;
    if (match == match_table::no_match) {
      emit.on_added(after[a]);
    } else if ((match & match_table::changed_bit) != 0U) {
      emit.on_changed(before[match & ~match_table::changed_bit], after[a]);
    } else {
      emit.on_unchanged(after[a]);
    }
  }
}

/// The hash path: a flat table of 32-bit handles (old record b is b + 1, new record a is size(before) + a + 1).
/// Old records go in first; a new record that finds one takes its slot, so a repeated new key finds the new record.
/// With `bounded`, gives up (false, `matches` half written) once the probes pass `probe_budget`: keys whose hashes
/// collide (hash flooding) would make it quadratic, and the caller has a sort to fall back on.
template <class BeforeView, class AfterView, class Key, class Same>
bool match_by_hash(const BeforeView& before, const AfterView& after, const Key& key, const Same& same,
                   const diff_options& options, match_table& matches, bool bounded) {
  using T = remove_cvref_t<decltype(before[0])>;
  using K = key_type_t<Key, T>;
  const std::size_t before_size = before.size();
  const std::size_t after_size = after.size();
  const std::uint64_t seed = hash_seed();
  const auto hash_of = [seed](const K& k) { return seeded_hash(static_cast<std::uint64_t>(std::hash<K>{}(k)), seed); };
  const std::size_t budget = bounded ? probe_budget(before_size + after_size) : ~std::size_t{0};
  const auto key_of = [&](std::uint32_t handle) -> decltype(auto) {
    const std::size_t at = handle - 1U;
    return at < before_size ? std::invoke(key, before[at]) : std::invoke(key, after[at - before_size]);
  };
  const auto rehash = [&](std::uint32_t handle) { return hash_of(key_of(handle)); };
  const bool last_wins = options.duplicates == duplicate_keys::last_wins;

  // Handles run up to before_size + after_size (below 2^32, see max_records); the slot bits above that hold a tag
  // of the hash, so a lookup reads only the records whose tag fits: at a million records 11 bits, one false
  // candidate in 2048 occupied slots. Building the index then reads no old record at all.
  flat_index index(before_size > after_size ? before_size : after_size,
                   static_cast<std::uint32_t>(before_size + after_size));
  // Each lookup in a large table costs two cache misses: the slot, then the record it points to. The loops run a
  // pipeline instead: hash a record and prefetch its slot `slot_ahead` records early, prefetch the record of the
  // slot whose tag fits `record_ahead` records early, so both are in cache when the lookup comes (the build loop
  // prefetches slots only: it compares a record just for a duplicate key or a false tag). The loops are written
  // out, not shared through a callback, because GCC at -O2 then inlines nothing and runs four times slower.
  constexpr std::size_t slot_ahead = 16;
  constexpr std::size_t record_ahead = 8;
  constexpr std::size_t probe_ahead = 4;
  // Snapshots that fit in a core's cache gain nothing from prefetching and pay its instructions (callgrind, 1 000
  // records: a third more than without), so small diffs skip it.
  const bool prefetching = (before_size + after_size) * sizeof(T) >= prefetch_from_bytes;
  std::uint64_t hashes[slot_ahead] = {};
  const auto prefetch_record = [&](std::uint32_t handle) {
    if (handle == 0U) return;
    const std::size_t at = handle - 1U;
    prefetch_bytes(std::addressof(at < before_size ? before[at] : after[at - before_size]), sizeof(T));
  };
  // The one record of the probe chain whose tag fits: the lookup will compare with it (the other occupied slots
  // of the chain cost nothing but their tag).
  const auto prefetch_chain = [&](std::uint64_t hash) { prefetch_record(index.candidate(hash, probe_ahead)); };
  const auto start_pipeline = [&](const auto& view) {
    for (std::size_t at = 0; at < view.size() && at < slot_ahead; ++at) {
      hashes[at] = hash_of(std::invoke(key, view[at]));
      if (prefetching) index.prefetch(hashes[at]);
    }
  };

  start_pipeline(before);
  for (std::size_t b = 0; b < before_size; ++b) {
    const std::uint64_t hash = hashes[b % slot_ahead];
    if (b + slot_ahead < before_size) {
      hashes[b % slot_ahead] = hash_of(std::invoke(key, before[b + slot_ahead]));
      if (prefetching) index.prefetch(hashes[b % slot_ahead]);
    }

    const auto& k = std::invoke(key, before[b]);
    std::uint32_t* slot = index.find(
        hash, [&](std::uint32_t handle) { return static_cast<bool>(std::invoke(key, before[handle - 1U]) == k); });
    const auto handle = static_cast<std::uint32_t>(b + 1);
    if (*slot == 0U) {
      index.occupy(slot, index.entry(hash, handle), rehash);
      if (index.probes() > budget) return false;
    } else {
      if (!last_wins) throw_duplicate_key(k, "before");
      matches.before_state[index.handle_of(*slot) - 1U] = match_table::superseded;
      *slot = index.entry(hash, handle);
    }
  }

  start_pipeline(after);
  for (std::size_t a = 0; a < after_size; ++a) {
    const std::uint64_t hash = hashes[a % slot_ahead];
    if (a + slot_ahead < after_size) {
      hashes[a % slot_ahead] = hash_of(std::invoke(key, after[a + slot_ahead]));
      if (prefetching) index.prefetch(hashes[a % slot_ahead]);
    }
    if (prefetching && a + record_ahead < after_size) prefetch_chain(hashes[(a + record_ahead) % slot_ahead]);

    const auto& k = std::invoke(key, after[a]);
    std::uint32_t* slot =
        index.find(hash, [&](std::uint32_t handle) { return static_cast<bool>(key_of(handle) == k); });
    const auto handle = static_cast<std::uint32_t>(before_size + a + 1);
    if (index.probes() > budget) return false;
    if (*slot == 0U) {
      index.occupy(slot, index.entry(hash, handle), rehash);  // matches.after_match[a] stays no_match: added
      continue;
    }
    const std::size_t found = index.handle_of(*slot) - 1U;
    *slot = index.entry(hash, handle);
    if (found < before_size) {
      matches.before_state[found] = match_table::matched;
      matches.after_match[a] = match_table::match(found, same_record(same, before[found], after[a]));
      continue;
    }
    if (!last_wins) throw_duplicate_key(k, "after");
    const std::size_t earlier = found - before_size;
    const std::uint32_t inherited = matches.after_match[earlier];
    matches.after_match[earlier] = match_table::superseded_match;
    if (inherited != match_table::no_match) {
      const std::size_t b = inherited & ~match_table::changed_bit;
      matches.after_match[a] = match_table::match(b, same_record(same, before[b], after[a]));
    }
  }
  last_diff.probes = index.probes();
  return true;
}

/// The path for keys that are ordered but not hashable: sort record indices by key, then merge them.
template <class BeforeView, class AfterView, class Key, class Same>
void match_by_sorting(const BeforeView& before, const AfterView& after, const Key& key, const Same& same,
                      const diff_options& options, match_table& matches) {
  const auto sorted_indices = [&key](const auto& view) {
    std::vector<std::uint32_t> order(view.size());
    std::iota(order.begin(), order.end(), std::uint32_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t left, std::uint32_t right) {
      return std::invoke(key, view[left]) < std::invoke(key, view[right]);
    });
    return order;
  };
  // Within a run of equal keys (kept in input order by the stable sort) only the last record counts.
  const auto resolve_duplicates = [&](const auto& view, const std::vector<std::uint32_t>& order, const char* which,
                                      auto&& supersede) {
    for (std::size_t at = 0; at + 1 < order.size(); ++at) {
      if (std::invoke(key, view[order[at]]) < std::invoke(key, view[order[at + 1]])) continue;
      if (options.duplicates == duplicate_keys::error) throw_duplicate_key(std::invoke(key, view[order[at]]), which);
      supersede(order[at]);
    }
  };
  const std::vector<std::uint32_t> before_order = sorted_indices(before);
  resolve_duplicates(before, before_order, "before",
                     [&](std::uint32_t b) { matches.before_state[b] = match_table::superseded; });
  const std::vector<std::uint32_t> after_order = sorted_indices(after);
  resolve_duplicates(after, after_order, "after",
                     [&](std::uint32_t a) { matches.after_match[a] = match_table::superseded_match; });

  std::size_t b = 0;
  std::size_t a = 0;
  while (b < before_order.size() && a < after_order.size()) {
    const std::uint32_t old_index = before_order[b];
    const std::uint32_t new_index = after_order[a];
    if (matches.before_state[old_index] == match_table::superseded) {
      ++b;
    } else if (matches.after_match[new_index] == match_table::superseded_match) {
      ++a;
    } else if (std::invoke(key, before[old_index]) < std::invoke(key, after[new_index])) {
      ++b;
    } else if (std::invoke(key, after[new_index]) < std::invoke(key, before[old_index])) {
      ++a;
    } else {
      matches.before_state[old_index] = match_table::matched;
      matches.after_match[new_index] =
          match_table::match(old_index, same_record(same, before[old_index], after[new_index]));
      ++b;
      ++a;
    }
  }
}

/// Reports what a merge or an index found: removals in the old order, then additions and changes (and unchanged
/// records, when recorded) in the new order. The removals come from `found` or, after an index pass, from the bits
/// of the old records left unmatched.
template <class T, class Key, class Emitter>
void report_found(const Key& key, const found_events<T>& found, const Emitter& emit) {
  report_found(key, found, [&found](const auto& use) { found.removals.for_each([&use](const T* r) { use(*r); }); },
               emit);
}

/// As above, with the removals from `for_each_removal(use)`, which calls `use(old_record)` per removal in the old
/// order.
template <class T, class Key, class ForEachRemoval, class Emitter>
void report_found(const Key& key, const found_events<T>& found, const ForEachRemoval& for_each_removal,
                  const Emitter& emit) {
  for_each_removal([&](const T& old_record) { emit.on_removed(std::invoke(key, old_record), old_record); });
  const T* const unchanged = found_events<T>::unchanged();
  found.news.for_each([&](const typename found_events<T>::news_entry& entry) {
    if (entry.match == nullptr) {
      emit.on_added(*entry.record);
    } else if (entry.match != unchanged) {
      emit.on_changed(*entry.match, *entry.record);
    } else {
      emit.on_unchanged(*entry.record);
    }
  });
}

/// The sorted path: one pass that merges and checks the order (merge_sorted), then the report. Returns false, having
/// reported nothing, when a snapshot turns out not to be sorted and the order was only hoped for (the caller hashes
/// instead). Throws on a duplicate key (unless last_wins: then the two-pass merge resolves them) and when a snapshot
/// promised sorted is not. `found` is scratch, kept by a snapshot between updates.
template <class BeforeView, class AfterView, class Key, class Same, class Emitter>
bool diff_if_sorted(const BeforeView& before, const AfterView& after, const Key& key, const Same& same,
                    const diff_options& options, const Emitter& emit,
                    found_events<remove_cvref_t<decltype(before[0])>>& found) {
  found.clear();
  std::size_t stopped_at = 0;
  const auto changed = [same](const auto& old_record, const auto& new_record) {
    return !same_record(same, old_record, new_record);
  };
  const merge_end end = merge_sorted(before, after, key, changed, emit.delivers_unchanged(), found, stopped_at);
  switch (end) {
    case merge_end::merged:
      last_diff = {diff_path::merge, 0};
      report_found(key, found, emit);
      return true;
    case merge_end::before_duplicate:
    case merge_end::after_duplicate:
      if (options.duplicates == duplicate_keys::error) {
        if (end == merge_end::before_duplicate) throw_duplicate_key(std::invoke(key, before[stopped_at]), "before");
        throw_duplicate_key(std::invoke(key, after[stopped_at]), "after");
      }
      // last_wins: a run of equal keys stands for its last record, which the two-pass merge knows how to resolve.
      last_diff = {diff_path::merge, 0};
      return merge_if_sorted(before, after, key, same, options, emit);
    case merge_end::before_unsorted:
    case merge_end::after_unsorted:
      if (options.order == key_order::sorted) {
        throw std::invalid_argument(end == merge_end::before_unsorted
                                        ? "pollster::diff: key_order::sorted, but the before snapshot is not sorted"
                                        : "pollster::diff: key_order::sorted, but the after snapshot is not sorted");
      }
      return false;
  }
  return false;
}

/// The one-shot diff indexes keys and versions (version_index) for lists up to this long. Its entries (25 bytes a
/// slot) answer "unchanged" without reading an old record, which saves a third of the instructions of the flat index
/// of handles; but once the table outgrows a core's cache, writing and reading them costs more memory traffic than
/// the handles and the records they point to. Measured on the 2-core EPYC VM (paired runs, CPU time, shuffled, 1%
/// churn): the key-and-version index takes 0.53x the time of the handles at 1 000 records, 0.77x at 10 000, 0.98x
/// at 30 000, 1.04x at 60 000 and 1.47x at 100 000.
#ifndef POLLSTER_DIFF_INDEX_PATH_MAX_RECORDS
#define POLLSTER_DIFF_INDEX_PATH_MAX_RECORDS 32768
#endif
inline constexpr std::size_t index_path_max_records = POLLSTER_DIFF_INDEX_PATH_MAX_RECORDS;

/// Whether the one-shot diff can index the old list by key and version (version_index): both are small values, and
/// "changed" is a version projection. The index then answers "unchanged" without reading an old record.
template <class T, class Key, class Same, class = void>
struct indexable : std::false_type {};
template <class T, class Key, class Same>
struct indexable<T, Key, Same,
                 std::enable_if_t<!std::is_invocable_v<const Same&, const T&, const T&> &&
                                  std::is_invocable_v<const Same&, const T&>>> {
  using K = key_type_t<Key, T>;
  using V = remove_cvref_t<std::invoke_result_t<const Same&, const T&>>;
  static constexpr bool value = (std::is_integral_v<K> || std::is_enum_v<K>) && is_hashable<K>::value &&
                                (std::is_arithmetic_v<V> || std::is_enum_v<V>);
};

/// The hash path for indexable keys: index the old list by key and version, look every new record up. Returns false,
/// having reported nothing, when a key repeats under last_wins or the keys flood the index: the general hash path
/// handles both.
template <class BeforeView, class AfterView, class Key, class Version, class Emitter>
bool diff_by_index(const BeforeView& before, const AfterView& after, const Key& key, const Version& version,
                   const diff_options& options, const Emitter& emit) {
  using T = remove_cvref_t<decltype(before[0])>;
  using K = key_type_t<Key, T>;
  using V = remove_cvref_t<std::invoke_result_t<const Version&, const T&>>;
  version_index<K, V> index;
  index.clear(before.size() + after.size() / 4);  // room for the old records and a quarter as many additions
  const std::size_t budget = probe_budget(before.size() + after.size());
  const bool prefetching = index.bytes() >= prefetch_from_bytes;
  std::size_t probes = 0;
  std::size_t stopped_at = 0;
  index_end end = prefetching ? index_list<true>(index, 0U, before, key, version, budget, probes, stopped_at)
                              : index_list<false>(index, 0U, before, key, version, budget, probes, stopped_at);
  if (end == index_end::repeated && options.duplicates == duplicate_keys::error) {
    throw_duplicate_key(std::invoke(key, before[stopped_at]), "before");
  }
  if (end != index_end::done) return false;
  found_events<T> found;
  std::size_t hits = 0;
  const bool unchanged = emit.delivers_unchanged();
  end = prefetching
            ? match_list<true, false>(index, 0U, before, after, key, version, unchanged, budget, probes, hits, found,
                                      stopped_at)
            : match_list<false, false>(index, 0U, before, after, key, version, unchanged, budget, probes, hits, found,
                                       stopped_at);
  if (end == index_end::repeated && options.duplicates == duplicate_keys::error) {
    throw_duplicate_key(std::invoke(key, after[stopped_at]), "after");
  }
  if (end != index_end::done) return false;
  last_diff = {diff_path::index, probes};
  match_bits removed;
  removed.reset(hits == before.size() ? 0 : before.size());
  if (hits != before.size()) index.for_each_of_generation(0U, [&removed](std::size_t b) { removed.set(b); });
  report_found(
      key, found,
      [&](const auto& use) { removed.for_each_set([&](std::size_t b) { use(before[b]); }); }, emit);
  return true;
}

enum class handles_end : std::uint8_t { reported, repeated, flooded };

/// The hash path for any other hashable key: a flat index of tagged handles (match_through_handles). Returns
/// `repeated` (a key repeats under last_wins) or `flooded`, having reported nothing, for the caller to fall back.
template <class BeforeView, class AfterView, class Key, class Same, class Emitter>
handles_end diff_by_handles(const BeforeView& before, const AfterView& after, const Key& key, const Same& same,
                            const diff_options& options, const Emitter& emit) {
  using T = remove_cvref_t<decltype(before[0])>;
  using K = key_type_t<Key, T>;
  const std::uint64_t seed = hash_seed();
  const auto hash_of = [seed](const K& k) {
    return seeded_hash(static_cast<std::uint64_t>(std::hash<K>{}(k)), seed);
  };
  const auto changed = [same](const T& old_record, const T& new_record) {
    return !same_record(same, old_record, new_record);
  };
  // Snapshots that fit in a core's cache gain nothing from prefetching and pay its instructions.
  const bool prefetching = (before.size() + after.size()) * sizeof(T) >= prefetch_from_bytes;
  const std::size_t budget = probe_budget(before.size() + after.size());
  const bool unchanged = emit.delivers_unchanged();
  match_bits matched;
  matched.reset(before.size());
  found_events<T> found;
  std::size_t probes = 0;
  bool repeated_in_before = false;
  std::size_t stopped_at = 0;
  const index_end end =
      prefetching ? match_through_handles<true>(before, after, key, hash_of, changed, unchanged, budget, probes, matched,
                                                found, repeated_in_before, stopped_at)
                  : match_through_handles<false>(before, after, key, hash_of, changed, unchanged, budget, probes,
                                                 matched, found, repeated_in_before, stopped_at);
  if (end == index_end::flooded) return handles_end::flooded;
  if (end == index_end::repeated) {
    if (options.duplicates == duplicate_keys::error) {
      if (repeated_in_before) throw_duplicate_key(std::invoke(key, before[stopped_at]), "before");
      throw_duplicate_key(std::invoke(key, after[stopped_at]), "after");
    }
    return handles_end::repeated;
  }
  last_diff = {diff_path::hash, probes};
  report_found(
      key, found,
      [&](const auto& use) { matched.for_each_unset([&](std::size_t b) { use(before[b]); }); }, emit);
  return handles_end::reported;
}

/// The one entry point every public function goes through: sorted input is merged, indexable keys go through a
/// key-and-version index, any other hashable key through the flat index of handles, and an ordered key without a hash
/// (or one that floods the index) is sorted.
template <class BeforeView, class AfterView, class Key, class Same, class Visitor>
void diff_views(const BeforeView& before, const AfterView& after, const Key& key, const Same& same,
                const diff_options& options, Visitor& visit, bool initial) {
  using T = remove_cvref_t<decltype(before[0])>;
  static_assert(std::is_same_v<T, remove_cvref_t<decltype(after[0])>>,
                "pollster::diff: both snapshots must hold the same element type");
  static_assert(std::is_invocable_v<const Key&, const T&>,
                "pollster::diff: the key must be a projection of the element (a member pointer or a callable)");
  using K = key_type_t<Key, T>;
  constexpr bool hashable = is_hashable<K>::value;
  constexpr bool ordered = is_ordered<K>::value;
  static_assert(hashable || ordered,
                "pollster::diff: the key type needs std::hash and == (hash path) or < (sort path)");
  if (before.size() > max_records || after.size() > max_records) {
    throw std::length_error("pollster::diff: a snapshot holds more than 2^31 - 2 records");
  }

  const emitter<T, K, Visitor> emit{visit, options.report_unchanged, initial};
  if constexpr (ordered) {
    if (options.order != key_order::unsorted) {
      found_events<T> found;
      if (diff_if_sorted(before, after, key, same, options, emit, found)) return;
    }
  } else {
    if (options.order == key_order::sorted) {
      throw std::invalid_argument("pollster::diff: key_order::sorted needs a key type ordered by <");
    }
  }
  if constexpr (indexable<T, Key, Same>::value) {
    if (before.size() <= index_path_max_records && after.size() <= index_path_max_records &&
        diff_by_index(before, after, key, same, options, emit)) {
      return;
    }
  }
  bool flooded = false;
  if constexpr (hashable) {
    const handles_end end = diff_by_handles(before, after, key, same, options, emit);
    if (end == handles_end::reported) return;
    flooded = end == handles_end::flooded;
  }
  // Duplicates under last_wins, or keys that flood the index: the match-table paths resolve the one and sort the
  // other (a key without < has nothing to sort by, and is hashed without a bound).
  match_table matches(before.size(), after.size());
  if constexpr (hashable) {
    last_diff = {diff_path::hash, 0};
    // match_by_hash gives up (false) only when bounded, that is for an ordered key.
    if ((flooded && ordered) || !match_by_hash(before, after, key, same, options, matches, ordered)) {
      if constexpr (ordered) {  // flooded: O(n log n) by sorting instead of O(n^2) by probing
        last_diff.path = diff_path::hash_then_sort;
        matches = match_table(before.size(), after.size());
        match_by_sorting(before, after, key, same, options, matches);
      }
    }
  } else {
    last_diff = {diff_path::sort, 0};
    match_by_sorting(before, after, key, same, options, matches);
  }
  report_matches(before, after, key, matches, emit);
}

template <class T, class K>
struct collector {
  diff_result<T, K>* result;
  void operator()(const added<const T&>& event) const { result->additions.push_back({event.element, event.initial}); }
  void operator()(const removed<const T&, K>& event) const {
    result->removals.push_back({event.key, event.last_known});
  }
  void operator()(const changed<const T&>& event) const { result->changes.push_back({event.before, event.after}); }
  void operator()(const unchanged<const T&>& event) const { result->unchanged.push_back({event.element}); }
};

template <class Before, class After, class Key, class Same, class Visitor>
void diff_ranges(Before& before, After& after, const Key& key, const Same& same, const diff_options& options,
                 Visitor& visit) {
  with_view(before, [&](const auto& before_view) {
    with_view(after,
              [&](const auto& after_view) { diff_views(before_view, after_view, key, same, options, visit, false); });
  });
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------------------------------
// Streaming: events to a visitor, nothing materialised

/// Calls `visit` once per event: removals in the order of `before`, then additions and changes in the order of
/// `after`. Events refer to records in the inputs and are valid during the call. `key` projects a record to its key
/// (a member pointer or a callable; the key must be hashable, or ordered); records are changed when `!(a == b)`.
/// Throws std::invalid_argument on a duplicate key, before any event is delivered.
template <class Before, class After, class Key, class Visitor>
void diff_each(Before&& before, After&& after, Key key, Visitor&& visit, const diff_options& options = {}) {
  detail::diff_ranges(before, after, key, equal_elements{}, options, visit);
}

/// As above; `same` decides "changed": a version projection (`&server::version`: changed when the versions differ)
/// or an equality predicate (`bool(const T&, const T&)`: changed when it returns false).
template <class Before, class After, class Key, class Same, class Visitor, detail::not_options_t<Visitor> = 0>
void diff_each(Before&& before, After&& after, Key key, Same same, Visitor&& visit, const diff_options& options = {}) {
  detail::diff_ranges(before, after, key, same, options, visit);
}

// ---------------------------------------------------------------------------------------------------------------------
// Materialised: a result holding copies

/// Everything that changed from `before` to `after`, as copies (see `diff_each` for the order and the rules).
template <class Before, class After, class Key, class T = detail::range_element_t<Before>>
diff_result<T, detail::key_type_t<Key, T>> diff(Before&& before, After&& after, Key key,
                                                const diff_options& options = {}) {
  diff_result<T, detail::key_type_t<Key, T>> result;
  detail::collector<T, detail::key_type_t<Key, T>> collect{&result};
  detail::diff_ranges(before, after, key, equal_elements{}, options, collect);
  return result;
}

/// As above, with a version projection or an equality predicate deciding "changed".
template <class Before, class After, class Key, class Same, detail::not_options_t<Same> = 0,
          class T = detail::range_element_t<Before>>
diff_result<T, detail::key_type_t<Key, T>> diff(Before&& before, After&& after, Key key, Same same,
                                                const diff_options& options = {}) {
  diff_result<T, detail::key_type_t<Key, T>> result;
  detail::collector<T, detail::key_type_t<Key, T>> collect{&result};
  detail::diff_ranges(before, after, key, same, options, collect);
  return result;
}

POLLSTER_NAMESPACE_END
