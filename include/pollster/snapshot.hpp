// SPDX-License-Identifier: MIT
#pragma once

// The snapshot tracker: remembers the last list it was given and turns each new list into events (diff.hpp's rules).
//
// A watcher, or anyone who polls a list, holds one `snapshot` per collection: `update(next, visitor)` diffs `next`
// against the last list, delivers the events and keeps `next`. With an integer key and version it also keeps an
// index of the last list between updates, so an update reads an old record only when it changed or went away.

#include "diff.hpp"
#include "detail/config.hpp"
#include "detail/version_index.hpp"

#include <cstddef>      // size_t
#include <cstdint>      // uint8_t, uint32_t
#include <functional>   // invoke
#include <iterator>     // begin, end
#include <memory>       // addressof
#include <stdexcept>    // length_error
#include <type_traits>  // conditional_t, is_same_v, ...
#include <utility>      // forward, move
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN

/// The filter of an unfiltered `snapshot`.
struct match_all {
  template <class T>
  constexpr bool operator()(const T&) const noexcept {
    return true;
  }
};

// ---------------------------------------------------------------------------------------------------------------------
// snapshot: remembers the last list

/// Remembers the last list it was given and turns each new list into events. It owns a copy of the list, so the
/// caller's list may go away after `update()`. The first update reports every record as `added` with `initial` set.
/// With a filter, the snapshot keeps only matching records: one that starts matching is added, one that stops
/// matching is removed (its tombstone carries the last matching record), one that matches on both sides is diffed
/// as usual. Duplicates are resolved after filtering.
///
/// When the key is an integer or an enum and "changed" is a version projection to an integer or an enum (the common
/// `keyed(&server::id, &server::version)`), the snapshot also keeps an index of its last list that holds each key and
/// version: an update looks each new record up once and reads an old record only when it changed or went away,
/// instead of indexing the last list afresh and reading every old record as a one-shot `diff` must.
template <class T, class Key, class Same = equal_elements, class Filter = match_all>
class snapshot {
 public:
  using element_type = T;
  using key_type = detail::key_type_t<Key, T>;
  using result_type = diff_result<T, key_type>;

  explicit snapshot(Key key, Same same = {}, diff_options options = {}, Filter filter = {})
      : key_(std::move(key)), same_(std::move(same)), filter_(std::move(filter)), options_(options) {}

  /// Diffs `next` against the last list and calls `visit` per event (references valid during the call), then keeps
  /// `next`. If the diff or the visitor throws, the last list stays as it was, so the next update reports again.
  template <class Range, class Visitor>
  void update(Range&& next, Visitor&& visit) {
    std::vector<T>& kept = spare_;  // the list before last: its capacity and element storage are reused
    bool indexed = false;
    if constexpr (std::is_same_v<Filter, match_all>) {
      detail::with_view(next, [&](const auto& next_view) { indexed = diff_against_last(next_view, visit); });
      if constexpr (std::is_same_v<Range, std::vector<T>>) {
        kept = std::move(next);  // an rvalue vector: take it instead of copying
      } else {
        using std::begin;
        using std::end;
        kept.assign(begin(next), end(next));
      }
    } else {
      std::vector<const T*> matching;
      for (const auto& element : next) {
        if (std::invoke(filter_, element)) matching.push_back(std::addressof(element));
      }
      indexed = diff_against_last(detail::pointer_view<T>(matching), visit);
      kept.clear();
      kept.reserve(matching.size());
      for (const T* element : matching) kept.push_back(*element);
    }
    elements_.swap(kept);
    has_baseline_ = true;
    if constexpr (uses_index) {
      generation_ = static_cast<std::uint8_t>(generation_ ^ index_type::generation_bit);
      index_valid_ = indexed;
    }
    release_excess();
  }

  /// As above, returning the events as copies.
  template <class Range>
  result_type update(Range&& next) {
    result_type result;
    detail::collector<T, key_type> collect{&result};
    update(std::forward<Range>(next), collect);
    return result;
  }

  /// Takes `last` as the last list without reporting anything (a watch resuming from a saved list): the next update
  /// reports what changed since. With a filter, only the matching records are kept. Duplicates are resolved, or
  /// refused, by the next update.
  template <class Range>
  void restore(Range&& last) {
    std::vector<T> kept;
    if constexpr (std::is_same_v<Filter, match_all> && std::is_same_v<Range, std::vector<T>>) {
      kept = std::move(last);
    } else {
      for (const auto& element : last) {
        if (std::invoke(filter_, element)) kept.push_back(element);
      }
    }
    elements_.swap(kept);
    has_baseline_ = true;
    if constexpr (uses_index) index_valid_ = false;
  }

  /// The last list (filtered, if there is a filter), in its original order.
  const std::vector<T>& elements() const noexcept { return elements_; }
  /// False until the first successful update; that update reports its records as initial.
  bool has_baseline() const noexcept { return has_baseline_; }

