// SPDX-License-Identifier: MIT
#pragma once

// The runner's node arena: blocks carved from slabs, one free list per size, slabs given back when they empty.

#include "config.hpp"

#include <algorithm>  // upper_bound
#include <cstddef>    // size_t
#include <mutex>      // mutex, lock_guard
#include <new>        // operator new, placement new, align_val_t
#include <vector>     // vector

// Under AddressSanitizer the node arena poisons the blocks it holds, so a use after free is still caught although
// the memory does not go back to malloc.
#if defined(__SANITIZE_ADDRESS__)
#define POLLSTER_ASAN_POISON 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POLLSTER_ASAN_POISON 1
#endif
#endif
#ifdef POLLSTER_ASAN_POISON
#include <sanitizer/asan_interface.h>  // __asan_poison_memory_region
#endif

POLLSTER_NAMESPACE_BEGIN
namespace detail {

/// Blocks for the runner's nodes, carved from 16 KiB slabs with one free list per size: a node costs its own
/// size rounded to 8 bytes, with no malloc header and no rounding to 16, and a finished poller's block serves the
/// next node of its size. Each slab counts its blocks in use, so memory goes back to operator delete when a fleet
/// drains: once the empty slabs add up to auto_trim_bytes (1 MiB) and to as much as the slabs in use, all of them
/// go at once (amortised: a slab must empty before it counts), and trim() gives back every empty slab now. What
/// stays: the slabs that hold a live node, and per node size the slab being carved. Thread-safe (submit allocates
/// on any thread, the driving thread frees).
class node_arena {
 public:
  /// Empty slabs kept before the arena gives them back on its own (and no more than the slabs in use).
  static constexpr std::size_t auto_trim_bytes = std::size_t{1} << 20;

  node_arena() = default;
  node_arena(const node_arena&) = delete;
  node_arena& operator=(const node_arena&) = delete;
  ~node_arena() {
    for (const slab& s : slabs_) {
      unpoison(s.base, slab_bytes);
      ::operator delete(s.base);
    }
  }

  void* allocate(std::size_t size, std::size_t alignment) {
    const std::size_t block = block_size(size, alignment);
    if (block == 0) {  // large or over-aligned: the global operator new's business
      if (alignment > __STDCPP_DEFAULT_NEW_ALIGNMENT__) return ::operator new(size, std::align_val_t{alignment});
      return ::operator new(size);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    size_class& c = classes_[block / granule];
    if (c.free != nullptr) {
      free_block* b = c.free;
      c.free = b->next;
      take(slab_of(b));
      unpoison(b, block);
      return b;
    }
    if (static_cast<std::size_t>(c.end - c.bump) < block) {
      // Room first, so that the insert below cannot throw and leak the slab (doubling: reserve(size + 1) would copy
      // the whole list for every slab).
      if (slabs_.size() == slabs_.capacity()) slabs_.reserve(2 * slabs_.size() + 16);
      char* base = static_cast<char*>(::operator new(slab_bytes));
      const auto at = std::upper_bound(slabs_.begin(), slabs_.end(), base,
                                       [](const char* p, const slab& s) { return p < s.base; });
      slabs_.insert(at, slab{base, 0});
      ++empty_;  // until its first block is taken below
      c.bump = base;
      c.end = base + slab_bytes;
      poison(base, slab_bytes);
    }
    void* p = c.bump;
    c.bump += block;
    take(slab_of(p));
    unpoison(p, block);
    return p;
  }
  void deallocate(void* p, std::size_t size, std::size_t alignment) noexcept {
    const std::size_t block = block_size(size, alignment);
    if (block == 0) {
      if (alignment > __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
        ::operator delete(p, std::align_val_t{alignment});
      } else {
        ::operator delete(p);
      }
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    size_class& c = classes_[block / granule];
    c.free = ::new (p) free_block{c.free};
    poison(static_cast<char*>(p) + sizeof(free_block), block - sizeof(free_block));  // all but the link
    slab& s = slab_of(p);
    if (--s.live == 0) {
      ++empty_;
      const std::size_t empty_bytes = empty_ * slab_bytes;
      if (empty_bytes >= auto_trim_bytes && empty_bytes >= (slabs_.size() - empty_) * slab_bytes) trim_locked();
    }
  }

  /// Gives every empty slab back to operator delete (but the ones being carved). Returns the bytes freed.
  std::size_t trim() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    return trim_locked();
  }
  /// Bytes held in slabs (in use, free, or being carved).
  std::size_t memory_bytes() const noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    return slabs_.size() * slab_bytes;
  }

