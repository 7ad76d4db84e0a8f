#include "pollster_catch.hpp"

#include <pollster/filter.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct server {
  std::string id;
  std::string status;
  std::string name;
  int cpus = 2;
  double load = 0.5;
  bool public_ip = false;
  std::optional<std::string> zone;
};

/// "before after" as two bits, to compare results in one line: "11" changed, "01" added, "10" removed, "00" nothing.
template <class Filter>
std::string sides(const Filter& f, const server* before, const server* after, std::string_view subject = "s") {
  const pollster::detail::filter_sides m = pollster::filter<server>(f).match(before, after, subject);
  return std::string(m.before ? "1" : "0") + (m.after ? "1" : "0");
}

const server build{"web-1", "BUILD", "web front", 2, 0.5, false, std::nullopt};
const server active{"web-1", "ACTIVE", "web front", 8, 0.75, true, std::string("eu-west-1a")};
const server error{"web-1", "ERROR", "Web Front", 8, 0.9, true, std::string("eu-west-1b")};

}  // namespace

TEST_CASE("field conditions compare the projected value: ==, !=, <, <=, >, >=, in") {
  const auto status = pollster::field("status", &server::status);
  const auto cpus = pollster::field("cpus", &server::cpus);
  const auto load = pollster::field("load", &server::load);
  const auto public_ip = pollster::field("public_ip", &server::public_ip);
  CHECK(sides(status == "ACTIVE", &build, &active) == "01");
  CHECK(sides(status != "ACTIVE", &build, &active) == "10");
  CHECK(sides(cpus > 4, &build, &active) == "01");
  CHECK(sides(cpus >= 8, &build, &active) == "01");
  CHECK(sides(cpus < 8, &build, &active) == "10");
  CHECK(sides(cpus <= 8, &build, &active) == "11");
  CHECK(sides(load > 0.6, &build, &active) == "01");
  CHECK(sides(public_ip == true, &build, &active) == "01");
  CHECK(sides(status.in({"BUILD", "ACTIVE"}), &build, &active) == "11");
  CHECK(sides(status.in({"ERROR"}), &build, &active) == "00");
  CHECK(sides(cpus.in({2, 4}), &build, &active) == "10");
  // An addition has no record before, a removal none after.
  CHECK(sides(status == "ACTIVE", nullptr, &active) == "01");
  CHECK(sides(status == "ACTIVE", &active, nullptr) == "10");
}

TEST_CASE("text conditions: contains, begins with, ends with, exactly or ignoring case") {
  const auto name = pollster::field("name", &server::name);
  CHECK(sides(name.contains("front"), &build, &error) == "10");
  CHECK(sides(name.contains("front", pollster::ignore_case), &build, &error) == "11");
  CHECK(sides(name.begins_with("web"), &build, &error) == "10");
  CHECK(sides(name.begins_with("WEB", pollster::ignore_case), &build, &error) == "11");
  CHECK(sides(name.ends_with("Front"), &build, &error) == "01");
  CHECK(sides(name.ends_with("front", pollster::ignore_case), &build, &error) == "11");
  const auto status = pollster::field("status", &server::status);
  CHECK(sides(status.in({"active", "error"}, pollster::ignore_case), &build, &active) == "01");
  CHECK(sides(name.contains(""), &build, &error) == "11");
  CHECK(sides(name.contains("a much longer text than the name"), &build, &error) == "00");
}

TEST_CASE("a projection to an empty optional matches no condition, and its negation matches") {
  const auto zone = pollster::field("zone", &server::zone);
  CHECK(sides(zone.begins_with("eu-"), &build, &active) == "01");
  CHECK(sides(zone == std::string("eu-west-1a"), &build, &active) == "01");
  CHECK(sides(!(zone == std::string("eu-west-1a")), &build, &active) == "10");
  CHECK(sides(zone != std::string("us-east-1"), &build, &active) == "01");  // empty: not even "!="
}

TEST_CASE("subject conditions test the key as text, the same on both sides") {
  CHECK(sides(pollster::subject_begins_with("eu-"), &build, &active, "eu-web-1") == "11");
  CHECK(sides(pollster::subject_begins_with("EU-"), &build, &active, "eu-web-1") == "00");
  CHECK(sides(pollster::subject_begins_with("EU-", pollster::ignore_case), &build, &active, "eu-web-1") == "11");
  CHECK(sides(pollster::subject_ends_with("-1"), nullptr, &active, "eu-web-1") == "01");
  CHECK(sides(pollster::subject_contains("web"), &build, nullptr, "eu-web-1") == "10");
}

