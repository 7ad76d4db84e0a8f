// SPDX-License-Identifier: MIT
#pragma once

// HTTP for pollster on libcurl (optional: link pollster::curl, which brings libcurl). Two ways to send a request:
//
//  * `curl_client`: libcurl's multi interface on one I/O thread of its own. Thousands of requests in flight, on
//    kept-alive connections that are reused; each request with its own timeout (a check passes the time its run has
//    left); `abort()` from any thread removes the transfer on the I/O thread; every request's callback runs exactly
//    once, on the I/O thread, with the response or a transport error (refused, timeout, reset, truncated, ...).
//    On Linux the loop is libcurl's socket-action API on epoll, so a wake-up costs what its events cost however
//    many connections are open (1 000 in flight are as cheap per request as 64); elsewhere, or on request, it is
//    curl_multi_poll, whose every wake-up visits every transfer. Either is woken by another thread that starts or
//    aborts a request. Beyond `max_transfers` at once, requests wait in the client's own queue, where they cost a
//    few hundred bytes instead of an easy handle's ten kilobytes, and their timeout runs all the same.
//  * `curl_perform(request)`: one blocking request with the easy interface, on a connection this thread reuses.
//
// What a response means for a poll is http.hpp's business: `step_from_response(response, mapper)`.

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "http.hpp"

#include <curl/curl.h>

#if defined(__linux__)
#include <sys/epoll.h>    // epoll_create1, epoll_ctl, epoll_wait
#include <sys/eventfd.h>  // eventfd (wakes the I/O thread)
#include <unistd.h>       // read, write, close
#define POLLSTER_CURL_HAS_EPOLL 1
#else
#define POLLSTER_CURL_HAS_EPOLL 0
#endif

#include <algorithm>           // max, min
#include <atomic>              // atomic
#include <cerrno>              // errno, ENOENT, EEXIST
#include <chrono>              // steady_clock, system_clock
#include <condition_variable>  // condition_variable
#include <initializer_list>    // initializer_list (the bounds of an attempt)
#include <cstddef>             // size_t
#include <cstdint>             // uint64_t
#include <map>                 // map (the client's queue, in order)
#include <memory>              // shared_ptr, unique_ptr
#include <mutex>               // mutex, lock_guard
#include <new>                 // bad_alloc
#include <optional>            // optional
#include <set>                 // set (queued deadlines)
#include <stdexcept>           // logic_error, runtime_error
#include <string>              // string
#include <string_view>         // string_view
#include <thread>              // thread
#include <type_traits>         // decay_t, is_invocable_v
#include <unordered_map>       // unordered_map
#include <utility>             // move, exchange
#include <vector>              // vector

POLLSTER_NAMESPACE_BEGIN

/// How a `curl_client` waits for its sockets.
enum class curl_event_loop : std::uint8_t {
  automatic,      ///< socket_action where the platform has it (Linux), else multi_poll
  socket_action,  ///< libcurl's socket-action API on epoll: the cost of a wake-up follows its events
  multi_poll,     ///< curl_multi_poll: portable; every wake-up visits every transfer
};

/// How a `curl_client` (and `curl_perform`) talks to servers. A plain aggregate.
struct curl_options {
  /// Transfers handed to libcurl at once; more wait in the client's queue (0: no limit). Over HTTP/1.1 each one
  /// holds a connection, so this is also the most connections the client opens.
  std::size_t max_transfers = 256;
  /// libcurl's limits on open connections, per host and in all (0: libcurl's default, no limit).
  long max_host_connections = 0;
  long max_total_connections = 0;
  /// The timeout of a request whose own is zero.
  duration default_timeout = std::chrono::seconds(30);
  /// The longest connection set-up (never longer than the request's timeout).
  duration connect_timeout = std::chrono::seconds(10);
  /// Follow 3xx redirects (a 303 to an operation's result, say). Off: a 3xx reaches the policy as it is.
  bool follow_redirects = false;
  std::string user_agent = "pollster";
  /// The client's event loop (socket_action falls back to multi_poll where there is no epoll).
  curl_event_loop event_loop = curl_event_loop::automatic;
};

