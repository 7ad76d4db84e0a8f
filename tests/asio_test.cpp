// The asio adapter under a real io_context, with bounded real time: millisecond schedules, a check that is done at
// its 4th call, stops that arrive after 5 ms while the timer waits on 10 s. No test takes more than ~50 ms unless
// the adapter is broken (a wait that is not cut short would take 10 s, and the assertions on elapsed say so).
#include "pollster_catch.hpp"

#include <pollster/asio.hpp>

#include "cancel_latency.hpp"

#include <thread>
#include <pollster/schedule.hpp>
#include <pollster/stop.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_future.hpp>
#if defined(ASIO_HAS_CO_AWAIT)
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>
#endif

#include <atomic>  // atomic
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using pollster::cause;

namespace {

using count_step = pollster::step<int, std::string>;
using count_outcome = pollster::outcome<int, std::string>;

/// Done at its `done_at`-th call; before that, pending with the number of calls so far as the value seen.
struct counting_check {
  int done_at = 4;
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  count_step operator()() const {
    ++*calls;
    if (*calls == done_at) return pollster::done(*calls * 10);
    return pollster::pending(*calls);
  }
};

/// 1 ms x 2, capped at 5 ms: the checks of a counting_check(4) start at 0, 1, 3 and 7 ms.
pollster::geometric fast_schedule() { return pollster::geometric{1ms, 2.0, 5ms}; }

/// A schedule whose first wait is far longer than any test may take: only a cancellation can end it in time.
pollster::constant long_wait() { return pollster::constant{10s}; }

std::chrono::steady_clock::duration since(std::chrono::steady_clock::time_point start) {
  return std::chrono::steady_clock::now() - start;
}

/// Calls `action` after `delay` on the io_context's thread.
template <class Action>
std::shared_ptr<asio::steady_timer> after(asio::io_context& io, std::chrono::milliseconds delay, Action action) {
  auto timer = std::make_shared<asio::steady_timer>(io, delay);
  timer->async_wait([action](const asio::error_code& ec) mutable {
    if (!ec) action();
  });
  return timer;
}

}  // namespace

TEST_CASE("async_poll completes a callback with the outcome once the check is done", "[asio]") {
  asio::io_context io;
  counting_check check;
  std::optional<count_outcome> result;
  int completions = 0;
  const auto start = std::chrono::steady_clock::now();
  pollster::async_poll(io.get_executor(), check, fast_schedule(), pollster::never{}, pollster::poll_options{},
                       [&](count_outcome o) {
                         ++completions;
                         result = std::move(o);
                       });
  CHECK(*check.calls == 0);  // nothing runs inside the initiating call
  CHECK(completions == 0);
  io.run();
  const auto took = since(start);
  REQUIRE(completions == 1);
  CHECK(result->cause == cause::done);
  CHECK(result->value() == 40);
  CHECK(result->attempts == 4);
  CHECK(*check.calls == 4);
  // The waits were 1, 2 and 4 ms on the real timer: never shorter, and nowhere near a second.
  CHECK(result->slept >= 7ms);
  CHECK(took >= 7ms);
  CHECK(took < 1s);
}

TEST_CASE("async_poll runs on an io_context passed as an execution context", "[asio]") {
  asio::io_context io;
  std::optional<count_outcome> result;
  pollster::async_poll(io, counting_check{2}, fast_schedule(), pollster::never{}, pollster::poll_options{},
                       [&](count_outcome o) { result = std::move(o); });
  io.run();
  REQUIRE(result);
  CHECK(result->value() == 20);
  CHECK(result->attempts == 2);
}

TEST_CASE("async_poll with use_future gives a future of the outcome", "[asio]") {
  asio::io_context io;
  std::future<count_outcome> future = pollster::async_poll(io.get_executor(), counting_check{}, fast_schedule(),
                                                           pollster::never{}, pollster::poll_options{}, asio::use_future);
  io.run();
  REQUIRE(future.wait_for(0s) == std::future_status::ready);
  const count_outcome result = future.get();
  CHECK(result.cause == cause::done);
  CHECK(result.value() == 40);
  CHECK(result.attempts == 4);
}

