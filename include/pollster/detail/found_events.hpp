// SPDX-License-Identifier: MIT
#pragma once

#include "config.hpp"

#include <cstddef>  // size_t
#include <cstdint>  // uint32_t, uint64_t
#include <memory>   // unique_ptr
#include <utility>  // move
#include <vector>   // vector

POLLSTER_NAMESPACE_BEGIN
namespace detail {

/// How a pass through an index ended: done, at a key the pass met twice (`repeated`), or with more probe steps than
/// its budget (`flooded`: keys that collide despite the seed). Nothing is reported by the passes; on anything but
/// `done` the caller falls back to a path that handles it.
enum class index_end : std::uint8_t { done, repeated, flooded };

/// A growable sequence of words (small trivially copyable values) that a loop appends to through a `writer`, whose two pointers stay in registers (a
/// std::vector's push_back reloads its own from memory after every call the compiler cannot see through). Stored
/// in blocks that double in size and are never copied when a block fills, and kept by clear(), so that a buffer
/// reused from one diff to the next allocates nothing.
template <class Word>
class word_buffer {
 public:
  class writer {
   public:
    explicit writer(word_buffer& buffer) noexcept : buffer_(&buffer) { open(); }
    writer(const writer&) = delete;
    writer& operator=(const writer&) = delete;
    ~writer() { close(); }

    void push(Word word) {
      if (at_ == end_) grow();
      *at_++ = word;
    }

   private:
    void open() noexcept {
      if (buffer_->current_ >= buffer_->blocks_.size()) return;  // no block yet: the first push makes one
      block& current = buffer_->blocks_[buffer_->current_];
      at_ = current.words.get() + current.used;
      end_ = current.words.get() + current.capacity;
    }
    void close() noexcept {
      if (buffer_->current_ < buffer_->blocks_.size()) {
        block& current = buffer_->blocks_[buffer_->current_];
        current.used = static_cast<std::size_t>(at_ - current.words.get());
      }
    }
    void grow() {
      close();
      std::vector<block>& blocks = buffer_->blocks_;
      std::size_t next = buffer_->current_ < blocks.size() ? buffer_->current_ + 1 : 0;
      if (next == blocks.size()) {
        // Allocated before the block is added, so that running out of memory leaves no empty block behind.
        const std::size_t capacity = blocks.empty() ? 256 : 2 * blocks.back().capacity;
        std::unique_ptr<Word[]> words(new Word[capacity]);  // uninitialised: only pushed words are read
        blocks.emplace_back();
        blocks.back().words = std::move(words);
        blocks.back().capacity = capacity;
      }
      buffer_->current_ = next;
      blocks[next].used = 0;
      open();
    }

    word_buffer* buffer_;
    Word* at_ = nullptr;
    Word* end_ = nullptr;
  };

  word_buffer() = default;
  word_buffer(word_buffer&&) noexcept = default;
  word_buffer& operator=(word_buffer&&) noexcept = default;
  /// A copy holds the same words, in one block.
  word_buffer(const word_buffer& other) {
    const std::size_t words = other.size();
    if (words == 0) return;
    blocks_.emplace_back();
    blocks_.back().words.reset(new Word[words]);
    blocks_.back().capacity = words;
    Word* out = blocks_.back().words.get();
    other.for_each([&out](Word word) { *out++ = word; });
    blocks_.back().used = words;
  }
  word_buffer& operator=(const word_buffer& other) {
    if (this != &other) *this = word_buffer(other);
    return *this;
  }

  /// Calls `use(word)` for every word, in the order they were pushed.
  template <class Use>
  void for_each(Use&& use) const {
    for (std::size_t at = 0; at <= current_ && at < blocks_.size(); ++at) {
      const block& b = blocks_[at];
      for (std::size_t word = 0; word < b.used; ++word) use(b.words[word]);
    }
  }
  std::size_t size() const noexcept {
    std::size_t words = 0;
    for (std::size_t at = 0; at <= current_ && at < blocks_.size(); ++at) words += blocks_[at].used;
    return words;
  }
  /// Empties the buffer and keeps its blocks for the next words.
  void clear() noexcept {
    for (block& b : blocks_) b.used = 0;
    current_ = 0;
  }
  void release() noexcept {
    std::vector<block>().swap(blocks_);
    current_ = 0;
  }
  std::size_t capacity() const noexcept {
    std::size_t words = 0;
    for (const block& b : blocks_) words += b.capacity;
    return words;
  }