TEST_CASE("transitions: became, left, changed from one state to another, any state at either end") {
  const auto status = pollster::field("status", &server::status);
  SECTION("became ACTIVE: from another state, or appearing with it") {
    CHECK(sides(status.became("ACTIVE"), &build, &active) == "11");
    CHECK(sides(status.became("ACTIVE"), nullptr, &active) == "01");
    CHECK(sides(status.became("ACTIVE"), &active, &active) == "00");  // no change of state
    CHECK(sides(status.became("ACTIVE"), &active, &error) == "00");
    CHECK(sides(status.became("ACTIVE"), &active, nullptr) == "00");
  }
  SECTION("left ACTIVE: to another state, or going away with it") {
    CHECK(sides(status.left("ACTIVE"), &active, &error) == "11");
    CHECK(sides(status.left("ACTIVE"), &active, nullptr) == "10");
    CHECK(sides(status.left("ACTIVE"), &build, &active) == "00");
    CHECK(sides(status.left("ACTIVE"), nullptr, &active) == "00");
  }
  SECTION("changed from BUILD to ACTIVE, and with any state") {
    CHECK(sides(status.changed_from_to("BUILD", "ACTIVE"), &build, &active) == "11");
    CHECK(sides(status.changed_from_to("BUILD", "ACTIVE"), nullptr, &active) == "00");  // no BUILD before it
    CHECK(sides(status.changed_from_to("BUILD", pollster::any_state), &build, &error) == "11");
    CHECK(sides(status.changed_from_to("BUILD", pollster::any_state), &build, nullptr) == "10");
    CHECK(sides(status.changed_from_to(pollster::any_state, "ERROR"), &active, &error) == "11");
    CHECK(sides(status.changed_from_to(pollster::any_state, pollster::any_state), &build, &build) == "00");
    CHECK(sides(status.changed(), &build, &error) == "11");
    CHECK(sides(status.changed(), &active, &active) == "00");
  }
  SECTION("on an optional field") {
    const auto zone = pollster::field("zone", &server::zone);
    CHECK(sides(zone.became(std::string("eu-west-1a")), &build, &active) == "11");
    CHECK(sides(zone.changed(), &active, &error) == "11");
  }
}

TEST_CASE("&&, || and ! combine side by side; a transition inside them passes or blocks the change") {
  const auto status = pollster::field("status", &server::status);
  const auto cpus = pollster::field("cpus", &server::cpus);
  // In the view of "ACTIVE with 8 CPUs": build (2 CPUs) is out, active in: an addition for this subscription.
  CHECK(sides(status == "ACTIVE" && cpus == 8, &build, &active) == "01");
  CHECK(sides(status == "ACTIVE" || cpus == 2, &build, &active) == "11");
  CHECK(sides(!(status == "ACTIVE"), &build, &active) == "10");
  CHECK(sides(!(status == "ACTIVE"), nullptr, &build) == "01");
  CHECK(sides(status.became("ACTIVE") && cpus == 8, &build, &active) == "01");
  CHECK(sides(status.became("ACTIVE") && cpus > 0, &build, &active) == "11");
  CHECK(sides(status.became("ACTIVE") || cpus == 2, &build, &error) == "10");
  CHECK(sides(!status.became("ACTIVE"), &build, &active) == "00");
  CHECK(sides(!status.became("ACTIVE"), &build, &error) == "11");
  CHECK(sides(pollster::everything, nullptr, &build) == "01");
  CHECK(sides(!pollster::everything, &build, &active) == "00");
}

TEST_CASE("where() takes any record predicate; a predicate that throws propagates to the caller") {
  const auto big = pollster::where("has 8 CPUs and a public IP", [](const server& s) { return s.cpus == 8 && s.public_ip; });
  CHECK(sides(big, &build, &active) == "01");
  const auto broken = pollster::where("broken", [](const server&) -> bool { throw std::runtime_error("bad field"); });
  CHECK_THROWS_AS(sides(broken, &build, &active), std::runtime_error);
}

TEST_CASE("every filter describes itself for logs") {
  const auto status = pollster::field("status", &server::status);
  const auto cpus = pollster::field("cpus", &server::cpus);
  const auto name = pollster::field("name", &server::name);
  auto text = [](const auto& f) { return pollster::filter<server>(f).description(); };
  CHECK(text(status == "ACTIVE") == "status == \"ACTIVE\"");
  CHECK(text(cpus >= 8) == "cpus >= 8");
  CHECK(text(pollster::field("load", &server::load) < 0.25) == "load < 0.25");
  CHECK(text(status.in({"BUILD", "ACTIVE"})) == "status in {\"BUILD\", \"ACTIVE\"}");
  CHECK(text(name.contains("web", pollster::ignore_case)) == "name contains \"web\" (ignoring case)");
  CHECK(text(pollster::subject_begins_with("eu-")) == "subject begins with \"eu-\"");
  CHECK(text(status.became("ACTIVE")) == "status became \"ACTIVE\"");
  CHECK(text(status.left("ACTIVE")) == "status left \"ACTIVE\"");
  CHECK(text(status.changed_from_to("BUILD", pollster::any_state)) == "status changed from \"BUILD\" to any state");
  CHECK(text(status.changed()) == "status changed");
  CHECK(text(status.became("ACTIVE") && cpus >= 8) == "status became \"ACTIVE\" && cpus >= 8");
  CHECK(text((status == "A" || status == "B") && cpus >= 8) == "(status == \"A\" || status == \"B\") && cpus >= 8");
  CHECK(text(status == "A" || (status == "B" && cpus >= 8)) == "status == \"A\" || status == \"B\" && cpus >= 8");
  CHECK(text(!(status == "A")) == "!(status == \"A\")");
  CHECK(text(pollster::everything) == "everything");
  const pollster::filter<server> kept = status == "A" || status == "B";
  CHECK(text(kept && cpus > 1) == "(status == \"A\" || status == \"B\") && cpus > 1");
  CHECK(pollster::to_string(kept) == "status == \"A\" || status == \"B\"");
}
