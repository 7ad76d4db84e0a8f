// SPDX-License-Identifier: MIT
#pragma once

// The runner's handle slots: one word per submitted poller, readable from any thread, that says whether a handle's
// poller is still there (a generation) and where it is (its poll_status). Handles carry the node's address
// themselves; the slot only vouches for it.

#include "config.hpp"

#include <atomic>     // atomic
#include <cstddef>    // size_t
#include <cstdint>    // uint32_t
#include <limits>     // numeric_limits
#include <stdexcept>  // length_error
#include <vector>     // vector

POLLSTER_NAMESPACE_BEGIN

/// Where a submitted poller is, as seen through its handle from any thread.
enum class poll_status : std::uint8_t {
  scheduled,           ///< waiting for its next check
  waiting_for_budget,  ///< due, but its rate budget has no token yet: it waits its turn
  waiting_for_slot,    ///< due and granted, but the checks in flight are at their limit: it waits for one to end
  in_flight,           ///< its asynchronous check is out, waiting for the answer (or the attempt's timeout)
  finished,            ///< done, failed, exhausted, cancelled, or never known to this handle
};

namespace detail {

/// A slot's word: the generation (bumped when the poller finishes, so a handle to an earlier occupant reads
/// finished) times eight, plus the poll_status.
using slot_entry = std::atomic<std::uint32_t>;
constexpr std::uint32_t status_bits = 3;
constexpr std::uint32_t slot_word(std::uint32_t generation, poll_status status) noexcept {
  return static_cast<std::uint32_t>(generation << status_bits) | static_cast<std::uint32_t>(status);
}
constexpr std::uint32_t generation_of(std::uint32_t word) noexcept { return word >> status_bits; }
constexpr poll_status status_of(std::uint32_t word) noexcept {
  return static_cast<poll_status>(word & ((1U << status_bits) - 1));
}

/// Slots live in 16 KiB pages that never move (a two-level directory finds them), so another thread may read a
/// slot while the table grows, and the table holds at most one partly used page beyond what is in use.

class slot_table {
 public:
  slot_table() = default;
  slot_table(const slot_table&) = delete;
  slot_table& operator=(const slot_table&) = delete;
  ~slot_table() {
    for (auto& middle : directory_) {
      page* pages = middle.load(std::memory_order_relaxed);
      if (pages == nullptr) continue;
      for (std::size_t i = 0; i < fanout; ++i) delete[] pages[i].load(std::memory_order_relaxed);
      delete[] pages;
    }
  }

  /// Caller holds the shared mutex.
  std::uint32_t allocate() {
    if (!free_.empty()) {
      const std::uint32_t index = free_.back();
      free_.pop_back();
      return index;
    }
    if (used_ == std::numeric_limits<std::uint32_t>::max())
      throw std::length_error("pollster::runner: too many pollers");
    const std::uint32_t index = used_;
    std::atomic<page*>& middle = directory_[index >> 22];
    if (middle.load(std::memory_order_relaxed) == nullptr) middle.store(new page[fanout]{}, std::memory_order_release);
    page& entries = middle.load(std::memory_order_relaxed)[(index >> 12) & (fanout - 1)];
    if (entries.load(std::memory_order_relaxed) == nullptr) {
      entries.store(new slot_entry[page_slots](), std::memory_order_release);
    }
    ++used_;  // only now: std::bad_alloc above leaves the table as it was (a page it made is kept for the next)
    return index;
  }
  /// The slot's poller is over: handles to it read finished from now on. The slot is reused unless its generation
  /// is the last one (2^29 - 1 occupants, last in first out, could take it there): then it is retired for good and
  /// keeps that generation with status finished, so that no handle, and no completion, of an earlier occupant ever
  /// matches a newcomer. It is retired for good too when the free list cannot grow (std::bad_alloc): 4 bytes lost,
  /// never a poller. Caller holds the shared mutex.
  void retire(std::uint32_t index) noexcept {
    slot_entry& entry = (*this)[index];
    const std::uint32_t generation = generation_of(entry.load(std::memory_order_relaxed));
    if (generation == last_generation) {
      entry.store(slot_word(generation, poll_status::finished), std::memory_order_release);
      ++retired_;
      return;
    }
    entry.store(slot_word(generation + 1, poll_status::finished), std::memory_order_release);
    try {
      free_.push_back(index);
    } catch (...) {
      ++retired_;
    }
  }
  /// Slots never to be reused (see retire).
  std::uint32_t retired() const noexcept { return retired_; }
  /// Gives back the free list's spare capacity (caller holds the shared mutex).
  void shrink() {
    if (free_.capacity() > free_.size()) free_.shrink_to_fit();
  }

  /// Any thread, for an index that was allocated (pages are never freed before the table).
  slot_entry& operator[](std::uint32_t index) const noexcept {
    const page* pages = directory_[index >> 22].load(std::memory_order_acquire);
    return pages[(index >> 12) & (fanout - 1)].load(std::memory_order_acquire)[index & (page_slots - 1)];
  }
  std::uint32_t used() const noexcept { return used_; }
  /// Bytes held: pages in use plus the free list (the directory's second level is 8 KiB per 4 M slots).
  std::size_t memory_bytes() const noexcept {
    const std::size_t pages = (std::size_t{used_} + page_slots - 1) / page_slots;
    return pages * page_slots * sizeof(slot_entry) + free_.capacity() * sizeof(std::uint32_t);
  }

 private:
  static constexpr std::size_t page_slots = 4096;
  static constexpr std::size_t fanout = 1024;
  using page = std::atomic<slot_entry*>;

 public:
  /// The last generation a slot reaches (the bits above the status).
  static constexpr std::uint32_t last_generation = (1U << (32 - status_bits)) - 1;

 private:
  std::atomic<page*> directory_[fanout] = {};
  std::vector<std::uint32_t> free_;
  std::uint32_t used_ = 0;
  std::uint32_t retired_ = 0;
};

}  // namespace detail
POLLSTER_NAMESPACE_END
