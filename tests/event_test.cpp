#include "pollster_catch.hpp"

#include <pollster/event.hpp>

#if POLLSTER_TEST_WITH_JSON
#include <nlohmann/json.hpp>
#endif

#include <chrono>
#include <memory>
#include <string>

using namespace std::chrono_literals;
using pollster::event_kind;

namespace {

struct server {
  std::string id;
  int version = 0;
  std::string status;
};

using event_type = pollster::event<server, std::string>;
using change_type = pollster::detail::change<server, std::string>;

std::chrono::system_clock::time_point utc(std::chrono::seconds since_epoch) {
  return std::chrono::system_clock::time_point{std::chrono::duration_cast<std::chrono::system_clock::duration>(since_epoch)};
}

std::shared_ptr<change_type> a_change(bool versioned) {
  auto c = std::make_shared<change_type>();
  c->key = "web-1";
  c->subject = "web-1";
  c->before = server{"web-1", 6, "BUILD"};
  c->after = server{"web-1", 7, "ACTIVE"};
  c->has_version = versioned;
  c->version_before = "6";
  c->version_after = "7";
  c->kind = event_kind::changed;
  c->sequence = 42;
  c->time = utc(1772366405s);  // 2026-03-01T12:00:05Z
  c->source = std::make_shared<const pollster::event_source>(
      pollster::event_source{"https://compute.example.com/v2/servers", "com.example.server", "application/json"});
  return c;
}

}  // namespace

TEST_CASE("an event's id names its subject, kind and version, or the change's number without a version") {
  const auto versioned = a_change(true);
  CHECK(event_type(event_kind::changed, versioned).id() == "web-1/changed/v7");
  CHECK(event_type(event_kind::added, versioned).id() == "web-1/added/v7");
  CHECK(event_type(event_kind::removed, versioned).id() == "web-1/removed/v6");  // the last known version
  CHECK(event_type(event_kind::changed, a_change(false)).id() == "web-1/changed/42");
}

TEST_CASE("an event shows the records its kind has: before for a removal, after for an addition, both for a change") {
  const auto c = a_change(true);
  const event_type changed(event_kind::changed, c);
  REQUIRE(changed.before() != nullptr);
  REQUIRE(changed.after() != nullptr);
  CHECK(changed.before()->status == "BUILD");
  CHECK(changed.record().status == "ACTIVE");
  const event_type added(event_kind::added, c);  // a change that entered a subscription's filter
  CHECK(added.before() == nullptr);
  CHECK(added.record().status == "ACTIVE");
  const event_type removed(event_kind::removed, c);  // one that left it: the tombstone is the record before
  CHECK(removed.after() == nullptr);
  CHECK(removed.record().status == "BUILD");
  CHECK(removed.key() == "web-1");
  CHECK(removed.sequence() == 42);
}

TEST_CASE("an event's CloudEvents attributes: required id, source, specversion, type; subject, time, content type") {
  const pollster::cloud_event ce = event_type(event_kind::changed, a_change(true)).cloud();
  CHECK(ce.id == "web-1/changed/v7");
  CHECK(ce.source == "https://compute.example.com/v2/servers");
  CHECK(ce.specversion == "1.0");
  CHECK(ce.type == "com.example.server.changed");
  CHECK(ce.subject == "web-1");
  CHECK(ce.time == "2026-03-01T12:00:05Z");
  CHECK(ce.datacontenttype == "application/json");
}

TEST_CASE("times are RFC 3339 in UTC, with a fraction only when there is one") {
  using pollster::detail::rfc3339;
  CHECK(rfc3339(utc(0s)) == "1970-01-01T00:00:00Z");
  CHECK(rfc3339(utc(951782400s)) == "2000-02-29T00:00:00Z");
  CHECK(rfc3339(utc(1709251199s)) == "2024-02-29T23:59:59Z");
  CHECK(rfc3339(utc(-1s)) == "1969-12-31T23:59:59Z");
  CHECK(rfc3339(utc(0s) + std::chrono::milliseconds(1500)) == "1970-01-01T00:00:01.5Z");
  CHECK(rfc3339(utc(0s) + std::chrono::microseconds(7)) == "1970-01-01T00:00:00.000007Z");
}

