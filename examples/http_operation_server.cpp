// The server of the http_operation example, on cpp-httplib (Debian's libcpp-httplib-dev): one long-running "job"
// behind the asynchronous REST pattern (202 Accepted + a status resource + Retry-After), on 127.0.0.1.
//
//   POST /jobs     -> 202 Accepted, Location: /jobs/1, Retry-After: 1
//   GET  /jobs/1   -> 200 {"id": 1, "state": "PENDING"}   (with Retry-After: 1)   for the first 1.4 s after the POST
//                     200 {"id": 1, "state": "BUILDING"}                          until 2.5 s
//                     200 {"id": 1, "state": "ACTIVE"}    (or FAILED with --fail)  after that; then the server stops
//
// The JSON is written as people write it, with a space after each colon: the client reads it with a JSON parser.
//
// Usage: http_operation_server PORT_FILE [--fail] [--timeout SECONDS]
// It binds an ephemeral port and writes its number to PORT_FILE (to a temporary name first, then renamed, so a
// reader never sees half a number). It exits 0 after serving the final state, and 2 after the hard timeout (10 s by
// default), so it can never hang CI.

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>    // atomic
#include <chrono>    // steady_clock
#include <cstdio>    // fprintf, rename
#include <cstdlib>   // atoi
#include <fstream>   // ofstream (the port file)
#include <mutex>     // mutex, lock_guard
#include <optional>  // optional
#include <string>    // string
#include <thread>    // thread

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto pending_for = 1400ms;     // PENDING until then, after the POST
constexpr auto building_until = 2500ms;  // then BUILDING until this; then the final state

double seconds(clock_type::duration d) { return std::chrono::duration<double>(d).count(); }

bool write_port_file(const std::string& path, int port) {
  const std::string temporary = path + ".tmp";
  std::ofstream out(temporary);
  out << port << "\n";
  out.close();
  return out && std::rename(temporary.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PORT_FILE [--fail] [--timeout SECONDS]\n", argv[0]);
    return 64;
  }
  const std::string port_file = argv[1];
  bool fail = false;
  int timeout_seconds = 10;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--fail") {
      fail = true;
    } else if (arg == "--timeout" && i + 1 < argc) {
      timeout_seconds = std::atoi(argv[++i]);
    }
  }
  const std::string final_state = fail ? "FAILED" : "ACTIVE";

  httplib::Server server;
  std::mutex mutex;
  std::optional<clock_type::time_point> job_created;
  std::atomic<bool> finished{false};
  const auto since_post = [&job_created](clock_type::time_point now) {
    return job_created ? seconds(now - *job_created) : 0.0;
  };

  server.Post("/jobs", [&](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!job_created) job_created = clock_type::now();
    res.status = 202;
    res.set_header("Location", "/jobs/1");
    res.set_header("Retry-After", "1");
    res.set_content(nlohmann::json{{"id", 1}, {"state", "PENDING"}}.dump(), "application/json");
    std::fprintf(stderr, "server: t=%.2fs POST /jobs -> 202 Accepted, Location: /jobs/1, Retry-After: 1\n",
                 since_post(clock_type::now()));
  });
  server.Get("/jobs/1", [&](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mutex);
    const auto now = clock_type::now();
    if (!job_created) {
      res.status = 404;
      res.set_content(R"({"error": "no such job"})", "application/json");
      return;
    }
    const auto age = now - *job_created;
    const bool pending = age < pending_for;
    const std::string state = pending ? "PENDING" : age < building_until ? "BUILDING" : final_state;
    if (pending) res.set_header("Retry-After", "1");
    res.set_content("{\"id\": 1, \"state\": \"" + state + "\"}", "application/json");
    std::fprintf(stderr, "server: t=%.2fs GET /jobs/1 -> 200 %s%s\n", since_post(now), state.c_str(),
                 pending ? ", Retry-After: 1" : "");
    if (age >= building_until) finished = true;
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  if (port <= 0 || !write_port_file(port_file, port)) {
    std::fprintf(stderr, "server: cannot listen on 127.0.0.1, or cannot write %s\n", port_file.c_str());
    return 1;
  }
  std::fprintf(stderr, "server: listening on 127.0.0.1:%d (final state %s, hard timeout %d s)\n", port,
               final_state.c_str(), timeout_seconds);
  // Stops after the final state was served, or at the hard timeout. (A response being written when stop() comes
  // is still finished: cpp-httplib closes the listening socket and lets the handlers complete.)
  std::thread watchdog([&] {
    const auto deadline = clock_type::now() + std::chrono::seconds(timeout_seconds);
    while (!finished && clock_type::now() < deadline) std::this_thread::sleep_for(20ms);
    server.stop();
  });
  server.listen_after_bind();
  watchdog.join();
  if (!finished) std::fprintf(stderr, "server: hard timeout after %d s, exiting\n", timeout_seconds);
  return finished ? 0 : 2;
}
