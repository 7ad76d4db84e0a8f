// curl_poll.hpp: the one-call helpers. Next-page URLs without a server; then, against the real fault server
// (tests/servers/http_fault_server, cpp-httplib) on loopback: await_url until a terminal state, a 404, a deadline that
// cuts a hung request; conditional requesting (304s); a paged list read as one snapshot by Link rel="next" and by
// nextPageToken, a page failing half-way, a loop of next links, max_pages; a blocking watcher over fetch_pages.
// Every real wait is bounded (CTest TIMEOUT too).
#include "pollster_catch.hpp"
#include "servers/server_process.hpp"

#include <pollster/curl_poll.hpp>
#include <pollster/runner.hpp>
#include <pollster/watch.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <initializer_list>
#include <thread>
#include <type_traits>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pollster::http_error;
using pollster::http_error_kind;
using pollster::http_request;
using pollster::http_response;
using pollster::transport_error;
using json = nlohmann::json;
using server_process = pollster_test::server_process;

namespace {

struct job {
  std::string id;
  std::string state;
};

pollster::step<job, http_error> read_job(const http_response& r) {
  const json doc = json::parse(r.body);
  job j{doc.at("id").get<std::string>(), doc.at("state").get<std::string>()};
  if (j.state == "ACTIVE") return pollster::done(std::move(j));
  if (j.state == "FAILED") {
    http_error e;
    e.kind = http_error_kind::body;
    e.status = r.status;
    e.reason = "the job failed";
    return pollster::failed(std::move(e));
  }
  return pollster::pending(std::move(j));
}

struct item {
  int id = 0;
  std::string name;
  bool operator==(const item& o) const { return id == o.id && name == o.name; }
};

std::vector<item> items_of(const json& array) {
  std::vector<item> items;
  for (const json& e : array) items.push_back({e.at("id").get<int>(), e.at("name").get<std::string>()});
  return items;
}

std::vector<int> ids_of(const std::vector<item>& items) {
  std::vector<int> ids;
  for (const item& i : items) ids.push_back(i.id);
  return ids;
}

server_process start_server() { return server_process(POLLSTER_HTTP_FAULT_SERVER, {"--lifetime", "120"}); }

json server_stats(pollster::curl_client& client, const server_process& server) {
  const http_response r = client.perform(http_request(server.url("/_/stats")));
  REQUIRE(r.status == 200);
  return json::parse(r.body);
}

void put_collection(pollster::curl_client& client, const server_process& server, const json& items) {
  http_request r(server.url("/collection"), "PUT");
  r.body = items.dump();
  REQUIRE(client.perform(std::move(r)).status == 200);
}

json five_items() {
  json items = json::array();
  for (int i = 1; i <= 5; ++i) items.push_back({{"id", i}, {"name", std::string(1, static_cast<char>('a' + i - 1))}});
  return items;
}

}  // namespace

TEST_CASE("next_link finds rel=\"next\" in the Link fields and resolves it against the requested URL",
          "[curl_poll][link]") {
  const auto link = [](std::initializer_list<const char*> fields, const char* url) {
    http_response r;
    r.status = 200;
    for (const char* f : fields) r.headers.add("Link", f);
    return pollster::next_link(r, url);
  };
  const char* github = "https://api.github.com/repos/o/r/issues?page=1";
  CHECK(link({"<https://api.github.com/repos/o/r/issues?page=2>; rel=\"next\", "
              "<https://api.github.com/repos/o/r/issues?page=5>; rel=\"last\""},
             github) == "https://api.github.com/repos/o/r/issues?page=2");
  CHECK(link({"<https://h/x?page=5>; rel=\"last\", <https://h/x?page=2>; rel=\"next\""}, github) ==
        "https://h/x?page=2");
  CHECK(link({"</pages?per_page=2&page=2>; rel=\"next\""}, "http://127.0.0.1:8080/pages?page=1") ==
        "http://127.0.0.1:8080/pages?per_page=2&page=2");
  CHECK(link({"<?page=3>; rel=next"}, "http://h/a/b?page=2") == "http://h/a/b?page=3");
  CHECK(link({"<c?page=3>; REL=\"Prev NEXT\""}, "http://h/a/b?page=2") == "http://h/a/c?page=3");
  CHECK(link({"<//cdn.example/p2>; rel=\"next\""}, "https://h/a") == "https://cdn.example/p2");
  CHECK(link({"<http://h/a?x=1,2>; title=\"a, b; c\"; rel=\"next\""}, "http://h/") == "http://h/a?x=1,2");
  CHECK(link({"<http://h/p1>; rel=\"first\"", "<http://h/p3>; rel=\"next\""}, "http://h/p2") == "http://h/p3");
  CHECK(link({"<http://h/p1>; rel=\"first\", <http://h/p9>; rel=\"last\""}, "http://h/p9").empty());
  CHECK(link({}, "http://h/").empty());
  CHECK(link({"garbage; rel=\"next\""}, "http://h/").empty());
  CHECK(link({"<http://h/p2; rel=\"next\""}, "http://h/").empty());  // no closing '>'
}

