// SPDX-License-Identifier: MIT
#pragma once

// Optional integration with standalone asio (1.22+, Debian's libasio-dev): the poller driven by an
// `asio::basic_waitable_timer` on an executor instead of a sleeping thread. Never included by pollster.hpp.
//
//   pollster::async_poll(io.get_executor(), check, schedule, stop, options, token)    -> check_outcome_t<Check>
//   pollster::async_await_operation(io.get_executor(), fetch, rules, schedule, stop, options,
//                                   [transitions,] token)                             -> await_outcome<T, E>
//
// work with any completion token: a callback taking the outcome, `asio::use_future`, and under C++20
// `asio::use_awaitable` (`auto o = co_await pollster::async_poll(..., asio::use_awaitable);`).
//
// What the asynchronous driver promises (the same loop as poll_until: it drives the one `poller`):
//  - the check runs on the operation's executor (the completion handler's associated executor, by default the one
//    passed in); never inside the initiating call. A synchronous check returns its step there. An asynchronous check
//    (one that takes a `pollster::completion<T, E>`) starts its own asio operation and returns: the completion is an
//    asio completion handler for `void(step<T, E>)`, so an operation can complete straight into it (or a handler
//    calls it); it may be reported from any thread, and the poll resumes on the executor. The attempt's timeout
//    (`options.attempt_timeout`, by default the time left) is the timer's, and `c.on_abort(...)` is where the check
//    cancels its operation (an asio cancellation_signal's emit, say);
//  - the first check is posted at once (or waits the schedule's first delay with `wait_first`); every later check
//    waits on the timer, even a zero delay, so a fast check never starves the other handlers;
//  - cancellation: `options.cancel` (a pollster stop token, stopped from any thread) and asio's per-operation
//    cancellation slot (terminal or partial; a total one is refused, since checks have had effects) both end a wait
//    at once with cause `cancelled`, keeping the last value; no check starts after a stop was seen, the first one
//    included (unlike poll_until, whose first check is inline and immediate, this one is queued and can be
//    cancelled before it runs);
//  - a check that throws ends the run with cause `exception` and the exception in `outcome::exception`, as on
//    the runner: the caller is no longer on the stack to receive it;
//  - destroying the io_context with a poll pending destroys the handler without invoking it, and frees
//    everything (the timer and the poll state are owned by the pending handler).

#include "await.hpp"
#include "clock.hpp"
#include "detail/config.hpp"
#include "poll.hpp"
#include "schedule.hpp"  // the schedules a poll waits by (as the umbrella header gives them)
#include "stop.hpp"

#include <asio/associated_executor.hpp>      // get_associated_executor
#include <asio/bind_executor.hpp>            // bind_executor
#include <asio/async_result.hpp>             // async_result (completion tokens)
#include <asio/basic_waitable_timer.hpp>     // basic_waitable_timer
#include <asio/cancellation_type.hpp>        // cancellation_type
#include <asio/compose.hpp>                  // async_compose
#include <asio/error.hpp>                    // error::operation_aborted
#include <asio/execution_context.hpp>        // execution_context (the overload taking an io_context)
#include <asio/is_executor.hpp>              // is_executor
#include <asio/post.hpp>                     // post
#include <asio/wait_traits.hpp>              // wait_traits
#include <asio/execution/executor.hpp>       // execution::is_executor
#include <asio/execution/outstanding_work.hpp>  // outstanding_work.untracked
#include <asio/prefer.hpp>                   // prefer

#include <chrono>       // steady_clock
#include <exception>    // current_exception
#include <functional>   // function (the stop callback)
#include <memory>       // shared_ptr, weak_ptr, unique_ptr
#include <optional>     // optional
#include <type_traits>  // enable_if_t, invoke_result_t, is_convertible_v
#include <utility>      // move

POLLSTER_NAMESPACE_BEGIN

