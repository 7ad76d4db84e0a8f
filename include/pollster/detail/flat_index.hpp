// SPDX-License-Identifier: MIT
#pragma once

#include "config.hpp"

#include <cstddef>  // size_t
#include <cstdint>  // uint32_t, uint64_t
#include <vector>   // vector

POLLSTER_NAMESPACE_BEGIN
namespace detail {

/// splitmix64's finaliser. libstdc++'s std::hash<integer> is the identity, and sequential or strided ids would pile
/// up in a power-of-two table without it.
constexpr std::uint64_t mix_hash(std::uint64_t h) noexcept {
  h ^= h >> 30U;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27U;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31U;
  return h;
}

/// Asks the cache for the lines holding [address, address + size) (first and last line: enough for a record).
inline void prefetch_bytes(const void* address, std::size_t size) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  const char* first = static_cast<const char*>(address);
  __builtin_prefetch(first);
  if (size > 1) __builtin_prefetch(first + size - 1);
#else
  (void)address;
  (void)size;
#endif
}

/// An open-addressing set of 32-bit handles (linear probing, power-of-two capacity, load at most 3/4). It stores no
/// keys and no hashes: the owner says how to hash a handle and how to compare one with a key, so a million-record
/// index costs 4 bytes per slot (5.3 to 10.7 bytes per handle) instead of a node and an allocation per record.
/// Handle 0 marks an empty slot; owners store `index + 1`.
class flat_index {
 public:
  /// Room for `expected` handles without growing.
  explicit flat_index(std::size_t expected) { slots_.assign(capacity_for(expected), 0U); }

  /// The slot holding a handle that `matches`, or the empty slot where that handle belongs. Write a handle to an
  /// empty slot with `occupy()`, overwrite a found one in place.
  template <class Matches>
  std::uint32_t* find(std::uint64_t hash, Matches&& matches) noexcept {
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t at = static_cast<std::size_t>(hash) & mask;; at = (at + 1) & mask) {
      std::uint32_t& slot = slots_[at];
      if (slot == 0U || matches(slot)) return &slot;
    }
  }

  /// Hints the cache about the slot `hash` starts at (lookups in a loop issue it a few iterations ahead).
  void prefetch(std::uint64_t hash) const noexcept { prefetch_bytes(&slots_[home(hash)], sizeof(std::uint32_t)); }

  /// The handle in the slot `hash` starts at (0 if empty): usually the one a lookup will compare with, so a loop
  /// can prefetch that record too.
  std::uint32_t first_probe(std::uint64_t hash) const noexcept { return slots_[home(hash)]; }

  /// The handle `step` slots after the one `hash` starts at (0 if empty): the rest of a short probe chain, whose
  /// records a loop can prefetch as well (they share the first slot's cache line most of the time).
  std::uint32_t probe(std::uint64_t hash, std::size_t step) const noexcept {
    return slots_[(home(hash) + step) & (slots_.size() - 1)];
  }

  /// Writes `handle` into the empty `slot` returned by `find()`; grows (rehashing every handle through `hash_of`)
  /// when the load would pass 3/4. Returns false if it grew, in which case earlier slot pointers are stale.
  template <class HashOf>
  bool occupy(std::uint32_t* slot, std::uint32_t handle, HashOf&& hash_of) {
    *slot = handle;
    ++size_;
    if (size_ * 4 <= slots_.size() * 3) return true;
    std::vector<std::uint32_t> old(slots_.size() * 2, 0U);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (const std::uint32_t moving : old) {
      if (moving == 0U) continue;
      std::size_t at = static_cast<std::size_t>(hash_of(moving)) & mask;
      while (slots_[at] != 0U) at = (at + 1) & mask;
      slots_[at] = moving;
    }
    return false;
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return slots_.size(); }
  std::size_t bytes() const noexcept { return slots_.capacity() * sizeof(std::uint32_t); }

  /// The smallest power of two that holds `expected` handles at a load of at most 3/4 (and at least 16 slots).
  static std::size_t capacity_for(std::size_t expected) noexcept {
    std::size_t capacity = 16;
    while (capacity / 4 * 3 < expected) capacity *= 2;
    return capacity;
  }

 private:
  std::size_t home(std::uint64_t hash) const noexcept { return static_cast<std::size_t>(hash) & (slots_.size() - 1); }

  std::vector<std::uint32_t> slots_;
  std::size_t size_ = 0;
};

}  // namespace detail
POLLSTER_NAMESPACE_END