TEST_CASE("with_query_parameter sets one parameter, encoded, replacing the old one", "[curl_poll][link]") {
  CHECK(pollster::with_query_parameter("http://h/v1/items", "pageToken", "o2") == "http://h/v1/items?pageToken=o2");
  CHECK(pollster::with_query_parameter("http://h/v1/items?page_size=2&pageToken=o2", "pageToken", "o4") ==
        "http://h/v1/items?page_size=2&pageToken=o4");
  CHECK(pollster::with_query_parameter("http://h/i?a=1#top", "t", "a b/c+=") == "http://h/i?a=1&t=a%20b%2Fc%2B%3D#top");
  CHECK(pollster::resolve_url("http://h/a/b?q#f", "#g") == "http://h/a/b?q#g");
  CHECK(pollster::resolve_url("http://h", "p") == "http://h/p");
}

TEST_CASE("await_url: one call awaits an operation by URL until the mapper says done", "[curl_poll][await]") {
  server_process server = start_server();
  pollster::curl_client client;
  SECTION("PENDING, PENDING, ACTIVE: done at the third request") {
    const auto out = pollster::await_url(client, http_request(server.url("/jobs/a?pending=2")), read_job,
                                         pollster::constant{10ms}, pollster::after_attempts{10});
    CHECK(out.cause == pollster::cause::done);
    CHECK(out.attempts == 3);
    CHECK(out.value().state == "ACTIVE");
    CHECK_FALSE(out.last_error);
  }
  SECTION("a terminal FAILED state ends the wait as failed, with the mapper's error") {
    const auto out = pollster::await_url(client, http_request(server.url("/jobs/b?pending=1&final=FAILED")), read_job,
                                         pollster::constant{10ms}, pollster::after_attempts{10});
    CHECK(out.cause == pollster::cause::failed);
    CHECK(out.attempts == 2);
    REQUIRE(out.last_value);
    CHECK(out.last_value->state == "PENDING");  // the last state seen is kept
    REQUIRE(out.last_error);
    CHECK(out.last_error->reason == "the job failed");
  }
  SECTION("a 404 ends it at once; as eventual consistency it is retried until the stop rule") {
    const http_request missing(server.url("/respond?status=404"));
    const auto out =
        pollster::await_url(client, missing, read_job, pollster::constant{10ms}, pollster::after_attempts{4});
    CHECK(out.cause == pollster::cause::failed);
    CHECK(out.attempts == 1);
    CHECK(out.last_error->status == 404);
    pollster::http_poll_options eventual;
    eventual.rules.not_found_is_transient = true;
    const auto retried = pollster::await_url(client, missing, read_job, pollster::constant{10ms},
                                             pollster::after_attempts{4}, {}, eventual);
    CHECK(retried.cause == pollster::cause::exhausted);
    CHECK(retried.attempts == 4);
    CHECK(retried.last_error->status == 404);
  }
  SECTION("the deadline cuts a hung request: 300 ms left cost 300 ms, not the client's 30 s default") {
    pollster::steady_clock clock;
    pollster::poll_options options;
    options.deadline = pollster::at(clock.now() + 300ms);
    const auto started = std::chrono::steady_clock::now();
    const auto out = pollster::await_url(clock, client, http_request(server.url("/hang")), read_job,
                                         pollster::constant{10ms}, pollster::never{}, options);
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(out.cause == pollster::cause::deadline);
    CHECK(out.attempts == 1);
    CHECK(took >= 290ms);
    CHECK(took < 3s);
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (client.in_flight() != 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    CHECK(client.in_flight() == 0);  // the transfer was aborted or timed out with the attempt, not left behind
  }
}

TEST_CASE("requesting with conditional: an unchanged resource costs a 304 and keeps the last value",
          "[curl_poll][etag]") {
  server_process server = start_server();
  pollster::curl_client client;
  put_collection(client, server, json::array({{{"id", 1}, {"name", "a"}}}));
  REQUIRE(client.perform(http_request(server.url("/_/reset"), "POST")).status == 200);
  pollster::http_poll_options conditional;
  conditional.conditional = true;
  auto check = pollster::requesting(
      client, http_request(server.url("/collection")),
      [](const http_response& r) { return items_of(json::parse(r.body)); }, conditional);
  const auto out = pollster::poll_until(check, pollster::constant{10ms}, pollster::after_attempts{4});
  CHECK(out.cause == pollster::cause::exhausted);
  CHECK(out.attempts == 4);
  REQUIRE(out.last_value);
  CHECK(ids_of(*out.last_value) == std::vector<int>{1});
  CHECK(check.etag() == "\"v2\"");
  const json stats = server_stats(client, server);
  CHECK(stats.at("by_status").value("200", 0) == 1);
  CHECK(stats.at("by_status").value("304", 0) == 3);
}

TEST_CASE("paging: a paged list is one snapshot, read page after page on the client's thread", "[curl_poll][paging]") {
  server_process server = start_server();
  pollster::curl_client client;
  put_collection(client, server, five_items());
  REQUIRE(client.perform(http_request(server.url("/_/reset"), "POST")).status == 200);
  const auto by_link = [&server](const http_response& r) {
    // The fault server's links are absolute paths: any URL of the server resolves them.
    return pollster::http_page<item>{items_of(json::parse(r.body)), pollster::next_link(r, server.url("/"))};
  };

  SECTION("Link rel=\"next\": three pages of two, one list of five") {
    const std::string first = server.url("/pages?per_page=2");
    auto reader = [&server](const http_response& r) {
      return pollster::http_page<item>{items_of(json::parse(r.body)), pollster::next_link(r, server.url("/pages"))};
    };
    const auto out = pollster::poll_until(pollster::paging(client, http_request(first), reader),
                                          pollster::constant{10ms}, pollster::after_attempts{1});
    CHECK(out.cause == pollster::cause::exhausted);  // a list is a value, never "done": the stop rule ends it
    REQUIRE(out.last_value);
    CHECK(ids_of(*out.last_value) == std::vector<int>{1, 2, 3, 4, 5});
    CHECK_FALSE(out.last_error);
    CHECK(server_stats(client, server).at("by_status").value("200", 0) == 3);
  }
  SECTION("nextPageToken: the reader turns the token into the next URL") {
    const std::string first = server.url("/tokens?page_size=2");
    auto reader = [first](const http_response& r) {
      const json doc = json::parse(r.body);
      pollster::http_page<item> page{items_of(doc.at("items")), ""};
      if (doc.contains("nextPageToken")) {
        page.next = pollster::with_query_parameter(first, "pageToken", doc.at("nextPageToken").get<std::string>());
      }
      return page;
    };
    const auto out = pollster::poll_until(pollster::paging(client, http_request(first), reader),
                                          pollster::constant{10ms}, pollster::after_attempts{2});
    REQUIRE(out.last_value);
    CHECK(ids_of(*out.last_value) == std::vector<int>{1, 2, 3, 4, 5});
    CHECK(out.attempts == 2);
    CHECK(server_stats(client, server).at("by_status").value("200", 0) == 6);  // 3 pages, twice
  }
  SECTION("a page that fails half-way fails the snapshot: its error, no half list") {
    const auto out = pollster::poll_until(
        pollster::paging(client, http_request(server.url("/pages?per_page=2&fail_page=2&status=503")), by_link),
        pollster::constant{10ms}, pollster::after_attempts{2});
    CHECK(out.cause == pollster::cause::exhausted);
    CHECK_FALSE(out.last_value);
    REQUIRE(out.last_error);
    CHECK(out.last_error->describe() == "HTTP 503 Service Unavailable [{\"error\":503}]");
    const json stats = server_stats(client, server);
    CHECK(stats.at("by_status").value("200", 0) == 2);  // page 1, twice
    CHECK(stats.at("by_status").value("503", 0) == 2);  // page 2, twice
  }
  SECTION("next links that loop fail the snapshot instead of reading for ever") {
    const auto out = pollster::poll_until(
        pollster::paging(client, http_request(server.url("/pages?per_page=2&page=1&loop=1")), by_link),
        pollster::constant{10ms}, pollster::after_attempts{3});
    CHECK(out.cause == pollster::cause::failed);
    CHECK(out.attempts == 1);
    CHECK_FALSE(out.last_value);
    REQUIRE(out.last_error);
    CHECK(out.last_error->kind == http_error_kind::body);
    CHECK(out.last_error->reason == "page 3: the next link leads back to a page this snapshot already read: " +
                                        server.url("/pages?per_page=2&page=1&loop=1"));
  }
  SECTION("every page within the attempt's time: a hung second page is aborted when the attempt times out") {
    pollster::poll_options options;
    options.attempt_timeout = 300ms;
    const auto started = std::chrono::steady_clock::now();
    const auto out = pollster::poll_until(
        pollster::paging(client, http_request(server.url("/pages?per_page=2&hang_page=2")), by_link),
        pollster::constant{10ms}, pollster::after_attempts{1}, options);
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(out.cause == pollster::cause::exhausted);
    CHECK(out.timeouts == 1);
    CHECK_FALSE(out.last_value);
    CHECK(took >= 290ms);
    CHECK(took < 3s);
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (client.in_flight() != 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    CHECK(client.in_flight() == 0);
    CHECK(client.stats().transport_errors == 1);  // page 2, aborted or timed out with the attempt
    CHECK(server_stats(client, server).at("by_status").value("200", 0) == 1);  // page 1
  }
  SECTION("more pages than max_pages fail the snapshot; max_pages 0 is refused") {
    pollster::http_poll_options two;
    two.max_pages = 2;
    const auto out = pollster::poll_until(
        pollster::paging(client, http_request(server.url("/pages?per_page=2")), by_link, two),
        pollster::constant{10ms}, pollster::after_attempts{3});
    CHECK(out.cause == pollster::cause::failed);
    CHECK_THAT(out.last_error->reason, Catch::Matchers::ContainsSubstring("page 2: more pages than "
                                                                          "http_poll_options::max_pages"));
    pollster::http_poll_options none;
    none.max_pages = 0;
    CHECK_THROWS_WITH(pollster::paging(client, http_request(server.url("/pages")), by_link, none),
                      Catch::Matchers::ContainsSubstring("max_pages"));
  }
}

TEST_CASE("a watcher over fetch_pages diffs the whole paged list, never a page", "[curl_poll][paging][watch]") {
  server_process server = start_server();
  pollster::curl_client client;
  put_collection(client, server, five_items());
  int polls = 0;
  auto fetch = [&] {
    ++polls;
    if (polls == 3) {  // item 5 leaves the last page and item 3 is renamed: one removal, one change
      json items = five_items();
      items.erase(4);
      items[2]["name"] = "C";
      put_collection(client, server, items);
    }
    http_request first(server.url("/pages?per_page=2"));
    first.timeout = 2s;
    return pollster::fetch_pages(client, first, [&server](const http_response& r) {
      return pollster::http_page<item>{items_of(json::parse(r.body)), pollster::next_link(r, server.url("/"))};
    });
  };
  std::vector<std::string> events;
  auto handler = [&events](const auto& e) {
    using event = std::decay_t<decltype(e)>;
    if constexpr (std::is_same_v<event, pollster::added<const item&>>) {
      events.push_back("added " + e.element.name);
    } else if constexpr (std::is_same_v<event, pollster::changed<const item&>>) {
      events.push_back("changed " + e.after.name);
    } else if constexpr (!std::is_same_v<event, pollster::unchanged<const item&>>) {
      events.push_back("removed " + std::to_string(e.key));
    }
  };
  pollster::manual_clock clock;
  pollster::watcher w(fetch, &item::id, handler, pollster::constant{10s}, pollster::after_attempts{4});
  const auto out = w.run(clock);
  CHECK(out.cause == pollster::cause::exhausted);
  CHECK(events == std::vector<std::string>{"added a", "added b", "added c", "added d", "added e", "removed 5",
                                           "changed C"});
  CHECK(out.report.polls == 4);
  CHECK(out.report.size == 4);
}

TEST_CASE("100 paged lists on one runner thread: each attempt's pages in flight on the client's thread",
          "[curl_poll][paging][runner]") {
  // 100 kept-alive connections at once, each holding one of the server's threads (cpp-httplib is thread per connection).
  server_process server(POLLSTER_HTTP_FAULT_SERVER, {"--lifetime", "120", "--threads", "200"});
  pollster::curl_client client;  // declared first: it outlives the runner
  put_collection(client, server, five_items());
  REQUIRE(client.perform(http_request(server.url("/_/reset"), "POST")).status == 200);
  auto by_link = [url = server.url("/")](const http_response& r) {
    return pollster::http_page<item>{items_of(json::parse(r.body)), pollster::next_link(r, url)};
  };
  pollster::steady_clock clock;
  pollster::runner<pollster::steady_clock> fleet(clock);
  int finished = 0;
  int whole_lists = 0;
  for (int i = 0; i < 100; ++i) {
    fleet.submit(pollster::paging(client, http_request(server.url("/pages?per_page=2")), by_link),
                 pollster::constant{10ms}, pollster::after_attempts{2}, [&](const auto& out) {
                   ++finished;
                   if (out.last_value && ids_of(*out.last_value) == std::vector<int>{1, 2, 3, 4, 5}) ++whole_lists;
                 });
  }
  fleet.run();
  CHECK(finished == 100);
  CHECK(whole_lists == 100);
  CHECK(server_stats(client, server).at("by_status").value("200", 0) == 600);  // 100 pollers x 2 attempts x 3 pages
}
