// SPDX-License-Identifier: MIT
#pragma once

// The runner: one thread drives very many pollers, keeps them inside shared request budgets, and lets any thread
// nudge or cancel any of them.
//
// Each submitted poller becomes one node, allocated once at submit from the runner's slab arena: a 24-byte
// virtual base (due time, slot, budget, references, state) and a derived node that holds the poller and its
// completion callback. The runner steps the poller itself (the one loop of poll.hpp); it never re-implements it.
// Timers live in a radix heap (detail/timer_heap.hpp) keyed on 64-bit due times; nothing is allocated per poll.
// Per pending poller the runner adds 16 bytes of timer entry and a 4-byte handle slot to the node.
//
// Threads: the runner's structures belong to the thread that drives it (run(), run_for(), poll(), or the thread of
// start()). Handles and submit() may be used from any thread: they go through a mutex-protected command queue that
// the driving thread drains between batches, and they carry the node's address checked against a generation in
// its slot, so a handle to a finished (or recycled) poller is harmless. Completion callbacks run on the driving
// thread; they may submit.
//
// Out of memory, no poller is lost: a call that needs memory and cannot get it throws std::bad_alloc and leaves
// every poller where it was (submit: nothing submitted; a handle's nudge or cancel: not sent; a driving call
// while it applies a command, re-arms a timer or queues a poller for its budget: that step is not taken, and the
// next driving call takes it). Call again when memory is back. Memory a poller needs inside its own step (its
// first server hint) ends that poller with cause exception holding the std::bad_alloc; its callback runs and the
// others go on. Ending a poller never needs memory (tests/runner_alloc_test.cpp fails every allocation in turn).

#include "clock.hpp"
#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"
#include "detail/timer_heap.hpp"
#include "poll.hpp"
#include "rate.hpp"
#include "schedule.hpp"

#include <algorithm>           // upper_bound
#include <atomic>              // atomic
#include <chrono>              // steady_clock
#include <condition_variable>  // condition_variable
#include <cstddef>             // size_t
#include <cstdint>             // uint16_t, uint32_t, uint64_t
#include <deque>               // deque
#include <exception>           // exception_ptr
#include <limits>              // numeric_limits
#include <memory>              // shared_ptr
#include <new>                 // operator new, placement new, align_val_t
#include <mutex>               // mutex, lock_guard, unique_lock
#include <optional>            // optional
#include <stdexcept>           // logic_error, length_error
#include <string>              // string
#include <thread>              // thread
#include <type_traits>         // is_same_v, void_t
#include <utility>             // move, forward
#include <vector>              // vector

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

/// Where a submitted poller is, as seen through its handle from any thread.
enum class poll_status : std::uint8_t {
  scheduled,           ///< waiting for its next check
  waiting_for_budget,  ///< due, but its rate budget has no token yet: it waits its turn
  finished,            ///< done, failed, exhausted, cancelled, or never known to this handle
};

/// Names a rate budget of one runner (returned by runner::add_budget). The default names none: unlimited.
struct budget_id {
  static constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();
  std::uint32_t value = none;
  friend bool operator==(budget_id a, budget_id b) noexcept { return a.value == b.value; }
  friend bool operator!=(budget_id a, budget_id b) noexcept { return a.value != b.value; }
};

/// Per-poller options of runner::submit.
struct submit_options {
  /// The poller's own options (wait_first, max_hint, deadline, ...). Its stop token is for poll_until: a runner's
  /// poller is cancelled through its handle, and a token here is refused rather than silently ignored.
  poll_options poll{};
  budget_id budget{};  ///< the rate budget every check of this poller draws from (none: unlimited)
  /// Seed for a jittered schedule's generator (`reseed`); unset: the runner's own sequence, so copies of one
  /// prototype never jitter in lockstep.
  std::optional<std::uint64_t> seed{};
};

/// Runner-wide settings. The seed makes a fleet's jitter reproducible run to run, while every poller still gets
/// a stream of its own.
struct runner_options {
  std::uint64_t seed = 0x5eed5eed5eed5eedULL;  ///< start of the seed sequence for jittered schedules
};

/// What a budget has done so far (runner::budget_stats).
struct budget_stats {
  std::uint64_t granted = 0;    ///< checks that took a token
  std::uint64_t throttles = 0;  ///< "rate limited" answers that cut the rate
  std::size_t waiting = 0;      ///< due pollers waiting for a token now
  duration total_wait{};        ///< waiting added up over every poller
  double rate_now = 0;          ///< the sustained rate in force now (lower after a throttle)
};

namespace detail {

// Keys of the timer heap: nanoseconds since the clock's epoch, with the sign bit flipped so that the order of
// signed times is the order of unsigned keys.
constexpr std::uint64_t key_bias = 1ULL << 63;
inline std::uint64_t key_of(duration since_epoch) noexcept {
  return static_cast<std::uint64_t>(since_epoch.count()) ^ key_bias;
}
inline duration duration_of(std::uint64_t key) noexcept { return duration{static_cast<std::int64_t>(key ^ key_bias)}; }

// `kept` lives only inside a sweep: an armed node whose live entry the sweep has already kept.
enum class node_state : std::uint8_t { armed, waiting, running, finished, kept };
constexpr std::uint16_t no_budget = std::numeric_limits<std::uint16_t>::max();

/// What one step told the runner.
struct step_report {
  std::uint64_t next_key = 0;  ///< when to step again
  bool finished = true;        ///< the poller is over
  bool throttled = false;      ///< the check said "rate limited": slow the whole budget down
};

class node_arena;

/// The runner's view of a poller: everything it needs, type-erased behind one virtual call per poll.
class runner_node {
 public:
  runner_node() = default;
  runner_node(const runner_node&) = delete;
  runner_node& operator=(const runner_node&) = delete;
  virtual ~runner_node() = default;