TEST_CASE("async_poll honours the stop rule and the last value on exhaustion", "[asio]") {
  asio::io_context io;
  std::optional<count_outcome> result;
  pollster::async_poll(io.get_executor(), counting_check{100}, fast_schedule(), pollster::after_attempts{3},
                       pollster::poll_options{}, [&](count_outcome o) { result = std::move(o); });
  io.run();
  REQUIRE(result);
  CHECK(result->cause == cause::exhausted);
  CHECK(result->stop == pollster::stop_reason::attempts);
  CHECK(result->attempts == 3);
  REQUIRE(result->last_value);
  CHECK(*result->last_value == 3);
}

TEST_CASE("async_poll with wait_first waits the schedule's first delay before the first check", "[asio]") {
  asio::io_context io;
  counting_check check{1};
  std::optional<count_outcome> result;
  pollster::poll_options options;
  options.wait_first = true;
  pollster::async_poll(io.get_executor(), check, pollster::constant{3ms}, pollster::never{}, options,
                       [&](count_outcome o) { result = std::move(o); });
  io.run();
  REQUIRE(result);
  CHECK(result->value() == 10);
  CHECK(result->attempts == 1);
  CHECK(result->slept >= 3ms);
}

TEST_CASE("a stop token ends the wait at once with cause cancelled and keeps the last value", "[asio][cancel]") {
  asio::io_context io;
  pollster::cancel_source source;
  pollster::poll_options options;
  options.cancel = source.get_token();
  counting_check check{100};
  std::atomic<bool> checked{false};  // the first check has run: a stop from now on must keep its value
  auto signalling_check = [check, &checked] {
    const count_step step = check();
    checked.store(true, std::memory_order_release);
    return step;
  };
  std::optional<count_outcome> result;
  const auto start = std::chrono::steady_clock::now();
  pollster::async_poll(io.get_executor(), signalling_check, long_wait(), pollster::never{}, options,
                       [&](count_outcome o) { result = std::move(o); });

  SECTION("stopped on the io_context's thread") {
    auto stopper = after(io, 5ms, [&] { source.request_cancel(); });
    io.run();
  }
  SECTION("stopped from another thread") {
    // Waits for the first check rather than a fixed time: under ThreadSanitizer on a busy machine the io_context
    // may not have run the first check 5 ms after the thread started.
    std::thread stopper([&] {
      while (!checked.load(std::memory_order_acquire)) std::this_thread::yield();
      source.request_cancel();
    });
    io.run();
    stopper.join();
  }

  REQUIRE(result);
  CHECK(result->cause == cause::cancelled);
  CHECK(result->attempts == 1);
  REQUIRE(result->last_value);
  CHECK(*result->last_value == 1);
  CHECK(*check.calls == 1);
  CHECK(since(start) < 5s);  // the 10 s wait was cut short
}

TEST_CASE("a stop requested before the first check ends the poll with no check", "[asio][cancel]") {
  asio::io_context io;
  pollster::cancel_source source;
  pollster::poll_options options;
  options.cancel = source.get_token();
  counting_check check;
  std::optional<count_outcome> result;
  pollster::async_poll(io.get_executor(), check, fast_schedule(), pollster::never{}, options,
                       [&](count_outcome o) { result = std::move(o); });
  source.request_cancel();
  io.run();
  REQUIRE(result);
  CHECK(result->cause == cause::cancelled);
  CHECK(result->attempts == 0);
  CHECK_FALSE(result->last_value);
  CHECK(*check.calls == 0);
}

TEST_CASE("a cancellation slot ends the wait at once with cause cancelled and keeps the last value",
          "[asio][cancel]") {
  asio::io_context io;
  asio::cancellation_signal signal;
  counting_check check{100};
  std::optional<count_outcome> result;
  const auto start = std::chrono::steady_clock::now();
  pollster::async_poll(io.get_executor(), check, long_wait(), pollster::never{}, pollster::poll_options{},
                       asio::bind_cancellation_slot(signal.slot(), [&](count_outcome o) { result = std::move(o); }));

  SECTION("terminal cancellation") {
    auto canceller = after(io, 5ms, [&] { signal.emit(asio::cancellation_type::terminal); });
    io.run();
  }
  SECTION("partial cancellation") {
    auto canceller = after(io, 5ms, [&] { signal.emit(asio::cancellation_type::partial); });
    io.run();
  }

  REQUIRE(result);
  CHECK(result->cause == cause::cancelled);
  CHECK(result->attempts == 1);
  REQUIRE(result->last_value);
  CHECK(*result->last_value == 1);
  CHECK(since(start) < 5s);
}

