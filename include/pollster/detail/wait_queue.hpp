// SPDX-License-Identifier: MIT
#pragma once

// The runner's wait queues (pollers due but waiting for a budget's token or for a free slot): first in, first out,
// with room reserved ahead. The runner reserves before it takes anything it cannot give back (a token of a budget
// group, which may live in Redis), so that std::bad_alloc never strikes between the grant and the push.

#include "config.hpp"

#include <algorithm>    // copy
#include <cstddef>      // size_t
#include <type_traits>  // is_trivially_copyable_v
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN
namespace detail {

/// A queue in one vector: pushes at the back, pops at a moving head, the popped prefix dropped when room is needed.
/// After reserve_one(), one push_back cannot fail.
template <class T>
class wait_queue {
  static_assert(std::is_trivially_copyable_v<T>, "wait_queue holds pointers");

 public:
  bool empty() const noexcept { return head_ == items_.size(); }
  std::size_t size() const noexcept { return items_.size() - head_; }
  T front() const noexcept { return items_[head_]; }

  /// Makes sure the next push_back needs no allocation. May throw std::bad_alloc, changing nothing.
  void reserve_one() {
    if (items_.size() < items_.capacity()) return;
    // Drop the popped prefix when it is at least half the vector (amortised O(1)); grow by doubling otherwise.
    if (head_ != 0 && head_ * 2 >= items_.size()) {
      compact();
      return;
    }
    items_.reserve(items_.capacity() < 8 ? 16 : 2 * items_.capacity());
  }
  /// Appends; throws std::bad_alloc only when no room was reserved (then nothing changed).
  void push_back(T item) {
    if (items_.size() == items_.capacity()) reserve_one();
    items_.push_back(item);
  }
  void pop_front() noexcept {
    if (++head_ == items_.size()) {
      items_.clear();
      head_ = 0;
    }
  }
  /// Takes the front item (null for an empty queue of pointers).
  T take_front() noexcept {
    if (empty()) return T{};
    const T item = items_[head_];
    pop_front();
    return item;
  }
  /// Drops every item for which `drop(item)` is true, keeping the order of the others (allocates nothing).
  template <class Predicate>
  void remove_if(Predicate drop) noexcept {
    std::size_t kept = head_;
    for (std::size_t i = head_; i < items_.size(); ++i) {
      if (!drop(items_[i])) items_[kept++] = items_[i];
    }
    items_.resize(kept);  // shrinking: no allocation
    if (head_ == items_.size()) {
      items_.clear();
      head_ = 0;
    }
  }
  /// Gives back the room not in use (may throw std::bad_alloc; then it keeps what it has).
  void shrink_to_fit() {
    compact();
    items_.shrink_to_fit();
  }
  std::size_t memory_bytes() const noexcept { return items_.capacity() * sizeof(T); }

 private:
  void compact() noexcept {
    if (head_ == 0) return;
    std::copy(items_.begin() + static_cast<std::ptrdiff_t>(head_), items_.end(), items_.begin());
    items_.resize(items_.size() - head_);  // shrinking: no allocation
    head_ = 0;
  }

  std::vector<T> items_;
  std::size_t head_ = 0;  // items before it were popped
};

}  // namespace detail
POLLSTER_NAMESPACE_END
