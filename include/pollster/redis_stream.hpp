// SPDX-License-Identifier: MIT
#pragma once

// Events to other processes on a Redis stream (optional: link pollster::redis).
//
//  * `redis_stream_writer` appends an event (field/value pairs; a watcher's event with its id, type and subject, say)
//    with XADD ... MAXLEN ~ n, so the stream keeps about the last n events. `append_if_leased` appends only while a
//    lease key still holds the writer's lease (one script: check and append together), so a worker that lost its key
//    to another (redis_work.hpp) cannot add events for it.
//  * `redis_stream_reader` reads them in a consumer group, at least once: XREADGROUP hands each new event to one
//    consumer of the group, which acknowledges it (XACK) once handled. An event whose handler threw, or whose consumer
//    died, stays pending; after `claim_idle` any consumer of the group takes it over (XAUTOCLAIM) and handles it
//    again. A restarted consumer (same name) first reads back what it was given and never acknowledged. Events are
//    never lost, and may come twice: give them ids that stay the same (a key and a version) and make handlers
//    idempotent.
//
// Both use a `redis_connection` of the caller's, on the caller's thread. A reader's blocking read must end before
// the connection's command timeout (`block` < `redis_options::command_timeout`).

#include "detail/config.hpp"
#include "detail/text.hpp"
#include "redis_client.hpp"

#include <algorithm>    // max
#include <chrono>       // milliseconds, duration_cast
#include <cstddef>      // size_t
#include <cstdint>      // uint64_t
#include <exception>    // exception
#include <optional>     // optional
#include <string>       // string, to_string
#include <string_view>  // string_view
#include <utility>      // move, pair
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN

/// One event of a stream: its id (Redis' "ms-seq") and its fields, in order.
struct redis_stream_entry {
  std::string id;
  std::vector<std::pair<std::string, std::string>> fields;

  /// The value of field `name` (empty when there is none).
  std::string get(std::string_view name) const {
    for (const auto& f : fields) {
      if (f.first == name) return f.second;
    }
    return {};
  }
  bool has(std::string_view name) const {
    for (const auto& f : fields) {
      if (f.first == name) return true;
    }
    return false;
  }
};

using redis_fields = std::vector<std::pair<std::string, std::string>>;

namespace detail {
inline const char* append_if_leased_script() {
  return R"lua(
-- KEYS[1] the stream, KEYS[2] the lease; ARGV[1] the lease's expected value, ARGV[2] MAXLEN, then field, value...
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local args = {'XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*'}
for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
return redis.call(unpack(args))
)lua";
}

/// [id, [field, value, ...]] -> an entry (fields nil: the entry was trimmed away while pending).
inline std::optional<redis_stream_entry> entry_of(const redis_value& v) {
  const std::vector<redis_value>& pair = v.as_array();
  if (pair.size() < 2) return std::nullopt;
  redis_stream_entry e;
  e.id = pair[0].as_string();
  if (pair[1].is_nil()) {
    return e;  // no fields
  }
  const std::vector<redis_value>& flat = pair[1].as_array();
  for (std::size_t i = 0; i + 1 < flat.size(); i += 2) e.fields.emplace_back(flat[i].as_string(), flat[i + 1].as_string());
  return e;
}
}  // namespace detail

/// Appends events to one stream.
class redis_stream_writer {
 public:
  explicit redis_stream_writer(std::string stream, std::size_t max_length = 100000)
      : stream_(std::move(stream)), max_length_(max_length), fenced_(detail::append_if_leased_script()) {
    if (stream_.empty()) detail::throw_invalid("redis_stream_writer", "stream", "not empty", "\"\"");
    if (max_length_ == 0) detail::throw_invalid("redis_stream_writer", "max_length", ">= 1", "0");
  }

  /// XADD: returns the event's id.
  std::string append(redis_connection& c, const redis_fields& fields) {
    check_fields(fields);
    std::vector<std::string> args{"XADD", stream_, "MAXLEN", "~", std::to_string(max_length_), "*"};
    for (const auto& f : fields) {
      args.push_back(f.first);
      args.push_back(f.second);
    }
    return c.command(args).as_string();
  }
  /// The same, only while `lease_key` holds `lease_value` (checked and appended in one script); nothing otherwise.
  std::optional<std::string> append_if_leased(redis_connection& c, const std::string& lease_key,
                                              const std::string& lease_value, const redis_fields& fields) {
    check_fields(fields);
    std::vector<std::string> args{lease_value, std::to_string(max_length_)};
    for (const auto& f : fields) {
      args.push_back(f.first);
      args.push_back(f.second);
    }
    const redis_value reply = fenced_.run(c, {stream_, lease_key}, args);
    if (reply.is_nil()) return std::nullopt;
    return reply.as_string();
  }
  const std::string& stream() const noexcept { return stream_; }

 private:
  static void check_fields(const redis_fields& fields) {
    if (fields.empty()) detail::throw_invalid("redis_stream_writer", "fields", "at least one field", "none");
  }
  std::string stream_;
  std::size_t max_length_;
  redis_script fenced_;
};

/// Named parameters of a consumer (C++20: `{.stream = "events", .group = "billing", .consumer = "b-1"}`).
struct redis_consumer_options {
  std::string stream;
  std::string group;
  std::string consumer;  ///< this consumer's name in the group; keep it across restarts to get back its pending events
  std::size_t count = 100;                                  ///< events per read, at most
  duration block = std::chrono::milliseconds(100);          ///< how long a read waits for new events
  duration claim_idle = std::chrono::seconds(30);           ///< pending this long: another consumer takes it over
  std::string start = "0";  ///< where a group created here starts: "0" (the whole stream) or "$" (new events only)
};