  /// Runs one check at `now`; a check that throws is captured into the poller's outcome (never propagates).
  virtual step_report step(std::uint64_t now_key) noexcept = 0;
  /// A nudge arrived: the poller is due now; returns the key to arm it at. (Its first nudge may allocate the
  /// poller's cold part: std::bad_alloc leaves it unchanged.)
  virtual std::uint64_t nudge(std::uint64_t now_key) = 0;
  /// Cancels the poller; its outcome says cancelled and keeps the last value.
  virtual void cancel(std::uint64_t now_key) noexcept = 0;
  /// Adds time spent waiting for a rate budget to the outcome (may allocate, as nudge does).
  virtual void add_budget_wait(duration waited) = 0;
  /// When the first check is due, or that the poller is over before it starts (a deadline already past). Told
  /// apart by a flag, not by a key: a poller may well be first due at time_point::max().
  virtual step_report first() noexcept = 0;
  /// Hands the outcome to the completion callback (which may throw; the runner stays consistent).
  virtual void complete() = 0;
  /// Destroys the node and gives its block back to the arena it came from.
  virtual void destroy(node_arena& arena) noexcept = 0;

  // 24 bytes with the vtable pointer: every byte here is paid a million times over.
  std::uint64_t due_key = 0;  // the key of the live heap entry when armed; the due time when waiting
  std::uint32_t slot = 0;     // the handle's slot
  std::uint16_t budget = no_budget;
  std::uint8_t refs = 0;  // heap entries + wait-list membership that still point here (at most max_refs)
  node_state state = node_state::armed;
};

/// A node's stale heap entries come from nudges that brought it forward (a nudge of a node already due adds
/// none); a nudge that finds max_refs of them sweeps first, which leaves one entry per armed node, so the 8-bit
/// count never passes max_refs.
constexpr std::uint8_t max_refs = 250;

struct command {
  enum kind_type : std::uint8_t { insert, nudge, cancel };
  kind_type kind;
  std::uint32_t slot;
  std::uint32_t generation;
  runner_node* node;  // dereferenced only while the slot's generation still matches: the node is alive then
};

/// A slot tells handles on any thread whether their poller is still there and where it is, in one word: the
/// generation (bumped when the poller finishes, so a handle to an earlier occupant reads finished) times four,
/// plus the poll_status. Handles carry the node's address themselves; the slot only vouches for it.
using slot_entry = std::atomic<std::uint32_t>;
constexpr std::uint32_t slot_word(std::uint32_t generation, poll_status status) noexcept {
  return static_cast<std::uint32_t>(generation << 2) | static_cast<std::uint32_t>(status);
}
constexpr std::uint32_t generation_of(std::uint32_t word) noexcept { return word >> 2; }
constexpr poll_status status_of(std::uint32_t word) noexcept { return static_cast<poll_status>(word & 3); }

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
  /// The slot's poller is over: handles to it read finished from now on. The slot is reused unless its
  /// generation is the last one (2^30 - 1 occupants, last in first out, could take it there): then it is retired
  /// for good, and keeps that generation with status finished, so no handle ever matches a newcomer. It is retired
  /// for good too when the free list cannot grow (std::bad_alloc): 4 bytes lost, never a poller. Caller holds the
  /// shared mutex.
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
  static constexpr std::uint32_t last_generation = (1U << 30) - 1;  // 30 bits beside the 2-bit status
  using page = std::atomic<slot_entry*>;

  std::atomic<page*> directory_[fanout] = {};
  std::vector<std::uint32_t> free_;
  std::uint32_t used_ = 0;
  std::uint32_t retired_ = 0;
};

/// Blocks for the runner's nodes, carved from 16 KiB slabs with one free list per size: a node costs its own
/// size rounded to 8 bytes, with no malloc header and no rounding to 16, and a finished poller's block serves the
/// next node of its size. Each slab counts its blocks in use, so memory goes back to operator delete when a fleet
/// drains: once the empty slabs add up to auto_trim_bytes (1 MiB) and to as much as the slabs in use, all of them
/// go at once (amortised: a slab must empty before it counts), and trim() gives back every empty slab now. What
/// stays: the slabs that hold a live node, and per node size the slab being carved. Thread-safe (submit
/// allocates on any thread, the driving thread frees).
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
  void give_back(slab& s) noexcept {
    if (--s.live == 0) ++empty_;
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

/// What handles share with their runner; it outlives the runner while a handle holds it.
struct runner_shared {
  std::mutex mutex;
  std::condition_variable wake;
  std::vector<command> commands;  // guarded by mutex
  std::atomic<bool> has_commands{false};
  std::atomic<bool> stopping{false};  // written under mutex (for the condition variable), read anywhere
  bool closed = false;                // guarded by mutex: the runner is gone, commands are dropped
  slot_table slots;

  void push(const command& c) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (closed) return;
      commands.push_back(c);
      has_commands.store(true, std::memory_order_release);
    }
    wake.notify_one();
  }
};

