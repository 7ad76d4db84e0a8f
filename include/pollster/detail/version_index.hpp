// SPDX-License-Identifier: MIT
#pragma once

#include "config.hpp"
#include "flat_index.hpp"    // seeded_hash, hash_seed, prefetch_bytes
#include "found_events.hpp"  // found_events, match_bits

#include <cstddef>      // size_t
#include <cstdint>      // uint8_t, uint32_t, uint64_t
#include <cstring>      // memset, memcpy
#include <functional>   // hash, invoke
#include <memory>       // unique_ptr
#include <type_traits>  // remove_cv_t, remove_reference_t
#include <utility>      // move

POLLSTER_NAMESPACE_BEGIN
namespace detail {

/// An index of a list by key that also holds each record's version, for keys and versions that are small values
/// (integers, enums). A lookup decides "unchanged" from the index alone, without reading the old record; only changed
/// and removed records are read. The one-shot diff builds one per call for such keys; a `snapshot` keeps one from
/// one update to the next.
///
/// Open addressing with linear probing over two arrays: one byte of metadata per slot, and the entries (key, version,
/// position in the list), which stay uninitialised until their slot is taken, so that emptying the index zeroes one
/// byte per slot, not 25. The metadata byte of a taken slot holds a taken bit, a generation bit and 6 bits of the
/// key's hash (a tag): a probe reads an entry only when the tag fits. During an update the old list's entries carry
/// one generation and the new list's the other, so an entry is switched to the new record the moment its key is
/// matched, nothing has to be renumbered afterwards, and the old entries left when the update is done are the
/// removals. Power-of-two capacity, load at most 7/8, erasure by backward shift.
template <class K, class V>
class version_index {
 public:
  struct entry {
    K key;
    V version;
    std::uint32_t position;
  };

  static constexpr std::uint8_t taken_bit = 0x80U;
  static constexpr std::uint8_t generation_bit = 0x40U;
  static constexpr std::uint8_t tag_bits = 0x3FU;

  /// The arrays and mask of a home slot, which a loop of lookups keeps in registers (refreshed when the index grows).
  struct slots {
    std::uint8_t* meta;
    entry* entries;
    std::size_t mask;
  };

  version_index() = default;
  version_index(version_index&&) noexcept = default;
  version_index& operator=(version_index&&) noexcept = default;
  version_index(const version_index& other) : size_(other.size_), probes_(other.probes_), seed_(other.seed_) {
    if (other.capacity_ == 0) return;
    allocate(other.capacity_);
    std::memcpy(meta_.get(), other.meta_.get(), capacity_);
    std::memcpy(entries_.get(), other.entries_.get(), capacity_ * sizeof(entry));
  }
  version_index& operator=(const version_index& other) {
    if (this != &other) *this = version_index(other);
    return *this;
  }

  /// The index's hash of `key`: seeded (see hash_seed), since the keys may come from an untrusted list.
  std::uint64_t hash(const K& key) const noexcept {
    return seeded_hash(static_cast<std::uint64_t>(std::hash<K>{}(key)), seed_);  // libstdc++: integers hash to themselves
  }
  /// The metadata byte of a key with `hash`, in generation 0: taken, and the hash's top 6 bits (the home slot is
  /// taken from its low bits).
  static std::uint8_t meta_of(std::uint64_t hash) noexcept {
    return static_cast<std::uint8_t>(taken_bit | static_cast<std::uint8_t>(hash >> 58U));
  }

  /// Empties the index and sizes it for `expected` entries at a load of at most 7/8.
  void clear(std::size_t expected) { clear_with_capacity(capacity_for(expected)); }

  /// Empties the index and gives it `capacity` slots (a power of two of at least 16).
  void clear_with_capacity(std::size_t capacity) {
    if (capacity != capacity_) allocate(capacity);
    std::memset(meta_.get(), 0, capacity_);
    size_ = 0;
    probes_ = 0;
  }

  /// Empties the index and returns all its memory. Call `clear()` before the next lookup.
  void release() noexcept {
    meta_.reset();
    entries_.reset();
    capacity_ = 0;
    grow_at_ = 0;
    size_ = 0;
  }

  /// Makes room for `expected` entries without growing during the lookups that follow.
  void reserve(std::size_t expected) {
    if (capacity_for(expected) > capacity_) rehash(capacity_for(expected));
  }

  slots view() noexcept { return {meta_.get(), entries_.get(), capacity_ - 1}; }