  /// Returns to the allocator what the snapshot keeps only to make the next update allocate nothing: the list before
  /// last, the index of the last list (the next update rebuilds it) and the per-update scratch arrays; the last list
  /// is shrunk to its size. Updates do this by themselves for any buffer past 4 times what the last list needs
  /// (plus room for 1 024 records); call it to return the rest, say after a burst. If shrinking the last list
  /// throws (copying a record whose move may throw), the snapshot is as before.
  void shrink_to_fit() {
    std::vector<T>().swap(spare_);
    removed_.release();
    found_.release();
    if constexpr (uses_index) {
      index_.release();
      index_valid_ = false;
    }
    elements_.shrink_to_fit();
  }

  /// Heap bytes held by the snapshot's own buffers (the last list, the list before last, the index, the scratch),
  /// counted by capacity; memory the records themselves own (their strings, say) is not included.
  std::size_t memory_bytes() const noexcept {
    std::size_t bytes = (elements_.capacity() + spare_.capacity()) * sizeof(T) + removed_.capacity_bytes() +
                        found_.capacity_bytes();
    if constexpr (uses_index) bytes += index_.bytes();
    return bytes;
  }

 private:
  using last_view = detail::span_view<typename std::vector<T>::const_iterator>;

  // The version `same` projects to (void when `same` is an equality predicate), and whether the index can hold
  // keys and versions by value: small values whose == means the same on a copy as on the original.
  template <class S, class = void>
  struct projected {
    using type = void;
  };
  template <class S>
  struct projected<S, std::enable_if_t<!std::is_invocable_v<const S&, const T&, const T&> &&
                                       std::is_invocable_v<const S&, const T&>>> {
    using type = detail::remove_cvref_t<std::invoke_result_t<const S&, const T&>>;
  };
  using version_type = typename projected<Same>::type;
  template <class X>
  static constexpr bool small_value = std::is_arithmetic_v<X> || std::is_enum_v<X>;
  static constexpr bool uses_index = (std::is_integral_v<key_type> || std::is_enum_v<key_type>) &&
                                     detail::is_hashable<key_type>::value && !std::is_void_v<version_type> &&
                                     small_value<std::conditional_t<std::is_void_v<version_type>, int, version_type>>;
  struct no_index {};
  using index_type = std::conditional_t<uses_index, detail::version_index<key_type, version_type>, no_index>;

  /// Reports the events from the last list to `next`. Returns true when the index now maps the keys of `next` (once
  /// the caller keeps it and flips the generation); false when the next update must rebuild it.
  template <class View, class Visitor>
  bool diff_against_last(const View& next, Visitor& visit) {
    const last_view last(elements_.cbegin(), elements_.size());
    if constexpr (!uses_index) {
      detail::diff_views(last, next, key_, same_, options_, visit, !has_baseline_);
      return false;
    } else {
      if (last.size() > detail::max_records || next.size() > detail::max_records) {
        throw std::length_error("pollster::diff: a snapshot holds more than 2^31 - 2 records");
      }
      const detail::emitter<T, key_type, Visitor> emit{visit, options_.report_unchanged, !has_baseline_};
      // Sorted lists are merged, as by diff(): that needs no index at all.
      if (options_.order != key_order::unsorted && detail::diff_if_sorted(last, next, key_, same_, options_, emit, found_)) {
        return false;
      }
      if (flooded_ || (!index_valid_ && !rebuild_index(last))) {
        // The last list holds a key twice (kept under last_wins), or its keys flood the index: diff it the one-shot
        // way, which knows which duplicates are superseded and sorts what it cannot hash in bounded time.
        detail::diff_views(last, next, key_, same_, options_, visit, !has_baseline_);
        return false;
      }
      index_valid_ = false;  // from here until the caller keeps `next`, the index is half old, half new
      index_.reserve(next.size());
      found_.clear();
      const std::size_t budget = detail::probe_budget(last.size() + next.size());
      const bool prefetching = index_.bytes() >= detail::prefetch_from_bytes;
      const bool unchanged = emit.delivers_unchanged();
      std::size_t probes = 0;
      std::size_t hits = 0;
      std::size_t stopped_at = 0;
      const detail::index_end end =
          prefetching ? detail::match_list<true, true>(index_, generation_, last, next, key_, same_, unchanged, budget, probes,
                                                 hits, found_, stopped_at)
                      : detail::match_list<false, true>(index_, generation_, last, next, key_, same_, unchanged, budget, probes,
                                                  hits, found_, stopped_at);
      if (end != detail::index_end::done) {
        if (end == detail::index_end::repeated && options_.duplicates == duplicate_keys::error) {
          detail::throw_duplicate_key(std::invoke(key_, next[stopped_at]), "after");
        }
        // A key `next` repeats under last_wins (the one-shot diff knows which record wins), or keys that collide in
        // the index despite its seed (the one-shot diff bounds its probes and sorts instead, for this update and the
        // ones after it). Nothing is reported yet.
        if (end == detail::index_end::flooded) flooded_ = true;
        detail::diff_views(last, next, key_, same_, options_, visit, !has_baseline_);
        return false;
      }
      detail::last_diff = {detail::diff_path::index, probes};
      // The old entries left are the removals: marked by position, reported in the old order.
      removed_.reset(hits == last.size() ? 0 : last.size());
      if (hits != last.size()) index_.for_each_of_generation(generation_, [this](std::size_t b) { removed_.set(b); });
      detail::report_found(
          key_, found_,
          [&](const auto& use) { removed_.for_each_set([&](std::size_t b) { use(last[b]); }); }, emit);
      // The keys that went away leave the index.
      removed_.for_each_set([&](std::size_t b) {
        const key_type k = std::invoke(key_, last[b]);
        index_.erase(index_.find(index_.hash(k), k));
      });
      return true;
    }
  }

