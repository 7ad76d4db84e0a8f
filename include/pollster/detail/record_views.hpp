// SPDX-License-Identifier: MIT
#pragma once

// How the differ sees a snapshot: an indexable view of its records, and a cursor that walks it front to back (a hot
// loop steps a pointer rather than multiplying a position by the record size at every access).

#include "config.hpp"

#include <cstddef>      // size_t, ptrdiff_t
#include <iterator>     // iterator_traits
#include <memory>       // addressof
#include <type_traits>  // is_pointer_v, is_same_v
#include <vector>       // vector

#if __has_include(<version>)
#include <version>  // __cpp_lib_concepts
#endif
#if defined(__cpp_lib_concepts) && __cpp_lib_concepts >= 202002L
#include <iterator>  // contiguous_iterator
#endif

POLLSTER_NAMESPACE_BEGIN
namespace detail {

/// Whether an iterator walks records stored one after another, so a pointer can walk them instead.
template <class It>
constexpr bool is_contiguous_iterator_v() {
  using value_type = typename std::iterator_traits<It>::value_type;
#if defined(__cpp_lib_concepts) && __cpp_lib_concepts >= 202002L
  if constexpr (std::contiguous_iterator<It>) return true;
#endif
  return std::is_pointer_v<It> || std::is_same_v<It, typename std::vector<value_type>::const_iterator> ||
         std::is_same_v<It, typename std::vector<value_type>::iterator>;
}

/// A random-access range seen through its iterator. `begin()` is a pointer when the records are contiguous.
template <class It>
class span_view {
 public:
  span_view(It first, std::size_t count) : first_(first), count_(count) {}
  std::size_t size() const noexcept { return count_; }
  decltype(auto) operator[](std::size_t at) const {
    return first_[static_cast<typename std::iterator_traits<It>::difference_type>(at)];
  }
  auto begin() const noexcept {
    if constexpr (is_contiguous_iterator_v<It>()) {
      using T = std::remove_reference_t<decltype(*first_)>;
      return count_ == 0 ? static_cast<const T*>(nullptr) : static_cast<const T*>(std::addressof(*first_));
    } else {
      return first_;
    }
  }

 private:
  It first_;
  std::size_t count_;
};

/// Walks a vector of pointers to records as if it walked the records.
template <class T>
class indirect_cursor {
 public:
  explicit indirect_cursor(const T* const* at) noexcept : at_(at) {}
  const T& operator*() const noexcept { return **at_; }
  const T& operator[](std::size_t offset) const noexcept { return *at_[offset]; }
  indirect_cursor& operator++() noexcept {
    ++at_;
    return *this;
  }
  indirect_cursor operator+(std::size_t offset) const noexcept { return indirect_cursor(at_ + offset); }
  std::ptrdiff_t operator-(const indirect_cursor& other) const noexcept { return at_ - other.at_; }
  bool operator==(const indirect_cursor& other) const noexcept { return at_ == other.at_; }
  bool operator!=(const indirect_cursor& other) const noexcept { return at_ != other.at_; }

 private:
  const T* const* at_;
};

/// Any other range (or a filtered one) seen through a vector of pointers to its elements: 8 bytes per record.
template <class T>
class pointer_view {
 public:
  explicit pointer_view(const std::vector<const T*>& pointers) : pointers_(&pointers) {}
  std::size_t size() const noexcept { return pointers_->size(); }
  const T& operator[](std::size_t at) const noexcept { return *(*pointers_)[at]; }
  indirect_cursor<T> begin() const noexcept { return indirect_cursor<T>(pointers_->data()); }

 private:
  const std::vector<const T*>* pointers_;
};

}  // namespace detail
POLLSTER_NAMESPACE_END
