// SPDX-License-Identifier: MIT
#pragma once

// A small synchronous Redis client on hiredis (optional: link pollster::redis, which brings hiredis; Debian's
// libhiredis-dev is 0.14, and the calls used here are the same in 1.x): what pollster's fleet budget, work set and
// event streams need, and no more.
//
//  * `redis_connection`: one connection, used by one thread at a time, with a connect timeout and a command timeout.
//    hiredis cannot reuse a context once a call failed (its README: "the context cannot be reused and you should set
//    up a new connection"; a reply that arrives after a timeout would otherwise be read as the next command's), so a
//    failed call closes it: the next call reconnects, and whoever owns the connection decides when (with a pollster
//    schedule, say). I/O failures and timeouts throw `redis_error` with `redis_error::kind::connection`.
//  * `redis_value`: a reply, copied out of hiredis' tree (so nothing dangles once the call returns). A server error
//    reply is a value of kind error; `redis_value::check()` turns it into a `redis_error` of kind reply.
//  * `redis_script`: a Lua script run by EVALSHA, loaded with SCRIPT LOAD on first use and again when the server
//    answers NOSCRIPT (a restarted Redis, a SCRIPT FLUSH).

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"

#include <hiredis/hiredis.h>

#include <sys/time.h>  // timeval

#include <algorithm>         // max
#include <chrono>            // duration_cast, microseconds
#include <cstddef>           // size_t
#include <cstdint>           // uint64_t
#include <exception>         // exception
#include <initializer_list>  // initializer_list
#include <memory>            // unique_ptr
#include <stdexcept>         // runtime_error
#include <string>            // string, to_string
#include <string_view>       // string_view
#include <utility>           // move
#include <vector>            // vector

POLLSTER_NAMESPACE_BEGIN

/// Where a Redis server is and how long to wait for it. A plain aggregate.
struct redis_options {
  std::string host = "127.0.0.1";
  int port = 6379;
  duration connect_timeout = std::chrono::milliseconds(500);
  /// How long one command may take, round trip included; past it the call fails and the connection is closed.
  duration command_timeout = std::chrono::milliseconds(500);
  std::string password;  ///< AUTH with this when not empty
  int database = 0;      ///< SELECT this when not 0
};

/// A failed Redis call: the connection (refused, closed, timed out) or an error reply from the server.
class redis_error : public std::runtime_error {
 public:
  enum class kind { connection, reply };
  redis_error(kind k, const std::string& what) : std::runtime_error(what), kind_(k) {}
  kind error_kind() const noexcept { return kind_; }
  bool connection_lost() const noexcept { return kind_ == kind::connection; }

 private:
  kind kind_;
};

/// One reply, owned.
struct redis_value {
  enum class kind { nil, integer, string, status, error, array };
  kind type = kind::nil;
  long long integer = 0;
  std::string text;  ///< string, status and error replies
  std::vector<redis_value> elements;

  bool is_nil() const noexcept { return type == kind::nil; }
  bool is_error() const noexcept { return type == kind::error; }
  /// Throws redis_error (kind reply) for an error reply; returns *this otherwise.
  const redis_value& check() const {
    if (type == kind::error) throw redis_error(redis_error::kind::reply, "pollster: Redis answered: " + text);
    return *this;
  }
  /// An integer reply, or a string reply that holds one (Lua numbers come back as integers, big ones as strings).
  long long as_integer() const {
    check();
    if (type == kind::integer) return integer;
    if (type == kind::string) {
      std::size_t used = 0;
      long long value = 0;
      try {
        value = std::stoll(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == text.size() && !text.empty()) return value;
    }
    throw redis_error(redis_error::kind::reply, "pollster: expected an integer from Redis, got " + describe());
  }
  /// A string or status reply. (On a temporary, a copy: `c.command(...).as_string()` must not dangle.)
  const std::string& as_string() const& {
    check();
    if (type == kind::string || type == kind::status) return text;
    throw redis_error(redis_error::kind::reply, "pollster: expected a string from Redis, got " + describe());
  }
  std::string as_string() && { return static_cast<const redis_value&>(*this).as_string(); }
  /// An array reply. (On a temporary, a copy: `for (auto& v : c.command(...).as_array())` must not dangle.)
  const std::vector<redis_value>& as_array() const& {
    check();
    if (type == kind::array) return elements;
    throw redis_error(redis_error::kind::reply, "pollster: expected an array from Redis, got " + describe());
  }
  std::vector<redis_value> as_array() && { return std::move(const_cast<std::vector<redis_value>&>(
      static_cast<const redis_value&>(*this).as_array())); }
  std::string describe() const {
    switch (type) {
      case kind::nil: return "nil";
      case kind::integer: return "integer " + std::to_string(integer);
      case kind::string: return "string \"" + text + "\"";
      case kind::status: return "status " + text;
      case kind::error: return "error " + text;
      case kind::array: return "array of " + std::to_string(elements.size());
    }
    return "unknown";
  }
};

namespace detail {
inline timeval to_timeval(duration d) noexcept {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::max(d, duration::zero())).count();
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(us / 1000000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>(us % 1000000);
  return tv;
}
inline redis_value copy_reply(const redisReply* r) {
  redis_value v;
  if (r == nullptr) return v;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      v.type = redis_value::kind::integer;
      v.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      v.type = redis_value::kind::string;
      v.text.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = redis_value::kind::status;
      v.text.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = redis_value::kind::error;
      v.text.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      v.type = redis_value::kind::array;
      v.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) v.elements.push_back(copy_reply(r->element[i]));
      break;
    default:  // REDIS_REPLY_NIL (and RESP3 types, which a RESP2 connection never sees)
      break;
  }
  return v;
}
struct context_free {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
struct reply_free {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
}  // namespace detail

/// One connection to Redis, for one thread at a time. Connects on first use; a call that fails closes it, and the
/// next call connects again.
class redis_connection {
 public:
  explicit redis_connection(redis_options options) : options_(std::move(options)) {
    if (options_.port <= 0 || options_.port > 65535) {
      detail::throw_invalid("redis_connection", "port", "in [1, 65535]", std::to_string(options_.port));
    }
    if (options_.connect_timeout <= duration::zero()) {
      detail::throw_invalid("redis_connection", "connect_timeout", "> 0", detail::duration_text(options_.connect_timeout));
    }
    if (options_.command_timeout <= duration::zero()) {
      detail::throw_invalid("redis_connection", "command_timeout", "> 0", detail::duration_text(options_.command_timeout));
    }
  }

