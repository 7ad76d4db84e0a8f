// SPDX-License-Identifier: MIT
#pragma once

#include "config.hpp"
#include "flat_index.hpp"  // mix_hash

#include <cstddef>     // size_t
#include <cstdint>     // uint32_t, uint64_t
#include <functional>  // hash
#include <vector>      // vector

POLLSTER_NAMESPACE_BEGIN
namespace detail {

/// The index a `snapshot` keeps from one update to the next when its key and its version are small values (integers,
/// enums): each entry holds the key, the version and the record's position in the last list. A lookup then decides
/// "unchanged" from the entry alone, without reading the old record (a second cache miss per record at 100 000
/// records); only changed and removed records are read. Open addressing, linear probing, power-of-two capacity, load
/// at most 7/8 (entries compare keys in place, so a longer probe costs no record read), erasure by backward shift.
///
/// A handle is `position + 1` with a generation bit on top: during an update the old list's handles carry one value
/// of the bit and the new list's the other, so an entry can be switched to the new record the moment its key is
/// matched, and nothing has to be renumbered afterwards. Handle 0 marks an empty entry.
template <class K, class V>
class version_index {
 public:
  struct entry {
    K key{};
    V version{};
    std::uint32_t handle = 0;
  };

  static constexpr std::uint32_t generation_bit = 0x80000000U;

  /// The position a handle stands for.
  static constexpr std::size_t position(std::uint32_t handle) noexcept {
    return static_cast<std::size_t>((handle & ~generation_bit) - 1U);
  }
  /// The handle of `position` in the list of `generation` (0 or `generation_bit`).
  static constexpr std::uint32_t handle_of(std::size_t position, std::uint32_t generation) noexcept {
    return static_cast<std::uint32_t>(position + 1U) | generation;
  }

  /// The index's hash of `key`: seeded (see hash_seed), since the keys may come from an untrusted list.
  std::uint64_t hash(const K& key) const noexcept {
    return seeded_hash(static_cast<std::uint64_t>(std::hash<K>{}(key)), seed_);  // libstdc++: integers hash to themselves
  }

  /// Empties the index and sizes it for `expected` entries.
  void clear(std::size_t expected) {
    const std::size_t capacity = capacity_for(expected);
    if (entries_.capacity() > 2 * capacity) {
      std::vector<entry>(capacity).swap(entries_);  // assign() would keep the larger allocation
    } else {
      entries_.assign(capacity, entry{});
    }
    size_ = 0;
    probes_ = 0;
  }

  /// Empties the index and returns all its memory. Call `clear()` before the next lookup.
  void release() noexcept {
    std::vector<entry>().swap(entries_);
    size_ = 0;
  }

  /// Makes room for `expected` entries without growing during the lookups that follow.
  void reserve(std::size_t expected) {
    if (capacity_for(expected) > entries_.size()) rehash(capacity_for(expected));
  }

  /// The entry holding `key`, or the empty entry where it belongs.
  entry* find(std::uint64_t key_hash, const K& key) noexcept {
    const std::size_t mask = entries_.size() - 1;
    for (std::size_t at = static_cast<std::size_t>(key_hash) & mask;; at = (at + 1) & mask, ++probes_) {
      entry& e = entries_[at];
      if (e.handle == 0U || e.key == key) return &e;
    }
  }

  /// Hints the cache about the entry `key_hash` starts at (a loop of lookups issues it some iterations ahead).
  void prefetch(std::uint64_t key_hash) const noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(&entries_[static_cast<std::size_t>(key_hash) & (entries_.size() - 1)]);
#else
    (void)key_hash;
#endif
  }

  /// Fills the empty entry `e` returned by `find()`, growing when the load would pass 7/8 (which makes earlier entry
  /// pointers stale).
  void occupy(entry* e, const K& key, const V& version, std::uint32_t handle) {
    e->key = key;
    e->version = version;
    e->handle = handle;
    ++size_;
    if (size_ * 8 > entries_.size() * 7) rehash(entries_.size() * 2);
  }

  /// Empties the occupied entry `e` returned by `find()`, shifting back the rest of its run so that no lookup meets
  /// an empty entry before its key.
  void erase(entry* e) noexcept {
    const std::size_t mask = entries_.size() - 1;
    std::size_t hole = static_cast<std::size_t>(e - entries_.data());
    for (std::size_t at = (hole + 1) & mask; entries_[at].handle != 0U; at = (at + 1) & mask, ++probes_) {
      const std::size_t wanted = static_cast<std::size_t>(hash(entries_[at].key)) & mask;
      // The entry at `at` may fill the hole unless its home lies cyclically in (hole, at].
      const bool stays = hole <= at ? (hole < wanted && wanted <= at) : (hole < wanted || wanted <= at);
      if (stays) continue;
      entries_[hole] = entries_[at];
      hole = at;
    }
    entries_[hole] = entry{};
    --size_;
  }

  /// The probe steps past the first entry that lookups, erasures and growth took since the last `reset_probes()`.
  std::size_t probes() const noexcept { return probes_; }
  void reset_probes() noexcept { probes_ = 0; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return entries_.size(); }
  std::size_t bytes() const noexcept { return entries_.capacity() * sizeof(entry); }

  /// The smallest power of two that holds `expected` entries at a load of at most 7/8 (and at least 16 entries).
  static std::size_t capacity_for(std::size_t expected) noexcept {
    std::size_t capacity = 16;
    while (capacity / 8 * 7 < expected) capacity *= 2;
    return capacity;
  }

 private:
  void rehash(std::size_t capacity) {
    std::vector<entry> old(capacity);
    old.swap(entries_);
    const std::size_t mask = entries_.size() - 1;
    for (const entry& moving : old) {
      if (moving.handle == 0U) continue;
      std::size_t at = static_cast<std::size_t>(hash(moving.key)) & mask;
      for (; entries_[at].handle != 0U; at = (at + 1) & mask) ++probes_;
      entries_[at] = moving;
    }
  }

  std::vector<entry> entries_;  // empty until the first clear(): a lookup needs clear() or reserve() first
  std::size_t size_ = 0;
  std::size_t probes_ = 0;
  std::uint64_t seed_ = hash_seed();
};

}  // namespace detail
POLLSTER_NAMESPACE_END
