// SPDX-License-Identifier: MIT
#pragma once

// The runner's node arena: blocks carved from slabs, one free list per size.

#include "config.hpp"

#include <cstddef>  // size_t
#include <mutex>    // mutex, lock_guard
#include <new>      // operator new, placement new, align_val_t
#include <vector>   // vector

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
/// next node of its size. Blocks go back to the free list, not to malloc: the slabs are freed with the runner.
/// Thread-safe (submit allocates on any thread, the driving thread frees).
class node_arena {
 public:
  node_arena() = default;
  node_arena(const node_arena&) = delete;
  node_arena& operator=(const node_arena&) = delete;
  ~node_arena() {
    for (void* slab : slabs_) {
      unpoison(slab, slab_bytes);
      ::operator delete(slab);
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
      unpoison(b, block);
      return b;
    }
    if (static_cast<std::size_t>(c.end - c.bump) < block) {
      slabs_.reserve(slabs_.size() + 1);  // (so that the push_back below cannot throw and leak the slab)
      c.bump = static_cast<char*>(::operator new(slab_bytes));
      c.end = c.bump + slab_bytes;
      slabs_.push_back(c.bump);
      poison(c.bump, slab_bytes);
    }
    void* p = c.bump;
    c.bump += block;
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
  // Sizes rounded to the alignment keep every block of a slab (aligned as operator new aligns) aligned; 0: not an
  // arena size.
  static std::size_t block_size(std::size_t size, std::size_t alignment) noexcept {
    if (alignment > __STDCPP_DEFAULT_NEW_ALIGNMENT__) return 0;
    const std::size_t unit = alignment > granule ? alignment : granule;
    const std::size_t block = (size + unit - 1) / unit * unit;
    return block <= max_block ? block : 0;
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

  std::mutex mutex_;
  size_class classes_[max_block / granule + 1];
  std::vector<void*> slabs_;
};

}  // namespace detail
POLLSTER_NAMESPACE_END

#undef POLLSTER_ASAN_POISON
