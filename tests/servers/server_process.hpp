// A real server process for a test: started with fork/exec, its port read from the "listening on PORT" line it
// prints, stopped (SIGTERM, then SIGKILL) when the test is done with it. Every wait is bounded. POSIX only.
//
//   server_process server(POLLSTER_HTTP_FAULT_SERVER, {"--rate-limit", "50"});
//   curl_perform(http_request(server.url("/limited/x")));
//
// Any executable that prints "listening on PORT" on its first line of stdout works (http_fault_server does).
#pragma once

#include <fcntl.h>         // fcntl, O_CLOEXEC
#include <poll.h>          // poll
#include <signal.h>        // kill, SIGTERM, SIGKILL
#include <sys/resource.h>  // getrlimit, setrlimit
#include <sys/wait.h>      // waitpid
#include <unistd.h>        // fork, execv, pipe, read, close

#include <algorithm>  // min
#include <chrono>     // steady_clock, milliseconds
#include <stdexcept>  // runtime_error
#include <string>     // string
#include <thread>     // this_thread::sleep_for
#include <vector>     // vector

namespace pollster_test {

/// Raises this process's soft limit on open files towards `wanted` (never above the hard limit): a test with a
/// thousand connections must not fail on a soft limit of 1 024.
inline void raise_open_file_limit(rlim_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted) return;
  limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
  ::setrlimit(RLIMIT_NOFILE, &limit);
}

class server_process {
 public:
  /// Starts `executable` with `arguments` and waits (at most `startup`) for the port it listens on.
  server_process(std::string executable, std::vector<std::string> arguments,
                 std::chrono::milliseconds startup = std::chrono::seconds(10))
      : executable_(std::move(executable)), arguments_(std::move(arguments)) {
    start(startup);
  }
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;
  ~server_process() { stop(); }

  int port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0; }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  /// SIGTERM, a bounded wait for it to exit, then SIGKILL. Returns its exit status (-1 when it had to be killed).
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(3)) {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return status_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    kill();
    return status_;
  }

  /// SIGKILL now, as a crash would (a server restarted mid-poll), and reap it.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    status_ = -1;
  }

  /// Starts it again with the same arguments and, unless told otherwise, on the same port.
  void restart(bool same_port = true, std::chrono::milliseconds startup = std::chrono::seconds(10)) {
    stop();
    if (same_port) {
      bool replaced = false;
      for (std::size_t i = 0; i + 1 < arguments_.size(); ++i) {
        if (arguments_[i] == "--port") {
          arguments_[i + 1] = std::to_string(port_);
          replaced = true;
        }
      }
      if (!replaced) {
        arguments_.push_back("--port");
        arguments_.push_back(std::to_string(port_));
      }
    }
    start(startup);
  }

 private:
  void start(std::chrono::milliseconds startup) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("server_process: pipe failed");
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(executable_.c_str()));
    for (std::string& a : arguments_) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("server_process: fork failed");
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      ::close(out[1]);
      ::execv(executable_.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    const auto until = std::chrono::steady_clock::now() + startup;
    while (line.find('\n') == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      pollfd p{out[0], POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buffer[128];
      const ssize_t n = ::read(out[0], buffer, sizeof buffer);
      if (n <= 0) break;
      line.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(out[0]);  // the server's later output, if any, goes nowhere (SIGPIPE is ignored there)
    const std::string prefix = "listening on ";
    if (line.compare(0, prefix.size(), prefix) != 0) {
      kill();
      throw std::runtime_error("server_process: " + executable_ + " did not say where it listens (got \"" + line +
                               "\")");
    }
    port_ = std::stoi(line.substr(prefix.size()));
  }

  std::string executable_;
  std::vector<std::string> arguments_;
  pid_t pid_ = -1;
  int port_ = 0;
  int status_ = 0;
};

}  // namespace pollster_test