  /// The slot holding `key`, or the empty slot where it belongs; adds the steps past the home slot to `probes`. `tag`
  /// is meta_of(key_hash).
  static std::size_t probe(const slots& at_hand, std::uint64_t key_hash, std::uint8_t tag, const K& key,
                           std::size_t& probes) noexcept {
    std::size_t at = static_cast<std::size_t>(key_hash) & at_hand.mask;
    for (;;) {
      const std::uint8_t meta = at_hand.meta[at];
      if (meta == 0U) return at;
      if ((meta & ~generation_bit) == tag && at_hand.entries[at].key == key) return at;
      at = (at + 1) & at_hand.mask;
      ++probes;
    }
  }
  std::size_t find(std::uint64_t key_hash, const K& key) noexcept {
    return probe(view(), key_hash, meta_of(key_hash), key, probes_);
  }

  /// Hints the cache about the slot `key_hash` starts at: its entry (its metadata byte is most likely cached).
  static void prefetch(const slots& at_hand, std::uint64_t key_hash) noexcept {
    prefetch_bytes(at_hand.entries + (static_cast<std::size_t>(key_hash) & at_hand.mask), 1);
  }

  /// Takes the empty slot `at` returned by `probe()` in `at_hand` for a key whose metadata byte is `tag |
  /// generation`. The caller counts the slots it takes and hands the count to `note_taken()` before the index may grow.
  static void occupy(const slots& at_hand, std::size_t at, std::uint8_t meta, const K& key, const V& version,
                     std::size_t position) noexcept {
    at_hand.meta[at] = meta;
    entry& e = at_hand.entries[at];
    e.key = key;
    e.version = version;
    e.position = static_cast<std::uint32_t>(position);
  }
  /// How many slots `occupy()` may take before the load passes 7/8; then `note_taken(that many)` grows the index.
  std::size_t room() const noexcept { return grow_at_ - size_ + 1; }
  /// Accounts for `count` slots taken by `occupy()`, growing the index if the load passed 7/8. Returns false if it
  /// grew, which makes slot numbers and earlier `view()`s stale.
  bool note_taken(std::size_t count) {
    size_ += count;
    if (size_ <= grow_at_) return true;
    rehash(capacity_ * 2);
    return false;
  }

  /// Empties the taken slot `at`, shifting back the rest of its run so that no lookup meets an empty slot before its
  /// key.
  void erase(std::size_t at) noexcept {
    const std::size_t mask = capacity_ - 1;
    std::size_t hole = at;
    for (std::size_t next = (hole + 1) & mask; meta_[next] != 0U; next = (next + 1) & mask, ++probes_) {
      const std::size_t wanted = static_cast<std::size_t>(hash(entries_[next].key)) & mask;
      // The entry at `next` may fill the hole unless its home lies cyclically in (hole, next].
      const bool stays = hole <= next ? (hole < wanted && wanted <= next) : (hole < wanted || wanted <= next);
      if (stays) continue;
      meta_[hole] = meta_[next];
      entries_[hole] = entries_[next];
      hole = next;
    }
    meta_[hole] = 0U;
    --size_;
  }

  /// Calls `use(position)` for the entry of every taken slot of `generation`, in slot order (8 slots at a time).
  template <class Use>
  void for_each_of_generation(std::uint8_t generation, Use&& use) const {
    constexpr std::uint64_t taken_bits = 0x8080808080808080ULL;
    const std::uint64_t wanted = generation != 0U ? 0x4040404040404040ULL : 0U;
    for (std::size_t group = 0; group < capacity_; group += 8) {
      std::uint64_t word = 0;
      std::memcpy(&word, meta_.get() + group, 8);  // capacity_ is a multiple of 16
      // A taken slot of the other generation differs from `wanted` in bit 6: keep the taken slots that do not.
      const std::uint64_t same_generation = ~((word ^ wanted) << 1U) & taken_bits;
      std::uint64_t hits = word & same_generation;
      while (hits != 0U) {
        const std::size_t byte = lowest_set_bit(hits) / 8;
        use(static_cast<std::size_t>(entries_[group + byte].position));
        hits &= hits - 1U;
      }
    }
  }

