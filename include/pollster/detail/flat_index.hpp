// SPDX-License-Identifier: MIT
#pragma once

#include "config.hpp"
#include "found_events.hpp"  // found_events, match_bits, index_end

#include <cstddef>     // size_t
#include <functional>  // invoke
#include <memory>      // addressof
#include <type_traits>  // remove_cv_t, remove_reference_t
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

/// The hash an index keeps for a key whose std::hash is `h`: the two halves of the 128-bit product of `h ^ seed` and
/// an odd constant, folded (what boost::unordered_flat_map does to integer hashes): three instructions, and every bit
/// of the input reaches the low bits a table uses. Without 128-bit integers, splitmix64's finaliser.
inline std::uint64_t seeded_hash(std::uint64_t h, std::uint64_t seed) noexcept {
#if defined(__SIZEOF_INT128__)
  __extension__ typedef unsigned __int128 wide;  // __extension__: -Wpedantic knows no 128-bit integers
  const wide product = static_cast<wide>(h ^ seed) * 0x9E3779B97F4A7C15ULL;
  return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64U);
#else
  return mix_hash(h ^ seed);
#endif
}

/// How many probe steps past their first slot all lookups and insertions of one diff may take before the differ
/// decides it is being flooded (keys whose hashes collide) and changes path. Linear probing at a load of at most 3/4
/// takes 1.5 extra steps per operation on average, and at most 7/8 (the snapshot's index) 4; flooded, the steps
/// grow with the square of the records (40 000 colliding keys: 8 * 10^8).
constexpr std::size_t probe_budget(std::size_t operations) noexcept {
  return operations > (~std::size_t{0} - 1024) / 16 ? ~std::size_t{0} : 16 * operations + 1024;
}

/// Index lookups prefetch when the index (or, for an index of handles, the records) takes at least this much memory
/// (half a typical L2): below, everything is in cache and a prefetch costs instructions for nothing.
inline constexpr std::size_t prefetch_from_bytes = std::size_t{256} * 1024;

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
    return note_taken(1, hash_of);
  }

  /// The slots, the mask of a home slot and the handle bits, which a loop of lookups keeps in registers (refreshed
  /// when the index grows). A loop may write entries into empty slots itself, counting them for note_taken().
  std::uint32_t* data() noexcept { return slots_.data(); }
  std::size_t mask() const noexcept { return slots_.size() - 1; }
  std::uint32_t handle_mask() const noexcept { return handle_mask_; }
  /// How many empty slots a loop may fill before the load passes 3/4; then `note_taken(that many)` grows the index.
  std::size_t room() const noexcept { return slots_.size() / 4 * 3 - size_ + 1; }
  /// Accounts for `count` slots a loop filled, growing (rehashing every handle through `hash_of`) if the load passed
  /// 3/4. Returns false if it grew, which makes slot pointers and data() stale.
  template <class HashOf>
  bool note_taken(std::size_t count, HashOf&& hash_of) {
    size_ += count;
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

  /// The hash's top bits that the handles leave free, where the home slot (its low bits) never looks.
  std::uint32_t tag_of(std::uint64_t hash) const noexcept {
    return static_cast<std::uint32_t>(hash >> 32U) & ~handle_mask_;
  }

 private:
  std::size_t home(std::uint64_t hash) const noexcept { return static_cast<std::size_t>(hash) & (slots_.size() - 1); }

  std::vector<std::uint32_t> slots_;
  std::size_t size_ = 0;
  std::size_t probes_ = 0;
  std::uint32_t handle_mask_ = 0xFFFFFFFFU;
};