/// Reads a stream in a consumer group, at least once (see the top of this header).
class redis_stream_reader {
 public:
  explicit redis_stream_reader(redis_consumer_options options) : options_(std::move(options)) {
    if (options_.stream.empty()) detail::throw_invalid("redis_stream_reader", "stream", "not empty", "\"\"");
    if (options_.group.empty()) detail::throw_invalid("redis_stream_reader", "group", "not empty", "\"\"");
    if (options_.consumer.empty()) detail::throw_invalid("redis_stream_reader", "consumer", "not empty", "\"\"");
    if (options_.count == 0) detail::throw_invalid("redis_stream_reader", "count", ">= 1", "0");
    if (options_.block < duration::zero()) {
      detail::throw_invalid("redis_stream_reader", "block", ">= 0", detail::duration_text(options_.block));
    }
    if (options_.claim_idle <= duration::zero()) {
      detail::throw_invalid("redis_stream_reader", "claim_idle", "> 0", detail::duration_text(options_.claim_idle));
    }
  }

  /// Creates the group (and the stream) if it does not exist yet. Safe to call from every consumer.
  void ensure_group(redis_connection& c) {
    const redis_value reply = c.command({"XGROUP", "CREATE", options_.stream, options_.group, options_.start, "MKSTREAM"});
    if (reply.is_error() && reply.text.compare(0, 9, "BUSYGROUP") != 0) reply.check();
  }

  /// The next events for this consumer: first those it was given before and never acknowledged (after a restart),
  /// then those pending too long with any consumer of the group (taken over), then new ones (waiting up to `block`).
  std::vector<redis_stream_entry> read(redis_connection& c) {
    if (options_.block >= c.options().command_timeout) {
      detail::throw_invalid("redis_stream_reader", "block",
                            "< the connection's command_timeout (" + detail::duration_text(c.options().command_timeout) +
                                ")",
                            detail::duration_text(options_.block));
    }
    if (!own_pending_read_) {
      // Page through this consumer's own pending events once (after a restart); a handler that fails on one of them
      // leaves it pending, to be claimed again after claim_idle like any other.
      std::vector<redis_stream_entry> mine = read_group(c, own_cursor_.c_str(), false);
      if (!mine.empty()) {
        own_cursor_ = mine.back().id;
        return mine;
      }
      own_pending_read_ = true;
    }
    std::vector<redis_stream_entry> claimed = claim(c);
    if (!claimed.empty()) return claimed;
    return read_group(c, ">", true);
  }

  void ack(redis_connection& c, const std::string& id) {
    c.command({"XACK", options_.stream, options_.group, id}).check();
    ++acked_;
  }

  /// Reads once and hands each event to `handler(const redis_stream_entry&)`: acknowledged when it returns, left
  /// pending when it throws (handled again after `claim_idle`). Returns the events handled.
  template <class Handler>
  std::size_t consume(redis_connection& c, Handler&& handler) {
    std::size_t handled = 0;
    for (const redis_stream_entry& e : read(c)) {
      if (e.fields.empty()) {  // trimmed away while pending: nothing to handle
        ack(c, e.id);
        continue;
      }
      try {
        handler(e);
      } catch (const std::exception&) {
        ++failures_;
        continue;
      }
      ack(c, e.id);
      ++handled;
    }
    return handled;
  }

  std::uint64_t acknowledged() const noexcept { return acked_; }
  std::uint64_t failures() const noexcept { return failures_; }
  std::uint64_t claimed() const noexcept { return claimed_; }
  const redis_consumer_options& options() const noexcept { return options_; }

 private:
  std::vector<redis_stream_entry> read_group(redis_connection& c, const char* id, bool block) {
    std::vector<std::string> args{"XREADGROUP", "GROUP", options_.group, options_.consumer, "COUNT",
                                  std::to_string(options_.count)};
    if (block) {
      args.push_back("BLOCK");
      args.push_back(std::to_string(
          std::max<long long>(1, std::chrono::duration_cast<std::chrono::milliseconds>(options_.block).count())));
    }
    args.push_back("STREAMS");
    args.push_back(options_.stream);
    args.push_back(id);
    const redis_value reply = c.command(args);
    std::vector<redis_stream_entry> out;
    if (reply.is_nil()) return out;  // a blocking read that timed out
    for (const redis_value& stream : reply.as_array()) {
      const std::vector<redis_value>& pair = stream.as_array();
      if (pair.size() < 2 || pair[1].is_nil()) continue;
      for (const redis_value& entry : pair[1].as_array()) {
        if (auto e = detail::entry_of(entry)) out.push_back(std::move(*e));
      }
    }
    return out;
  }

  // XAUTOCLAIM (Redis 6.2+; 7 adds the deleted ids as a third element): entries idle past claim_idle, from anyone.
  std::vector<redis_stream_entry> claim(redis_connection& c) {
    const auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(options_.claim_idle).count();
    const redis_value reply = c.command({"XAUTOCLAIM", options_.stream, options_.group, options_.consumer,
                                         std::to_string(idle), claim_cursor_, "COUNT", std::to_string(options_.count)});
    const std::vector<redis_value>& parts = reply.as_array();
    std::vector<redis_stream_entry> out;
    if (parts.size() < 2) return out;
    claim_cursor_ = parts[0].as_string();
    for (const redis_value& entry : parts[1].as_array()) {
      if (entry.is_nil()) continue;
      if (auto e = detail::entry_of(entry)) out.push_back(std::move(*e));
    }
    claimed_ += out.size();
    return out;
  }

  redis_consumer_options options_;
  std::string claim_cursor_ = "0-0";
  std::string own_cursor_ = "0";
  bool own_pending_read_ = false;
  std::uint64_t acked_ = 0;
  std::uint64_t failures_ = 0;
  std::uint64_t claimed_ = 0;
};

POLLSTER_NAMESPACE_END
