// http_fault_server: an HTTP API on loopback for tests and benchmarks that need a real server process: faults on
// demand, a rate-limited route that answers 429 over its limit, a job resource, an ETag'd collection, and its own
// count of the requests it served (per second, in flight). Built on cpp-httplib (Debian's libcpp-httplib-dev) and
// nlohmann/json; started by tests/servers/server_process.hpp (or by hand) and bounded in time.
//
//   http_fault_server [--port N] [--threads N] [--rate-limit N] [--lifetime SECONDS] [--backlog N]
//
// It binds 127.0.0.1 (port 0, or --port N to come back on the port of a killed predecessor), prints
// "listening on PORT" on stdout, and serves until SIGTERM/SIGINT, GET /_/shutdown, or --lifetime (60 s by default),
// so it can never outlive a CI job. Every connection holds one of --threads workers (cpp-httplib is thread per
// connection): give it at least as many as the clients keep connections open.
//
// Routes (every response is counted, except the control routes under /_/):
//   GET  /ok                        200 {"ok": true}
//   GET  /respond?...               a response made to order, from query parameters:
//        status=503                   the status (200 by default)
//        body=TEXT                    the body (default {"ok": true} for 2xx, an error document otherwise)
//        header=Name:%20Value         an extra header (repeatable)
//        retry_after=SECONDS          Retry-After: SECONDS, verbatim (so "soon" sends a garbage value)
//        retry_after_date=SECONDS     Retry-After as an HTTP-date, SECONDS after the Date this response carries
//        date_skew=SECONDS            this server's clock is off: its Date is now + SECONDS (negative: behind)
//        delay_ms=MS                  wait before answering (at most 10 s; shutdown cuts it short)
//        truncate=1                   send the headers with the whole body's Content-Length, then half the body,
//                                     then close the connection: a response cut off mid-body
//   GET  /hang                      never answers (until shutdown, or 30 s)
//   GET  /gate?n=N                  holds each request until N of them are held at once, then answers them all
//                                   200 {"held": N} (503 after 40 s without N): proof that N were in flight together
//   GET  /jobs/ID?pending=N&final=ACTIVE
//                                   {"id": "ID", "state": "PENDING"} for the first N GETs of ID (counted per
//                                   process: a restarted server starts again), then {"state": final}
//   GET  /limited/...               the rate-limited API: at most --rate-limit requests per wall-clock second
//                                   (all /limited/ paths together); 200 with RateLimit / X-RateLimit-* headers
//                                   under the limit, 429 with Retry-After over it
//   GET  /collection                a JSON array with ETag "v<version>"; 304 when If-None-Match matches
//   PUT  /collection                replaces the array (a JSON array body); the version goes up when it changed
//   GET  /pages?per_page=N&page=P   the collection in pages of N (2 by default), P from 1: a JSON array, with
//                                   Link: </pages?...page=1>; rel="first", <...page=P+1>; rel="next" but on the last
//        fail_page=P&status=503       page P answers `status` instead (a list that fails half-way)
//        loop=1                       the last page's next link leads back to page 1
//        hang_page=P                  page P never answers (until shutdown, or 30 s)
//   GET  /tokens?page_size=N&pageToken=T
//                                   the collection in pages of N, Google style: {"items": [...], "nextPageToken": T}
//                                   (no token on the last page)
//   GET  /_/stats                   {"requests", "by_status", "per_second", "max_per_second",
//                                    "limited": {"per_second", "max_per_second", "admitted_per_second",
//                                    "max_admitted_per_second", "rejected"}, "in_flight", "peak_in_flight"}: the
//                                   server's own counts ("limited" counts the /limited/ requests received and let
//                                   through, per wall-clock second since the start or the last reset)
//   POST /_/reset                   zeroes the counts
//   GET  /_/shutdown                stops the server (after answering)

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <signal.h>        // kill, sigtimedwait, pthread_sigmask
#include <sys/resource.h>  // getrlimit, setrlimit
#include <sys/socket.h>    // listen (a larger backlog on cpp-httplib's own socket)
#include <unistd.h>        // getpid