/// Holds the completion callback; as a base of the node, an empty one (a captureless lambda) costs no byte.
template <class F, bool Empty = std::is_empty_v<F> && !std::is_final_v<F>>
struct callback_holder : private F {
  explicit callback_holder(F f) : F(std::move(f)) {}
  F& get() noexcept { return *this; }
};
template <class F>
struct callback_holder<F, false> {
  explicit callback_holder(F f) : f_(std::move(f)) {}
  F& get() noexcept { return f_; }

 private:
  F f_;
};

template <class T, class = void>
struct has_reseed : std::false_type {};
template <class T>
struct has_reseed<T, std::void_t<decltype(std::declval<T&>().reseed(std::uint64_t{}))>> : std::true_type {};

}  // namespace detail

namespace detail {
struct handle_test_access;  // defined by tests only: reaches a handle's slot without 2^30 real reuses
}  // namespace detail

/// Refers to one submitted poller. Copyable, cheap, usable from any thread; every operation on a finished poller
/// (or an empty handle, or after the runner is gone) does nothing.
class handle {
 public:
  handle() noexcept = default;

  /// Check now: a callback or event said something changed (notify, then verify through the real API). May throw
  /// std::bad_alloc (the command queue is full and cannot grow): then nothing was sent.
  void nudge() const { send(detail::command::nudge); }
  /// Stop polling; the completion callback gets an outcome that says cancelled, with the last value seen. May
  /// throw std::bad_alloc as nudge() does.
  void cancel() const { send(detail::command::cancel); }
  /// Where the poller is. Commands are asynchronous: right after cancel(), this may still say scheduled.
  poll_status status() const noexcept {
    if (!shared_) return poll_status::finished;
    const std::uint32_t word = shared_->slots[slot_].load(std::memory_order_acquire);
    if (detail::generation_of(word) != generation_) return poll_status::finished;  // the slot has moved on
    return detail::status_of(word);
  }
  bool finished() const noexcept { return status() == poll_status::finished; }

  explicit operator bool() const noexcept { return static_cast<bool>(shared_); }

 private:
  template <class Clock>
  friend class runner;
  friend struct detail::handle_test_access;
  handle(std::shared_ptr<detail::runner_shared> shared, detail::runner_node* node, std::uint32_t slot,
         std::uint32_t generation) noexcept
      : shared_(std::move(shared)), node_(node), slot_(slot), generation_(generation) {}

  void send(detail::command::kind_type kind) const {
    if (!shared_) return;
    shared_->push(detail::command{kind, slot_, generation_, node_});
  }

  std::shared_ptr<detail::runner_shared> shared_;
  detail::runner_node* node_ = nullptr;  // never dereferenced here: the driving thread checks the generation first
  std::uint32_t slot_ = 0;
  std::uint32_t generation_ = 0;
};

/// Drives many pollers on one thread. Holds a reference to the clock: with a manual_clock, run() moves virtual
/// time itself and a whole simulated fleet runs deterministically, in microseconds.
template <class Clock = steady_clock>
class runner {
 public:
  using clock_type = Clock;
  using time_point = typename Clock::time_point;

  explicit runner(Clock& clock, const runner_options& options = {})
      : clock_(clock), shared_(std::make_shared<detail::runner_shared>()), seed_base_(options.seed) {}
  runner(const runner&) = delete;
  runner& operator=(const runner&) = delete;

