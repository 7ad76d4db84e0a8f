// SPDX-License-Identifier: MIT
#pragma once

// The runner's timer structure: a radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, 1990), a monotone priority
// queue. Timers are monotone by nature: nothing is ever scheduled before "now", and "now" never goes back. A radix
// heap keeps exact 64-bit keys (unlike a timing wheel, which rounds to its tick) in 65 buckets by the highest bit
// in which a key differs from the last key taken out. A push is an append; taking the minimum scans and spreads
// one bucket, and every entry moves down at most 64 times in its life, usually once or twice. All of it is
// sequential memory: no sift, and nothing written into the timers themselves, so the only cache miss per
// dispatch is the poller the runner has to touch anyway. (Measured against a 4-ary intrusive heap in
// benchmarks/runner_bench.cpp.)
//
// Entries cannot be removed from the middle; the runner marks a timer stale instead (its node remembers which key
// is current) and drops it when it comes out, or in a sweep when stale entries pile up. Entries with equal keys
// come out in the order they went in, which the runner's fairness rests on.

#include "config.hpp"

#include <cstddef>  // size_t
#include <cstdint>  // uint64_t
#include <utility>  // swap
#include <vector>   // vector

POLLSTER_NAMESPACE_BEGIN
namespace detail {

template <class Item>
class radix_heap {
 public:
  struct entry {
    std::uint64_t key;
    Item item;
  };

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  /// The last key taken out: a push below it is raised to it (that timer is overdue anyway).
  std::uint64_t last_key() const noexcept { return last_; }

  void push(std::uint64_t key, Item item) {
    if (key < last_) key = last_;
    buckets_[bucket_of(key)].push_back(entry{key, item});
    ++size_;
    if (min_cache_ != no_min && key < min_cache_) min_cache_ = key;  // an unknown minimum stays unknown
  }

  /// The smallest key, without taking anything out: the lower bound moves only on pop(), so keys between the
  /// last one popped and this minimum can still be pushed. Precondition: !empty().
  std::uint64_t min_key() noexcept {
    if (head_ < buckets_[0].size()) return last_;
    if (min_cache_ == no_min) {
      std::size_t b = 1;
      while (buckets_[b].empty()) ++b;
      for (const entry& e : buckets_[b]) min_cache_ = e.key < min_cache_ ? e.key : min_cache_;
    }
    return min_cache_;
  }

  /// Takes out an entry with the smallest key (the oldest of equal keys). Precondition: !empty().
  entry pop() {
    refill();
    --size_;
    return buckets_[0][head_++];
  }

  /// The entry pop() would return `ahead` pops from now, if it is already in the front bucket (for prefetching).
  const entry* peek_ahead(std::size_t ahead) const noexcept {
    const std::size_t index = head_ + ahead;
    return index < buckets_[0].size() ? &buckets_[0][index] : nullptr;
  }

  /// Drops every entry for which `stale(entry)` is true; returns how many.
  template <class Predicate>
  std::size_t remove_if(Predicate stale) {
    std::size_t removed = 0;
    for (std::size_t b = 0; b < bucket_count; ++b) {
      std::vector<entry>& bucket = buckets_[b];
      std::size_t out = 0;
      for (std::size_t i = b == 0 ? head_ : 0; i < bucket.size(); ++i) {
        if (stale(bucket[i])) {
          ++removed;
        } else {
          bucket[out++] = bucket[i];
        }
      }
      bucket.resize(out);
    }
    head_ = 0;
    size_ -= removed;
    min_cache_ = no_min;
    return removed;
  }

  /// Calls `f(entry)` for every entry, then empties the heap.
  template <class F>
  void drain(F f) {
    for (std::size_t b = 0; b < bucket_count; ++b) {
      for (std::size_t i = b == 0 ? head_ : 0; i < buckets_[b].size(); ++i) f(buckets_[b][i]);
      buckets_[b].clear();
    }
    head_ = 0;
    size_ = 0;
    min_cache_ = no_min;
  }

  /// Bytes held by the buckets (capacity, not size): the timer structure's share of the runner's memory.
  std::size_t memory_bytes() const noexcept {
    std::size_t bytes = 0;
    for (const auto& bucket : buckets_) bytes += bucket.capacity() * sizeof(entry);
    return bytes;
  }

 private:
  static constexpr std::size_t bucket_count = 65;

  std::size_t bucket_of(std::uint64_t key) const noexcept {
    const std::uint64_t diff = key ^ last_;
    return diff == 0 ? 0 : static_cast<std::size_t>(64 - __builtin_clzll(diff));
  }

  // Makes the front bucket hold the smallest keys: find the first non-empty bucket, take its minimum as the new
  // lower bound, and spread it; every entry lands in a lower bucket (the minimum ones in the front bucket).
  void refill() {
    if (head_ < buckets_[0].size()) return;
    buckets_[0].clear();
    head_ = 0;
    min_cache_ = no_min;
    std::size_t b = 1;
    while (buckets_[b].empty()) ++b;
    std::vector<entry>& source = buckets_[b];
    std::uint64_t smallest = source[0].key;
    bool all_equal = true;
    for (const entry& e : source) {
      all_equal = all_equal && e.key == smallest;
      if (e.key < smallest) smallest = e.key;
    }
    last_ = smallest;
    if (all_equal) {
      std::swap(buckets_[0], source);  // the common case of a batch due together: no copy at all
      return;
    }
    for (const entry& e : source) buckets_[bucket_of(e.key)].push_back(e);
    source.clear();
  }

  std::vector<entry> buckets_[bucket_count];
  static constexpr std::uint64_t no_min = ~std::uint64_t{0};
  std::uint64_t min_cache_ = no_min;  // the minimum while buckets_[0] is used up (no_min: not known yet)
  std::size_t head_ = 0;              // next entry to pop from buckets_[0]
  std::size_t size_ = 0;
  std::uint64_t last_ = 0;
};

}  // namespace detail
POLLSTER_NAMESPACE_END