  /// Connects now (a no-op when connected); throws redis_error (connection) on failure.
  void connect() {
    if (context_) return;
    std::unique_ptr<redisContext, detail::context_free> c(
        redisConnectWithTimeout(options_.host.c_str(), options_.port, detail::to_timeval(options_.connect_timeout)));
    if (!c) throw redis_error(redis_error::kind::connection, "pollster: cannot allocate a Redis context");
    if (c->err != 0) {
      throw redis_error(redis_error::kind::connection, "pollster: cannot connect to Redis at " + where() + ": " +
                                                           std::string(c->errstr));
    }
    if (redisSetTimeout(c.get(), detail::to_timeval(options_.command_timeout)) != REDIS_OK) {
      throw redis_error(redis_error::kind::connection, "pollster: cannot set the Redis command timeout");
    }
    (void)redisEnableKeepAlive(c.get());
    context_ = std::move(c);
    ++connects_;
    try {
      if (!options_.password.empty()) command({"AUTH", options_.password}).check();
      if (options_.database != 0) command({"SELECT", std::to_string(options_.database)}).check();
    } catch (...) {
      close();
      throw;
    }
  }
  bool connected() const noexcept { return static_cast<bool>(context_); }
  void close() noexcept { context_.reset(); }

  /// Sends one command and waits for its reply (at most the command timeout). Connects first if needed.
  redis_value command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    return send(static_cast<int>(args.size()), argv.data(), lengths.data());
  }
  redis_value command(std::initializer_list<std::string_view> args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (std::string_view a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    return send(static_cast<int>(args.size()), argv.data(), lengths.data());
  }

  const redis_options& options() const noexcept { return options_; }
  std::string where() const { return options_.host + ":" + std::to_string(options_.port); }
  /// Connections made so far (a reconnect counts).
  std::uint64_t connects() const noexcept { return connects_; }

 private:
  redis_value send(int argc, const char** argv, const std::size_t* lengths) {
    connect();
    std::unique_ptr<redisReply, detail::reply_free> reply(
        static_cast<redisReply*>(redisCommandArgv(context_.get(), argc, argv, lengths)));
    if (!reply) {
      const std::string reason = context_->errstr;
      close();  // hiredis: a context that failed a call cannot be used again
      throw redis_error(redis_error::kind::connection, "pollster: Redis at " + where() + ": " + reason);
    }
    return detail::copy_reply(reply.get());
  }

  redis_options options_;
  std::unique_ptr<redisContext, detail::context_free> context_;
  std::uint64_t connects_ = 0;
};

/// A Lua script, run with EVALSHA; loaded on first use and again after NOSCRIPT. The same object may serve several
/// connections (one thread at a time).
class redis_script {
 public:
  explicit redis_script(std::string body) : body_(std::move(body)) {}

  redis_value run(redis_connection& connection, const std::vector<std::string>& keys,
                  const std::vector<std::string>& args) {
    for (int round = 0; round < 2; ++round) {
      if (sha_.empty()) sha_ = connection.command({"SCRIPT", "LOAD", body_}).as_string();
      std::vector<std::string> command;
      command.reserve(3 + keys.size() + args.size());
      command.push_back("EVALSHA");
      command.push_back(sha_);
      command.push_back(std::to_string(keys.size()));
      command.insert(command.end(), keys.begin(), keys.end());
      command.insert(command.end(), args.begin(), args.end());
      redis_value reply = connection.command(command);
      if (reply.is_error() && reply.text.compare(0, 8, "NOSCRIPT") == 0) {
        sha_.clear();  // a restarted server, or SCRIPT FLUSH: load it again
        continue;
      }
      return reply;
    }
    throw redis_error(redis_error::kind::reply, "pollster: Redis keeps answering NOSCRIPT for a script just loaded");
  }
  const std::string& body() const noexcept { return body_; }

 private:
  std::string body_;
  std::string sha_;
};

POLLSTER_NAMESPACE_END