namespace detail {

/// A move-only `void(Args...)` callable: what a request calls back holds a pollster completion, which cannot be
/// copied, so std::function will not do.
template <class Signature>
class unique_function;
template <class... Args>
class unique_function<void(Args...)> {
 public:
  unique_function() = default;
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, unique_function>>>
  unique_function(F&& f)  // NOLINT(google-explicit-constructor): any callable converts, like std::function
      : impl_(std::make_unique<holder<std::decay_t<F>>>(std::forward<F>(f))) {}
  explicit operator bool() const noexcept { return impl_ != nullptr; }
  void operator()(Args... args) { impl_->call(std::forward<Args>(args)...); }

 private:
  struct base {
    virtual ~base() = default;
    virtual void call(Args... args) = 0;
  };
  template <class F>
  struct holder final : base {
    explicit holder(F&& fn) : f(std::move(fn)) {}
    explicit holder(const F& fn) : f(fn) {}
    void call(Args... args) override { f(std::forward<Args>(args)...); }
    F f;
  };
  std::unique_ptr<base> impl_;
};

/// curl_global_init, once per process (a function-local static: thread-safe to start).
inline void curl_global_once() {
  static const CURLcode initialised = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (initialised != CURLE_OK) throw std::runtime_error("pollster: curl_global_init failed");
}

inline transport_error transport_error_of(CURLcode code) noexcept {
  switch (code) {
    case CURLE_OK:
      return transport_error::none;
    case CURLE_COULDNT_CONNECT:
      return transport_error::refused;
    case CURLE_OPERATION_TIMEDOUT:
      return transport_error::timeout;
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      return transport_error::reset;
    case CURLE_PARTIAL_FILE:
      return transport_error::truncated;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return transport_error::resolve;
    case CURLE_ABORTED_BY_CALLBACK:
      return transport_error::aborted;
    default:
      return transport_error::other;
  }
}

/// Cuts a request's timeout to an attempt's and to the time its run has left (a pollster `poll_state`), so that no
/// request outlives them.
template <class State>
void bound_by_attempt(http_request& request, const State& state) {
  for (const duration bound : {state.time_left, state.timeout}) {
    if (bound > duration::zero() && bound != duration::max() &&
        (request.timeout == duration::zero() || bound < request.timeout)) {
      request.timeout = bound;
    }
  }
}

/// long milliseconds for libcurl, rounded up (a 0.5 ms timeout must not become "no timeout").
inline long curl_milliseconds(duration d) noexcept {
  if (d <= duration::zero()) return 1;
  const auto ms = (d.count() + 999999) / 1000000;
  return ms > 0x7fffffff ? 0x7fffffff : static_cast<long>(ms);
}

/// One request on an easy handle: what it sends, and the response as libcurl's callbacks deliver it.
struct curl_exchange {
  http_request request;
  http_response response;
  curl_slist* header_list = nullptr;
  char error_text[CURL_ERROR_SIZE] = {};

  curl_exchange() = default;
  explicit curl_exchange(http_request r) : request(std::move(r)) {}
  curl_exchange(const curl_exchange&) = delete;
  curl_exchange& operator=(const curl_exchange&) = delete;
  ~curl_exchange() { curl_slist_free_all(header_list); }

  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* self) {
    static_cast<curl_exchange*>(self)->response.body.append(data, size * count);
    return size * count;
  }