#include <algorithm>           // max, min
#include <atomic>              // atomic
#include <chrono>              // steady_clock, system_clock
#include <condition_variable>  // condition_variable
#include <cstdio>              // printf, fflush
#include <cstdlib>             // strtol
#include <ctime>               // gmtime_r, strftime
#include <map>                 // map
#include <mutex>               // mutex, lock_guard
#include <string>              // string, stoll
#include <thread>              // thread
#include <vector>              // vector

namespace {

using json = nlohmann::json;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// cpp-httplib 0.11 (as Debian builds it) listens with a backlog of 5: a burst of connections beyond that is
/// dropped and retried by the client's TCP a second later. Listening again on the bound socket sets a real one.
class server : public httplib::Server {
 public:
  bool widen_backlog(int backlog) { return ::listen(svr_sock_, backlog) == 0; }
};

/// Counts what the server served: in total, by status, per wall-clock second since start, and in flight.
class request_counter {
 public:
  explicit request_counter(steady::time_point start) : start_(start) {}

  void begin() {
    const int now = ++in_flight_;
    int peak = peak_in_flight_.load();
    while (now > peak && !peak_in_flight_.compare_exchange_weak(peak, now)) {
    }
  }
  void end(int status, bool limited, bool rejected) {
    --in_flight_;
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_;
    ++by_status_[status];
    const std::size_t second = current_second();
    bump(per_second_, second);
    if (limited) bump(limited_per_second_, second);
    if (rejected) ++rejected_;
  }
  /// For the rate limit: how many /limited/ requests were let through in this second so far, counting this one.
  std::uint64_t admit_limited(std::uint64_t limit, bool& admitted) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::size_t second = current_second();
    if (admitted_per_second_.size() <= second) admitted_per_second_.resize(second + 1, 0);
    admitted = admitted_per_second_[second] < limit;
    if (admitted) ++admitted_per_second_[second];
    return admitted_per_second_[second];
  }
  /// Time to the start of the next wall-clock second of this server, for Retry-After and RateLimit's t.
  std::chrono::milliseconds to_next_second() const {
    const auto since = steady::now() - start_;
    return std::chrono::duration_cast<std::chrono::milliseconds>(1s - (since % 1s));
  }
  json stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    json by_status = json::object();
    for (const auto& [status, count] : by_status_) by_status[std::to_string(status)] = count;
    const auto max_of = [](const std::vector<std::uint64_t>& v) {
      return v.empty() ? std::uint64_t{0} : *std::max_element(v.begin(), v.end());
    };
    return json{{"requests", requests_},
                {"by_status", by_status},
                {"per_second", per_second_},
                {"max_per_second", max_of(per_second_)},
                {"limited",
                 {{"per_second", limited_per_second_},
                  {"max_per_second", max_of(limited_per_second_)},
                  {"admitted_per_second", admitted_per_second_},
                  {"max_admitted_per_second", max_of(admitted_per_second_)},
                  {"rejected", rejected_}}},
                {"in_flight", in_flight_.load()},
                {"peak_in_flight", peak_in_flight_.load()}};
  }
  void reset() {
    std::lock_guard<std::mutex> lock(mutex_);
    requests_ = rejected_ = 0;
    by_status_.clear();
    per_second_.clear();
    limited_per_second_.clear();
    admitted_per_second_.clear();
    start_ = steady::now();
    peak_in_flight_ = in_flight_.load();
  }

 private:
  std::size_t current_second() const {
    return static_cast<std::size_t>(std::chrono::duration_cast<std::chrono::seconds>(steady::now() - start_).count());
  }
  static void bump(std::vector<std::uint64_t>& v, std::size_t second) {
    if (v.size() <= second) v.resize(second + 1, 0);
    ++v[second];
  }

  mutable std::mutex mutex_;
  steady::time_point start_;
  std::uint64_t requests_ = 0;
  std::uint64_t rejected_ = 0;
  std::map<int, std::uint64_t> by_status_;
  std::vector<std::uint64_t> per_second_;
  std::vector<std::uint64_t> limited_per_second_;
  std::vector<std::uint64_t> admitted_per_second_;
  std::atomic<int> in_flight_{0};
  std::atomic<int> peak_in_flight_{0};
};

