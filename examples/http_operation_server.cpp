// A tiny HTTP/1.1 server for the http_operation example: one long-running "job" behind the asynchronous REST
// pattern (202 Accepted + a status resource + Retry-After). POSIX sockets, one thread, one request per connection
// (Connection: close), loopback only. Not a general server: just enough protocol for a real client to talk to.
//
//   POST /jobs     -> 202 Accepted, Location: /jobs/1, Retry-After: 1
//   GET  /jobs/1   -> 200 {"id":1,"state":"PENDING"}   (with Retry-After: 1)   for the first 1.4 s after the POST
//                     200 {"id":1,"state":"BUILDING"}                          until 2.5 s
//                     200 {"id":1,"state":"ACTIVE"}    (or FAILED with --fail)  after that; then the server exits
//
// Usage: http_operation_server PORT_FILE [--fail] [--timeout SECONDS]
// It binds 127.0.0.1 on an ephemeral port (port 0) and writes the port number to PORT_FILE (written to a
// temporary name, then renamed, so a reader never sees half a number). It exits 0 after serving the final state,
// and 2 after the hard timeout (10 s by default), so it can never hang CI.

#include <arpa/inet.h>   // htonl, ntohs
#include <netinet/in.h>  // sockaddr_in, INADDR_LOOPBACK
#include <poll.h>        // poll
#include <sys/socket.h>  // socket, bind, listen, accept, setsockopt
#include <unistd.h>      // close, read, write

#include <cerrno>    // errno, EINTR
#include <chrono>    // steady_clock
#include <cstdio>    // fprintf, rename
#include <cstdlib>   // atoi
#include <cstring>   // strerror
#include <fstream>   // ofstream (the port file)
#include <optional>  // optional
#include <string>    // string

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto pending_for = 1400ms;   // PENDING until then, after the POST
constexpr auto building_until = 2500ms;  // then BUILDING until this; then the final state
constexpr int max_request_bytes = 16 * 1024;

struct request {
  std::string method;
  std::string path;
};

/// Reads one request (head and any Content-Length body) with a per-read timeout; nothing on a bad request.
std::optional<request> read_request(int fd) {
  std::string data;
  char buffer[2048];
  std::size_t head_end = std::string::npos;
  std::size_t body_length = 0;
  for (;;) {
    if (head_end != std::string::npos && data.size() >= head_end + 4 + body_length) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) <= 0) return std::nullopt;  // a silent client gets 2 s, not forever
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return std::nullopt;
    data.append(buffer, static_cast<std::size_t>(n));
    if (data.size() > max_request_bytes) return std::nullopt;
    if (head_end == std::string::npos) {
      head_end = data.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        // Header names are case-insensitive; this client and curl send "Content-Length".
        for (const char* name : {"\r\nContent-Length:", "\r\ncontent-length:"}) {
          const std::size_t at = data.find(name);
          if (at != std::string::npos && at < head_end) {
            body_length = static_cast<std::size_t>(std::atoi(data.c_str() + at + std::strlen(name)));
          }
        }
      }
    }
  }
  const std::size_t space1 = data.find(' ');
  const std::size_t space2 = data.find(' ', space1 + 1);
  if (space1 == std::string::npos || space2 == std::string::npos || space2 > head_end) return std::nullopt;
  return request{data.substr(0, space1), data.substr(space1 + 1, space2 - space1 - 1)};
}

void write_all(int fd, const std::string& text) {
  std::size_t sent = 0;
  while (sent < text.size()) {
    const ssize_t n = ::write(fd, text.data() + sent, text.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client went away: nothing to do about it
    sent += static_cast<std::size_t>(n);
  }
}

std::string response(int status, const char* reason, const std::string& extra_headers, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" + extra_headers + "\r\n" + body;
}

double seconds(clock_type::duration d) { return std::chrono::duration<double>(d).count(); }

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
    if (arg == "--fail") fail = true;
    else if (arg == "--timeout" && i + 1 < argc) timeout_seconds = std::atoi(argv[++i]);
  }
  const char* final_state = fail ? "FAILED" : "ACTIVE";

  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0) {
    std::fprintf(stderr, "server: socket: %s\n", std::strerror(errno));
    return 1;
  }
  const int yes = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;  // an ephemeral port: parallel CI jobs never collide
  socklen_t length = sizeof address;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listener, 16) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::fprintf(stderr, "server: bind/listen: %s\n", std::strerror(errno));
    ::close(listener);
    return 1;
  }
  const int port = ntohs(address.sin_port);
  {
    const std::string temporary = port_file + ".tmp";
    std::ofstream out(temporary);
    out << port << "\n";
    out.close();
    if (!out || std::rename(temporary.c_str(), port_file.c_str()) != 0) {
      std::fprintf(stderr, "server: cannot write %s\n", port_file.c_str());
      ::close(listener);
      return 1;
    }
  }
  std::fprintf(stderr, "server: listening on 127.0.0.1:%d (final state %s, hard timeout %d s)\n", port, final_state,
               timeout_seconds);

  const auto started = clock_type::now();
  const auto hard_deadline = started + std::chrono::seconds(timeout_seconds);
  std::optional<clock_type::time_point> job_created;
  int exit_code = 2;
  while (clock_type::now() < hard_deadline) {
    pollfd p{listener, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(hard_deadline - clock_type::now());
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const int client = ::accept(listener, nullptr, nullptr);
    if (client < 0) continue;
    const auto req = read_request(client);
    const auto now = clock_type::now();
    bool finished = false;
    std::string log_line;
    if (!req) {
      write_all(client, response(400, "Bad Request", "", "{\"error\":\"bad request\"}"));
      log_line = "(unreadable) -> 400";
    } else if (req->method == "POST" && req->path == "/jobs") {
      if (!job_created) job_created = now;
      write_all(client, response(202, "Accepted", "Location: /jobs/1\r\nRetry-After: 1\r\n",
                                 "{\"id\":1,\"state\":\"PENDING\"}"));
      log_line = "POST /jobs -> 202 Accepted, Location: /jobs/1, Retry-After: 1";
    } else if (req->method == "GET" && req->path == "/jobs/1" && job_created) {
      const auto age = now - *job_created;
      const char* state = age < pending_for ? "PENDING" : age < building_until ? "BUILDING" : final_state;
      const bool pending = age < pending_for;
      write_all(client, response(200, "OK", pending ? "Retry-After: 1\r\n" : "",
                                 std::string("{\"id\":1,\"state\":\"") + state + "\"}"));
      log_line = std::string("GET /jobs/1 -> 200 ") + state + (pending ? ", Retry-After: 1" : "");
      finished = age >= building_until;
    } else {
      write_all(client, response(404, "Not Found", "", "{\"error\":\"not found\"}"));
      log_line = req->method + " " + req->path + " -> 404";
    }
    ::close(client);
    std::fprintf(stderr, "server: t=%.2fs %s\n", job_created ? seconds(now - *job_created) : 0.0, log_line.c_str());
    if (finished) {
      exit_code = 0;
      break;
    }
  }
  if (exit_code != 0) std::fprintf(stderr, "server: hard timeout after %d s, exiting\n", timeout_seconds);
  ::close(listener);
  return exit_code;
}