  /// A buffer is returned after an update when it holds more than 4 times what the last list needs plus 1 024
  /// records: a list that shrinks for good gives its memory back within one update, and one that breathes by less
  /// than 4x keeps its buffers and allocates nothing.
  static bool excessive(std::size_t capacity, std::size_t needed) noexcept { return capacity / 4 > needed + 256; }

  void release_excess() noexcept {
    const std::size_t size = elements_.size();
    if (excessive(spare_.capacity(), size)) std::vector<T>().swap(spare_);
    if (excessive(removed_.capacity_bytes() * 8, size)) removed_.release();
    if (excessive(found_.capacity(), size)) found_.release();
    if constexpr (uses_index) {
      if (index_.capacity() / 4 > index_type::capacity_for(size)) {
        index_.release();
        index_valid_ = false;
      }
    }
    if (excessive(elements_.capacity(), size)) {
      try {
        elements_.shrink_to_fit();
      } catch (...) {  // an optimisation that failed (out of memory, or a throwing copy): keep the list as it is
      }
    }
  }

  /// Indexes the last list afresh (before the first update, and after a merge, an exception or duplicates). False
  /// when the last list holds a key twice (only the one-shot diff knows which of its records are superseded) or its
  /// keys flood the index.
  bool rebuild_index(const last_view& last) {
    index_.clear(last.size());
    const std::size_t budget = detail::probe_budget(last.size());
    std::size_t probes = 0;
    std::size_t stopped_at = 0;
    const detail::index_end end =
        index_.bytes() >= detail::prefetch_from_bytes
            ? detail::index_list<true>(index_, generation_, last, key_, same_, budget, probes, stopped_at)
            : detail::index_list<false>(index_, generation_, last, key_, same_, budget, probes, stopped_at);
    if (end == detail::index_end::flooded) flooded_ = true;
    if (end != detail::index_end::done) return false;
    index_valid_ = true;
    return true;
  }

  Key key_;
  Same same_;
  Filter filter_;
  diff_options options_;
  std::vector<T> elements_;
  // The list before last, kept only for its storage: the next update copies into it, reusing its capacity and
  // each element's own buffers, instead of allocating a fresh list per poll. The price is a second list at rest.
  std::vector<T> spare_;
  // With `uses_index`: the index of `elements_` (valid only when `index_valid_`); and per update which old records
  // were matched and the events found, kept between updates so that a poll allocates nothing.
  index_type index_;
  detail::match_bits removed_;  // the old records no new record matched
  detail::found_events<T> found_;
  std::uint8_t generation_ = 0;  // the generation of the index entries of `elements_` (0 or the generation bit)
  bool index_valid_ = false;
  bool flooded_ = false;  // the index met keys that collide despite its seed: the one-shot diff from now on
  bool has_baseline_ = false;
};

/// A snapshot of `T` keyed by `key`, changed when `!(a == b)`.
template <class T, class Key>
snapshot<T, Key> make_snapshot(Key key, const diff_options& options = {}) {
  return snapshot<T, Key>(std::move(key), equal_elements{}, options);
}

/// A snapshot of `T` keyed by `key`, changed by `same` (a version projection or an equality predicate).
template <class T, class Key, class Same, detail::not_options_t<Same> = 0>
snapshot<T, Key, Same> make_snapshot(Key key, Same same, const diff_options& options = {}) {
  return snapshot<T, Key, Same>(std::move(key), std::move(same), options);
}

/// A snapshot of the records of `T` that satisfy `filter`.
template <class T, class Filter, class Key>
snapshot<T, Key, equal_elements, Filter> make_filtered_snapshot(Filter filter, Key key,
                                                                const diff_options& options = {}) {
  return snapshot<T, Key, equal_elements, Filter>(std::move(key), equal_elements{}, options, std::move(filter));
}

/// A snapshot of the records of `T` that satisfy `filter`, changed by `same`.
template <class T, class Filter, class Key, class Same, detail::not_options_t<Same> = 0>
snapshot<T, Key, Same, Filter> make_filtered_snapshot(Filter filter, Key key, Same same,
                                                      const diff_options& options = {}) {
  return snapshot<T, Key, Same, Filter>(std::move(key), std::move(same), options, std::move(filter));
}


POLLSTER_NAMESPACE_END