  /// One header line per call, the status line included; a new status line (after a 100 Continue or a redirect)
  /// starts the headers again, so the final response's are the ones kept.
  static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* self) {
    http_response& r = static_cast<curl_exchange*>(self)->response;
    std::string_view line(data, size * count);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    if (line.substr(0, 5) == "HTTP/") {
      r.headers = http_headers{};
      r.reason.clear();
      const std::size_t first = line.find(' ');
      const std::size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
      if (second != std::string_view::npos) r.reason = std::string(trim_ows(line.substr(second + 1)));
    } else if (!line.empty() && is_ows(line.front())) {
      // An obsolete folded line continues the previous field's value.
      if (r.headers.size() != 0) {
        http_headers refolded;
        std::size_t i = 0;
        for (const auto& f : r.headers) {
          std::string value = f.second;
          if (++i == r.headers.size()) value += " " + std::string(trim_ows(line));
          refolded.add(f.first, std::move(value));
        }
        r.headers = std::move(refolded);
      }
    } else if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
      r.headers.add(std::string(line.substr(0, colon)), std::string(trim_ows(line.substr(colon + 1))));
    }
    return size * count;
  }

  /// Sets every option of this exchange on `easy` (a fresh or reset handle); `timeout` is what is left of it.
  void prepare(CURL* easy, duration timeout, const curl_options& options) {
    curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, curl_milliseconds(timeout));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, curl_milliseconds(std::min(timeout, options.connect_timeout)));
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &curl_exchange::on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &curl_exchange::on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_text);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, options.follow_redirects ? 1L : 0L);
    if (!options.user_agent.empty()) curl_easy_setopt(easy, CURLOPT_USERAGENT, options.user_agent.c_str());
    if (request.method == "HEAD") {
      curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (request.method != "GET" || !request.body.empty()) {
      if (request.method != "POST") curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
      if (!request.body.empty() || request.method == "POST") {
        // The body lives in this exchange for the whole transfer: no copy.
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
      }
    }
    curl_slist_free_all(header_list);
    header_list = nullptr;
    for (const auto& [name, value] : request.headers) {
      // libcurl drops "Name:" with an empty value unless it is written "Name;".
      const std::string line = value.empty() ? name + ";" : name + ": " + value;
      curl_slist* appended = curl_slist_append(header_list, line.c_str());
      if (appended == nullptr) throw std::bad_alloc();
      header_list = appended;
    }
    if (header_list != nullptr) curl_easy_setopt(easy, CURLOPT_HTTPHEADER, header_list);
  }

  /// Completes the response once libcurl is done with it.
  void finish(CURL* easy, CURLcode result) {
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    response.status = static_cast<int>(status);
    response.received_at = std::chrono::system_clock::now();
    response.transport = transport_error_of(result);
    if (result != CURLE_OK)
      response.transport_message = error_text[0] != '\0' ? error_text : curl_easy_strerror(result);
  }
};

/// One request's identity, shared by its handles and the I/O thread: an abort marks it first, so that an abort
/// that comes before the start (a completion cancelled at once) is not lost.
struct curl_token {
  std::uint64_t id = 0;
  std::atomic<bool> aborted{false};
  std::atomic<bool> started{false};
};

/// What a transfer handle and the client share: the queue of commands for the I/O thread, and whether it is
/// still there to receive them.
struct curl_shared {
  struct start_command {
    std::shared_ptr<curl_token> token;
    std::unique_ptr<curl_exchange> exchange;
    unique_function<void(http_response&&)> done;
    std::chrono::steady_clock::time_point started;
  };
  std::mutex mutex;
  std::vector<start_command> starts;
  std::vector<std::uint64_t> aborts;
  bool stopping = false;
  bool closed = false;  // the multi handle is gone: nobody may wake it
  CURLM* multi = nullptr;
  int wake_fd = -1;  // the socket_action loop's eventfd; -1: curl_multi_wakeup
  std::atomic<std::uint64_t> next_id{1};

  /// With `mutex` held, before adding a command: wakes the I/O thread unless a wake-up is already owed for a
  /// command it has not taken yet (a burst of starts costs one wake-up, not one system call each).
  void wake_for_command() {
    if (starts.empty() && aborts.empty()) wake();
  }
  void wake() {  // with `mutex` held
    if (closed) return;
#if POLLSTER_CURL_HAS_EPOLL
    if (wake_fd >= 0) {
      const std::uint64_t one = 1;
      if (::write(wake_fd, &one, sizeof one) < 0) {
      }  // EAGAIN: the counter is full of wake-ups already
      return;
    }
#endif
    curl_multi_wakeup(multi);
  }
};