TEST_CASE("a total cancellation is refused: a poll that has checked has had effects", "[asio][cancel]") {
  asio::io_context io;
  asio::cancellation_signal signal;
  std::optional<count_outcome> result;
  pollster::async_poll(io.get_executor(), counting_check{3}, fast_schedule(), pollster::never{},
                       pollster::poll_options{},
                       asio::bind_cancellation_slot(signal.slot(), [&](count_outcome o) { result = std::move(o); }));
  auto canceller = after(io, 1ms, [&] { signal.emit(asio::cancellation_type::total); });
  io.run();
  REQUIRE(result);
  CHECK(result->cause == cause::done);
  CHECK(result->attempts == 3);
}

TEST_CASE("a cancellation emitted before the first check ends the poll with no check", "[asio][cancel]") {
  asio::io_context io;
  asio::cancellation_signal signal;
  counting_check check;
  std::optional<count_outcome> result;
  pollster::async_poll(io.get_executor(), check, fast_schedule(), pollster::never{}, pollster::poll_options{},
                       asio::bind_cancellation_slot(signal.slot(), [&](count_outcome o) { result = std::move(o); }));
  signal.emit(asio::cancellation_type::terminal);
  io.run();
  REQUIRE(result);
  CHECK(result->cause == cause::cancelled);
  CHECK(result->attempts == 0);
  CHECK(*check.calls == 0);
}

TEST_CASE("destroying the io_context with a poll pending frees it without invoking the handler", "[asio][shutdown]") {
  auto handler_state = std::make_shared<int>(0);
  counting_check check{100};
  pollster::cancel_source source;
  bool invoked = false;
  {
    asio::io_context io;
    pollster::poll_options options;
    options.cancel = source.get_token();  // a registered stop callback must be unhooked too
    pollster::async_poll(io.get_executor(), check, long_wait(), pollster::never{}, options,
                         [&invoked, handler_state](count_outcome) { invoked = true; });
    CHECK(handler_state.use_count() == 2);  // the pending operation holds the handler
    SECTION("while the timer waits") {
      io.run_for(5ms);  // one check, then the 10 s wait
      CHECK(*check.calls == 1);
    }
    SECTION("before the first check ran") {
      CHECK(*check.calls == 0);
    }
    SECTION("after io_context::stop") {
      auto stopper = after(io, 2ms, [&] { io.stop(); });
      io.run();
      CHECK(io.stopped());
    }
  }
  CHECK_FALSE(invoked);
  CHECK(handler_state.use_count() == 1);  // the handler was destroyed with the io_context
  CHECK(check.calls.use_count() == 1);    // and the check with the poll state
  CHECK(source.request_cancel());           // the stop callback was unhooked: nothing dangles
}

TEST_CASE("with use_future every check runs on the thread that runs the io_context", "[asio][future]") {
  // use_future's own executor posts to asio's system thread pool; the adapter must post to the I/O executor
  // instead, or the first check runs on a thread of asio's own and races the io_context (a crash seen in CI).
  asio::io_context io;
  auto threads = std::make_shared<std::vector<std::thread::id>>();
  auto check = [threads]() -> count_step {
    threads->push_back(std::this_thread::get_id());
    if (threads->size() == 3) return pollster::done(3);
    return pollster::pending(static_cast<int>(threads->size()));
  };
  auto future = pollster::async_poll(io.get_executor(), check, fast_schedule(), pollster::never{},
                                     pollster::poll_options{}, asio::use_future);
  io.run();
  REQUIRE(future.wait_for(0s) == std::future_status::ready);
  CHECK(future.get().cause == cause::done);
  REQUIRE(threads->size() == 3);
  for (const std::thread::id id : *threads) CHECK(id == std::this_thread::get_id());
}

