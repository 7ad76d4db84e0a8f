// SPDX-License-Identifier: MIT
#pragma once

// HTTP polling in one call, on curl.hpp's `curl_client` (optional: link pollster::curl, which brings libcurl).
//
//  * `requesting(client, request, mapper)`: the asynchronous check of one resource, for any driver (`poll_until`, a
//    runner, asio). Each attempt sends the request on the client's I/O thread, its timeout cut to the attempt's and
//    to the time the run has left; an attempt that times out or is cancelled aborts the transfer; the response
//    becomes a step by http.hpp's policy and the mapper. With `conditional`, an unchanged resource costs a 304.
//  * `await_url(client, request, mapper, schedule, stop)`: await an operation by URL until the mapper says done or
//    failed, a status says failed, or the stop rule or the deadline ends the wait. Blocking; one call.
//  * `paging(client, request, reader)`: the asynchronous check of a paged list. Each attempt reads the pages one after
//    another (`Link: <...>; rel="next"`, or a `nextPageToken` the reader turns into the next URL) and reports the whole
//    list as one snapshot, or the error of the page that failed: never half a list.
//  * `fetch_pages(client, request, reader)`: the same, blocking: the fetch of a watcher (`make_watcher`, `watching`
//    under a blocking driver) whose list comes in pages.

#include "curl.hpp"
#include "detail/config.hpp"
#include "detail/text.hpp"
#include "http.hpp"
#include "poll.hpp"
#include "step.hpp"

#include <algorithm>    // min, max
#include <chrono>       // steady_clock
#include <cstddef>      // size_t
#include <memory>       // shared_ptr, weak_ptr, make_shared
#include <mutex>        // mutex, lock_guard
#include <optional>     // optional
#include <set>          // set (the pages a snapshot has read)
#include <string>       // string
#include <string_view>  // string_view
#include <type_traits>  // decay_t, invoke_result_t, enable_if_t
#include <utility>      // move
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN

/// What the one-call helpers need besides the request and the mapper. A plain aggregate.
struct http_poll_options {
  /// The policy's switches (http.hpp): 404 transient, 503 throttles, body errors transient, ...
  http_rules rules;
  /// `requesting`: remember ETag / Last-Modified and send If-None-Match / If-Modified-Since, so that an unchanged
  /// resource costs a 304 (a `not_modified()` step) instead of a body.
  bool conditional = false;
  /// `paging`, `fetch_pages`: the most pages one snapshot may take; a list whose next links never end is a failed
  /// snapshot, not a hang.
  std::size_t max_pages = 1000;
};

/// One page of a list, as a page reader returns it: its items, and the URL of the next page (empty on the last).
template <class T>
struct http_page {
  using value_type = T;
  std::vector<T> items;
  std::string next;
};

// ---------------------------------------------------------------------------------------------------------------------
// URLs of next pages.