#if POLLSTER_CURL_HAS_EPOLL
/// The socket_action loop's half of the work: libcurl says which sockets to watch and when its next timer is due
/// (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION); epoll says which sockets are ready.
class curl_epoll {
 public:
  curl_epoll() : epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)), wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (epoll_fd_ < 0 || wake_fd_ < 0) {
      close_fds();
      throw std::runtime_error("pollster::curl_client: epoll_create1 or eventfd failed");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  }
  curl_epoll(const curl_epoll&) = delete;
  curl_epoll& operator=(const curl_epoll&) = delete;
  ~curl_epoll() { close_fds(); }

  void attach(CURLM* multi) {
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &curl_epoll::on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &curl_epoll::on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
  }
  int wake_fd() const noexcept { return wake_fd_; }

  /// Runs libcurl's timer if it is due.
  void run_timer(CURLM* multi, std::chrono::steady_clock::time_point now) {
    if (!timer_set_ || timer_due_ > now) return;
    timer_set_ = false;  // before the call: libcurl may set the next one from inside it
    int running = 0;
    curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
  }

  /// Waits at most `bound` (less when libcurl's timer is due sooner), then hands every ready socket to libcurl.
  void wait_and_act(CURLM* multi, std::chrono::milliseconds bound) {
    const auto now = std::chrono::steady_clock::now();
    if (timer_set_) {
      const auto until = std::chrono::ceil<std::chrono::milliseconds>(timer_due_ - now);
      bound = std::max(std::chrono::milliseconds::zero(), std::min(bound, until));
    }
    epoll_event events[256];
    const int n = ::epoll_wait(epoll_fd_, events, 256, static_cast<int>(bound.count()));
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        std::uint64_t count = 0;
        if (::read(wake_fd_, &count, sizeof count) < 0) {
        }  // EAGAIN: drained already
        continue;
      }
      const std::uint32_t ready = events[i].events;
      int action = ((ready & EPOLLIN) != 0 ? CURL_CSELECT_IN : 0) | ((ready & EPOLLOUT) != 0 ? CURL_CSELECT_OUT : 0);
      if ((ready & (EPOLLERR | EPOLLHUP)) != 0) action |= CURL_CSELECT_ERR;
      int running = 0;
      curl_multi_socket_action(multi, fd, action, &running);
    }
  }

 private:
  static int on_socket(CURL*, curl_socket_t socket, int what, void* self_pointer, void*) {
    auto* self = static_cast<curl_epoll*>(self_pointer);
    if (what == CURL_POLL_REMOVE) {
      ::epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, socket, nullptr);
      return 0;
    }
    epoll_event ev{};
    ev.events = ((what & CURL_POLL_IN) != 0 ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) != 0 ? EPOLLOUT : 0u);
    ev.data.fd = socket;
    if (::epoll_ctl(self->epoll_fd_, EPOLL_CTL_MOD, socket, &ev) != 0 && errno == ENOENT) {
      ::epoll_ctl(self->epoll_fd_, EPOLL_CTL_ADD, socket, &ev);
    }
    return 0;
  }
  static int on_timer(CURLM*, long timeout_ms, void* self_pointer) {
    auto* self = static_cast<curl_epoll*>(self_pointer);
    self->timer_set_ = timeout_ms >= 0;
    if (timeout_ms >= 0) self->timer_due_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    return 0;
  }
  void close_fds() noexcept {
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    epoll_fd_ = wake_fd_ = -1;
  }

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  bool timer_set_ = false;
  std::chrono::steady_clock::time_point timer_due_{};
};
#endif

}  // namespace detail

/// One request of a `curl_client`, to abort it from any thread. Copyable; an empty one does nothing.
class curl_transfer {
 public:
  curl_transfer() = default;

  /// Aborts the request if it is still in flight: its callback then receives `transport_error::aborted`. If the
  /// response was already delivered, nothing happens: the callback runs exactly once either way.
  void abort() const {
    if (!token_ || token_->aborted.exchange(true)) return;
    const auto shared = shared_.lock();
    if (!shared) return;
    std::lock_guard<std::mutex> lock(shared->mutex);
    if (shared->stopping) return;  // the client is aborting everything anyway
    shared->wake_for_command();
    shared->aborts.push_back(token_->id);
  }
  std::uint64_t id() const noexcept { return token_ ? token_->id : 0; }
  explicit operator bool() const noexcept { return token_ != nullptr; }

 private:
  friend class curl_client;
  curl_transfer(std::weak_ptr<detail::curl_shared> shared, std::shared_ptr<detail::curl_token> token)
      : shared_(std::move(shared)), token_(std::move(token)) {}
  std::weak_ptr<detail::curl_shared> shared_;
  std::shared_ptr<detail::curl_token> token_;
};

/// Counters of a `curl_client`, readable from any thread.
struct curl_client_stats {
  std::uint64_t started = 0;              ///< requests given to start()
  std::uint64_t completed = 0;            ///< callbacks called (responses and errors alike), counted as each starts
  std::uint64_t transport_errors = 0;     ///< of which: no complete response (aborts included)
  std::uint64_t aborted = 0;              ///< of which: aborted
  std::uint64_t connections_opened = 0;   ///< new connections libcurl made; the rest of the requests reused one
  std::uint64_t peak_in_flight = 0;       ///< the most requests started and not yet completed, at once
  std::uint64_t callback_exceptions = 0;  ///< callbacks that threw (caught on the I/O thread, which goes on)
};

