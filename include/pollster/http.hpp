// SPDX-License-Identifier: MIT
#pragma once

// Polling an HTTP API, whatever the transport: a response (status, headers, body) becomes a `step` by a documented
// policy that every rule of which can be changed.
//
//   status                          step                                       the error's `retryable`
//   2xx (not 202)                   the mapper's: done / pending / failed      -
//   202 Accepted                    pending, with the server's hint            -
//   304 Not Modified                not_modified (pending, no value: a watcher skips the diff)
//   429                             throttled (transient, marked throttled)    true
//   408, 425, 503, other 5xx        transient, with the server's hint          true
//   404                             failed (transient with not_found_is_transient: eventual consistency)
//   other 4xx, 3xx, 1xx             failed                                     false
//   no complete response            transient (refused, timeout, reset, truncated, ...)  true
//   a body the mapper cannot read   failed (transient with body_errors_are_transient), never a silent "pending"
//
// The hint is what the server said about when to come back, as a floor under the schedule: `Retry-After` (seconds,
// or an HTTP-date read against the response's own `Date`, so a client clock that is off neither stretches nor
// shrinks the wait), `X-Poll-Interval` (GitHub), and an exhausted quota of the IETF `RateLimit` fields
// (draft-ietf-httpapi-ratelimit-headers-08 to -11: `RateLimit: "default";r=0;t=30`) or of `X-RateLimit-Remaining`
// / `X-RateLimit-Reset`. Retry-After takes precedence over the rate-limit fields, as the draft says.
//
// Conditional polling: `conditional_request` remembers `ETag` / `Last-Modified` of the last body that was read and
// adds `If-None-Match` / `If-Modified-Since` to the next request, so an unchanged resource costs a 304 (which
// GitHub, for one, does not count against its rate limit).

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/structured_fields.hpp"
#include "detail/text.hpp"  // ascii_lower, iequals
#include "retry_after.hpp"  // parse_retry_after, parse_http_date
#include "step.hpp"         // step and its factories, retry_hint

#include <algorithm>         // max, min
#include <chrono>            // system_clock, seconds
#include <cstddef>           // size_t
#include <cstdint>           // uint8_t, uint64_t
#include <exception>         // exception (a mapper that cannot read the body)
#include <functional>        // function (http_rules::reclassify)
#include <initializer_list>  // initializer_list (http_headers)
#include <limits>            // numeric_limits
#include <optional>          // optional
#include <ostream>           // ostream (an error prints itself)
#include <string>            // string, to_string
#include <string_view>       // string_view
#include <type_traits>       // decay_t, invoke_result_t, is_same_v
#include <utility>           // move, pair
#include <vector>            // vector

POLLSTER_NAMESPACE_BEGIN