namespace detail {

template <class E>
inline constexpr bool is_asio_executor_v = asio::is_executor<E>::value || asio::execution::is_executor<E>::value;

/// The timer lives on the heap, behind a shared_ptr: the operation state moves with each intermediate handler,
/// the timer it waits on must not; and a stop request from another thread reaches it only through a weak_ptr.
template <class Executor>
struct async_poll_timer {
  using clock = std::chrono::steady_clock;
  asio::basic_waitable_timer<clock, asio::wait_traits<clock>, Executor> timer;
  explicit async_poll_timer(const Executor& ex) : timer(ex) {}
};

/// Runs on the operation's executor, where the timer may be touched; a no-op once the operation has finished.
template <class Executor>
struct cancel_timer_later {
  std::weak_ptr<async_poll_timer<Executor>> timer;
  void operator()() const {
    if (auto alive = timer.lock()) alive->timer.cancel();
  }
};

/// Where an asynchronous check's completion reports: it posts to the operation's executor a wake-up of the timer
/// the operation waits on (the operation then sees the step and concludes it there). A completion may outlive the
/// operation (a check that kept it): the listener holds no outstanding work (an io_context must be able to run out
/// of work), and posts nothing once the operation has finished (its timer is gone then).
template <class Executor, class RunOn>
struct async_poll_listener final : attempt_listener {
  using untracked_run_on =
      std::decay_t<decltype(asio::prefer(std::declval<const RunOn&>(), asio::execution::outstanding_work.untracked))>;
  async_poll_listener(Executor io_executor, const RunOn& run_on, std::weak_ptr<async_poll_timer<Executor>> waiting)
      : io(std::move(io_executor)),
        on(asio::prefer(run_on, asio::execution::outstanding_work.untracked)),
        timer(std::move(waiting)) {}
  void attempt_completed(attempt_base&) noexcept override {
    try {
      if (timer.expired()) return;  // the operation has finished: nothing waits for this step
      asio::post(io, asio::bind_executor(on, cancel_timer_later<Executor>{timer}));
    } catch (...) {
      // Out of memory for the post: the attempt's timeout concludes it instead.
    }
  }
  Executor io;
  untracked_run_on on;
  std::weak_ptr<async_poll_timer<Executor>> timer;
};

/// Hands the poller's outcome to the completion handler as it is.
struct pass_outcome {
  template <class Outcome>
  Outcome operator()(Outcome&& o) const {
    return std::move(o);
  }
};

/// The composed operation of async_poll: one poller, one timer, the stop-token bridge. `Finish` turns the
/// poller's outcome into what the handler receives (async_await_operation adds the rule that matched).
template <class Executor, class Poller, class Finish = pass_outcome>
class async_poll_op {
 public:
  using clock = std::chrono::steady_clock;
  using outcome_type = typename Poller::outcome_type;

  async_poll_op(const Executor& ex, Poller poller, cancel_token token, Finish finish = Finish{})
      : poller_(std::make_unique<Poller>(std::move(poller))),
        timer_(std::make_shared<async_poll_timer<Executor>>(ex)),
        token_(std::move(token)),
        finish_(std::move(finish)) {}

  /// First call (from async_compose, inside the initiating function): set up cancellation, then post, so the
  /// check never runs inside the initiating call. Later calls: a check is due, or a wait ended.
  template <class Self>
  void operator()(Self& self, asio::error_code waited = {}) {
    if (!started_) {
      started_ = true;
      self.reset_cancellation_state(asio::enable_partial_cancellation());
      // Everything is posted to the I/O executor, which then dispatches to the handler's own executor (a strand
      // bound to the handler, say). Posting to the handler's executor directly would be wrong for use_future:
      // its executor posts to asio's system thread pool, where the check would race the io_context.
      const Executor io = timer_->timer.get_executor();
      auto run_on = asio::get_associated_executor(self, io);
      std::weak_ptr<async_poll_timer<Executor>> timer = timer_;
      if (token_.cancel_possible()) {
        // A cancellation may come from any thread: it posts the timer's cancellation to where the operation runs.
        stop_bridge_ = std::make_unique<cancel_callback<std::function<void()>>>(token_, [io, run_on, timer] {
          asio::post(io, asio::bind_executor(run_on, cancel_timer_later<Executor>{timer}));
        });
      }
      if constexpr (Poller::is_async) {
        // A completion, from any thread, wakes the wait the same way; the operation then concludes the step here.
        poller_->attach(std::make_shared<async_poll_listener<Executor, decltype(run_on)>>(io, run_on, timer));
      }
      asio::post(io, std::move(self));
      return;
    }
    // A wait ends on time, or cut short by a cancellation or by a completion: the state says which, not the code.
    (void)waited;
    // Checked before every check, the first included: no check starts once a stop or a cancellation was seen.
    if (poller_->done()) return finish(self);  // e.g. a deadline that had passed before the start
    if (stopped(self)) {
      poller_->cancel(clock::now());
      return finish(self);
    }
    const auto now = clock::now();
    if (poller_->next_due() <= now || poller_->ready()) {
      try {
        poller_->step(now, [] { return clock::now(); });  // in flight: concludes its step, or times it out
      } catch (...) {
        poller_->capture(std::current_exception(), clock::now());
      }
      if (poller_->done()) return finish(self);
    }
    // Even a zero delay goes through the timer: a fast check never starves the executor's other handlers.
    timer_->timer.expires_at(poller_->next_due());
    timer_->timer.async_wait(std::move(self));
  }

 private:
  template <class Self>
  bool stopped(Self& self) const {
    return token_.cancel_requested() || self.get_cancellation_state().cancelled() != asio::cancellation_type::none;
  }

  template <class Self>
  void finish(Self& self) {
    // Nothing of the operation may reach back after completion: unhook the stop token, drop the timer.
    stop_bridge_.reset();
    timer_.reset();
    auto result = finish_(poller_->take_outcome());
    poller_.reset();
    self.complete(std::move(result));
  }