/// libcurl's multi interface on an I/O thread of its own (see the top of this header).
class curl_client {
 public:
  using callback = detail::unique_function<void(http_response&&)>;

  explicit curl_client(curl_options options = {}) : options_(std::move(options)) {
    detail::curl_global_once();
    shared_ = std::make_shared<detail::curl_shared>();
    shared_->multi = curl_multi_init();
    if (shared_->multi == nullptr) throw std::runtime_error("pollster::curl_client: curl_multi_init failed");
    if (options_.max_host_connections > 0) {
      curl_multi_setopt(shared_->multi, CURLMOPT_MAX_HOST_CONNECTIONS, options_.max_host_connections);
    }
    if (options_.max_total_connections > 0) {
      curl_multi_setopt(shared_->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, options_.max_total_connections);
    }
#if POLLSTER_CURL_HAS_EPOLL
    if (options_.event_loop != curl_event_loop::multi_poll) {
      epoll_ = std::make_unique<detail::curl_epoll>();
      epoll_->attach(shared_->multi);
      shared_->wake_fd = epoll_->wake_fd();
    }
#endif
    thread_ = std::thread([this] { run(); });
  }
  curl_client(const curl_client&) = delete;
  curl_client& operator=(const curl_client&) = delete;

  /// Aborts every request still in flight or queued (each callback receives `aborted`, on the I/O thread), then
  /// joins the I/O thread. A request started after this began is aborted at once, on the caller's thread.
  ~curl_client() {
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->stopping = true;
      shared_->wake();
    }
    thread_.join();
    for (CURL* easy : idle_) curl_easy_cleanup(easy);
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->closed = true;
    curl_multi_cleanup(shared_->multi);  // (its last socket callbacks still find the epoll descriptor open)
  }

  /// A handle for a request not started yet, so that its abort can be registered before it starts (a pollster
  /// completion's `on_abort`): an abort that comes first makes the start complete as aborted.
  curl_transfer reserve() {
    auto token = std::make_shared<detail::curl_token>();
    token->id = shared_->next_id.fetch_add(1, std::memory_order_relaxed);
    return {shared_, std::move(token)};
  }

  /// Starts `request` from any thread; `done(http_response&&)` runs exactly once, on the I/O thread, and must not
  /// block it for long.
  template <class Done>
  curl_transfer start(http_request request, Done&& done) {
    curl_transfer handle = reserve();
    start(handle, std::move(request), std::forward<Done>(done));
    return handle;
  }
  /// The same for a handle from `reserve()`.
  template <class Done>
  void start(const curl_transfer& handle, http_request request, Done&& done) {
    static_assert(std::is_invocable_v<std::decay_t<Done>&, http_response&&>,
                  "pollster::curl_client::start: the callback must take the response: void(pollster::http_response&&)");
    if (!handle.token_ || handle.shared_.lock() != shared_) {
      throw std::logic_error("pollster::curl_client::start: the transfer handle is not one of this client's");
    }
    if (handle.token_->started.exchange(true)) {
      throw std::logic_error("pollster::curl_client::start: this transfer was started already");
    }
    detail::curl_shared::start_command command{handle.token_,
                                               std::make_unique<detail::curl_exchange>(std::move(request)),
                                               callback(std::forward<Done>(done)), std::chrono::steady_clock::now()};
    started_.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      if (!shared_->stopping) {
        shared_->wake_for_command();
        shared_->starts.push_back(std::move(command));
        return;
      }
    }
    complete(*command.exchange, command.done, transport_error::aborted, "the client is shutting down");
  }

  /// One request, waiting for its response (any thread but the I/O thread, which would wait for itself).
  http_response perform(http_request request) {
    if (std::this_thread::get_id() == thread_.get_id()) {
      throw std::logic_error("pollster::curl_client::perform: called on the client's I/O thread (from a callback)");
    }
    struct waiter {
      std::mutex mutex;
      std::condition_variable ready;
      std::optional<http_response> response;
    };
    const auto w = std::make_shared<waiter>();
    start(std::move(request), [w](http_response&& r) {
      std::lock_guard<std::mutex> lock(w->mutex);
      w->response.emplace(std::move(r));
      w->ready.notify_one();
    });
    std::unique_lock<std::mutex> lock(w->mutex);
    w->ready.wait(lock, [&w] { return w->response.has_value(); });
    return std::move(*w->response);
  }

  /// An asynchronous pollster check's request in one call. `c` is the check's completion (API-DECISIONS item 5:
  /// `c.state()` with `time_left` and `timeout`, `c.on_abort(fn)`, `c(step)`): the request's timeout is cut to the
  /// attempt's and to the time the run has left, a timed-out or cancelled attempt aborts the transfer, and the
  /// response completes `c` through `step_from_response(response, mapper, rules)`.
  template <class Completion, class Mapper>
  void start_check(Completion c, http_request request, Mapper mapper, http_rules rules = {}) {
    start_attempt(std::move(c), std::move(request),
                  [mapper = std::move(mapper), rules = std::move(rules)](const http_response& r) mutable {
                    return step_from_response(r, mapper, rules);
                  });
  }

  /// The same with the whole response in the caller's hands: `read(response)` returns the step that completes `c`
  /// (curl_poll.hpp's conditional requests remember the validators there).
  template <class Completion, class Read>
  void start_attempt(Completion c, http_request request, Read read) {
    detail::bound_by_attempt(request, c.state());
    const curl_transfer handle = reserve();
    c.on_abort([handle] { handle.abort(); });
    start(handle, std::move(request), [c = std::move(c), read = std::move(read)](http_response&& r) mutable {
      c(read(static_cast<const http_response&>(r)));
    });
  }

  curl_client_stats stats() const noexcept {
    curl_client_stats s;
    s.started = started_.load(std::memory_order_relaxed);
    s.completed = completed_.load(std::memory_order_relaxed);
    s.transport_errors = transport_errors_.load(std::memory_order_relaxed);
    s.aborted = aborted_.load(std::memory_order_relaxed);
    s.connections_opened = connections_.load(std::memory_order_relaxed);
    s.peak_in_flight = peak_in_flight_.load(std::memory_order_relaxed);
    s.callback_exceptions = callback_exceptions_.load(std::memory_order_relaxed);
    return s;
  }
  /// Requests started and not yet completed.
  std::uint64_t in_flight() const noexcept {
    return started_.load(std::memory_order_relaxed) - completed_.load(std::memory_order_relaxed);
  }
  const curl_options& options() const noexcept { return options_; }
  /// The loop this client runs (what `automatic` became here).
  curl_event_loop event_loop() const noexcept {
#if POLLSTER_CURL_HAS_EPOLL
    if (epoll_) return curl_event_loop::socket_action;
#endif
    return curl_event_loop::multi_poll;
  }

 private:
  using steady = std::chrono::steady_clock;

  /// A request the I/O thread owns: waiting in the queue, or handed to libcurl.
  struct transfer {
    std::uint64_t id = 0;
    std::unique_ptr<detail::curl_exchange> exchange;
    callback done;
    steady::time_point deadline;
    CURL* easy = nullptr;
  };

  void complete(detail::curl_exchange& exchange, callback& done, transport_error why, const char* message) {
    exchange.response.transport = why;
    exchange.response.transport_message = message;
    exchange.response.received_at = std::chrono::system_clock::now();
    deliver(exchange, done);
  }

  /// Runs a callback (exactly once per request: every path to here consumes the transfer).
  void deliver(detail::curl_exchange& exchange, callback& done) {
    if (exchange.response.transport != transport_error::none) {
      transport_errors_.fetch_add(1, std::memory_order_relaxed);
      if (exchange.response.transport == transport_error::aborted) aborted_.fetch_add(1, std::memory_order_relaxed);
    }
    // Counted first, so that whoever the callback wakes sees its request completed.
    completed_.fetch_add(1, std::memory_order_release);
    try {
      done(std::move(exchange.response));
    } catch (...) {
      callback_exceptions_.fetch_add(1, std::memory_order_relaxed);  // the other requests go on
    }
  }

  duration timeout_of(const http_request& r) const noexcept {
    return r.timeout > duration::zero() ? r.timeout : options_.default_timeout;
  }

  /// Hands a request to libcurl, or completes it as timed out when its time already ran out in the queue.
  void activate(transfer t, steady::time_point now) {
    if (t.deadline <= now) {
      complete(*t.exchange, t.done, transport_error::timeout, "timed out before a connection was free");
      return;
    }
    CURL* easy = nullptr;
    if (!idle_.empty()) {
      easy = idle_.back();
      idle_.pop_back();
      curl_easy_reset(easy);
    } else {
      easy = curl_easy_init();
    }
    if (easy == nullptr) {
      complete(*t.exchange, t.done, transport_error::other, "curl_easy_init failed");
      return;
    }
    t.exchange->prepare(easy, std::chrono::duration_cast<duration>(t.deadline - now), options_);
    t.easy = easy;
    const std::uint64_t id = t.id;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, reinterpret_cast<char*>(static_cast<std::uintptr_t>(id)));
    const CURLMcode added = curl_multi_add_handle(shared_->multi, easy);
    if (added != CURLM_OK) {
      idle_.push_back(easy);
      complete(*t.exchange, t.done, transport_error::other, curl_multi_strerror(added));
      return;
    }
    active_.emplace(id, std::move(t));
  }

  /// Takes a transfer back from libcurl; its easy handle goes back to the pool (with the connection it used left in
  /// libcurl's cache for the next request).
  transfer release(std::unordered_map<std::uint64_t, transfer>::iterator it) {
    transfer t = std::move(it->second);
    active_.erase(it);
    curl_multi_remove_handle(shared_->multi, t.easy);
    idle_.push_back(t.easy);
    t.easy = nullptr;
    return t;
  }

  bool has_room() const noexcept { return options_.max_transfers == 0 || active_.size() < options_.max_transfers; }

  void enqueue(detail::curl_shared::start_command&& command) {
    transfer t;
    t.id = command.token->id;
    t.exchange = std::move(command.exchange);
    t.done = std::move(command.done);
    t.deadline = command.started + std::chrono::duration_cast<steady::duration>(std::min(
                                       timeout_of(t.exchange->request), duration{std::chrono::hours(24 * 365)}));
    deadlines_.emplace(t.deadline, t.id);
    queue_.emplace(t.id, std::move(t));
  }

  void abort_one(std::uint64_t id) {
    if (const auto it = active_.find(id); it != active_.end()) {
      transfer t = release(it);
      complete(*t.exchange, t.done, transport_error::aborted, "aborted");
    } else if (const auto q = queue_.find(id); q != queue_.end()) {
      transfer t = std::move(q->second);
      deadlines_.erase({t.deadline, id});
      queue_.erase(q);
      complete(*t.exchange, t.done, transport_error::aborted, "aborted");
    }  // else: completed already, or not started yet (its start sees the token's mark)
  }

  /// Moves queued requests to libcurl while there is room; times out those whose deadline passed in the queue.
  void feed(steady::time_point now) {
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      const std::uint64_t id = deadlines_.begin()->second;
      deadlines_.erase(deadlines_.begin());
      const auto q = queue_.find(id);
      transfer t = std::move(q->second);
      queue_.erase(q);
      complete(*t.exchange, t.done, transport_error::timeout, "timed out before a connection was free");
    }
    while (has_room() && !queue_.empty()) {
      transfer t = std::move(queue_.begin()->second);
      queue_.erase(queue_.begin());
      deadlines_.erase({t.deadline, t.id});
      activate(std::move(t), now);
    }
  }

  void note_in_flight() {
    const std::uint64_t now_in_flight = in_flight();
    std::uint64_t peak = peak_in_flight_.load(std::memory_order_relaxed);
    while (now_in_flight > peak &&
           !peak_in_flight_.compare_exchange_weak(peak, now_in_flight, std::memory_order_relaxed)) {
    }
  }

  /// Hands every finished transfer's response to its callback.
  void collect_finished() {
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(shared_->multi, &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      char* tag = nullptr;
      curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &tag);
      const auto it = active_.find(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(tag)));
      if (it == active_.end()) continue;
      const CURLcode result = message->data.result;  // read before the handle is removed
      long connects = 0;
      curl_easy_getinfo(it->second.easy, CURLINFO_NUM_CONNECTS, &connects);
      connections_.fetch_add(static_cast<std::uint64_t>(connects), std::memory_order_relaxed);
      it->second.exchange->finish(it->second.easy, result);
      transfer t = release(it);
      deliver(*t.exchange, t.done);
    }
  }

  /// Takes the other threads' starts and aborts; false once the client is stopping (everything then aborted).
  bool take_commands(std::vector<detail::curl_shared::start_command>& starts, std::vector<std::uint64_t>& aborts) {
    bool stopping = false;
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      starts.swap(shared_->starts);
      aborts.swap(shared_->aborts);
      stopping = shared_->stopping;
    }
    note_in_flight();
    for (auto& command : starts) {
      if (command.token->aborted.load() || stopping) {
        callback done = std::move(command.done);
        complete(*command.exchange, done, transport_error::aborted,
                 stopping ? "the client is shutting down" : "aborted");
        continue;
      }
      enqueue(std::move(command));
    }
    starts.clear();
    for (const std::uint64_t id : aborts) abort_one(id);
    aborts.clear();
    if (!stopping) return true;
    while (!active_.empty()) {
      transfer t = release(active_.begin());
      complete(*t.exchange, t.done, transport_error::aborted, "the client is shutting down");
    }
    for (auto& queued : queue_) {
      complete(*queued.second.exchange, queued.second.done, transport_error::aborted, "the client is shutting down");
    }
    queue_.clear();
    deadlines_.clear();
    return false;  // start() refuses new requests once `stopping` is set, and this turn took the last ones
  }

  void run() {
    std::vector<detail::curl_shared::start_command> starts;
    std::vector<std::uint64_t> aborts;
    while (take_commands(starts, aborts)) {
      steady::time_point now = steady::now();
      feed(now);
#if POLLSTER_CURL_HAS_EPOLL
      if (epoll_) epoll_->run_timer(shared_->multi, now);
#endif
      if (!epoll_enabled()) {
        int running = 0;
        curl_multi_perform(shared_->multi, &running);
      }
      collect_finished();
      now = steady::now();
      if (has_room() && !queue_.empty()) continue;  // finished transfers made room: start the next ones first
      // Wait for the sockets, libcurl's timers, a wake-up, or the first deadline in the queue (a second at most,
      // which costs nothing and bounds the harm of a lost wake-up).
      auto bound = std::chrono::milliseconds(1000);
      if (!deadlines_.empty()) {
        const auto until = std::chrono::ceil<std::chrono::milliseconds>(deadlines_.begin()->first - now);
        bound = std::max(std::chrono::milliseconds::zero(), std::min(bound, until));
      }
#if POLLSTER_CURL_HAS_EPOLL
      if (epoll_) {
        epoll_->wait_and_act(shared_->multi, bound);
        collect_finished();
        continue;
      }
#endif
      curl_multi_poll(shared_->multi, nullptr, 0, static_cast<int>(bound.count()), nullptr);
    }
  }

  bool epoll_enabled() const noexcept {
#if POLLSTER_CURL_HAS_EPOLL
    return epoll_ != nullptr;
#else
    return false;
#endif
  }

  curl_options options_;
  std::shared_ptr<detail::curl_shared> shared_;