namespace detail {

constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

/// 1*DIGIT that fits `limit`, nothing else (no sign, no fraction, no spaces inside).
inline std::optional<std::uint64_t> parse_decimal(std::string_view s, std::uint64_t limit) noexcept {
  s = trim_ows(s);
  if (s.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (limit - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

/// The most seconds a `duration` holds.
constexpr std::uint64_t max_seconds = static_cast<std::uint64_t>(duration::max().count() / 1000000000);
}  // namespace detail

/// Header fields as a response has them: names compare case-insensitively, a name may come several times, and the
/// order is kept.
class http_headers {
 public:
  using field = std::pair<std::string, std::string>;

  http_headers() = default;
  http_headers(std::initializer_list<field> fields) : fields_(fields) {}

  void add(std::string name, std::string value) { fields_.emplace_back(std::move(name), std::move(value)); }
  /// Replaces every field of that name with one.
  void set(std::string name, std::string value) {
    remove(name);
    add(std::move(name), std::move(value));
  }
  void remove(std::string_view name) {
    std::vector<field> kept;
    kept.reserve(fields_.size());
    for (field& f : fields_) {
      if (!detail::iequals(f.first, name)) kept.push_back(std::move(f));
    }
    fields_ = std::move(kept);
  }
  /// The first value of the field (a singleton field such as `Retry-After` or `ETag`).
  std::optional<std::string_view> get(std::string_view name) const noexcept {
    for (const field& f : fields_) {
      if (detail::iequals(f.first, name)) return std::string_view(f.second);
    }
    return std::nullopt;
  }
  /// Every value of a list field, joined with ", " as RFC 9110 combines field lines (`RateLimit` may be split).
  std::string combined(std::string_view name) const {
    std::string out;
    for (const field& f : fields_) {
      if (!detail::iequals(f.first, name)) continue;
      if (!out.empty()) out += ", ";
      out += f.second;
    }
    return out;
  }
  std::size_t count(std::string_view name) const noexcept {
    std::size_t n = 0;
    for (const field& f : fields_) n += detail::iequals(f.first, name) ? 1 : 0;
    return n;
  }
  bool contains(std::string_view name) const noexcept { return count(name) != 0; }

  std::size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }
  auto begin() const noexcept { return fields_.begin(); }
  auto end() const noexcept { return fields_.end(); }

 private:
  std::vector<field> fields_;
};

/// Why no complete response arrived. Every one of them is worth another try: the operation may be fine.
enum class transport_error : std::uint8_t {
  none,       ///< a complete response
  refused,    ///< no connection could be made (refused, unreachable)
  timeout,    ///< the request's timeout passed (the server never answered, or too slowly)
  reset,      ///< the connection was closed or reset before a response, or while sending the request
  truncated,  ///< the response ended before its announced length: the body is partial
  resolve,    ///< the host name did not resolve
  aborted,    ///< the client aborted the request (a cancelled poll, a client shutting down)
  other,      ///< anything else the transport reports (its message says what)
};

constexpr const char* to_string(transport_error e) noexcept {
  switch (e) {
    case transport_error::none:
      return "none";
    case transport_error::refused:
      return "refused";
    case transport_error::timeout:
      return "timeout";
    case transport_error::reset:
      return "reset";
    case transport_error::truncated:
      return "truncated";
    case transport_error::resolve:
      return "resolve";
    case transport_error::aborted:
      return "aborted";
    case transport_error::other:
      return "other";
  }
  return "unknown";
}

/// A request, for whichever transport sends it (curl.hpp sends it with libcurl).
struct http_request {
  http_request() = default;
  explicit http_request(std::string target, std::string verb = "GET")
      : url(std::move(target)), method(std::move(verb)) {}

  std::string url;
  std::string method = "GET";
  http_headers headers;
  std::string body;
  /// The whole exchange, connecting included. Zero: the transport's default. A check passes the time its run has
  /// left, so that no request outlives the deadline.
  duration timeout = duration::zero();
};

/// What came back: a complete response, or a transport error (with whatever part of the response did arrive).
struct http_response {
  int status = 0;      ///< 0 when no status line arrived
  std::string reason;  ///< the reason phrase, when the server sent one (HTTP/1.1 does, HTTP/2 does not)
  http_headers headers;
  std::string body;
  transport_error transport = transport_error::none;
  std::string transport_message;  ///< the transport's own words for the error
  /// When the response arrived, by the client's clock; the epoch means "unknown: use now".
  std::chrono::system_clock::time_point received_at{};

  bool complete() const noexcept { return transport == transport_error::none && status != 0; }
};

/// The usual reason phrase of a status, for errors from servers (and HTTP/2) that send none.
constexpr const char* http_reason_phrase(int status) noexcept {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 422:
      return "Unprocessable Content";
    case 425:
      return "Too Early";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

// ---------------------------------------------------------------------------------------------------------------
// What the server said about coming back.

/// One quota as a response reports it: how much is left and when it comes back.
struct rate_limit {
  std::string policy;                  ///< the IETF policy name ("default"); empty for X-RateLimit-*
  std::uint64_t remaining = 0;         ///< quota units left (`r`, X-RateLimit-Remaining)
  std::optional<duration> reset;       ///< until the quota is restored (`t`, X-RateLimit-Reset), from the response
  std::optional<std::uint64_t> quota;  ///< the whole quota (`q` of RateLimit-Policy, X-RateLimit-Limit)
  std::optional<duration> window;      ///< the policy's window (`w` of RateLimit-Policy)

  /// Requests per second that spend what is left evenly until the reset: what a budget may use (nothing without
  /// a reset; unbounded is never claimed).
  std::optional<double> sustainable_rate() const noexcept {
    if (!reset || *reset <= duration::zero()) return std::nullopt;
    return static_cast<double>(remaining) / (detail::to_double_ns(*reset) / 1e9);
  }
};

/// The IETF `RateLimit` field (with `RateLimit-Policy` for the quotas and windows, when given), or nothing when the
/// field is absent or malformed: the draft says a malformed field MUST be ignored, all of it.
///   parse_ratelimit("\"default\";r=50;t=30", "\"default\";q=100;w=60") -> {default, 50 left, reset 30 s, q 100, w 60
///   s}
inline std::vector<rate_limit> parse_ratelimit(std::string_view ratelimit, std::string_view policy = {}) {
  using detail::sf_item;
  const auto items = detail::parse_sf_list(ratelimit);
  if (!items) return {};
  const auto seconds_of = [](const sf_item* p) -> std::optional<duration> {
    if (p == nullptr) return std::nullopt;
    return std::chrono::seconds{p->number};
  };
  const auto non_negative = [](const sf_item* p) {
    return p == nullptr || (p->type == sf_item::kind::integer && p->number >= 0 &&
                            static_cast<std::uint64_t>(p->number) <= detail::max_seconds);
  };
  std::vector<rate_limit> out;
  for (const detail::sf_member& m : *items) {
    const sf_item* r = m.parameter("r");
    const sf_item* t = m.parameter("t");
    if (m.value.type != sf_item::kind::string || r == nullptr || !non_negative(r) || !non_negative(t)) return {};
    out.push_back({m.value.text, static_cast<std::uint64_t>(r->number), seconds_of(t), std::nullopt, std::nullopt});
  }
  // The policies only add detail: a malformed RateLimit-Policy is ignored without losing RateLimit.
  if (const auto policies = detail::parse_sf_list(policy)) {
    for (const detail::sf_member& p : *policies) {
      const sf_item* q = p.parameter("q");
      const sf_item* w = p.parameter("w");
      if (p.value.type != sf_item::kind::string || q == nullptr || !non_negative(q) || !non_negative(w) ||
          (w != nullptr && w->number == 0)) {
        continue;
      }
      for (rate_limit& limit : out) {
        if (limit.policy != p.value.text) continue;
        limit.quota = static_cast<std::uint64_t>(q->number);
        limit.window = seconds_of(w);
      }
    }
  }
  return out;
}

/// The server's idea of "now": the response's `Date` when it has a valid one, else when it arrived by the client's
/// clock (or now, when that is unknown). Dates in a response are read against this.
inline std::chrono::system_clock::time_point server_time(const http_response& response) {
  const auto received = response.received_at == std::chrono::system_clock::time_point{}
                            ? std::chrono::system_clock::now()
                            : response.received_at;
  if (const auto date = response.headers.get("Date")) {
    // A date the clock cannot hold (before 1678, after 2261 in nanoseconds) is no better than none.
    constexpr auto limit = static_cast<std::int64_t>(detail::max_seconds) - 86400;
    const auto parsed = parse_http_date(detail::trim_ows(*date), received);
    if (parsed && parsed->time_since_epoch().count() < limit && parsed->time_since_epoch().count() > -limit) {
      return std::chrono::time_point_cast<std::chrono::system_clock::duration>(*parsed);
    }
  }
  return received;
}

/// What a response says about when to come back (each part is also there for a rate budget to use).
struct http_hints {
  std::optional<duration> retry_after;    ///< `Retry-After`, an HTTP-date read against the response's `Date`
  std::optional<duration> poll_interval;  ///< `X-Poll-Interval` (GitHub): poll no more often than this
  std::vector<rate_limit> rate_limits;    ///< `RateLimit` (+ `RateLimit-Policy`), else `X-RateLimit-*`

  /// The floor under the next delay: the longest of the poll interval and either Retry-After or, without one,
  /// the reset of every exhausted quota. Nothing when the server said nothing about time.
  std::optional<duration> delay() const noexcept {
    std::optional<duration> server = retry_after;
    if (!server) {
      for (const rate_limit& limit : rate_limits) {
        if (limit.remaining == 0 && limit.reset) server = std::max(server.value_or(duration::zero()), *limit.reset);
      }
    }
    if (!poll_interval) return server;
    return std::max(*poll_interval, server.value_or(duration::zero()));
  }
  /// The same as a step's hint (`retry_after(delay)`), or no hint.
  retry_hint hint() const noexcept {
    const auto d = delay();
    return d ? pollster::retry_after(*d) : retry_hint{};
  }
};

/// Reads the hints of a response. Malformed fields count as absent; nothing throws.
inline http_hints read_hints(const http_response& response) {
  http_hints hints;
  const auto server_now = server_time(response);
  if (const auto value = response.headers.get("Retry-After")) hints.retry_after = parse_retry_after(*value, server_now);
  if (const auto value = response.headers.get("X-Poll-Interval")) {
    if (const auto seconds = detail::parse_decimal(*value, detail::max_seconds)) {
      hints.poll_interval = std::chrono::seconds{static_cast<std::int64_t>(*seconds)};
    }
  }
  if (response.headers.contains("RateLimit")) {
    hints.rate_limits =
        parse_ratelimit(response.headers.combined("RateLimit"), response.headers.combined("RateLimit-Policy"));
  }
  if (hints.rate_limits.empty()) {
    const auto remaining = response.headers.get("X-RateLimit-Remaining");
    const auto parsed =
        remaining ? detail::parse_decimal(*remaining, std::numeric_limits<std::uint64_t>::max()) : std::nullopt;
    if (parsed) {
      rate_limit limit;
      limit.remaining = *parsed;
      if (const auto quota = response.headers.get("X-RateLimit-Limit")) {
        limit.quota = detail::parse_decimal(*quota, std::numeric_limits<std::uint64_t>::max());
      }
      if (const auto reset = response.headers.get("X-RateLimit-Reset")) {
        // GitHub and most others send the reset as Unix seconds, a few as seconds from now. A value of more than
        // half the server's Unix time (decades) can only be a time, and is read against the server's own clock.
        if (const auto value = detail::parse_decimal(*reset, detail::max_seconds)) {
          const std::int64_t now_seconds =
              std::chrono::duration_cast<std::chrono::seconds>(server_now.time_since_epoch()).count();
          if (now_seconds > 0 && static_cast<std::int64_t>(*value) > now_seconds / 2) {
            const auto ahead = static_cast<std::int64_t>(*value) - now_seconds;
            limit.reset = std::chrono::seconds{std::max<std::int64_t>(ahead, 0)};
          } else {
            limit.reset = std::chrono::seconds{static_cast<std::int64_t>(*value)};
          }
        }
      }
      hints.rate_limits.push_back(std::move(limit));
    }
  }
  return hints;
}

// ---------------------------------------------------------------------------------------------------------------
// The policy.

/// Which part of the exchange went wrong.
enum class http_error_kind : std::uint8_t {
  status,     ///< the server answered with an error status
  transport,  ///< no complete response (`transport` says why)
  body,       ///< a successful response whose body the mapper could not read
};

constexpr const char* to_string(http_error_kind k) noexcept {
  switch (k) {
    case http_error_kind::status:
      return "status";
    case http_error_kind::transport:
      return "transport";
    case http_error_kind::body:
      return "body";
  }
  return "unknown";
}

/// What went wrong with one request, kept as the run's last error: enough to log, and to write rules on.
struct http_error {
  http_error_kind kind = http_error_kind::status;
  int status = 0;  ///< the HTTP status (0: none arrived)
  transport_error transport = transport_error::none;
  std::string reason;        ///< the reason phrase, the transport's message, or why the body could not be read
  std::string body_excerpt;  ///< the start of the body (at most http_rules::excerpt_bytes), for the log
  bool retryable = false;    ///< the policy's verdict: another try may succeed (transient or throttled)

  /// One line: "HTTP 503 Service Unavailable: {...}", "no response (timeout): ...", "HTTP 200, unreadable body: ...".
  std::string describe() const {
    std::string text;
    switch (kind) {
      case http_error_kind::status:
        text = "HTTP " + std::to_string(status) + (reason.empty() ? "" : " " + reason);
        break;
      case http_error_kind::transport:
        text = status == 0 ? std::string("no response (") + to_string(transport) + ")"
                           : "HTTP " + std::to_string(status) + ", then " + to_string(transport);
        if (!reason.empty()) text += ": " + reason;
        break;
      case http_error_kind::body:
        text = "HTTP " + std::to_string(status) + ", unreadable body";
        if (!reason.empty()) text += ": " + reason;
        break;
    }
    if (!body_excerpt.empty()) text += " [" + body_excerpt + "]";
    return text;
  }
  friend std::ostream& operator<<(std::ostream& out, const http_error& e) { return out << e.describe(); }
};

/// What a response means, before any body is read (`classify`).
enum class http_verdict : std::uint8_t {
  read_body,     ///< a 2xx: the mapper reads the body and decides
  accepted,      ///< 202: not finished yet; pending, with the server's hint
  not_modified,  ///< 304: nothing changed since the validators the request sent
  throttled,     ///< rate limited (429): transient, with the hint, and a budget slows down
  transient,     ///< 408, 425, 503, other 5xx, no complete response: retry on the schedule
  failed,        ///< anything else: a permanent failure
};

constexpr const char* to_string(http_verdict v) noexcept {
  switch (v) {
    case http_verdict::read_body:
      return "read_body";
    case http_verdict::accepted:
      return "accepted";
    case http_verdict::not_modified:
      return "not_modified";
    case http_verdict::throttled:
      return "throttled";
    case http_verdict::transient:
      return "transient";
    case http_verdict::failed:
      return "failed";
  }
  return "unknown";
}

/// The policy's switches (C++20: `{.not_found_is_transient = true}`). `reclassify` has the last word.
struct http_rules {
  /// 404 is transient: a resource just created may not be visible everywhere yet (eventual consistency).
  bool not_found_is_transient = false;
  /// 503 throttles (as AWS's "slow down" does) instead of only being retried.
  bool throttle_on_503 = false;
  /// A 2xx body the mapper cannot read is retried, instead of ending the run as failed.
  bool body_errors_are_transient = false;
  /// A 202's body goes to the mapper too (a progress report); otherwise a 202 is plain pending.
  bool map_accepted_body = false;
  /// How much of a body an error keeps for the log.
  std::size_t excerpt_bytes = 200;
  /// Given the response and the default verdict, the verdict to use (a 409 that means "busy", say). Empty: none.
  std::function<http_verdict(const http_response&, http_verdict)> reclassify;
};

/// The verdict of the table at the top of this header, then `rules.reclassify`'s.
inline http_verdict classify(const http_response& response, const http_rules& rules = {}) {
  http_verdict v = http_verdict::failed;
  const int s = response.status;
  if (!response.complete()) {
    v = http_verdict::transient;
  } else if (s == 202) {
    v = rules.map_accepted_body ? http_verdict::read_body : http_verdict::accepted;
  } else if (s >= 200 && s <= 299) {
    v = http_verdict::read_body;
  } else if (s == 304) {
    v = http_verdict::not_modified;
  } else if (s == 429 || (s == 503 && rules.throttle_on_503)) {
    v = http_verdict::throttled;
  } else if (s == 408 || s == 425 || (s >= 500 && s <= 599) || (s == 404 && rules.not_found_is_transient)) {
    v = http_verdict::transient;
  }
  return rules.reclassify ? rules.reclassify(response, v) : v;
}

namespace detail {
/// The value type a mapper produces: `step<T, http_error>`, a draft (`done(v)`, `pending(v)`), or a plain T.
template <class R>
struct http_mapped {
  using value_type = R;
  static constexpr bool is_step = false;
};
template <class T, class E>
struct http_mapped<step<T, E>> {
  static_assert(std::is_same_v<E, http_error>, "pollster::step_from_response: a mapper's step must use http_error");
  using value_type = T;
  static constexpr bool is_step = true;
};
template <class V, class Er>
struct http_mapped<step_draft<V, Er>> {
  static_assert(!std::is_same_v<V, no_payload>,
                "pollster::step_from_response: declare the mapper's return type (pollster::step<T, http_error>)");
  using value_type = V;
};

inline std::string excerpt(const std::string& body, std::size_t limit) {
  if (body.size() <= limit) return body;
  return body.substr(0, limit) + "...";
}

inline http_error error_of(const http_response& r, http_error_kind kind, bool retryable, const http_rules& rules) {
  http_error e;
  e.kind = kind;
  e.status = r.status;
  e.transport = r.transport;
  e.retryable = retryable;
  if (kind == http_error_kind::transport) {
    e.reason = r.transport_message;
  } else {
    e.reason = r.reason.empty() ? std::string(http_reason_phrase(r.status)) : r.reason;
  }
  e.body_excerpt = excerpt(r.body, rules.excerpt_bytes);
  return e;
}
}  // namespace detail

/// The value type of the steps `step_from_response` makes with `Mapper`.
template <class Mapper>
using mapped_value_t =
    typename detail::http_mapped<std::decay_t<std::invoke_result_t<Mapper&, const http_response&>>>::value_type;

/// Turns a response into a step by the policy above. `mapper(response)` reads a body the policy lets through and
/// returns a `step<T, http_error>` (or a draft: `done(v)`, `pending(v)`), or a plain `T`, which is "pending with
/// this value": the rules of an await, or a watcher's diff, decide what it means. A mapper that throws a
/// `std::exception` (a JSON parse error, a missing field) could not read the body: that is an `http_error` of
/// kind `body`, failed unless `rules.body_errors_are_transient`. A pending or transient step without a hint of
/// its own gets the server's (`read_hints`).
template <class Mapper, class T = mapped_value_t<Mapper>>
step<T, http_error> step_from_response(const http_response& response, Mapper&& mapper, const http_rules& rules = {}) {
  using result_type = step<T, http_error>;
  const http_verdict verdict = classify(response, rules);
  const auto hint = [&response] { return read_hints(response).hint(); };
  switch (verdict) {
    case http_verdict::read_body: {
      using returned = std::decay_t<std::invoke_result_t<Mapper&, const http_response&>>;
      std::optional<result_type> mapped;
      try {
        if constexpr (detail::http_mapped<returned>::is_step || std::is_convertible_v<returned, result_type>) {
          mapped.emplace(mapper(response));
        } else {
          mapped.emplace(pending(mapper(response)));
        }
      } catch (const std::exception& e) {
        http_error error = detail::error_of(response, http_error_kind::body, rules.body_errors_are_transient, rules);
        error.reason = e.what();
        if (rules.body_errors_are_transient) return transient(std::move(error), hint());
        return failed(std::move(error));
      }
      if ((mapped->kind == step_kind::pending || mapped->kind == step_kind::transient) && !mapped->hint) {
        mapped->hint = hint();
      }
      return std::move(*mapped);
    }
    case http_verdict::accepted:
      return pending(hint());
    case http_verdict::not_modified:
      return not_modified(hint());
    case http_verdict::throttled: {
      const auto kind = response.complete() ? http_error_kind::status : http_error_kind::transport;
      return throttled(detail::error_of(response, kind, true, rules), hint());
    }
    case http_verdict::transient: {
      const auto kind = response.complete() ? http_error_kind::status : http_error_kind::transport;
      return transient(detail::error_of(response, kind, true, rules), hint());
    }
    case http_verdict::failed:
      break;
  }
  const auto kind = response.complete() ? http_error_kind::status : http_error_kind::transport;
  return failed(detail::error_of(response, kind, false, rules));
}

// ---------------------------------------------------------------------------------------------------------------
// Conditional polling.

/// Remembers the validators (`ETag`, `Last-Modified`) of the last body that was read, and asks the next request to
/// be answered 304 when nothing changed. Only a body that was read counts: remembering the validators of a body
/// the mapper rejected would turn every later poll into a 304 that never shows the resource again.
class conditional_request {
 public:
  /// Adds `If-None-Match` and `If-Modified-Since` for what is remembered (RFC 9110: a server that knows ETags
  /// decides by If-None-Match and ignores the date).
  void apply(http_request& request) const {
    if (!etag_.empty()) request.headers.set("If-None-Match", etag_);
    if (!last_modified_.empty()) request.headers.set("If-Modified-Since", last_modified_);
  }

  /// Remembers the validators of a 2xx whose body was read, and refreshes them from a 304 (which may carry a new
  /// ETag); anything else is ignored. A 2xx without a validator forgets the old one: it no longer describes
  /// what the client holds.
  void remember(const http_response& response) {
    if (!response.complete()) return;
    const bool ok = response.status >= 200 && response.status <= 299;
    if (!ok && response.status != 304) return;
    const auto etag = response.headers.get("ETag");
    const auto modified = response.headers.get("Last-Modified");
    if (etag) {
      etag_ = std::string(detail::trim_ows(*etag));
    } else if (ok) {
      etag_.clear();
    }
    if (modified) {
      last_modified_ = std::string(detail::trim_ows(*modified));
    } else if (ok) {
      last_modified_.clear();
    }
  }

  /// `step_from_response`, remembering the validators when the step carries no error (the body was read, or the
  /// answer was 304).
  template <class Mapper>
  auto read(const http_response& response, Mapper&& mapper, const http_rules& rules = {}) {
    auto result = step_from_response(response, std::forward<Mapper>(mapper), rules);
    if (!result.error) remember(response);
    return result;
  }

  void forget() noexcept {
    etag_.clear();
    last_modified_.clear();
  }
  const std::string& etag() const noexcept { return etag_; }
  const std::string& last_modified() const noexcept { return last_modified_; }
  bool empty() const noexcept { return etag_.empty() && last_modified_.empty(); }

  /// The validators as one string, and back: a check that holds a conditional_request forwards these as its own
  /// `save_state()` / `restore_state()`, so a poll resumed elsewhere (progress.hpp) still asks for a 304.
  std::string save_state() const { return std::to_string(etag_.size()) + ":" + etag_ + last_modified_; }
  void restore_state(const std::string& state) {
    const std::size_t colon = state.find(':');
    std::size_t length = 0;
    bool ok = colon != std::string::npos && colon > 0 && colon <= 6;
    for (std::size_t i = 0; ok && i < colon; ++i) {
      ok = state[i] >= '0' && state[i] <= '9';
      length = length * 10 + static_cast<std::size_t>(state[i] - '0');
    }
    if (state.empty()) {
      forget();
      return;
    }
    if (!ok || length > state.size() - colon - 1) {
      detail::throw_invalid("conditional_request", "state", "what save_state() returned", "\"" + state + "\"");
    }
    etag_ = state.substr(colon + 1, length);
    last_modified_ = state.substr(colon + 1 + length);
  }

 private:
  std::string etag_;
  std::string last_modified_;
};

POLLSTER_NAMESPACE_END
