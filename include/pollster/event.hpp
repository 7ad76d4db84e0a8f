// SPDX-License-Identifier: MIT
#pragma once

// An event users can route and hand on: what a subscription (subscription.hpp) receives. `event<T, K>` is one change
// to one record as one subscription sees it (added, removed or changed, with the record before and after) and what
// it takes to pass it on: an id that stays the same across redeliveries, so handlers can be idempotent, and the
// CloudEvents 1.0 context attributes (id, source, specversion, type, subject, time, datacontenttype), with
// `to_json` for the CloudEvents JSON format. The data is yours to serialise: the core needs no JSON library.

#include "detail/config.hpp"
#include "detail/text.hpp"

#include <chrono>            // system_clock, duration_cast
#include <cstdint>           // uint8_t, uint64_t, int64_t
#include <cstdio>            // snprintf
#include <initializer_list>  // initializer_list
#include <memory>            // shared_ptr
#include <optional>          // optional
#include <ostream>           // ostream (keys and versions that print themselves)
#include <sstream>           // ostringstream
#include <string>            // string, to_string
#include <string_view>       // string_view
#include <type_traits>       // is_invocable_v, is_integral_v, ...
#include <utility>           // move

POLLSTER_NAMESPACE_BEGIN

/// What happened to a record, as a subscription sees it. A record that enters a subscription's filter is added for
/// it, one that leaves is removed, whatever the diff said (subscription.hpp).
enum class event_kind : std::uint8_t { added, removed, changed };

constexpr const char* to_string(event_kind k) noexcept {
  switch (k) {
    case event_kind::added: return "added";
    case event_kind::removed: return "removed";
    case event_kind::changed: return "changed";
  }
  return "unknown";
}

/// A set of event kinds (Event Grid's includedEventTypes): all three unless you list some.
class event_kinds {
 public:
  constexpr event_kinds() noexcept = default;
  constexpr event_kinds(std::initializer_list<event_kind> kinds) noexcept : bits_(0) {
    for (const event_kind k : kinds) bits_ = static_cast<std::uint8_t>(bits_ | bit(k));
  }
  constexpr bool contains(event_kind k) const noexcept { return (bits_ & bit(k)) != 0; }

 private:
  static constexpr std::uint8_t bit(event_kind k) noexcept {
    return static_cast<std::uint8_t>(1U << static_cast<unsigned>(k));
  }
  std::uint8_t bits_ = 7;
};

/// Where a watch's events come from and how their types are named: CloudEvents' `source`, and `type` as
/// "<type_prefix>.<kind>" ("com.example.server.added"; the spec asks for a reverse-DNS prefix).
struct event_source {
  std::string source = "/pollster/watch";               ///< a URI-reference naming the watched collection
  std::string type_prefix = "io.pollster.watch";        ///< the type is this, a dot, and the kind
  std::string datacontenttype = "application/json";     ///< what your data serialiser writes; empty: omitted
};

/// The CloudEvents 1.0 context attributes of an event (github.com/cloudevents/spec, cloudevents/spec.md): id,
/// source, specversion and type are required; subject, time and datacontenttype optional (an empty one is omitted).
struct cloud_event {
  std::string id;               ///< the same on every redelivery: source + id names the event
  std::string source;
  std::string specversion = "1.0";
  std::string type;             ///< "<type_prefix>.added" / ".removed" / ".changed"
  std::string subject;          ///< the record's key as text
  std::string time;             ///< RFC 3339 in UTC: when the poll that saw the change ran
  std::string datacontenttype;  ///< of `data`; JSON (or empty) puts your data in as JSON, anything else as a string
};