namespace detail {

/// "http://host:8080" of "http://host:8080/a/b?c", or empty for a URL without a scheme and authority.
inline std::string_view url_origin(std::string_view url) noexcept {
  const std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return {};
  const std::size_t path = url.find_first_of("/?#", scheme_end + 3);
  return url.substr(0, path == std::string_view::npos ? url.size() : path);
}

/// RFC 3986: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ':'.
inline bool has_scheme(std::string_view reference) noexcept {
  const auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (reference.empty() || !alpha(reference.front())) return false;
  for (std::size_t i = 1; i < reference.size(); ++i) {
    const char c = reference[i];
    if (c == ':') return true;
    if (!alpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.') return false;
  }
  return false;
}

inline std::string percent_encoded(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace detail

/// `reference` resolved against `base` (RFC 3986 section 5.2, without removing "." and ".." segments): a Link field's
/// target is often a path ("/items?page=2") or a query ("?page=2") of the URL that was requested.
inline std::string resolve_url(std::string_view base, std::string_view reference) {
  base = base.substr(0, base.find('#'));
  if (reference.empty()) return std::string(base);
  if (detail::has_scheme(reference)) return std::string(reference);
  const std::string_view origin = detail::url_origin(base);
  if (reference.substr(0, 2) == "//") return std::string(base.substr(0, base.find(':') + 1)) + std::string(reference);
  if (reference.front() == '/') return std::string(origin) + std::string(reference);
  const std::string_view rest = base.substr(origin.size());
  const std::string_view path = rest.substr(0, rest.find('?'));
  if (reference.front() == '?') return std::string(origin) + std::string(path) + std::string(reference);
  if (reference.front() == '#') return std::string(base) + std::string(reference);
  const std::size_t slash = path.rfind('/');
  const std::string directory = slash == std::string_view::npos ? std::string("/") : std::string(path.substr(0, slash + 1));
  return std::string(origin) + directory + std::string(reference);
}

/// The target of the response's `Link: <...>; rel="next"` (RFC 8288: GitHub, GitLab and many REST APIs page this
/// way), resolved against the URL that was requested; empty when there is none (the last page). Several links in one
/// field or in several fields, quoted or bare `rel`, relation lists ("next last") and any case are understood; a
/// link-value that cannot be parsed ends the search (no guessing at a next page).
inline std::string next_link(const http_response& response, std::string_view request_url) {
  const std::string field = response.headers.combined("Link");
  const std::string_view s(field);
  std::size_t i = 0;
  const auto skip_ows = [&] {
    while (i < s.size() && detail::is_ows(s[i])) ++i;
  };
  while (i < s.size()) {
    while (i < s.size() && (detail::is_ows(s[i]) || s[i] == ',')) ++i;
    if (i == s.size() || s[i] != '<') return {};
    const std::size_t close = s.find('>', i);
    if (close == std::string_view::npos) return {};
    const std::string_view target = detail::trim_ows(s.substr(i + 1, close - i - 1));
    i = close + 1;
    bool is_next = false;
    for (;;) {  // *( OWS ";" OWS link-param )
      skip_ows();
      if (i == s.size() || s[i] != ';') break;
      ++i;
      skip_ows();
      const std::size_t name_start = i;
      while (i < s.size() && s[i] != '=' && s[i] != ';' && s[i] != ',' && !detail::is_ows(s[i])) ++i;
      const std::string_view name = s.substr(name_start, i - name_start);
      skip_ows();
      std::string value;
      if (i < s.size() && s[i] == '=') {
        ++i;
        skip_ows();
        if (i < s.size() && s[i] == '"') {
          for (++i; i < s.size() && s[i] != '"'; ++i) {
            if (s[i] == '\\' && i + 1 < s.size()) ++i;
            value += s[i];
          }
          if (i < s.size()) ++i;  // the closing quote
        } else {
          while (i < s.size() && s[i] != ';' && s[i] != ',' && !detail::is_ows(s[i])) value += s[i++];
        }
      }
      if (detail::iequals(name, "rel")) {
        std::string_view relations(value);
        while (!relations.empty()) {  // a space-separated list of relation types
          const std::size_t space = relations.find(' ');
          if (detail::iequals(relations.substr(0, space), "next")) is_next = true;
          relations = space == std::string_view::npos ? std::string_view() : relations.substr(space + 1);
        }
      }
    }
    if (is_next) return resolve_url(request_url, target);
    skip_ows();
    if (i < s.size() && s[i] != ',') return {};
  }
  return {};
}

/// `url` with its query parameter `name` set to `value` (percent-encoded), replacing any already there: the next
/// page of an API that pages with a token in the body (Google's `nextPageToken` becomes `pageToken=...`).
inline std::string with_query_parameter(std::string_view url, std::string_view name, std::string_view value) {
  const std::size_t hash = url.find('#');
  const std::string_view fragment = hash == std::string_view::npos ? std::string_view() : url.substr(hash);
  url = url.substr(0, hash);
  const std::size_t question = url.find('?');
  std::string out(url.substr(0, question));
  char separator = '?';
  if (question != std::string_view::npos) {
    std::string_view query = url.substr(question + 1);
    while (!query.empty()) {
      const std::size_t amp = query.find('&');
      const std::string_view parameter = query.substr(0, amp);
      if (!parameter.empty() && parameter.substr(0, parameter.find('=')) != name) {
        out += separator;
        out += parameter;
        separator = '&';
      }
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    }
  }
  out += separator;
  out += name;
  out += '=';
  out += detail::percent_encoded(value);
  out += fragment;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Reading a list page by page.

namespace detail {

template <class Reader>
using page_of_t = std::decay_t<std::invoke_result_t<Reader&, const http_response&>>;

/// The pages one snapshot has read so far, and what the next response means for it: the URL of the page to read
/// next, or the snapshot's step (the whole list, pending like any plain value of a mapper; or the error of the page
/// that failed, with no value, so that the poller keeps the last whole list).
template <class T>
class page_walk {
 public:
  using list_step = step<std::vector<T>, http_error>;
  struct turn {
    std::string next;                 ///< the next page's URL, when the walk goes on
    std::optional<list_step> result;  ///< the snapshot's step, when the walk is over
  };

  page_walk(std::string first_url, std::size_t max_pages) : max_pages_(max_pages) {
    visited_.insert(std::move(first_url));
  }

  template <class Reader>
  turn read(const http_response& response, Reader& reader, const http_rules& rules) {
    using page_step = step<http_page<T>, http_error>;
    page_step page = step_from_response(
        response, [&reader](const http_response& r) -> page_step { return done(reader(r)); }, rules);
    turn t;
    if (page.kind != step_kind::done || !page.value) {  // an error, a 202 or a 304: this snapshot ends here
      list_step out;
      out.kind = page.kind == step_kind::done ? step_kind::pending : page.kind;
      out.error = std::move(page.error);
      out.hint = page.hint;
      out.throttled = page.throttled;
      out.not_modified = page.not_modified;
      t.result.emplace(std::move(out));
      return t;
    }
    ++pages_;
    for (T& item : page.value->items) items_.push_back(std::move(item));
    std::string& next = page.value->next;
    if (next.empty()) {
      t.result.emplace(pending(std::move(items_), read_hints(response).hint()));
      return t;
    }
    const char* problem = nullptr;
    if (pages_ >= max_pages_) {
      problem = "more pages than http_poll_options::max_pages; the next would be ";
    } else if (!visited_.insert(next).second) {
      problem = "the next link leads back to a page this snapshot already read: ";
    }
    if (problem != nullptr) {
      http_error e = detail::error_of(response, http_error_kind::body, false, rules);
      e.reason = "page " + std::to_string(pages_) + ": " + problem + next;
      t.result.emplace(failed(std::move(e)));
      return t;
    }
    t.next = std::move(next);
    return t;
  }

 private:
  std::vector<T> items_;
  std::set<std::string> visited_;
  std::size_t pages_ = 0;
  std::size_t max_pages_;
};

}  // namespace detail

/// The element type of the pages `Reader` reads (`http_page<T>` -> T).
template <class Reader>
using page_element_t = typename detail::page_of_t<Reader>::value_type;

/// Reads a paged list from its first page on, one blocking request per page (each with the request's timeout), and
/// returns it whole: a pending step with the list (a watcher diffs it), or the step of the page that failed, with
/// no value. `reader(response)` returns the page's `http_page<T>` (`next_link(response, url)` or
/// `with_query_parameter(url, "pageToken", token)` for its `next`); throwing is a body error, as with any mapper.
template <class Reader>
step<std::vector<page_element_t<Reader>>, http_error> fetch_pages(curl_client& client, const http_request& first,
                                                                  Reader reader, const http_poll_options& options = {}) {
  if (options.max_pages == 0) detail::throw_invalid("http_poll_options", "max_pages", ">= 1", "0");
  detail::page_walk<page_element_t<Reader>> walk(first.url, options.max_pages);
  std::string url = first.url;
  for (;;) {
    http_request request = first;
    request.url = url;
    auto t = walk.read(client.perform(std::move(request)), reader, options.rules);
    if (t.result) return std::move(*t.result);
    url = std::move(t.next);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The asynchronous checks.

/// The check `requesting(...)` builds: one request per attempt on a `curl_client`, judged by the policy and the
/// mapper. Copies share their conditional state (the validators of the last body read).
template <class Mapper>
class requesting_check {
 public:
  using value_type = mapped_value_t<Mapper>;

  requesting_check(curl_client& client, http_request request, Mapper mapper, http_poll_options options)
      : client_(&client),
        request_(std::move(request)),
        mapper_(std::move(mapper)),
        options_(std::move(options)),
        validators_(options_.conditional ? std::make_shared<validators>() : nullptr) {}

  void operator()(completion<value_type, http_error> c) {
    http_request request = request_;
    if (!validators_) {
      client_->start_check(std::move(c), std::move(request), mapper_, options_.rules);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(validators_->mutex);
      validators_->remembered.apply(request);
    }
    // The response of an attempt that timed out may still arrive while the next attempt starts: hence the mutex.
    client_->start_attempt(std::move(c), std::move(request),
                           [v = validators_, mapper = mapper_, rules = options_.rules](const http_response& r) mutable {
                             std::lock_guard<std::mutex> lock(v->mutex);
                             return v->remembered.read(r, mapper, rules);
                           });
  }

  /// The ETag the next request will send (empty without `conditional`, or before a body was read).
  std::string etag() const {
    if (!validators_) return {};
    std::lock_guard<std::mutex> lock(validators_->mutex);
    return validators_->remembered.etag();
  }

 private:
  struct validators {
    std::mutex mutex;
    conditional_request remembered;
  };
  curl_client* client_;
  http_request request_;
  Mapper mapper_;
  http_poll_options options_;
  std::shared_ptr<validators> validators_;
};

/// The asynchronous check of one HTTP resource on `client`, for any driver: `poll_until(requesting(...), schedule,
/// stop)`, `runner.submit(requesting(...), ...)`, asio's `async_poll`. `mapper(response)` reads a 2xx body (http.hpp:
/// a step, a draft, or a plain value that means "pending with it"). The client must outlive the run.
template <class Mapper>
requesting_check<Mapper> requesting(curl_client& client, http_request request, Mapper mapper,
                                    http_poll_options options = {}) {
  return {client, std::move(request), std::move(mapper), std::move(options)};
}

/// The check `paging(...)` builds: every attempt reads the list page after page on the client's I/O thread.
template <class Reader>
class paging_check {
 public:
  using element_type = page_element_t<Reader>;
  using list_type = std::vector<element_type>;

  paging_check(curl_client& client, http_request first, Reader reader, http_poll_options options)
      : client_(&client), first_(std::move(first)), reader_(std::move(reader)), options_(std::move(options)) {
    if (options_.max_pages == 0) detail::throw_invalid("http_poll_options", "max_pages", ">= 1", "0");
  }

  void operator()(const poll_state& state, completion<list_type, http_error> c) {
    auto w = std::make_shared<walk>(*client_, first_, reader_, options_);
    detail::bound_by_attempt(w->first, state);
    if (w->first.timeout > duration::zero()) {
      w->deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                            std::min(w->first.timeout, duration{std::chrono::hours(24)}));
    }
    std::weak_ptr<walk> weak = w;
    c.on_abort([weak] {
      if (const auto alive = weak.lock()) alive->abort();
    });
    w->done = std::move(c);
    start_page(w, w->first.url);
  }

 private:
  /// One attempt's walk through the pages: owned by the callback of the request in flight.
  struct walk {
    walk(curl_client& c, const http_request& f, const Reader& r, const http_poll_options& o)
        : client(&c), first(f), reader(r), rules(o.rules), pages(f.url, o.max_pages) {}
    curl_client* client;
    http_request first;
    Reader reader;
    http_rules rules;
    detail::page_walk<element_type> pages;
    completion<list_type, http_error> done;
    std::optional<std::chrono::steady_clock::time_point> deadline;
    std::mutex mutex;  // the request in flight, for an abort from the driver's thread
    curl_transfer current;
    bool aborted = false;

    void abort() {
      curl_transfer in_flight;
      {
        std::lock_guard<std::mutex> lock(mutex);
        aborted = true;
        in_flight = current;
      }
      in_flight.abort();
    }
  };

  static void start_page(const std::shared_ptr<walk>& w, std::string url) {
    http_request request = w->first;
    request.url = std::move(url);
    if (w->deadline) {  // every page within the attempt's time, not each page a fresh allowance
      const auto left = *w->deadline - std::chrono::steady_clock::now();
      request.timeout = std::max(std::chrono::duration_cast<duration>(left), duration{std::chrono::milliseconds(1)});
    }
    const curl_transfer handle = w->client->reserve();
    {
      std::lock_guard<std::mutex> lock(w->mutex);
      w->current = handle;
      if (w->aborted) handle.abort();  // the start then completes as aborted, and so does the attempt
    }
    w->client->start(handle, std::move(request), [w](http_response&& response) {
      auto t = w->pages.read(response, w->reader, w->rules);
      if (t.result) {
        w->done(std::move(*t.result));
      } else {
        start_page(w, std::move(t.next));
      }
    });
  }

  curl_client* client_;
  http_request first_;
  Reader reader_;
  http_poll_options options_;
};

/// The asynchronous check of a paged list on `client`: each attempt reads every page from `first` on (each request
/// within the attempt's time) and reports the whole list as one pending value, or the failing page's error without
/// a value. `reader(response)` returns an `http_page<T>`: the page's items and the next page's URL, from
/// `next_link(response, url)` or from a token in the body (`with_query_parameter(url, "pageToken", token)`).
template <class Reader>
paging_check<Reader> paging(curl_client& client, http_request first, Reader reader, http_poll_options options = {}) {
  return {client, std::move(first), std::move(reader), std::move(options)};
}

// ---------------------------------------------------------------------------------------------------------------------
// Await one operation by URL.

/// Polls `request` on `client` until the mapper says done or failed (or a status does: a 403, a 404 unless
/// `rules.not_found_is_transient`), the stop rule or `options.deadline` ends the wait, or `options.cancel` cancels it.
/// 429 and 503 are obeyed with their Retry-After; each request is bounded by the time the run has left. Blocking;
/// the first request is sent at once.
template <class Clock, class Mapper, class Schedule, class Stop = never, class = std::enable_if_t<is_clock_v<Clock>>>
check_outcome_t<requesting_check<Mapper>> await_url(Clock& clock, curl_client& client, http_request request,
                                                   Mapper mapper, Schedule schedule, Stop stop = Stop{},
                                                   const poll_options& options = {}, http_poll_options http = {}) {
  return poll_until(clock, requesting(client, std::move(request), std::move(mapper), std::move(http)),
                    std::move(schedule), std::move(stop), options);
}

/// The same on the real steady clock.
template <class Mapper, class Schedule, class Stop = never>
check_outcome_t<requesting_check<Mapper>> await_url(curl_client& client, http_request request, Mapper mapper,
                                                   Schedule schedule, Stop stop = Stop{},
                                                   const poll_options& options = {}, http_poll_options http = {}) {
  steady_clock clock;
  return await_url(clock, client, std::move(request), std::move(mapper), std::move(schedule), std::move(stop),
                   options, std::move(http));
}

POLLSTER_NAMESPACE_END