  /// The probe steps past the home slot that erasures and growth (and lookups without a counter of their own)
  /// took since the last `clear()` or `reset_probes()`.
  std::size_t probes() const noexcept { return probes_; }
  void reset_probes() noexcept { probes_ = 0; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t bytes() const noexcept { return capacity_ * (1 + sizeof(entry)); }
  /// The entry of a taken slot.
  const entry& at(std::size_t slot) const noexcept { return entries_[slot]; }

  /// The smallest power of two that holds `expected` entries at a load of at most 7/8 (and at least 16 slots).
  static std::size_t capacity_for(std::size_t expected) noexcept {
    std::size_t capacity = 16;
    while (capacity / 8 * 7 < expected) capacity *= 2;
    return capacity;
  }

 private:
  static std::size_t lowest_set_bit(std::uint64_t word) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    return static_cast<std::size_t>(__builtin_ctzll(word));
#else
    std::size_t at = 0;
    while ((word & 1U) == 0U) {
      word >>= 1U;
      ++at;
    }
    return at;
#endif
  }

  // Uninitialised arrays (`new T[n]` leaves trivial types alone): the caller zeroes the metadata.
  void allocate(std::size_t capacity) {
    std::unique_ptr<std::uint8_t[]> meta(new std::uint8_t[capacity]);
    std::unique_ptr<entry[]> entries(new entry[capacity]);
    meta_ = std::move(meta);
    entries_ = std::move(entries);
    capacity_ = capacity;
    grow_at_ = capacity / 8 * 7;
  }

  void rehash(std::size_t capacity) {
    std::unique_ptr<std::uint8_t[]> old_meta = std::move(meta_);
    std::unique_ptr<entry[]> old_entries = std::move(entries_);
    const std::size_t old_capacity = capacity_;
    try {
      allocate(capacity);
    } catch (...) {
      meta_ = std::move(old_meta);  // out of memory: the index stays as it was
      entries_ = std::move(old_entries);
      throw;
    }
    std::memset(meta_.get(), 0, capacity_);
    const std::size_t mask = capacity_ - 1;
    for (std::size_t from = 0; from < old_capacity; ++from) {
      if (old_meta[from] == 0U) continue;
      std::size_t at = static_cast<std::size_t>(hash(old_entries[from].key)) & mask;
      for (; meta_[at] != 0U; at = (at + 1) & mask) ++probes_;
      meta_[at] = old_meta[from];
      entries_[at] = old_entries[from];
    }
  }