  /// Stops the thread of start(), then destroys every poller left without calling its callback (as asio
  /// destroys pending handlers); their handles read finished.
  ~runner() {
    (void)stop_thread();
    std::vector<detail::command> orphans;
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->closed = true;
      orphans.swap(shared_->commands);
    }
    const auto drop = [this](const detail::command& c) noexcept {
      if (c.kind == detail::command::insert) {
        retire_slot(c.node->slot);
        c.node->destroy(arena_);
      }
    };
    for (std::size_t i = drain_next_; i < pending_commands_.size(); ++i) drop(pending_commands_[i]);
    for (const detail::command& c : orphans) drop(c);
    timers_.drain([this](const auto& entry) { release_ref(entry.item, true); });
    for (budget_group& group : budgets_) {
      while (detail::runner_node* node = pop_waiting(group)) release_ref(node, true);
    }
  }

  /// A named request budget that pollers join through submit_options::budget (one per API endpoint, say).
  /// Add budgets before pollers are submitted from other threads (at most 65535 per runner).
  ///
  /// add_budget, stats, memory_bytes and shrink touch what belongs to the driving thread: call them from it (a
  /// completion callback), or from any thread while nothing drives the runner (before start(), after stop(),
  /// between poll() calls). From another thread while it is driven they throw std::logic_error, never race.
  budget_id add_budget(std::string name, const budget_options& options) {
    const exclusive_access access(*this, "add_budget");
    if (budgets_.size() >= detail::no_budget) {
      detail::throw_invalid("runner", "budget count", "< 65535", std::to_string(budgets_.size()));
    }
    budgets_.push_back(budget_group{std::move(name), token_bucket{options}, {}, duration::zero()});
    budget_count_.store(budgets_.size(), std::memory_order_release);
    return budget_id{static_cast<std::uint32_t>(budgets_.size() - 1)};
  }
  /// What a budget has done so far (driving thread, or while not driven: see add_budget).
  budget_stats stats(budget_id id) const {
    const exclusive_access access(*this, "stats");
    const budget_group& group = budget_at(id);
    const duration now = since_epoch(clock_.now());
    return budget_stats{group.bucket.granted(), group.bucket.throttles(), group.waiting.size(), group.total_wait,
                        group.bucket.rate_at(now)};
  }

  /// Starts polling `check` on `schedule` until `stop` (or the check) ends it; `on_complete(outcome)` runs on the
  /// driving thread at the end. Callable from any thread, also from a completion callback. The first check is
  /// due at once (unless options.poll.wait_first). A jittered schedule (one with `reseed`) gets its own seed.
  template <class Check, class Schedule, class Stop, class OnComplete>
  handle submit(Check check, Schedule schedule, Stop stop, OnComplete on_complete, const submit_options& options = {}) {
    if (options.poll.token.stop_possible()) {
      detail::throw_invalid("runner", "poll.token", "empty (cancel a runner's poller through its handle)",
                            "a stop token");
    }
    if constexpr (detail::has_reseed<Schedule>::value) schedule.reseed(options.seed ? *options.seed : next_seed());
    using poller_type = pollster::poller<Check, Schedule, Stop, time_point>;
    return submit_poller(
        poller_type{std::move(check), std::move(schedule), std::move(stop), clock_.now(), options.poll},
        std::move(on_complete), options);
  }

  /// Submits a poller built elsewhere (with hooks, say); it must run on this runner's clock.
  template <class Check, class Schedule, class Stop, class Hooks, class OnComplete>
  handle submit_poller(pollster::poller<Check, Schedule, Stop, time_point, Hooks> poller, OnComplete on_complete,
                       const submit_options& options = {}) {
    if (options.budget != budget_id{} && options.budget.value >= budget_count_.load(std::memory_order_acquire)) {
      detail::throw_invalid("runner", "budget", "an id returned by add_budget", std::to_string(options.budget.value));
    }
    using node_type = poller_node<pollster::poller<Check, Schedule, Stop, time_point, Hooks>, OnComplete>;
    node_owner node{arena_, make_node<node_type>(std::move(poller), std::move(on_complete))};
    node->budget = options.budget == budget_id{} ? detail::no_budget : static_cast<std::uint16_t>(options.budget.value);
    return enqueue(node);
  }

  /// Runs until no poller is left (sleeping on the clock between checks). Returns the checks made.
  std::size_t run() { return drive(std::nullopt, true, unlimited, true); }
  /// Runs until `until` (with a manual clock, time ends exactly there), or until no poller is left.
  std::size_t run_until(time_point until) { return drive(until, false, unlimited, true); }
  std::size_t run_for(duration d) { return run_until(detail::sat_add(clock_.now(), d)); }
  /// Waits for the next due poller and makes one check (0 if no poller is left).
  std::size_t run_one() { return drive(std::nullopt, true, 1, true); }
  /// Makes every check that is due now, without waiting.
  std::size_t poll() { return drive(std::nullopt, true, unlimited, false); }

  /// Drives the runner on its own thread until stop(); it sleeps until the next due check or a command arrives.
  void start() {
    if (thread_.joinable()) throw std::logic_error("pollster::runner: start() while already started");
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->stopping.store(false);
    }
    thread_ = std::thread([this] {
      try {
        drive(std::nullopt, false, unlimited, true);
      } catch (...) {
        thread_error_ = std::current_exception();  // a completion callback threw: stop() hands it over
      }
    });
  }
  /// Stops the thread of start() after the check in progress; pending pollers stay pending. Idempotent. If a
  /// completion callback threw on that thread (which then stopped), stop() rethrows it.
  void stop() {
    if (std::exception_ptr error = stop_thread()) std::rethrow_exception(error);
  }

  /// Pollers submitted and not finished (any thread; commands not yet drained are not counted).
  std::size_t size() const noexcept { return live_.load(std::memory_order_relaxed); }
  bool empty() const noexcept { return size() == 0; }
  /// Bytes the runner holds for its pollers' nodes (their slabs), timers and slots: for memory accounting
  /// (driving thread, or while not driven: see add_budget).
  std::size_t memory_bytes() const {
    const exclusive_access access(*this, "memory_bytes");
    return held_bytes();
  }

  /// Gives back what a drained fleet left behind: the timer entries of finished pollers (a nudge's or a cancel's,
  /// which keep their node until their time), the spare timer chunks, the empty node slabs, the command and
  /// wait-list buffers. Returns the bytes freed. Kept: what live pollers use, one partly carved slab per node
  /// size, and the handle slots (4 bytes per poller at the peak, and 4 more on the free list once it is over),
  /// which handles of finished pollers may read at any time from any thread. The runner already gives empty
  /// slabs back on its own (node_arena::auto_trim_bytes), and drops stale timer entries whenever no poller is
  /// left; shrink() is for the rest, and for right now.
  std::size_t shrink() {
    const exclusive_access access(*this, "shrink");
    const std::size_t before = held_bytes();
    if (stale_ != 0) sweep_stale();
    (void)timers_.shrink();
    (void)arena_.trim();
    if (drain_next_ >= pending_commands_.size()) {
      pending_commands_.clear();
      drain_next_ = 0;
      pending_commands_.shrink_to_fit();
    }
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->commands.shrink_to_fit();
    }
    for (budget_group& group : budgets_) group.waiting.shrink_to_fit();
    const std::size_t after = held_bytes();
    return before > after ? before - after : 0;
  }
  Clock& clock() const noexcept { return clock_; }

 private:
  static constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();

  // Holds the driving thread's structures for one call from a thread that does not drive the runner (and lets the
  // driving thread itself through): see add_budget.
  class exclusive_access {
   public:
    exclusive_access(const runner& r, const char* what) : runner_(r) {
      if (r.driver_.load(std::memory_order_relaxed) == std::this_thread::get_id()) return;  // a callback
      for (;;) {
        int expected = idle;
        if (r.access_.compare_exchange_weak(expected, accessor, std::memory_order_acquire)) break;
        if (expected == driven) {
          throw std::logic_error(std::string("pollster::runner: ") + what +
                                 "() from another thread while the runner is driven (call it from a completion "
                                 "callback, or while nothing drives the runner)");
        }
        std::this_thread::yield();  // another accessor: a moment
      }
      owned_ = true;
    }
    exclusive_access(const exclusive_access&) = delete;
    exclusive_access& operator=(const exclusive_access&) = delete;
    ~exclusive_access() {
      if (owned_) runner_.access_.store(idle, std::memory_order_release);
    }

   private:
    const runner& runner_;
    bool owned_ = false;
  };

  std::size_t held_bytes() const {
    std::size_t slots = 0;
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);  // submit() grows the slot table from any thread
      slots = shared_->slots.memory_bytes();
    }
    return arena_.memory_bytes() + timers_.memory_bytes() + slots;
  }
  static constexpr bool waits_on_condition = std::is_same_v<time_point, std::chrono::steady_clock::time_point>;

  struct budget_group {
    std::string name;
    token_bucket bucket;
    std::deque<detail::runner_node*> waiting;  // due pollers waiting for a token, in due-time order
    duration total_wait{};
  };

  // One submitted poller: the poll.hpp poller (the one loop) and its completion callback.
  // The callback is a base, not a member: an empty one (a captureless lambda) then takes no byte at all, where an
  // empty member would take one and, padded, eight (sixteen more from malloc).
  template <class Poller, class OnComplete>
  class poller_node final : public detail::runner_node, private detail::callback_holder<OnComplete> {
    using callback = detail::callback_holder<OnComplete>;

   public:
    poller_node(Poller poller, OnComplete on_complete) : callback(std::move(on_complete)), poller_(std::move(poller)) {}

    POLLSTER_FLATTEN detail::step_report step(std::uint64_t now_key) noexcept override {
      const time_point now = point_of(now_key);
      detail::step_report report;
      try {
        poller_.step(now);
        report.throttled = poller_.last_throttled();
      } catch (...) {
        poller_.capture(std::current_exception(), now);  // this poller ends; every other one goes on
      }
      report.finished = poller_.done();
      if (!report.finished) report.next_key = key_of(poller_.next_due());
      return report;
    }
    std::uint64_t nudge(std::uint64_t now_key) override {
      poller_.nudge(point_of(now_key));
      return key_of(poller_.next_due());
    }
    void cancel(std::uint64_t now_key) noexcept override { poller_.cancel(point_of(now_key)); }
    void add_budget_wait(duration waited) override { poller_.add_budget_wait(waited); }
    detail::step_report first() noexcept override {
      detail::step_report report;
      report.finished = poller_.done();
      if (!report.finished) report.next_key = key_of(poller_.next_due());
      return report;
    }
    void complete() override { callback::get()(poller_.take_outcome()); }
    void destroy(detail::node_arena& arena) noexcept override {
      this->~poller_node();
      arena.deallocate(this, sizeof(poller_node), alignof(poller_node));
    }

   private:
    Poller poller_;
  };

  static std::uint64_t key_of(time_point t) noexcept { return detail::key_of(since_epoch(t)); }

  std::uint64_t next_seed() noexcept {
    const std::uint64_t n = seeds_used_.fetch_add(1, std::memory_order_relaxed);
    splitmix64 mix{seed_base_ + n * 0xd1b54a32d192ed03ULL};
    return mix();
  }

  static duration since_epoch(time_point t) noexcept {
    return std::chrono::duration_cast<duration>(t.time_since_epoch());
  }
  static time_point point_of(std::uint64_t key) noexcept {
    return time_point{std::chrono::duration_cast<typename time_point::duration>(detail::duration_of(key))};
  }
  const budget_group& budget_at(budget_id id) const {
    if (id.value >= budgets_.size()) {
      detail::throw_invalid("runner", "budget", "an id returned by add_budget", std::to_string(id.value));
    }
    return budgets_[id.value];
  }

  template <class Node, class... Args>
  Node* make_node(Args&&... args) {
    void* block = arena_.allocate(sizeof(Node), alignof(Node));
    try {
      return ::new (block) Node(std::forward<Args>(args)...);
    } catch (...) {
      arena_.deallocate(block, sizeof(Node), alignof(Node));
      throw;
    }
  }

  // Owns a node until the insert command takes it over.
  struct node_owner {
    detail::node_arena& arena;
    detail::runner_node* node;
    node_owner(detail::node_arena& a, detail::runner_node* n) noexcept : arena(a), node(n) {}
    node_owner(const node_owner&) = delete;
    node_owner& operator=(const node_owner&) = delete;
    ~node_owner() {
      if (node != nullptr) node->destroy(arena);
    }
    detail::runner_node* operator->() const noexcept { return node; }
    detail::runner_node* get() const noexcept { return node; }
    void release() noexcept { node = nullptr; }
  };

  handle enqueue(node_owner& node) {
    detail::runner_node* const node_address = node.get();
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      if (shared_->closed) throw std::logic_error("pollster::runner: submit() after the runner was destroyed");
      slot = shared_->slots.allocate();
      detail::slot_entry& entry = shared_->slots[slot];
      generation = detail::generation_of(entry.load(std::memory_order_relaxed));
      entry.store(detail::slot_word(generation, poll_status::scheduled), std::memory_order_release);
      node->slot = slot;
      try {
        shared_->commands.push_back(detail::command{detail::command::insert, slot, generation, node.get()});
      } catch (...) {  // std::bad_alloc: the slot goes back, the node with node_owner; nothing was submitted
        shared_->slots.retire(slot);
        throw;
      }
      shared_->has_commands.store(true, std::memory_order_release);
      node.release();
    }
    shared_->wake.notify_one();
    return handle{shared_, node_address, slot, generation};
  }

  std::exception_ptr stop_thread() noexcept {
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->stopping.store(true);
    }
    shared_->wake.notify_all();
    if (thread_.joinable()) thread_.join();
    std::exception_ptr error = std::move(thread_error_);
    thread_error_ = nullptr;
    return error;
  }

  // The driving loop. `until`: stop there (time moved to it); `until_empty`: stop when no poller is left;
  // `wait`: sleep for the next due check (else only what is due now).
  std::size_t drive(std::optional<time_point> until, bool until_empty, std::size_t max_checks, bool wait) {
    for (;;) {
      int expected = idle;
      if (access_.compare_exchange_weak(expected, driven, std::memory_order_acquire)) break;
      if (expected == driven) throw std::logic_error("pollster::runner: driven from two places at once");
      std::this_thread::yield();  // another thread is in add_budget, stats, ...: a moment
    }
    driver_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    struct release_flag {
      runner* self;
      ~release_flag() {
        self->driver_.store(std::thread::id{}, std::memory_order_relaxed);
        self->access_.store(idle, std::memory_order_release);
      }
    } guard{this};
    const bool own_thread = !until_empty && !until;
    std::size_t checks = 0;
    for (;;) {
      drain_commands();
      if (own_thread && shared_->stopping.load(std::memory_order_acquire)) break;
      const std::uint64_t now_key = detail::key_of(since_epoch(clock_.now()));
      const bool at_end = until && now_key >= detail::key_of(since_epoch(*until));
      checks += dispatch_due(now_key, max_checks - checks);
      if (checks >= max_checks || at_end) break;
      if (shared_->has_commands.load(std::memory_order_acquire)) continue;
      const bool none_left = live_.load(std::memory_order_relaxed) == 0;
      if (none_left && stale_ != 0) sweep_stale();  // what is left in the timers only holds finished nodes
      // No poller left: stop now, not at the time of a stale timer entry (a cancelled poller's), whose wait would
      // move a manual clock on for nothing.
      if (until_empty && none_left) break;
      const std::optional<std::uint64_t> next = next_wake(now_key);
      if (!next && until_empty) break;
      if (!wait) break;
      std::optional<time_point> wake_at;
      if (next) wake_at = point_of(*next);
      if (until && (!wake_at || *wake_at > *until)) wake_at = until;
      if (!sleep(wake_at, own_thread)) break;
    }
    return checks;
  }

  // Sleeps until `wake_at` (for ever when unset), waking early for a command or stop(). False: stop now.
  bool sleep(std::optional<time_point> wake_at, bool own_thread) {
    if constexpr (waits_on_condition) {
      std::unique_lock<std::mutex> lock(shared_->mutex);
      auto woken = [&] {
        return shared_->has_commands.load(std::memory_order_acquire) || (own_thread && shared_->stopping.load());
      };
      if (wake_at) {
        shared_->wake.wait_until(lock, *wake_at, woken);
      } else {
        shared_->wake.wait(lock, woken);
      }
      return !(own_thread && shared_->stopping.load());
    } else {
      if (!wake_at) {
        // Nothing is due and virtual time has no reason to move: wait for a command (or stop()).
        std::unique_lock<std::mutex> lock(shared_->mutex);
        shared_->wake.wait(lock, [&] {
          return shared_->has_commands.load(std::memory_order_acquire) || (own_thread && shared_->stopping.load());
        });
        return !(own_thread && shared_->stopping.load());
      }
      clock_.sleep_until(*wake_at, stop_token{});
      return true;
    }
  }

  void drain_commands() {
    if (drain_next_ >= pending_commands_.size()) {
      if (!shared_->has_commands.load(std::memory_order_acquire)) return;
      pending_commands_.clear();
      drain_next_ = 0;
      std::lock_guard<std::mutex> lock(shared_->mutex);
      pending_commands_.swap(shared_->commands);
      shared_->has_commands.store(false, std::memory_order_relaxed);
    }
    const std::uint64_t now_key = detail::key_of(since_epoch(clock_.now()));
    // A command is taken (drain_next_ moves on) only once what may throw std::bad_alloc has been done: a command
    // that could not get memory stays, and the next drive applies it.
    while (drain_next_ < pending_commands_.size()) {
      const detail::command c = pending_commands_[drain_next_];
      if (c.kind == detail::command::insert) {
        timers_.reserve_push();
        ++drain_next_;
        insert(c.node, now_key);
        continue;
      }
      const std::uint32_t word = shared_->slots[c.slot].load(std::memory_order_relaxed);
      // Finished long ago (the generation moved on), or just now, in a slot retired for good (it did not).
      if (detail::generation_of(word) != c.generation || detail::status_of(word) == poll_status::finished) {
        ++drain_next_;
        continue;
      }
      detail::runner_node* node = c.node;
      if (c.kind == detail::command::nudge) {
        if (node->state == detail::node_state::armed) {
          timers_.reserve_push();
          std::uint64_t key = node->nudge(now_key);  // counts the nudge even when it changes no time
          ++drain_next_;
          if (key < timers_.last_key()) key = timers_.last_key();
          // A node already due by then keeps its entry: a burst of nudges adds one entry at most.
          if (key < node->due_key) {
            if (node->refs >= detail::max_refs) sweep_stale();  // drops this node's stale entries too
            ++stale_;  // the entry it had stays behind, stale
            arm(node, key);
          }
        } else {
          ++drain_next_;
        }
        continue;
      }
      ++drain_next_;
      if (node->state == detail::node_state::armed || node->state == detail::node_state::waiting) {
        if (node->state == detail::node_state::armed) ++stale_;
        node->cancel(now_key);
        finish(node);
      }
    }
    pending_commands_.clear();
    drain_next_ = 0;
    // A burst of submissions leaves a large buffer behind; give it back rather than hold it for ever.
    if (pending_commands_.capacity() > 4096) pending_commands_.shrink_to_fit();
  }

  void insert(detail::runner_node* node, std::uint64_t now_key) {
    (void)now_key;
    live_.store(live_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    const detail::step_report first = node->first();
    if (first.finished) {
      finish(node);  // e.g. a deadline already past at submit
    } else {
      arm(node, first.next_key);
    }
  }

  // Cannot fail: every caller made a timer entry's room sure first (timers_.reserve_push()).
  void arm(detail::runner_node* node, std::uint64_t key) noexcept {
    if (key < timers_.last_key()) key = timers_.last_key();
    node->state = detail::node_state::armed;
    node->due_key = key;
    ++node->refs;
    timers_.push(key, node);
  }

  // Makes the checks due at `now_key`: first those waiting for their budget (in due-time order), then the timers.
  std::size_t dispatch_due(std::uint64_t now_key, std::size_t max_checks) {
    std::size_t checks = 0;
    if (waiting_total_ != 0) checks += serve_budgets(now_key, max_checks);
    while (checks < max_checks && !timers_.empty() && timers_.min_key() <= now_key) {
      timers_.reserve_push();  // the re-arm below cannot fail then: std::bad_alloc leaves here, nothing changed
      if (const auto* ahead = timers_.peek_ahead(8)) {
        detail::prefetch(ahead->item);  // the node's first two cache lines: the header and the poller's start
        detail::prefetch(reinterpret_cast<const char*>(ahead->item) + 64);
      }
      const auto entry = timers_.pop();
      detail::runner_node* node = entry.item;
      --node->refs;
      if (node->state != detail::node_state::armed || node->due_key != entry.key) {
        --stale_;
        release_ref(node, false);
        continue;
      }
      if (node->budget != detail::no_budget) {
        budget_group& group = budgets_[node->budget];
        if (!group.waiting.empty() || !group.bucket.try_acquire(detail::duration_of(now_key))) {
          try {
            push_waiting(group, node);
          } catch (...) {  // std::bad_alloc from the wait list: the timer goes back where it was
            ++node->refs;
            timers_.unpop(entry);
            throw;
          }
          continue;
        }
      }
      ++checks;
      check(node, now_key);
    }
    if (stale_ > 1024 && stale_ > timers_.size() / 2) sweep_stale();
    return checks;
  }

  std::size_t serve_budgets(std::uint64_t now_key, std::size_t max_checks) {
    std::size_t checks = 0;
    const duration now = detail::duration_of(now_key);
    // By index, and no reference to a budget kept across check(): a completion callback may add a budget and move
    // them all.
    for (std::size_t i = 0; i < budgets_.size(); ++i) {
      while (checks < max_checks && !budgets_[i].waiting.empty()) {
        budget_group& group = budgets_[i];
        detail::runner_node* node = group.waiting.front();
        if (node->state != detail::node_state::waiting) {  // cancelled while it waited
          pop_waiting(group);
          --node->refs;
          release_ref(node, false);
          continue;
        }
        timers_.reserve_push();  // for the re-arm after the check
        const token_bucket before = group.bucket;
        if (!group.bucket.try_acquire(now)) break;
        const duration waited = detail::sat_sub(now, detail::duration_of(node->due_key));
        try {
          node->add_budget_wait(waited);  // its first wait allocates: std::bad_alloc gives the token back
        } catch (...) {
          group.bucket = before;
          throw;
        }
        pop_waiting(group);
        --node->refs;
        group.total_wait = detail::sat_add(group.total_wait, waited);
        set_status(node, poll_status::scheduled);
        ++checks;
        check(node, now_key);
      }
    }
    return checks;
  }

  void check(detail::runner_node* node, std::uint64_t now_key) {
    node->state = detail::node_state::running;
    const detail::step_report report = node->step(now_key);
    if (report.throttled && node->budget != detail::no_budget) {
      budgets_[node->budget].bucket.throttled(detail::duration_of(now_key));
    }
    if (report.finished) {
      finish(node);
    } else {
      arm(node, report.next_key);
    }
  }

  void push_waiting(budget_group& group, detail::runner_node* node) {
    group.waiting.push_back(node);  // first: std::bad_alloc leaves the node as it was
    node->state = detail::node_state::waiting;
    ++node->refs;
    ++waiting_total_;
    set_status(node, poll_status::waiting_for_budget);
  }

  detail::runner_node* pop_waiting(budget_group& group) noexcept {
    if (group.waiting.empty()) return nullptr;
    detail::runner_node* node = group.waiting.front();
    group.waiting.pop_front();
    --waiting_total_;
    return node;
  }

  // The earliest key at which something can happen: a timer, or a token for a waiting poller.
  std::optional<std::uint64_t> next_wake(std::uint64_t now_key) {
    std::optional<std::uint64_t> next;
    if (!timers_.empty()) next = timers_.min_key();
    if (waiting_total_ != 0) {
      const duration now = detail::duration_of(now_key);
      for (const budget_group& group : budgets_) {
        if (group.waiting.empty()) continue;
        const std::uint64_t key = detail::key_of(group.bucket.next_available(now));
        if (!next || key < *next) next = key;
      }
    }
    return next;
  }

  // The poller is over: retire its slot (handles now read finished), call back, free it when nothing points here.
  void finish(detail::runner_node* node) {
    node->state = detail::node_state::finished;
    live_.store(live_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    retire_slot(node->slot);
    struct release_after {
      runner* self;
      detail::runner_node* node;
      ~release_after() { self->release_ref(node, false); }
    } guard{this, node};
    node->complete();
  }

  // Only the driving thread writes a live slot (submit writes it before the insert command is sent).
  void set_status(const detail::runner_node* node, poll_status status) noexcept {
    detail::slot_entry& entry = shared_->slots[node->slot];
    entry.store(detail::slot_word(detail::generation_of(entry.load(std::memory_order_relaxed)), status),
                std::memory_order_release);
  }

  void retire_slot(std::uint32_t slot) noexcept {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->slots.retire(slot);
  }

  // Frees a node nothing points to any more. `dropping`: the runner is being destroyed (no callbacks).
  void release_ref(detail::runner_node* node, bool dropping) noexcept {
    if (dropping) {
      --node->refs;
      if (node->state != detail::node_state::finished) {
        node->state = detail::node_state::finished;
        live_.store(live_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
        retire_slot(node->slot);
      }
    }
    if (node->refs == 0 && node->state == detail::node_state::finished) node->destroy(arena_);
  }

  // Drops every stale entry. An entry is live when it is the first of an armed node's entries at the node's due
  // key: a node re-armed at the key of an entry that a nudge left behind (a "retry at" hint, say) has several
  // there, the same in time, and the first stands for them all. Allocates nothing.
  void sweep_stale() noexcept {
    const std::size_t removed = timers_.remove_if([this](const auto& entry) noexcept {
      detail::runner_node* node = entry.item;
      if (node->state == detail::node_state::armed && node->due_key == entry.key) {
        node->state = detail::node_state::kept;  // later entries of this node are stale, whatever their key
        return false;
      }
      --node->refs;
      release_ref(node, false);
      return true;
    });
    timers_.for_each([](const auto& entry) noexcept {
      if (entry.item->state == detail::node_state::kept) entry.item->state = detail::node_state::armed;
    });
    stale_ -= removed;
  }

  detail::node_arena arena_;  // first: destroyed last, after every node has gone back to it
  Clock& clock_;
  std::shared_ptr<detail::runner_shared> shared_;
  const std::uint64_t seed_base_;
  std::atomic<std::uint64_t> seeds_used_{0};
  std::atomic<std::size_t> budget_count_{0};
  std::size_t drain_next_ = 0;  // commands of pending_commands_ already applied (a callback may throw midway)
  detail::radix_heap<detail::runner_node*> timers_;
  std::vector<budget_group> budgets_;
  std::vector<detail::command> pending_commands_;
  std::atomic<std::size_t> live_{0};  // written by the driving thread only; size() reads it from anywhere
  std::size_t stale_ = 0;
  std::size_t waiting_total_ = 0;
  // Who may touch the driving thread's structures: nobody (idle), the driving call (driven, on driver_'s thread),
  // or one call of add_budget, stats, memory_bytes or shrink from a thread that does not drive (accessor).
  static constexpr int idle = 0;
  static constexpr int driven = 1;
  static constexpr int accessor = 2;
  mutable std::atomic<int> access_{idle};
  std::atomic<std::thread::id> driver_{};
  std::thread thread_;
  std::exception_ptr thread_error_;
};

POLLSTER_NAMESPACE_END

#undef POLLSTER_ASAN_POISON