 private:
  static constexpr std::size_t granule = 8;
  static constexpr std::size_t max_block = 1024;
  static constexpr std::size_t slab_bytes = 16 * 1024;  // small enough that a small fleet wastes little
  struct free_block {
    free_block* next;
  };
  struct size_class {
    free_block* free = nullptr;
    char* bump = nullptr;
    char* end = nullptr;
  };
  struct slab {
    char* base;
    std::size_t live;  // blocks handed out and not given back
  };
  // Sizes rounded to the alignment keep every block of a slab (aligned as operator new aligns) aligned; 0: not an
  // arena size.
  static std::size_t block_size(std::size_t size, std::size_t alignment) noexcept {
    if (alignment > __STDCPP_DEFAULT_NEW_ALIGNMENT__) return 0;
    const std::size_t unit = alignment > granule ? alignment : granule;
    const std::size_t block = (size + unit - 1) / unit * unit;
    return block <= max_block ? block : 0;
  }

  // The slab a block lies in (a binary search: slabs are sorted by address). Caller holds the mutex.
  slab& slab_of(const void* p) noexcept {
    const char* address = static_cast<const char*>(p);
    auto at = std::upper_bound(slabs_.begin(), slabs_.end(), address,
                               [](const char* a, const slab& s) { return a < s.base; });
    return *(at - 1);
  }
  void take(slab& s) noexcept {
    if (s.live++ == 0) --empty_;
  }
  void give_back(slab& s) noexcept {
    if (--s.live == 0) ++empty_;
  }

  // Unlinks the free blocks of empty slabs from their free lists, then frees those slabs. Caller holds the mutex.
  std::size_t trim_locked() noexcept {
    if (empty_ == 0) return 0;
    // Slabs being carved stay, empty or not: mark them live for the time of the trim.
    for (const size_class& c : classes_) {
      if (c.bump != c.end) take(slab_of(c.bump));
    }
    for (size_class& c : classes_) {
      free_block** link = &c.free;
      while (*link != nullptr) {
        free_block* b = *link;
        if (slab_of(b).live == 0) {
          *link = b->next;  // the block's slab goes: drop it from the list
        } else {
          link = &b->next;
        }
      }
    }
    std::size_t freed = 0;
    std::size_t kept = 0;
    for (const slab& s : slabs_) {
      if (s.live == 0) {
        unpoison(s.base, slab_bytes);
        ::operator delete(s.base);
        freed += slab_bytes;
      } else {
        slabs_[kept++] = s;
      }
    }
    slabs_.resize(kept);  // (shrinking: no allocation)
    empty_ = 0;
    for (const size_class& c : classes_) {
      if (c.bump != c.end) give_back(slab_of(c.bump));
    }
    return freed;
  }

  static void poison(void* p, std::size_t n) noexcept {
#ifdef POLLSTER_ASAN_POISON
    __asan_poison_memory_region(p, n);
#else
    (void)p;
    (void)n;
#endif
  }
  static void unpoison(void* p, std::size_t n) noexcept {
#ifdef POLLSTER_ASAN_POISON
    __asan_unpoison_memory_region(p, n);
#else
    (void)p;
    (void)n;
#endif
  }

  mutable std::mutex mutex_;
  size_class classes_[max_block / granule + 1];
  std::vector<slab> slabs_;  // sorted by address
  std::size_t empty_ = 0;    // slabs with no block in use
};

}  // namespace detail
POLLSTER_NAMESPACE_END

#undef POLLSTER_ASAN_POISON