namespace detail {

/// Whether `plain_text` can write an X: text, numbers, enums, anything with operator<<.
template <class X>
inline constexpr bool has_plain_text = std::is_convertible_v<const X&, std::string_view> || std::is_arithmetic_v<X> ||
                                       std::is_enum_v<X> || is_ostreamable<X>::value;

/// A key or a version as text, without quotes: "web-1", "42".
template <class X>
std::string plain_text(const X& x) {
  if constexpr (std::is_convertible_v<const X&, std::string_view>) {
    return std::string(std::string_view(x));
  } else if constexpr (std::is_same_v<X, bool>) {
    return x ? "true" : "false";
  } else if constexpr (std::is_integral_v<X>) {
    return std::to_string(x);
  } else if constexpr (std::is_floating_point_v<X>) {
    return number_text(static_cast<double>(x));
  } else if constexpr (std::is_enum_v<X>) {
    return std::to_string(static_cast<std::underlying_type_t<X>>(x));
  } else {
    static_assert(is_ostreamable<X>::value, "pollster: this type has no text (give it an operator<<, or say how)");
    std::ostringstream out;
    out << x;
    return out.str();
  }
}

/// RFC 3339 in UTC ("2026-03-01T12:00:05Z", with up to nine fraction digits when there is a fraction), by the
/// civil-from-days algorithm (Howard Hinnant's), valid for any year a system_clock can hold.
inline std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  constexpr std::int64_t per_second = 1000000000;
  constexpr std::int64_t per_day = 86400;
  std::int64_t seconds = ns / per_second;
  std::int64_t fraction = ns % per_second;
  if (fraction < 0) {
    fraction += per_second;
    --seconds;
  }
  std::int64_t days = seconds / per_day;
  std::int64_t in_day = seconds % per_day;
  if (in_day < 0) {
    in_day += per_day;
    --days;
  }
  const std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  char buffer[160];  // room for six 64-bit numbers: the compiler checks the worst case
  std::snprintf(buffer, sizeof buffer, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld", static_cast<long long>(year),
                static_cast<long long>(month), static_cast<long long>(day), static_cast<long long>(in_day / 3600),
                static_cast<long long>(in_day / 60 % 60), static_cast<long long>(in_day % 60));
  std::string text = buffer;
  if (fraction != 0) {
    std::snprintf(buffer, sizeof buffer, ".%09lld", static_cast<long long>(fraction));
    std::string digits = buffer;
    while (digits.back() == '0') digits.pop_back();
    text += digits;
  }
  return text + "Z";
}

/// `text` as a JSON string, quotes included (RFC 8259: quote, backslash and control characters escaped).
inline void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

/// Whether a media type declares JSON content (CloudEvents JSON format 3.1.1: "*/json" or "*/*+json", parameters
/// ignored; an unset content type means JSON).
inline bool is_json_media_type(std::string_view type) {
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  if (type.empty()) return true;
  const std::size_t slash = type.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string_view subtype = type.substr(slash + 1);
  const auto lower_equals = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
      if (x != b[i]) return false;
    }
    return true;
  };
  return lower_equals(subtype, "json") ||
         (subtype.size() > 5 && lower_equals(subtype.substr(subtype.size() - 5), "+json"));
}

/// One change as the diff saw it, shared by the events every subscription receives for it.
template <class T, class K>
struct change {
  K key;
  std::string subject;          // the key as text
  std::optional<T> before;      // the record before (changed), the last known one (removed)
  std::optional<T> after;       // the record now (added, changed)
  std::string version_before;   // the version projection as text, when there is one (ids)
  std::string version_after;
  bool has_version = false;
  bool initial = false;         // a record of the first list
  event_kind kind = event_kind::added;  // what the diff said, before any subscription's filter
  std::uint64_t sequence = 0;   // the watch-wide number of the change
  std::chrono::system_clock::time_point time{};
  std::shared_ptr<const event_source> source;
};

}  // namespace detail

/// One change to one record, as one subscription sees it. Cheap to copy (the records are shared between the
/// subscriptions that receive the same change). `before()` is the record before a change and the last known record
/// of a removal; `after()` the record now.
///
/// The id is "<subject>/<kind>/v<version>" when the watch has a version projection (`keyed(&server::id,
/// &server::version)`), so it is the same after a restart too; otherwise "<subject>/<kind>/<sequence>", with the
/// watch-wide number of the change (saved and restored with the subscriptions' state). It never changes between
/// redeliveries.
template <class T, class K>
class event {
 public:
  using record_type = T;
  using key_type = K;

  /// (Built by `subscriptions`; public so that tests can build the events their handlers take.)
  event(event_kind kind, std::shared_ptr<const detail::change<T, K>> change) : change_(std::move(change)), kind_(kind) {
    const detail::change<T, K>& c = *change_;
    id_ = c.subject;
    id_ += '/';
    id_ += to_string(kind_);
    id_ += '/';
    if (c.has_version) {
      id_ += 'v';
      id_ += kind_ == event_kind::removed ? c.version_before : c.version_after;
    } else {
      id_ += std::to_string(c.sequence);
    }
  }