  std::unique_ptr<std::uint8_t[]> meta_;  // none until the first clear(): a lookup needs clear() or reserve() first
  std::unique_ptr<entry[]> entries_;
  std::size_t capacity_ = 0;
  std::size_t grow_at_ = 0;  // the size past which the load passes 7/8
  std::size_t size_ = 0;
  std::size_t probes_ = 0;
  std::uint64_t seed_ = hash_seed();
};

/// Indexes `list` into the empty `index`, in `generation`. Stops at the first key `list` repeats (`stopped_at`).
/// Hashes and prefetches the entries of records `ahead` positions early when `Prefetching`.
template <bool Prefetching, class K, class V, class View, class Key, class Version>
index_end index_list(version_index<K, V>& index, std::uint8_t generation, const View& list, const Key& key_projection,
                     const Version& version_projection, std::size_t budget, std::size_t& probes,
                     std::size_t& stopped_at) {
  using index_type = version_index<K, V>;
  constexpr std::size_t ahead = 16;
  // Local copies the compiler keeps in registers (a member pointer is an offset; the arrays move only on growth).
  const Key key = key_projection;
  const Version version = version_projection;
  typename index_type::slots at_hand = index.view();
  std::size_t room = index.room();
  std::size_t taken = 0;
  const std::size_t size = list.size();
  const auto first = list.begin();
  auto record = first;
  std::uint64_t hashes[ahead] = {};
  if constexpr (Prefetching) {
    for (std::size_t at = 0; at < size && at < ahead; ++at) {
      hashes[at] = index.hash(std::invoke(key, first[at]));
      index_type::prefetch(at_hand, hashes[at]);
    }
  }
  for (std::size_t at = 0; at < size; ++at, ++record) {
    const K k = std::invoke(key, *record);
    std::uint64_t hash = 0;
    if constexpr (Prefetching) {
      hash = hashes[at % ahead];
      if (at + ahead < size) {
        hashes[at % ahead] = index.hash(std::invoke(key, record[ahead]));
        index_type::prefetch(at_hand, hashes[at % ahead]);
      }
    } else {
      hash = index.hash(k);
    }
    const std::uint8_t tag = index_type::meta_of(hash);
    const std::size_t slot = index_type::probe(at_hand, hash, tag, k, probes);
    if (probes > budget) {
      index.note_taken(taken);
      return index_end::flooded;
    }
    if (at_hand.meta[slot] != 0U) {
      index.note_taken(taken);
      stopped_at = at;
      return index_end::repeated;
    }
    index_type::occupy(at_hand, slot, static_cast<std::uint8_t>(tag | generation), k, std::invoke(version, *record),
                       at);
    if (++taken == room) {
      index.note_taken(taken);
      taken = 0;
      at_hand = index.view();
      room = index.room();
    }
  }
  index.note_taken(taken);
  return index_end::done;
}

/// Looks every record of `after` up in `index`, whose entries of `old_generation` stand for the records of the old
/// list `before_list`. A hit switches the entry to the new record and generation (so a key repeated in `after` is caught: it finds
/// the new generation), and records a change when the versions differ (and an unchanged match when
/// `record_unchanged`); a miss adds an entry for the new record and records an addition. `hits` counts the old
/// entries matched: the old entries left are the removals (version_index::for_each_of_generation). Stops at a key
/// `after` repeats (`stopped_at`) and when `probes` passes `budget`, leaving the index half switched. With `Keep`, a
/// hit also rewrites the entry's version and position for the new record (a snapshot keeps the index for the next
/// update); without, only its metadata byte changes, so a one-shot diff dirties no entry it merely looks up.
template <bool Prefetching, bool Keep, class K, class V, class BeforeView, class AfterView, class Key, class Version>
index_end match_list(version_index<K, V>& index, std::uint8_t old_generation, const BeforeView& before_list,
                     const AfterView& after,
                     const Key& key_projection, const Version& version_projection, bool record_unchanged,
                     std::size_t budget, std::size_t& probes, std::size_t& hits,
                     found_events<std::remove_cv_t<std::remove_reference_t<decltype(after[0])>>>& found,
                     std::size_t& stopped_at) {
  using index_type = version_index<K, V>;
  constexpr std::size_t ahead = 16;
  const Key key = key_projection;
  const Version version = version_projection;
  typename index_type::slots at_hand = index.view();
  std::size_t room = index.room();
  std::size_t taken = 0;
  using T = std::remove_cv_t<std::remove_reference_t<decltype(after[0])>>;
  typename found_events<T>::writer out(found);
  const auto before_first = before_list.begin();
  const auto new_generation = static_cast<std::uint8_t>(old_generation ^ index_type::generation_bit);
  const std::size_t size = after.size();
  const auto first = after.begin();
  auto record = first;
  std::uint64_t hashes[ahead] = {};
  if constexpr (Prefetching) {
    for (std::size_t at = 0; at < size && at < ahead; ++at) {
      hashes[at] = index.hash(std::invoke(key, first[at]));
      index_type::prefetch(at_hand, hashes[at]);
    }
  }
  for (std::size_t a = 0; a < size; ++a, ++record) {
    const K k = std::invoke(key, *record);
    const V v = std::invoke(version, *record);
    std::uint64_t hash = 0;
    if constexpr (Prefetching) {
      hash = hashes[a % ahead];
      if (a + ahead < size) {
        hashes[a % ahead] = index.hash(std::invoke(key, record[ahead]));
        index_type::prefetch(at_hand, hashes[a % ahead]);
      }
    } else {
      hash = index.hash(k);
    }
    const std::uint8_t tag = index_type::meta_of(hash);
    const std::size_t slot = index_type::probe(at_hand, hash, tag, k, probes);
    if (probes > budget) {
      index.note_taken(taken);
      return index_end::flooded;
    }
    const std::uint8_t meta = at_hand.meta[slot];
    if (meta == 0U) {
      out.added(*record);
      index_type::occupy(at_hand, slot, static_cast<std::uint8_t>(tag | new_generation), k, v, a);
      if (++taken == room) {
        index.note_taken(taken);
        taken = 0;
        at_hand = index.view();
        room = index.room();
      }
      continue;
    }
    if ((meta & index_type::generation_bit) != old_generation) {
      index.note_taken(taken);
      stopped_at = a;
      return index_end::repeated;
    }
    auto& e = at_hand.entries[slot];
    const std::size_t b = e.position;
    const bool differs = !(e.version == v);
    at_hand.meta[slot] = static_cast<std::uint8_t>(meta ^ index_type::generation_bit);  // now the new record's
    if constexpr (Keep) {
      e.version = v;
      e.position = static_cast<std::uint32_t>(a);
    }
    ++hits;
    if (differs || record_unchanged) out.matched(*record, before_first[b], differs);
  }
  index.note_taken(taken);
  return index_end::done;
}

}  // namespace detail
POLLSTER_NAMESPACE_END