 private:
  struct block {
    std::unique_ptr<Word[]> words;
    std::size_t capacity = 0;
    std::size_t used = 0;
  };
  std::vector<block> blocks_;
  std::size_t current_ = 0;  // the block being written; the ones before it are full
};

/// The events of one diff, found before any is reported (a duplicate key must throw first, and removals come before
/// everything else): the removed old records, in the old order, then in the order of the new snapshot each new
/// record to report with what it matched: the old record (changed), nothing (added), or `unchanged()` (recorded only
/// when unchanged records are reported). Records are kept as pointers, so the report computes no addresses.
/// Unchanged records are not recorded at all when nobody asked for them, so a quiet diff of a million records records
/// nothing. Written through a `writer` (which a loop keeps in registers), read once it is gone.
template <class T>
struct found_events {
  struct news_entry {
    const T* record;
    const T* match;  // the old record of a change; nullptr: added; unchanged(): unchanged
  };

  /// The `match` of an unchanged record: an address no record has.
  static const T* unchanged() noexcept {
    alignas(T) static const unsigned char marker[sizeof(T)] = {};
    return reinterpret_cast<const T*>(marker);
  }

  word_buffer<const T*> removals;
  word_buffer<news_entry> news;

  class writer {
   public:
    explicit writer(found_events& found) noexcept : removals_(found.removals), news_(found.news) {}
    void removed(const T& old_record) { removals_.push(std::addressof(old_record)); }
    void added(const T& new_record) { news_.push({std::addressof(new_record), nullptr}); }
    void matched(const T& new_record, const T& old_record, bool changed) {
      news_.push({std::addressof(new_record), changed ? std::addressof(old_record) : unchanged()});
    }

   private:
    typename word_buffer<const T*>::writer removals_;
    typename word_buffer<news_entry>::writer news_;
  };

  void clear() noexcept {
    removals.clear();
    news.clear();
  }
  void release() noexcept {
    removals.release();
    news.release();
  }
  /// The most events it has room for without allocating, and the bytes that room takes.
  std::size_t capacity() const noexcept {
    return removals.capacity() > news.capacity() ? removals.capacity() : news.capacity();
  }
  std::size_t capacity_bytes() const noexcept {
    return removals.capacity() * sizeof(const T*) + news.capacity() * sizeof(news_entry);
  }
};

/// One bit per record of a list, for marking some and visiting them (or the others) in list order, 64 at a time.
class match_bits {
 public:
  void reset(std::size_t records) {
    words_.assign((records + 63) / 64, 0U);
    records_ = records;
    set_ = 0;
  }
  void set(std::size_t at) noexcept {
    words_[at / 64] |= std::uint64_t{1} << (at % 64);
    ++set_;
  }
  bool test(std::size_t at) const noexcept { return ((words_[at / 64] >> (at % 64)) & 1U) != 0U; }
  std::size_t count() const noexcept { return set_; }
  /// The words, for a loop to set bits through (then `recount()`).
  std::uint64_t* words() noexcept { return words_.data(); }
  /// Counts the set bits again, after bits were set through words().
  void recount() noexcept {
    set_ = 0;
    for (const std::uint64_t word : words_) set_ += bits_in(word);
  }

  /// Calls `use(position)` for every set bit, in increasing order.
  template <class Use>
  void for_each_set(Use&& use) const {
    if (set_ == 0) return;
    for (std::size_t word = 0; word < words_.size(); ++word) {
      std::uint64_t bits = words_[word];
      while (bits != 0U) {
        use(word * 64 + lowest_bit(bits));
        bits &= bits - 1U;
      }
    }
  }

  /// Calls `use(position)` for every unset bit, in increasing order.
  template <class Use>
  void for_each_unset(Use&& use) const {
    if (set_ == records_) return;
    for (std::size_t word = 0; word < words_.size(); ++word) {
      std::uint64_t unset = ~words_[word];
      if (word + 1 == words_.size() && records_ % 64 != 0) unset &= (std::uint64_t{1} << (records_ % 64)) - 1U;
      while (unset != 0U) {
        use(word * 64 + lowest_bit(unset));
        unset &= unset - 1U;
      }
    }
  }

  std::size_t capacity_bytes() const noexcept { return words_.capacity() * sizeof(std::uint64_t); }
  void release() noexcept {
    std::vector<std::uint64_t>().swap(words_);
    records_ = 0;
    set_ = 0;
  }

 private:
  static std::size_t bits_in(std::uint64_t word) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    return static_cast<std::size_t>(__builtin_popcountll(word));
#else
    std::size_t bits = 0;
    for (; word != 0U; word &= word - 1U) ++bits;
    return bits;
#endif
  }
  static std::size_t lowest_bit(std::uint64_t word) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    return static_cast<std::size_t>(__builtin_ctzll(word));
#else
    std::size_t at = 0;
    while ((word & 1U) == 0U) {
      word >>= 1U;
      ++at;
    }
    return at;
#endif
  }

  std::vector<std::uint64_t> words_;
  std::size_t records_ = 0;
  std::size_t set_ = 0;
};

}  // namespace detail
POLLSTER_NAMESPACE_END