  event_kind kind() const noexcept { return kind_; }
  const K& key() const noexcept { return change_->key; }
  /// The key as text (CloudEvents' subject; subject filters compare with it).
  const std::string& subject() const noexcept { return change_->subject; }
  /// The record before the change; for a removal, the last known record. Null for an addition.
  const T* before() const noexcept { return kind_ == event_kind::added ? nullptr : to_pointer(change_->before); }
  /// The record as it is now. Null for a removal.
  const T* after() const noexcept { return kind_ == event_kind::removed ? nullptr : to_pointer(change_->after); }
  /// The record the event is about: `after()`, or for a removal the last known record.
  const T& record() const noexcept { return kind_ == event_kind::removed ? *change_->before : *change_->after; }
  /// Part of the first list the watch saw ("already there when I started watching").
  bool initial() const noexcept { return change_->initial; }
  /// Stable across redeliveries and, with a version, across restarts: make handlers idempotent with it.
  const std::string& id() const noexcept { return id_; }
  /// The watch-wide number of the change (increasing; the same for every subscription that receives it).
  std::uint64_t sequence() const noexcept { return change_->sequence; }
  /// When the poll that saw the change ran, by the subscriptions' wall clock.
  std::chrono::system_clock::time_point time() const noexcept { return change_->time; }
  /// "<type_prefix>.<kind>".
  std::string type() const { return source().type_prefix + "." + to_string(kind_); }
  /// The source the subscriptions name (the defaults of `event_source` for an event built without one).
  const event_source& source() const noexcept {
    static const event_source defaults{};
    return change_->source ? *change_->source : defaults;
  }

  /// The CloudEvents 1.0 attributes of this event.
  cloud_event cloud() const {
    cloud_event c;
    c.id = id_;
    c.source = source().source;
    c.type = type();
    c.subject = change_->subject;
    c.time = detail::rfc3339(change_->time);
    c.datacontenttype = source().datacontenttype;
    return c;
  }

 private:
  static const T* to_pointer(const std::optional<T>& x) noexcept { return x ? &*x : nullptr; }

  std::shared_ptr<const detail::change<T, K>> change_;
  std::string id_;
  event_kind kind_;
};

/// The event in the CloudEvents JSON format (`application/cloudevents+json`): the attributes, and `data` when
/// `data` has a value. With a JSON `datacontenttype` (or none) `data` must be JSON text and is put in as it is;
/// otherwise it is put in as a JSON string (CloudEvents JSON format, section 3.1).
inline std::string to_json(const cloud_event& attributes, const std::optional<std::string_view>& data = std::nullopt) {
  std::string out = "{\"specversion\":";
  detail::append_json_string(out, attributes.specversion);
  const auto member = [&out](const char* name, const std::string& value) {
    if (value.empty()) return;
    out += ",\"";
    out += name;
    out += "\":";
    detail::append_json_string(out, value);
  };
  member("id", attributes.id);
  member("source", attributes.source);
  member("type", attributes.type);
  member("subject", attributes.subject);
  member("time", attributes.time);
  member("datacontenttype", attributes.datacontenttype);
  if (data) {
    out += ",\"data\":";
    if (detail::is_json_media_type(attributes.datacontenttype)) {
      out += *data;
    } else {
      detail::append_json_string(out, *data);
    }
  }
  out += '}';
  return out;
}

/// The event in the CloudEvents JSON format, its data written by `write_data`: called with the event (to put
/// before and after into the data of a change) or with the record (`event.record()`), it returns the data's text
/// (JSON for a JSON content type). Your serialiser, your library: pollster adds none.
template <class T, class K, class DataWriter>
std::string to_json(const event<T, K>& e, DataWriter&& write_data) {
  if constexpr (std::is_invocable_v<DataWriter&, const event<T, K>&>) {
    const std::string data = write_data(e);
    return to_json(e.cloud(), std::string_view(data));
  } else {
    static_assert(std::is_invocable_v<DataWriter&, const T&>,
                  "pollster::to_json: the data writer must take the event or its record and return the data's text");
    const std::string data = write_data(e.record());
    return to_json(e.cloud(), std::string_view(data));
  }
}

/// The attributes as CloudEvents JSON without data: one line for a log.
inline std::string to_string(const cloud_event& attributes) { return to_json(attributes); }

POLLSTER_NAMESPACE_END