TEST_CASE("a future whose poll died with its io_context reports a broken promise", "[asio][shutdown]") {
  std::future<count_outcome> future;
  {
    asio::io_context io;
    future = pollster::async_poll(io.get_executor(), counting_check{100}, long_wait(), pollster::never{},
                                  pollster::poll_options{}, asio::use_future);
    io.run_for(2ms);
  }
  REQUIRE(future.wait_for(0s) == std::future_status::ready);
  try {
    future.get();
    FAIL("the future should hold an exception");
  } catch (const std::future_error& e) {
    CHECK(e.code() == std::future_errc::broken_promise);
  }
}

TEST_CASE("a throwing check ends the poll with cause exception, as on the runner", "[asio][exception]") {
  asio::io_context io;
  auto calls = std::make_shared<int>(0);
  auto check = [calls]() -> count_step {
    if (++*calls == 3) throw std::runtime_error("status endpoint exploded");
    return pollster::pending(*calls);
  };
  std::optional<count_outcome> result;
  pollster::async_poll(io.get_executor(), check, fast_schedule(), pollster::never{}, pollster::poll_options{},
                       [&](count_outcome o) { result = std::move(o); });
  io.run();
  REQUIRE(result);
  CHECK(result->cause == cause::exception);
  CHECK(result->attempts == 3);
  REQUIRE(result->last_value);
  CHECK(*result->last_value == 2);
  REQUIRE(result->exception);
  CHECK_THROWS_WITH(std::rethrow_exception(result->exception), "status endpoint exploded");
}

TEST_CASE("a deadline that has already passed completes on the executor, not inside the call", "[asio]") {
  asio::io_context io;
  counting_check check;
  pollster::poll_options options;
  options.deadline = pollster::at(std::chrono::steady_clock::now() - 1s);
  std::optional<count_outcome> result;
  pollster::async_poll(io.get_executor(), check, fast_schedule(), pollster::never{}, options,
                       [&](count_outcome o) { result = std::move(o); });
  CHECK_FALSE(result);
  io.run();
  REQUIRE(result);
  CHECK(result->cause == cause::deadline);
  CHECK(result->attempts == 0);
}

TEST_CASE("bad parameters are rejected by the initiating call, before anything starts", "[asio]") {
  asio::io_context io;
  pollster::poll_options options;
  options.max_hint = -1s;
  bool invoked = false;
  CHECK_THROWS_AS(pollster::async_poll(io.get_executor(), counting_check{}, fast_schedule(), pollster::never{},
                                       options, [&](count_outcome) { invoked = true; }),
                  std::invalid_argument);
  CHECK(io.run() == 0);  // nothing was queued
  CHECK_FALSE(invoked);
}

TEST_CASE("many polls share one io_context thread", "[asio]") {
  asio::io_context io;
  int finished = 0;
  std::uint64_t attempts = 0;
  for (int i = 1; i <= 50; ++i) {
    pollster::async_poll(io.get_executor(), counting_check{1 + i % 4}, fast_schedule(), pollster::never{},
                         pollster::poll_options{}, [&](count_outcome o) {
                           finished += o.ok() ? 1 : 0;
                           attempts += o.attempts;
                         });
  }
  io.run();
  CHECK(finished == 50);
  // done_at cycles 2, 3, 4, 1 over i = 1..50: 13 polls with 2, 13 with 3, 12 with 4, 12 with 1.
  CHECK(attempts == 13 * 2 + 13 * 3 + 12 * 4 + 12 * 1);
}

namespace {
struct job {
  std::string state;
};

/// A job that is PENDING, PENDING, BUILDING, then `last` (ACTIVE or FAILED) at the 4th check.
struct job_fetch {
  std::string last = "ACTIVE";
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  job operator()() const {
    static const char* const states[] = {"PENDING", "PENDING", "BUILDING"};
    const int n = ++*calls;
    return job{n <= 3 ? states[n - 1] : last};
  }
};

auto job_rules() {
  return pollster::rules(pollster::succeed_when(pollster::path(&job::state, "state") == "ACTIVE"),
                         pollster::fail_when(pollster::path(&job::state, "state") == "FAILED"));
}
using job_outcome = pollster::await_outcome<job, std::monostate>;
}  // namespace