  std::unique_ptr<Poller> poller_;  // on the heap: a poller can be large, and the state moves with every wait
  std::shared_ptr<async_poll_timer<Executor>> timer_;
  cancel_token token_;
  std::unique_ptr<cancel_callback<std::function<void()>>> stop_bridge_;  // pinned: a cancel_callback never moves
  Finish finish_;
  bool started_ = false;
};

}  // namespace detail

namespace detail {
/// Starts the composed operation: the one place both async_poll and async_await_operation go through.
template <class Executor, class Poller, class Finish, class CompletionToken>
auto start_async_poll(const Executor& executor, Poller run, const cancel_token& token, Finish finish,
                      CompletionToken&& completion) {
  using result_type = std::invoke_result_t<Finish&, typename Poller::outcome_type&&>;
  return asio::async_compose<CompletionToken, void(result_type)>(
      async_poll_op<Executor, Poller, Finish>(executor, std::move(run), token, std::move(finish)), completion,
      executor);
}
}  // namespace detail

/// Polls `check` on `executor` until it is done, fails for good, the stop rule or the deadline ends the run, or a
/// stop (`options.cancel`, or the completion handler's cancellation slot) cancels it; then completes with the
/// outcome: `void(outcome<T, E>)`. Parameters are checked here, before anything starts (std::invalid_argument).
template <class Executor, class Check, class Schedule, class Stop, class Hooks, class CompletionToken,
          std::enable_if_t<detail::is_asio_executor_v<Executor>, int> = 0>
auto async_poll(const Executor& executor, Check check, Schedule schedule, Stop stop, const poll_options& options,
                Hooks hooks, CompletionToken&& token) {
  POLLSTER_CHECK_ARGUMENTS("pollster::async_poll", Check, Schedule, Stop);
  using poller_type = poller<Check, Schedule, Stop, std::chrono::steady_clock::time_point, Hooks>;
  poller_type run(std::move(check), std::move(schedule), std::move(stop), std::chrono::steady_clock::now(), options,
                  std::move(hooks));
  return detail::start_async_poll(executor, std::move(run), options.cancel, detail::pass_outcome{},
                                  std::forward<CompletionToken>(token));
}

/// The same without hooks.
template <class Executor, class Check, class Schedule, class Stop, class CompletionToken,
          std::enable_if_t<detail::is_asio_executor_v<Executor>, int> = 0>
auto async_poll(const Executor& executor, Check check, Schedule schedule, Stop stop, const poll_options& options,
                CompletionToken&& token) {
  return async_poll(executor, std::move(check), std::move(schedule), std::move(stop), options, no_hooks{},
                    std::forward<CompletionToken>(token));
}

/// The same on an execution context (an `asio::io_context`): runs on its executor.
template <class Context, class Check, class Schedule, class Stop, class CompletionToken,
          std::enable_if_t<std::is_convertible_v<Context&, asio::execution_context&>, int> = 0>
auto async_poll(Context& context, Check check, Schedule schedule, Stop stop, const poll_options& options,
                CompletionToken&& token) {
  return async_poll(context.get_executor(), std::move(check), std::move(schedule), std::move(stop), options,
                    no_hooks{}, std::forward<CompletionToken>(token));
}

/// `await_operation` on an executor: polls `fetch` until a success or failure rule matches (or an error matches
/// none), the stop rule or the deadline ends it, or a stop cancels it; `transitions` (from `on_transition`) reports
/// each change of state, on the operation's executor. Completes with `void(await_outcome<T, E>)`: the outcome and,
/// in `report`, the rule that matched and why (it is `async_poll` of `awaiting(fetch, rules, transitions)`). The contracts of async_poll apply (cancellation, a throwing fetch, shutdown).
template <class Executor, class Fetch, class Rules, class Schedule, class Stop, class Transitions,
          class CompletionToken, std::enable_if_t<detail::is_asio_executor_v<Executor>, int> = 0>
auto async_await_operation(const Executor& executor, Fetch fetch, Rules rules, Schedule schedule, Stop stop,
                           const poll_options& options, Transitions transitions, CompletionToken&& token) {
  return async_poll(executor, awaiting(std::move(fetch), std::move(rules), std::move(transitions)),
                    std::move(schedule), std::move(stop), options, std::forward<CompletionToken>(token));
}

/// The same without transition reports.
template <class Executor, class Fetch, class Rules, class Schedule, class Stop, class CompletionToken,
          std::enable_if_t<detail::is_asio_executor_v<Executor>, int> = 0>
auto async_await_operation(const Executor& executor, Fetch fetch, Rules rules, Schedule schedule, Stop stop,
                           const poll_options& options, CompletionToken&& token) {
  return async_await_operation(executor, std::move(fetch), std::move(rules), std::move(schedule), std::move(stop),
                               options, no_transitions{}, std::forward<CompletionToken>(token));
}

POLLSTER_NAMESPACE_END