/// The one-shot diff through a flat_index of handles, for keys that are not small values (strings, say): the old
/// records go in (old record b as handle b + 1, tagged), then each new record is looked up: a slot whose tag fits
/// has its record's key compared with the new key, a hit sets the old record's bit in `matched` and records a
/// change when `changed(old, new)` says so, a miss adds the new record (handle size(before) + a + 1, so a key the new
/// list repeats is caught) and records an addition. The unset bits of `matched` are then the removals, in the old
/// order. Stops at a key a list repeats (`repeated`; `repeated_in_before` and `stopped_at` say where) and when
/// `probes` passes `budget`. With `Prefetching`, hashes and prefetches slots 16 records ahead and the one record
/// whose tag fits 8 records ahead.
template <bool Prefetching, class BeforeView, class AfterView, class Key, class HashOf, class Changed>
index_end match_through_handles(const BeforeView& before, const AfterView& after, const Key& key_projection,
                                const HashOf& hash_of, const Changed& changed, bool record_unchanged,
                                std::size_t budget, std::size_t& probes, match_bits& matched,
                                found_events<std::remove_cv_t<std::remove_reference_t<decltype(before[0])>>>& found,
                                bool& repeated_in_before, std::size_t& stopped_at) {
  constexpr std::size_t slot_ahead = 16;
  constexpr std::size_t record_ahead = 8;
  constexpr std::size_t chain_ahead = 4;
  const Key key = key_projection;
  const std::size_t before_size = before.size();
  const std::size_t after_size = after.size();
  flat_index index(before_size > after_size ? before_size : after_size,
                   static_cast<std::uint32_t>(before_size + after_size));
  std::uint32_t* slots = index.data();
  std::size_t mask = index.mask();
  const std::uint32_t handle_mask = index.handle_mask();
  const auto tag_of = [handle_mask](std::uint64_t hash) {
    return static_cast<std::uint32_t>(hash >> 32U) & ~handle_mask;
  };
  std::uint64_t* matched_words = matched.words();
  std::size_t room = index.room();
  std::size_t taken = 0;
  using T = std::remove_cv_t<std::remove_reference_t<decltype(before[0])>>;
  typename found_events<T>::writer out(found);
  const auto before_first = before.begin();
  const auto after_first = after.begin();
  const auto key_of = [&](std::uint32_t handle) -> decltype(auto) {
    const std::size_t at = handle - 1U;
    return at < before_size ? std::invoke(key, before_first[at]) : std::invoke(key, after_first[at - before_size]);
  };
  const auto rehash = [&](std::uint32_t handle) { return hash_of(key_of(handle)); };
  const auto account = [&] {
    if (++taken != room) return;
    index.note_taken(taken, rehash);
    taken = 0;
    slots = index.data();
    mask = index.mask();
    room = index.room();
  };
  const auto prefetch_slot = [&](std::uint64_t hash) {
    prefetch_bytes(slots + (static_cast<std::size_t>(hash) & mask), 1);
  };
  std::uint64_t hashes[slot_ahead] = {};

  // The old records go in.
  if constexpr (Prefetching) {
    for (std::size_t b = 0; b < before_size && b < slot_ahead; ++b) {
      hashes[b] = hash_of(std::invoke(key, before_first[b]));
      prefetch_slot(hashes[b]);
    }
  }
  auto old_record = before_first;
  for (std::size_t b = 0; b < before_size; ++b, ++old_record) {
    decltype(auto) k = std::invoke(key, *old_record);
    std::uint64_t hash = 0;
    if constexpr (Prefetching) {
      hash = hashes[b % slot_ahead];
      if (b + slot_ahead < before_size) {
        hashes[b % slot_ahead] = hash_of(std::invoke(key, old_record[slot_ahead]));
        prefetch_slot(hashes[b % slot_ahead]);
      }
    } else {
      hash = hash_of(k);
    }
    const std::uint32_t tag = tag_of(hash);
    std::size_t at = static_cast<std::size_t>(hash) & mask;
    for (std::uint32_t slot = slots[at]; slot != 0U; slot = slots[at]) {
      if ((slot & ~handle_mask) == tag && std::invoke(key, before_first[(slot & handle_mask) - 1U]) == k) {
        index.note_taken(taken, rehash);
        repeated_in_before = true;
        stopped_at = b;
        return index_end::repeated;
      }
      at = (at + 1) & mask;
      ++probes;
    }
    if (POLLSTER_UNLIKELY(probes > budget)) return index_end::flooded;
    slots[at] = static_cast<std::uint32_t>(b + 1) | tag;
    account();
  }

  // Each new record is looked up.
  const auto prefetch_candidate = [&](std::uint64_t hash) {
    const std::uint32_t tag = tag_of(hash);
    std::size_t at = static_cast<std::size_t>(hash) & mask;
    for (std::size_t step = 0; step < chain_ahead; ++step, at = (at + 1) & mask) {
      const std::uint32_t slot = slots[at];
      if (slot == 0U) return;
      if ((slot & ~handle_mask) != tag) continue;
      const std::size_t record = (slot & handle_mask) - 1U;
      if (record < before_size) prefetch_bytes(std::addressof(before_first[record]), sizeof(before_first[record]));
      return;
    }
  };
  if constexpr (Prefetching) {
    for (std::size_t a = 0; a < after_size && a < slot_ahead; ++a) {
      hashes[a] = hash_of(std::invoke(key, after_first[a]));
      prefetch_slot(hashes[a]);
    }
  }
  auto new_record = after_first;
  for (std::size_t a = 0; a < after_size; ++a, ++new_record) {
    decltype(auto) k = std::invoke(key, *new_record);
    std::uint64_t hash = 0;
    if constexpr (Prefetching) {
      hash = hashes[a % slot_ahead];
      if (a + slot_ahead < after_size) {
        hashes[a % slot_ahead] = hash_of(std::invoke(key, new_record[slot_ahead]));
        prefetch_slot(hashes[a % slot_ahead]);
      }
      if (a + record_ahead < after_size) prefetch_candidate(hashes[(a + record_ahead) % slot_ahead]);
    } else {
      hash = hash_of(k);
    }
    const std::uint32_t tag = tag_of(hash);
    std::size_t at = static_cast<std::size_t>(hash) & mask;
    std::size_t hit = ~std::size_t{0};
    for (std::uint32_t slot = slots[at]; slot != 0U; slot = slots[at]) {
      if ((slot & ~handle_mask) == tag) {
        const std::size_t record = (slot & handle_mask) - 1U;
        if (record < before_size) {
          if (std::invoke(key, before_first[record]) == k) {
            hit = record;
            break;
          }
        } else if (std::invoke(key, after_first[record - before_size]) == k) {
          index.note_taken(taken, rehash);
          stopped_at = a;
          return index_end::repeated;
        }
      }
      at = (at + 1) & mask;
      ++probes;
    }
    if (POLLSTER_UNLIKELY(probes > budget)) return index_end::flooded;
    if (hit == ~std::size_t{0}) {
      out.added(*new_record);
      slots[at] = static_cast<std::uint32_t>(before_size + a + 1) | tag;
      account();
      continue;
    }
    std::uint64_t& matched_word = matched_words[hit / 64];
    const std::uint64_t matched_bit = std::uint64_t{1} << (hit % 64);
    if ((matched_word & matched_bit) != 0U) {  // matched by an earlier new record with the same key
      index.note_taken(taken, rehash);
      stopped_at = a;
      return index_end::repeated;
    }
    matched_word |= matched_bit;
    const bool differs = changed(before_first[hit], *new_record);
    if (differs || record_unchanged) out.matched(*new_record, before_first[hit], differs);
  }
  index.note_taken(taken, rehash);
  matched.recount();
  return index_end::done;
}

}  // namespace detail
POLLSTER_NAMESPACE_END
