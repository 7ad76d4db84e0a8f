// A real redis-server for a test: started on a free loopback port with no persistence (--save '' --appendonly no),
// its readiness awaited with PING, and stopped (SIGTERM, then SIGKILL) when the test is done with it. It can be
// paused (SIGSTOP: connections stay open and commands time out, as in a partition), resumed, killed and restarted on
// the same port. Every wait is bounded. POSIX only.
//
//   pollster_test::redis_server redis;                     // POLLSTER_REDIS_SERVER names the executable
//   pollster::redis_connection c(redis.options());
#pragma once

#include <pollster/redis_client.hpp>

#include <arpa/inet.h>   // htonl
#include <netinet/in.h>  // sockaddr_in
#include <signal.h>      // kill, SIGTERM, SIGKILL, SIGSTOP, SIGCONT
#include <sys/socket.h>  // socket, bind, getsockname
#include <sys/wait.h>    // waitpid
#include <fcntl.h>       // open
#include <unistd.h>      // fork, execv, close, dup2

#include <chrono>     // steady_clock, milliseconds
#include <stdexcept>  // runtime_error
#include <string>     // string, to_string
#include <thread>     // this_thread::sleep_for
#include <vector>     // vector

#ifndef POLLSTER_REDIS_SERVER
#define POLLSTER_REDIS_SERVER "redis-server"
#endif

namespace pollster_test {

/// A free TCP port on 127.0.0.1, as the kernel picks one for port 0 (free when asked; a start retries if taken).
inline int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("free_loopback_port: socket failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  if (port == 0) throw std::runtime_error("free_loopback_port: no port");
  return port;
}

class redis_server {
 public:
  explicit redis_server(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = free_loopback_port();
      if (start()) return;
    }
    throw std::runtime_error("redis_server: " POLLSTER_REDIS_SERVER " did not start on a free port in 5 tries");
  }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;
  ~redis_server() { stop(); }

  int port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0; }
  /// Connection options for this server: short timeouts, so a paused server is noticed quickly.
  pollster::redis_options options(std::chrono::milliseconds timeout = std::chrono::milliseconds(250)) const {
    pollster::redis_options o;
    o.host = "127.0.0.1";
    o.port = port_;
    o.connect_timeout = timeout;
    o.command_timeout = timeout;
    return o;
  }

  /// SIGSTOP: the process stops answering, its connections stay open (a partition, as clients see it).
  void pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }
  /// SIGTERM (after SIGCONT, in case it is paused), a bounded wait, then SIGKILL.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    kill();
  }
  /// SIGKILL now, as a crash would, and reap it.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  /// Starts it again on the same port (empty: no persistence).
  void restart() {
    stop();
    for (int attempt = 0; attempt < 20; ++attempt) {  // the port may linger a moment after the kill
      if (start()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("redis_server: could not restart on port " + std::to_string(port_));
  }

 private:
  bool start() {
    std::vector<std::string> args{POLLSTER_REDIS_SERVER, "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
                                  "--loglevel", "warning"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("redis_server: fork failed");
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) {
        ::dup2(null, 1);
        ::dup2(null, 2);
      }
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    // Ready when it answers PING; gone (a taken port, a missing executable) when it exits first. At most 5 s.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      try {
        pollster::redis_connection c(options());
        if (c.command({"PING"}).as_string() == "PONG") return true;
      } catch (const pollster::redis_error&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill();
    return false;
  }

  std::vector<std::string> extra_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace pollster_test