TEST_CASE("async_await_operation reports transitions and the rule that matched", "[asio][await]") {
  asio::io_context io;
  std::vector<std::string> seen;
  auto transitions = pollster::on_transition(&job::state, [&](const pollster::transition<std::string>& t) {
    seen.push_back((t.from ? *t.from : std::string("-")) + ">" + t.to + "@" + std::to_string(t.attempt));
  });
  std::optional<job_outcome> result;

  SECTION("success") {
    pollster::async_await_operation(io.get_executor(), job_fetch{}, job_rules(), fast_schedule(), pollster::never{},
                                    pollster::poll_options{}, transitions, [&](job_outcome o) { result = std::move(o); });
    io.run();
    REQUIRE(result);
    CHECK(result->cause == cause::done);
    CHECK(result->value().state == "ACTIVE");
    REQUIRE(result->report.matched);
    CHECK(result->report.matched->index == 0);
    CHECK(result->report.why == "rule 0 (success) matched the value: state == \"ACTIVE\", after 4 checks");
    CHECK(seen == std::vector<std::string>{"->PENDING@1", "PENDING>BUILDING@3", "BUILDING>ACTIVE@4"});
    CHECK(result->report.transitions == 3);
  }
  SECTION("failure, through use_future") {
    auto future = pollster::async_await_operation(io.get_executor(), job_fetch{"FAILED"}, job_rules(),
                                                  fast_schedule(), pollster::never{}, pollster::poll_options{},
                                                  transitions, asio::use_future);
    io.run();
    const job_outcome o = future.get();
    CHECK(o.cause == cause::failed);
    REQUIRE(o.report.matched);
    CHECK(o.report.matched->index == 1);
    CHECK(o.report.matched->state == pollster::rule_state::failure);
    REQUIRE(o.last_value);
    CHECK(o.last_value->state == "FAILED");
    CHECK(seen == std::vector<std::string>{"->PENDING@1", "PENDING>BUILDING@3", "BUILDING>FAILED@4"});
  }
}

TEST_CASE("async_await_operation is cancelled through a cancellation slot and says so", "[asio][await][cancel]") {
  asio::io_context io;
  asio::cancellation_signal signal;
  std::optional<job_outcome> result;
  pollster::async_await_operation(io.get_executor(), job_fetch{}, job_rules(), long_wait(), pollster::never{},
                                  pollster::poll_options{},
                                  asio::bind_cancellation_slot(signal.slot(), [&](job_outcome o) { result = std::move(o); }));
  auto canceller = after(io, 5ms, [&] { signal.emit(asio::cancellation_type::terminal); });
  io.run();
  REQUIRE(result);
  CHECK(result->cause == cause::cancelled);
  CHECK_FALSE(result->report.matched);
  REQUIRE(result->last_value);
  CHECK(result->last_value->state == "PENDING");
  CHECK(result->report.why == "cancelled after 1 check");
}

TEST_CASE("an await pending when its io_context is destroyed frees its record and fetch", "[asio][await][shutdown]") {
  job_fetch fetch;
  bool invoked = false;
  {
    asio::io_context io;
    pollster::async_await_operation(io.get_executor(), fetch, job_rules(), long_wait(), pollster::never{},
                                    pollster::poll_options{}, [&](job_outcome) { invoked = true; });
    io.run_for(3ms);
    CHECK(*fetch.calls == 1);
  }
  CHECK_FALSE(invoked);
  CHECK(fetch.calls.use_count() == 1);
}

#if defined(ASIO_HAS_CO_AWAIT)
TEST_CASE("co_await async_poll with use_awaitable returns the outcome", "[asio][coroutine]") {
  asio::io_context io;
  std::optional<count_outcome> result;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        result = co_await pollster::async_poll(co_await asio::this_coro::executor, counting_check{}, fast_schedule(),
                                               pollster::never{}, pollster::poll_options{}, asio::use_awaitable);
      },
      asio::detached);
  io.run();
  REQUIRE(result);
  CHECK(result->cause == cause::done);
  CHECK(result->value() == 40);
  CHECK(result->attempts == 4);
}

TEST_CASE("a coroutine awaiting async_poll is cancelled through its stop token", "[asio][coroutine][cancel]") {
  asio::io_context io;
  pollster::cancel_source source;
  std::optional<count_outcome> result;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        pollster::poll_options options;
        options.cancel = source.get_token();
        result = co_await pollster::async_poll(co_await asio::this_coro::executor, counting_check{100}, long_wait(),
                                               pollster::never{}, options, asio::use_awaitable);
      },
      asio::detached);
  auto stopper = after(io, 5ms, [&] { source.request_cancel(); });
  io.run();
  REQUIRE(result);
  CHECK(result->cause == cause::cancelled);
  REQUIRE(result->last_value);
  CHECK(*result->last_value == 1);
}
#endif