#if POLLSTER_CURL_HAS_EPOLL
  std::unique_ptr<detail::curl_epoll> epoll_;
#endif
  // The I/O thread's own state.
  std::unordered_map<std::uint64_t, transfer> active_;
  std::map<std::uint64_t, transfer> queue_;  // in start order
  std::set<std::pair<steady::time_point, std::uint64_t>> deadlines_;
  std::vector<CURL*> idle_;
  // Counters for anyone.
  std::atomic<std::uint64_t> started_{0};
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> transport_errors_{0};
  std::atomic<std::uint64_t> aborted_{0};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> peak_in_flight_{0};
  std::atomic<std::uint64_t> callback_exceptions_{0};
  std::thread thread_;  // last: it starts after everything it uses exists
};

/// One blocking request with libcurl's easy interface, on an easy handle this thread keeps (so a loop of requests
/// to one server reuses its connection). Never throws for a network failure: that is the response's `transport`.
inline http_response curl_perform(http_request request, const curl_options& options = {}) {
  detail::curl_global_once();
  struct thread_handle {
    CURL* easy = curl_easy_init();
    ~thread_handle() { curl_easy_cleanup(easy); }
  };
  thread_local thread_handle handle;
  detail::curl_exchange exchange(std::move(request));
  if (handle.easy == nullptr) {
    exchange.response.transport = transport_error::other;
    exchange.response.transport_message = "curl_easy_init failed";
    return std::move(exchange.response);
  }
  curl_easy_reset(handle.easy);
  const duration timeout =
      exchange.request.timeout > duration::zero() ? exchange.request.timeout : options.default_timeout;
  exchange.prepare(handle.easy, timeout, options);
  const CURLcode result = curl_easy_perform(handle.easy);
  exchange.finish(handle.easy, result);
  return std::move(exchange.response);
}

POLLSTER_NAMESPACE_END
