// SPDX-License-Identifier: MIT
#pragma once

#include "config.hpp"

#include <cstddef>  // size_t
#include <cstdint>  // uint32_t, uint64_t, uintptr_t
#include <ctime>    // time (hash_seed)
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

/// A per-process value mixed into every index hash, so that keys chosen to pile up in one probe chain under the
/// public mix_hash (ids from an untrusted API) do not pile up here. Taken from where ASLR put this process's data and
/// stack and from the time: not cryptographic, which is why the indexes also bound their probes (see the differ).
inline std::uint64_t hash_seed() noexcept {
  static const std::uint64_t seed = [] {
    const int on_the_stack = 0;
    std::uint64_t mixed = mix_hash(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&seed)));
    mixed = mix_hash(mixed ^ static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&on_the_stack)));
    return mix_hash(mixed ^ static_cast<std::uint64_t>(std::time(nullptr)));
  }();
  return seed;
}

/// The hash an index keeps for a key whose std::hash is `h`.
inline std::uint64_t seeded_hash(std::uint64_t h, std::uint64_t seed) noexcept { return mix_hash(h ^ seed); }

/// How many probe steps past their first slot all lookups and insertions of one diff may take before the differ
/// decides it is being flooded (keys whose hashes collide) and changes path. Linear probing at a load of at most 3/4
/// takes 1.5 extra steps per operation on average, and at most 7/8 (the snapshot's index) 4; flooded, the steps
/// grow with the square of the records (40 000 colliding keys: 8 * 10^8).
constexpr std::size_t probe_budget(std::size_t operations) noexcept {
  return operations > (~std::size_t{0} - 1024) / 16 ? ~std::size_t{0} : 16 * operations + 1024;
}

/// Asks the cache for the lines holding [address, address + size) (first and last line: enough for a record).
inline void prefetch_bytes(const void* address, std::size_t size) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  const char* first = static_cast<const char*>(address);
  __builtin_prefetch(first);
  if (size > 1) __builtin_prefetch(first + size - 1);
  // GCC 12 deems a function whose only effect is a prefetch `const`, and deletes the calls to it that it has not
  // inlined yet (the differ's prefetching lambdas: none of their record prefetches reached the binary). An empty
  // volatile asm is an effect it keeps, and costs no instruction.
  __asm__ volatile("" : : "r"(first));
#else
  (void)address;
  (void)size;
#endif
}

/// An open-addressing set of 32-bit handles (linear probing, power-of-two capacity, load at most 3/4). It stores no
/// keys and no full hashes: the owner says how to hash a handle and how to compare one with a key, so a million-record
/// index costs 4 bytes per slot (5.3 to 10.7 bytes per handle) instead of a node and an allocation per record.
/// Handle 0 marks an empty slot; owners store `index + 1`.
///
/// Built with the largest handle it will hold, the index keeps a tag in the slot bits that handle never needs: the
/// top bits of the hash. A lookup then asks the owner to compare only slots whose tag matches, and for the differ
/// that comparison reads a record (a cache miss in a large snapshot), so most of those misses go away for free. A
/// slot holds an *entry*, `handle | tag`: write `entry(hash, handle)`, read `handle_of(*slot)`. Without a largest
/// handle there is no tag and an entry is just the handle.
class flat_index {
 public:
  /// Room for `expected` handles without growing; no tags.
  explicit flat_index(std::size_t expected) { slots_.assign(capacity_for(expected), 0U); }

  /// Room for `expected` handles without growing, each at most `max_handle`, tagged with the bits above it.
  flat_index(std::size_t expected, std::uint32_t max_handle) : flat_index(expected) {
    std::uint32_t width = 1;
    while (width < 32U && (max_handle >> width) != 0U) ++width;
    handle_mask_ = width >= 32U ? 0xFFFFFFFFU : (std::uint32_t{1} << width) - 1U;
  }

  /// What a slot holds for `handle`, whose key hashes to `hash`.
  std::uint32_t entry(std::uint64_t hash, std::uint32_t handle) const noexcept { return handle | tag_of(hash); }
  /// The handle in a slot's entry.
  std::uint32_t handle_of(std::uint32_t entry) const noexcept { return entry & handle_mask_; }