/// "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate) for a time on the system clock.
std::string http_date(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  static const char* const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char text[64];
  std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[utc.tm_wday], utc.tm_mday,
                months[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return text;
}

long long param_or(const httplib::Request& req, const char* name, long long fallback) {
  if (!req.has_param(name)) return fallback;
  try {
    return std::stoll(req.get_param_value(name));
  } catch (const std::exception&) {
    return fallback;
  }
}

struct options {
  int port = 0;
  int threads = 64;
  int backlog = 1024;
  std::uint64_t rate_limit = 10;
  int lifetime_seconds = 60;
};

bool parse_options(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return false;
    const long value = std::strtol(argv[++i], nullptr, 10);
    if (arg == "--port") {
      o.port = static_cast<int>(value);
    } else if (arg == "--threads") {
      o.threads = static_cast<int>(std::max(1L, value));
    } else if (arg == "--rate-limit") {
      o.rate_limit = static_cast<std::uint64_t>(std::max(0L, value));
    } else if (arg == "--lifetime") {
      o.lifetime_seconds = static_cast<int>(std::max(1L, value));
    } else if (arg == "--backlog") {
      o.backlog = static_cast<int>(std::max(1L, value));
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  if (!parse_options(argc, argv, opt)) {
    std::fprintf(stderr, "usage: %s [--port N] [--threads N] [--rate-limit N] [--lifetime SECONDS] [--backlog N]\n",
                 argv[0]);
    return 64;
  }
  // Signals go to the waiting thread below, never to a worker in the middle of a response.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // A connection is a socket: allow as many as the hard limit lets (a soft limit of 1 024 is common).
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  const steady::time_point start = steady::now();
  request_counter counter(start);
  std::mutex state_mutex;
  std::condition_variable shutting_down_cv;
  bool shutting_down = false;
  std::map<std::string, long long> job_gets;
  json collection = json::array();
  std::uint64_t collection_version = 1;

  server svr;
  const int threads = opt.threads;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  svr.set_tcp_nodelay(true);  // headers and body go out in separate writes: Nagle would hold the body back
  svr.set_keep_alive_max_count(1000000);
  // cpp-httplib 0.11 waits for every request, the first one on a connection included, at most the keep-alive
  // timeout, then closes the connection without a response ("Empty reply from server"): a client busy opening a
  // thousand connections on a loaded machine gets 30 s, not the default 5. (Idle connections cost the same either
  // way: a worker polls each one every 10 ms.)
  svr.set_keep_alive_timeout(30);
  svr.set_read_timeout(30);

  // Waits of the fault routes end at shutdown, so stopping never waits for them.
  const auto wait_unless_shutdown = [&](std::chrono::milliseconds bound) {
    std::unique_lock<std::mutex> lock(state_mutex);
    shutting_down_cv.wait_for(lock, bound, [&] { return shutting_down; });
  };

  // Every counted route goes through here: in flight while it runs, then counted with its status.
  const auto counted = [&counter](auto handler, bool limited = false) {
    return [&counter, handler, limited](const httplib::Request& req, httplib::Response& res) {
      counter.begin();
      bool rejected = false;
      handler(req, res, rejected);
      counter.end(res.status < 0 ? 200 : res.status, limited, rejected);
    };
  };

  svr.Get("/ok", counted([](const httplib::Request&, httplib::Response& res, bool&) {
            res.set_content(R"({"ok": true})", "application/json");
          }));

  svr.Get("/respond", counted([&](const httplib::Request& req, httplib::Response& res, bool&) {
            const auto skew = std::chrono::seconds{param_or(req, "date_skew", 0)};
            const auto server_now = std::chrono::system_clock::now() + skew;
            res.status = static_cast<int>(param_or(req, "status", 200));
            res.set_header("Date", http_date(server_now));
            if (req.has_param("retry_after")) res.set_header("Retry-After", req.get_param_value("retry_after"));
            if (req.has_param("retry_after_date")) {
              // Whole seconds after this response's own Date (HTTP-dates have no fractions).
              const auto date = std::chrono::floor<std::chrono::seconds>(server_now);
              res.set_header("Retry-After",
                             http_date(date + std::chrono::seconds{param_or(req, "retry_after_date", 0)}));
            }
            for (std::size_t i = 0; i < req.get_param_value_count("header"); ++i) {
              const std::string line = req.get_param_value("header", i);
              const std::size_t colon = line.find(':');
              if (colon == std::string::npos) continue;
              std::string value = line.substr(colon + 1);
              while (!value.empty() && value.front() == ' ') value.erase(0, 1);
              res.set_header(line.substr(0, colon), value);
            }
            std::string body;
            if (req.has_param("body")) {
              body = req.get_param_value("body");
            } else if (res.status >= 200 && res.status < 300) {
              body = R"({"ok": true})";
            } else {
              body = json{{"error", res.status}}.dump();
            }
            const long long delay_ms = std::min(param_or(req, "delay_ms", 0), 10000LL);
            if (delay_ms > 0) wait_unless_shutdown(std::chrono::milliseconds{delay_ms});
            if (param_or(req, "truncate", 0) != 0) {
              // The whole length is announced; half of it is sent; then the provider gives up, and cpp-httplib
              // closes the connection.
              auto shared = std::make_shared<std::string>(std::move(body));
              res.set_content_provider(shared->size(), "application/json",
                                       [shared](std::size_t offset, std::size_t, httplib::DataSink& sink) {
                                         if (offset != 0) return false;
                                         sink.write(shared->data(), shared->size() / 2);
                                         return false;
                                       });
              return;
            }
            res.set_content(body, "application/json");
          }));

  svr.Get("/hang", counted([&](const httplib::Request&, httplib::Response& res, bool&) {
            wait_unless_shutdown(30s);
            res.status = 503;
            res.set_content(R"({"error": "shutting down"})", "application/json");
          }));

  long long gate_held = 0;
  long long gate_generation = 0;
  svr.Get("/gate", counted([&](const httplib::Request& req, httplib::Response& res, bool&) {
            const long long wanted = param_or(req, "n", 1);
            std::unique_lock<std::mutex> lock(state_mutex);
            const long long generation = gate_generation;
            if (++gate_held >= wanted) {  // the last one in opens the gate for everyone held
              gate_held = 0;
              ++gate_generation;
              shutting_down_cv.notify_all();
            } else if (!shutting_down_cv.wait_for(lock, 40s,
                                                  [&] { return gate_generation != generation || shutting_down; }) ||
                       gate_generation == generation) {
              --gate_held;
              res.status = 503;
              res.set_content(json{{"held", gate_held + 1}, {"wanted", wanted}}.dump(), "application/json");
              return;
            }
            res.set_content(json{{"held", wanted}}.dump(), "application/json");
          }));

  svr.Get(R"(/jobs/([A-Za-z0-9_-]+))", counted([&](const httplib::Request& req, httplib::Response& res, bool&) {
            const std::string id = req.matches[1];
            long long seen = 0;
            {
              std::lock_guard<std::mutex> lock(state_mutex);
              seen = ++job_gets[id];
            }
            const long long pending = param_or(req, "pending", 2);
            const std::string state =
                seen <= pending ? "PENDING"
                                : (req.has_param("final") ? req.get_param_value("final") : std::string("ACTIVE"));
            res.set_content(json{{"id", id}, {"state", state}, {"polls", seen}}.dump(), "application/json");
          }));

  const std::uint64_t rate_limit = opt.rate_limit;
  svr.Get(R"(/limited/.*)",
          counted(
              [&counter, rate_limit](const httplib::Request&, httplib::Response& res, bool& rejected) {
                bool admitted = false;
                const std::uint64_t used = counter.admit_limited(rate_limit, admitted);
                const auto reset = counter.to_next_second();
                // Whole seconds, rounded up, as delay-seconds must be.
                const long long reset_seconds = (reset.count() + 999) / 1000;
                const std::uint64_t remaining = admitted ? rate_limit - used : 0;
                const auto reset_epoch = std::chrono::duration_cast<std::chrono::seconds>(
                    (std::chrono::system_clock::now() + reset).time_since_epoch());
                res.set_header("RateLimit-Policy", "\"default\";q=" + std::to_string(rate_limit) + ";w=1");
                res.set_header("RateLimit",
                               "\"default\";r=" + std::to_string(remaining) + ";t=" + std::to_string(reset_seconds));
                res.set_header("X-RateLimit-Limit", std::to_string(rate_limit));
                res.set_header("X-RateLimit-Remaining", std::to_string(remaining));
                res.set_header("X-RateLimit-Reset", std::to_string(reset_epoch.count()));
                res.set_header("Date", http_date(std::chrono::system_clock::now()));
                if (!admitted) {
                  rejected = true;
                  res.status = 429;
                  res.set_header("Retry-After", std::to_string(reset_seconds));
                  res.set_content(R"({"error": "rate limited"})", "application/json");
                  return;
                }
                res.set_content(R"({"ok": true})", "application/json");
              },
              true));

  svr.Get("/collection", counted([&](const httplib::Request& req, httplib::Response& res, bool&) {
            std::lock_guard<std::mutex> lock(state_mutex);
            const std::string etag = "\"v" + std::to_string(collection_version) + "\"";
            res.set_header("ETag", etag);
            if (req.get_header_value("If-None-Match") == etag) {
              res.status = 304;
              return;
            }
            res.set_content(collection.dump(), "application/json");
          }));
  svr.Get("/pages", counted([&](const httplib::Request& req, httplib::Response& res, bool&) {
            const long long per_page = std::max(1LL, param_or(req, "per_page", 2));
            const long long page = std::max(1LL, param_or(req, "page", 1));
            if (param_or(req, "hang_page", 0) == page) {
              wait_unless_shutdown(30s);
              res.status = 503;
              return;
            }
            if (param_or(req, "fail_page", 0) == page) {
              res.status = static_cast<int>(param_or(req, "status", 503));
              res.set_content(json{{"error", res.status}}.dump(), "application/json");
              return;
            }
            std::lock_guard<std::mutex> lock(state_mutex);
            const auto size = static_cast<long long>(collection.size());
            json items = json::array();
            for (long long i = (page - 1) * per_page; i < std::min(size, page * per_page); ++i) {
              items.push_back(collection[static_cast<std::size_t>(i)]);
            }
            const auto link_to = [&](long long p) {
              std::string target = "/pages?per_page=" + std::to_string(per_page) + "&page=" + std::to_string(p);
              if (req.has_param("fail_page")) {
                target += "&fail_page=" + req.get_param_value("fail_page") + "&status=" + std::to_string(param_or(req, "status", 503));
              }
              if (req.has_param("loop")) target += "&loop=1";
              if (req.has_param("hang_page")) target += "&hang_page=" + req.get_param_value("hang_page");
              return "<" + target + ">";
            };
            std::string link = link_to(1) + "; rel=\"first\"";
            if (page * per_page < size) {
              link += ", " + link_to(page + 1) + "; rel=\"next\"";
            } else if (param_or(req, "loop", 0) != 0) {
              link += ", " + link_to(1) + "; rel=\"next\"";
            }
            res.set_header("Link", link);
            res.set_content(items.dump(), "application/json");
          }));
  svr.Get("/tokens", counted([&](const httplib::Request& req, httplib::Response& res, bool&) {
            const long long page_size = std::max(1LL, param_or(req, "page_size", 2));
            // The token is opaque to clients; here it is "o" and an offset.
            const std::string token = req.has_param("pageToken") ? req.get_param_value("pageToken") : "o0";
            const long long offset = token.size() > 1 && token[0] == 'o' ? std::strtoll(token.c_str() + 1, nullptr, 10) : -1;
            if (offset < 0) {
              res.status = 400;
              res.set_content(R"({"error": "bad pageToken"})", "application/json");
              return;
            }
            std::lock_guard<std::mutex> lock(state_mutex);
            const auto size = static_cast<long long>(collection.size());
            json body{{"items", json::array()}};
            for (long long i = offset; i < std::min(size, offset + page_size); ++i) {
              body["items"].push_back(collection[static_cast<std::size_t>(i)]);
            }
            if (offset + page_size < size) body["nextPageToken"] = "o" + std::to_string(offset + page_size);
            res.set_content(body.dump(), "application/json");
          }));
  svr.Put("/collection", [&](const httplib::Request& req, httplib::Response& res) {
    json next = json::parse(req.body, nullptr, false);
    if (!next.is_array()) {
      res.status = 400;
      res.set_content(R"({"error": "a JSON array, please"})", "application/json");
      return;
    }
    std::lock_guard<std::mutex> lock(state_mutex);
    if (next != collection) {
      collection = std::move(next);
      ++collection_version;
    }
    res.set_content(json{{"version", collection_version}}.dump(), "application/json");
  });

  svr.Get("/_/stats", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(counter.stats().dump(), "application/json");
  });
  svr.Post("/_/reset", [&](const httplib::Request&, httplib::Response& res) {
    counter.reset();
    res.set_content(R"({"ok": true})", "application/json");
  });

  const auto stop_server = [&] {
    {
      std::lock_guard<std::mutex> lock(state_mutex);
      shutting_down = true;
    }
    shutting_down_cv.notify_all();
    svr.stop();
  };
  svr.Get("/_/shutdown", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"ok": true})", "application/json");
    kill(getpid(), SIGTERM);  // the watchdog below stops the server
  });

  int port = opt.port;
  if (port == 0) {
    port = svr.bind_to_any_port("127.0.0.1");
  } else if (!svr.bind_to_port("127.0.0.1", port)) {
    port = -1;
  }
  if (port <= 0) {
    std::fprintf(stderr, "http_fault_server: cannot bind 127.0.0.1:%d\n", opt.port);
    return 1;
  }
  if (!svr.widen_backlog(opt.backlog)) {
    std::fprintf(stderr, "http_fault_server: listen backlog %d refused\n", opt.backlog);
    return 1;
  }
  std::printf("listening on %d\n", port);
  std::fflush(stdout);

  // Stops on a signal or when the lifetime is over, whichever comes first. cpp-httplib's stop() waits for every
  // worker, and a worker on an idle kept-alive connection waits out the keep-alive timeout: a test server that
  // was asked to stop does not wait that long, it exits.
  std::atomic<bool> listening_done{false};
  std::thread watchdog([&] {
    timespec limit{opt.lifetime_seconds, 0};
    siginfo_t info{};
    if (sigtimedwait(&signals, &info, &limit) < 0) {
      std::fprintf(stderr, "http_fault_server: lifetime of %d s is over\n", opt.lifetime_seconds);
    }
    std::thread(stop_server).detach();
    for (int i = 0; i < 100 && !listening_done; ++i) std::this_thread::sleep_for(5ms);
    std::fflush(nullptr);
    std::_Exit(0);
  });
  svr.listen_after_bind();
  listening_done = true;
  watchdog.join();  // it exits the process
  return 0;
}
