// SPDX-License-Identifier: MIT
#pragma once

#include "config.hpp"
#include "found_events.hpp"

#include <cstddef>      // size_t
#include <cstdint>      // uint8_t
#include <functional>   // invoke
#include <type_traits>  // invoke_result_t, is_arithmetic_v, ...

POLLSTER_NAMESPACE_BEGIN
namespace detail {

/// How a merge ended. Anything but `merged` stops it at the first record that breaks the promise of sorted, unique
/// keys, with nothing reported: a key smaller than the last one taken means that snapshot is not sorted, an equal
/// one that it repeats a key. (The last key taken always comes from the snapshot that breaks the order: a key taken
/// from the other one alone was smaller than this snapshot's next key.)
enum class merge_end : std::uint8_t { merged, before_unsorted, after_unsorted, before_duplicate, after_duplicate };

/// The last key a merge took, and whether `key` may come after it (it must be greater; anything may come first).
/// Small keys (numbers, enums, pointers) are kept by value and compared without a branch on "first"; others are read
/// again from the record that holds them, so a string key is never copied.
template <class Key, class T,
          class K = std::remove_cv_t<std::remove_reference_t<std::invoke_result_t<const Key&, const T&>>>,
          bool ByValue = std::is_arithmetic_v<K> || std::is_enum_v<K> || std::is_pointer_v<K>>
class last_taken {
 public:
  void take(const T&, const K& key) noexcept {
    key_ = key;
    started_ = true;
  }
  bool allows(const Key&, const K& key) const noexcept { return !started_ | (key_ < key); }
  const K& get(const Key&) const noexcept { return key_; }

 private:
  K key_{};
  bool started_ = false;
};

template <class Key, class T, class K>
class last_taken<Key, T, K, false> {
 public:
  void take(const T& record, const K&) noexcept { record_ = &record; }
  bool allows(const Key& key, const K& k) const { return record_ == nullptr || std::invoke(key, *record_) < k; }
  decltype(auto) get(const Key& key) const { return std::invoke(key, *record_); }

 private:
  const T* record_ = nullptr;
};

/// Diffs two snapshots sorted by key in one pass that merges them and checks their order on the way: each key it
/// takes (a key in both snapshots is taken once, for both) must be greater than the last one, which holds exactly
/// when both are sorted and neither repeats a key. The events go to `found` (nothing is reported before the whole
/// pass succeeded); `changed(old, new)` decides a match. On a broken promise it returns where (`stopped_at`: the
/// position in the snapshot the result names) and `found` holds part of the events.
template <class BeforeView, class AfterView, class Key, class Changed>
merge_end merge_sorted(const BeforeView& before, const AfterView& after, const Key& key_projection,
                       const Changed& changed, bool record_unchanged, found_events<std::remove_cv_t<std::remove_reference_t<decltype(*before.begin())>>>& found,
                       std::size_t& stopped_at) {
  using T = std::remove_cv_t<std::remove_reference_t<decltype(before[0])>>;
  // Local copies: the loop calls into `found`, and the compiler must otherwise assume that may change what a
  // reference points to, reloading a member pointer's offset and the cursors' bounds at every step.
  const Key key = key_projection;
  const auto old_first = before.begin();
  const auto old_last = old_first + before.size();
  const auto new_first = after.begin();
  const auto new_last = new_first + after.size();
  auto old_at = old_first;
  auto new_at = new_first;
  const auto old_position = [&old_at, old_first] { return static_cast<std::size_t>(old_at - old_first); };
  const auto new_position = [&new_at, new_first] { return static_cast<std::size_t>(new_at - new_first); };
  typename found_events<T>::writer out(found);
  last_taken<Key, T> last;
  // Whether `k` may not be taken after the last key; and then why not.
  const auto out_of_order = [&](const auto& k) { return !last.allows(key, k); };
  const auto broken = [&](const auto& k, merge_end unsorted, merge_end duplicate) {
    return k < last.get(key) ? unsorted : duplicate;
  };

  while (old_at != old_last && new_at != new_last) {
    const T& old_record = *old_at;
    const T& new_record = *new_at;
    decltype(auto) old_key = std::invoke(key, old_record);
    decltype(auto) new_key = std::invoke(key, new_record);
    const bool old_first_key = old_key < new_key;
    if (POLLSTER_LIKELY(!old_first_key && !(new_key < old_key))) {  // a key in both: the common case
      if (POLLSTER_UNLIKELY(out_of_order(old_key))) {
        // Only a key taken from both snapshots can be as large as a key they share next, so both broke their order:
        // the old one is named.
        stopped_at = old_position();
        return broken(old_key, merge_end::before_unsorted, merge_end::before_duplicate);
      }
      const bool differs = changed(old_record, new_record);
      if (differs || record_unchanged) out.matched(new_record, old_record, differs);
      last.take(old_record, old_key);
      ++old_at;
      ++new_at;
    } else if (old_first_key) {
      if (POLLSTER_UNLIKELY(out_of_order(old_key))) {
        stopped_at = old_position();
        return broken(old_key, merge_end::before_unsorted, merge_end::before_duplicate);
      }
      out.removed(old_record);
      last.take(old_record, old_key);
      ++old_at;
    } else {
      if (POLLSTER_UNLIKELY(out_of_order(new_key))) {
        stopped_at = new_position();
        return broken(new_key, merge_end::after_unsorted, merge_end::after_duplicate);
      }
      out.added(new_record);
      last.take(new_record, new_key);
      ++new_at;
    }
  }
  for (; old_at != old_last; ++old_at) {
    decltype(auto) old_key = std::invoke(key, *old_at);
    if (POLLSTER_UNLIKELY(out_of_order(old_key))) {
      stopped_at = old_position();
      return broken(old_key, merge_end::before_unsorted, merge_end::before_duplicate);
    }
    out.removed(*old_at);
    last.take(*old_at, old_key);
  }
  for (; new_at != new_last; ++new_at) {
    decltype(auto) new_key = std::invoke(key, *new_at);
    if (POLLSTER_UNLIKELY(out_of_order(new_key))) {
      stopped_at = new_position();
      return broken(new_key, merge_end::after_unsorted, merge_end::after_duplicate);
    }
    out.added(*new_at);
    last.take(*new_at, new_key);
  }
  return merge_end::merged;
}

}  // namespace detail
POLLSTER_NAMESPACE_END