TEST_CASE("a cancel token returns the io_context's run at once, with a synchronous or an asynchronous check",
          "[asio][cancel][real-time]") {
  {
    asio::io_context io;
    pollster::cancel_source source;
    pollster::poll_options options;
    options.cancel = source.get_token();
    std::optional<pollster::cause> ended;
    pollster::async_poll(io.get_executor(), [] { return false; }, pollster::constant{1h}, pollster::never{}, options,
                         [&](const auto& o) { ended = o.cause; });
    const double ms = cancel_latency::measure("asio async_poll, cancel token", [&] { io.run(); },
                                              [&] { source.request_cancel(); });
    CHECK(ms < 250);
    CHECK(ended == cause::cancelled);
  }
  {
    asio::io_context io;
    pollster::cancel_source source;
    pollster::poll_options options;
    options.cancel = source.get_token();
    std::optional<pollster::attempt_end> last;
    int aborted = 0;
    std::vector<pollster::completion<int, int>> kept;
    pollster::async_poll(
        io.get_executor(),
        [&](pollster::completion<int, int> c) {
          c.on_abort([&] { ++aborted; });
          kept.push_back(std::move(c));
        },
        pollster::constant{1h}, pollster::never{}, options, [&](const auto& o) { last = o.last_attempt; });
    const double ms = cancel_latency::measure("asio async_poll, check in flight", [&] { io.run(); },
                                              [&] { source.request_cancel(); });
    CHECK(ms < 250);
    CHECK(last == pollster::attempt_end::aborted);
    CHECK(aborted == 1);
  }
}

TEST_CASE("async_poll drives an asynchronous check: an asio timer completes it, on the io_context's thread",
          "[asio][async]") {
  asio::io_context io;
  std::vector<std::shared_ptr<asio::steady_timer>> network;
  // The completion is an asio completion handler for void(step<T, E>): here a timer's handler calls it.
  auto check = [&](const pollster::poll_state& s, pollster::completion<int, std::string> c) {
    auto timer = std::make_shared<asio::steady_timer>(io, 2ms);
    network.push_back(timer);
    timer->async_wait([c = std::move(c), n = static_cast<int>(s.attempt)](const asio::error_code&) mutable {
      c(n == 3 ? pollster::step<int, std::string>(pollster::done(n)) : pollster::pending(n));
    });
  };
  std::optional<pollster::outcome<int, std::string>> result;
  pollster::async_poll(io.get_executor(), check, pollster::constant{1ms}, pollster::before_deadline{5s},
                       pollster::poll_options{}, [&](pollster::outcome<int, std::string> o) { result = std::move(o); });
  io.run();
  REQUIRE(result);
  CHECK(result->value() == 3);
  CHECK(result->attempts == 3);
  CHECK(result->last_attempt == pollster::attempt_end::reported);
}

TEST_CASE("async_poll times out an attempt that does not answer, and a completion from another thread resumes it",
          "[asio][async][timeout]") {
  asio::io_context io;
  std::vector<std::thread> threads;
  std::vector<pollster::completion<int, int>> hung;
  auto check = [&](const pollster::poll_state& s, pollster::completion<int, int> c) {
    if (s.attempt == 1) {
      hung.push_back(std::move(c));  // never answers: times out after 20 ms
      return;
    }
    threads.emplace_back([c = std::move(c)]() mutable {
      std::this_thread::sleep_for(2ms);
      c(pollster::done(7));
    });
  };
  pollster::poll_options options;
  options.attempt_timeout = 20ms;
  std::optional<pollster::outcome<int, int>> result;
  pollster::async_poll(io.get_executor(), check, pollster::constant{1ms}, pollster::before_deadline{5s}, options,
                       [&](pollster::outcome<int, int> o) { result = std::move(o); });
  io.run();
  for (auto& t : threads) t.join();
  REQUIRE(result);
  CHECK(result->value() == 7);
  CHECK(result->timeouts == 1);
}