  /// The slot holding a handle that `matches` (called with the handle, and only when the slot's tag fits `hash`),
  /// or the empty slot where that handle belongs. Write an entry to an empty slot with `occupy()`, overwrite a
  /// found one in place.
  /// `matches` is the owner's code (it compares keys) and may throw; the index is unchanged then.
  template <class Matches>
  std::uint32_t* find(std::uint64_t hash, Matches&& matches) {
    const std::size_t mask = slots_.size() - 1;
    const std::uint32_t tag = tag_of(hash);
    for (std::size_t at = static_cast<std::size_t>(hash) & mask;; at = (at + 1) & mask, ++probes_) {
      std::uint32_t& slot = slots_[at];
      if (slot == 0U || ((slot & ~handle_mask_) == tag && matches(slot & handle_mask_))) return &slot;
    }
  }

  /// Hints the cache about the slot `hash` starts at (lookups in a loop issue it a few iterations ahead).
  void prefetch(std::uint64_t hash) const noexcept { prefetch_bytes(&slots_[home(hash)], sizeof(std::uint32_t)); }

  /// The handle in the slot `hash` starts at (0 if empty): usually the one a lookup will compare with, so a loop
  /// can prefetch that record too.
  std::uint32_t first_probe(std::uint64_t hash) const noexcept { return handle_of(slots_[home(hash)]); }

  /// The handle `step` slots after the one `hash` starts at (0 if empty): the rest of a short probe chain, whose
  /// records a loop can prefetch as well (they share the first slot's cache line most of the time).
  std::uint32_t probe(std::uint64_t hash, std::size_t step) const noexcept {
    return handle_of(slots_[(home(hash) + step) & (slots_.size() - 1)]);
  }

  /// The first handle among the next `steps` slots of `hash`'s chain whose tag fits `hash`, or 0 when the chain
  /// ends first: the one record a lookup will most likely compare with, for a loop to prefetch. Untagged, the
  /// first handle of the chain.
  std::uint32_t candidate(std::uint64_t hash, std::size_t steps) const noexcept {
    const std::size_t mask = slots_.size() - 1;
    const std::uint32_t tag = tag_of(hash);
    std::size_t at = home(hash);
    for (std::size_t step = 0; step < steps; ++step, at = (at + 1) & mask) {
      const std::uint32_t slot = slots_[at];
      if (slot == 0U) return 0U;
      if ((slot & ~handle_mask_) == tag) return slot & handle_mask_;
    }
    return 0U;
  }

  /// Writes `entry` into the empty `slot` returned by `find()`; grows (rehashing every handle through `hash_of`)
  /// when the load would pass 3/4. Returns false if it grew, in which case earlier slot pointers are stale.
  template <class HashOf>
  bool occupy(std::uint32_t* slot, std::uint32_t entry, HashOf&& hash_of) {
    *slot = entry;
    ++size_;
    if (size_ * 4 <= slots_.size() * 3) return true;
    std::vector<std::uint32_t> old(slots_.size() * 2, 0U);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (const std::uint32_t moving : old) {
      if (moving == 0U) continue;
      std::size_t at = static_cast<std::size_t>(hash_of(moving & handle_mask_)) & mask;
      for (; slots_[at] != 0U; at = (at + 1) & mask) ++probes_;
      slots_[at] = moving;
    }
    return false;
  }

  /// The probe steps past the first slot that all lookups, insertions and growth took so far.
  std::size_t probes() const noexcept { return probes_; }
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
  // The hash's top bits, where the home slot (its low bits) never looks.
  std::uint32_t tag_of(std::uint64_t hash) const noexcept {
    return static_cast<std::uint32_t>(hash >> 32U) & ~handle_mask_;
  }

  std::vector<std::uint32_t> slots_;
  std::size_t size_ = 0;
  std::size_t probes_ = 0;
  std::uint32_t handle_mask_ = 0xFFFFFFFFU;
};

}  // namespace detail
POLLSTER_NAMESPACE_END