TEST_CASE("to_json writes the CloudEvents JSON format: JSON data as it is, other data as a string") {
  const event_type e(event_kind::changed, a_change(true));
  const std::string with_data = pollster::to_json(e, [](const server& s) {
    return "{\"id\":\"" + s.id + "\",\"status\":\"" + s.status + "\"}";
  });
  CHECK(with_data ==
        "{\"specversion\":\"1.0\",\"id\":\"web-1/changed/v7\",\"source\":\"https://compute.example.com/v2/servers\","
        "\"type\":\"com.example.server.changed\",\"subject\":\"web-1\",\"time\":\"2026-03-01T12:00:05Z\","
        "\"datacontenttype\":\"application/json\",\"data\":{\"id\":\"web-1\",\"status\":\"ACTIVE\"}}");
  pollster::cloud_event text = e.cloud();
  text.datacontenttype = "text/plain";
  text.subject = "a \"quoted\"\nsubject\x01";
  CHECK(pollster::to_json(text, std::string_view("BUILD -> ACTIVE")) ==
        "{\"specversion\":\"1.0\",\"id\":\"web-1/changed/v7\",\"source\":\"https://compute.example.com/v2/servers\","
        "\"type\":\"com.example.server.changed\",\"subject\":\"a \\\"quoted\\\"\\nsubject\\u0001\","
        "\"time\":\"2026-03-01T12:00:05Z\",\"datacontenttype\":\"text/plain\",\"data\":\"BUILD -> ACTIVE\"}");
  CHECK(pollster::to_string(pollster::cloud_event{"1", "/s", "1.0", "t", "", "", ""}) ==
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}");
}

TEST_CASE("JSON media types: */json and */*+json, parameters ignored, an unset type means JSON") {
  using pollster::detail::is_json_media_type;
  CHECK(is_json_media_type("application/json"));
  CHECK(is_json_media_type("application/json; charset=utf-8"));
  CHECK(is_json_media_type("application/cloudevents+json"));
  CHECK(is_json_media_type("text/JSON"));
  CHECK(is_json_media_type(""));
  CHECK_FALSE(is_json_media_type("application/xml"));
  CHECK_FALSE(is_json_media_type("text/plain"));
  CHECK_FALSE(is_json_media_type("json"));
  CHECK_FALSE(is_json_media_type("application/jsonx"));
}

TEST_CASE("event kinds read as words, and a set of them holds what it was given") {
  CHECK(std::string(pollster::to_string(event_kind::removed)) == "removed");
  const pollster::event_kinds all;
  const pollster::event_kinds some{event_kind::added, event_kind::removed};
  CHECK(all.contains(event_kind::changed));
  CHECK(some.contains(event_kind::removed));
  CHECK_FALSE(some.contains(event_kind::changed));
}

#if POLLSTER_TEST_WITH_JSON
TEST_CASE("a JSON parser reads back what to_json writes, data and all") {
  const event_type e(event_kind::changed, a_change(true));
  const std::string written = pollster::to_json(e, [](const event_type& ev) {
    return nlohmann::json{{"before", ev.before()->status}, {"after", ev.after()->status}}.dump();
  });
  const nlohmann::json parsed = nlohmann::json::parse(written);
  CHECK(parsed.at("specversion") == "1.0");
  CHECK(parsed.at("id") == "web-1/changed/v7");
  CHECK(parsed.at("type") == "com.example.server.changed");
  CHECK(parsed.at("time") == "2026-03-01T12:00:05Z");
  CHECK(parsed.at("data").at("before") == "BUILD");
  CHECK(parsed.at("data").at("after") == "ACTIVE");
  pollster::cloud_event odd = e.cloud();
  odd.subject = std::string("tab\there \"quote\" back\\slash \x1f end");
  odd.datacontenttype = "text/plain";
  const nlohmann::json round = nlohmann::json::parse(pollster::to_json(odd, std::string_view("line 1\nline 2")));
  CHECK(round.at("subject") == odd.subject);
  CHECK(round.at("data") == "line 1\nline 2");
  CHECK_FALSE(round.contains("data_base64"));
}
#endif
