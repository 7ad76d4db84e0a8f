// SPDX-License-Identifier: MIT
#pragma once

// What a run ends with: `outcome<T, E, R>`, a full account in every case (cause, the last value and error seen,
// attempts, time, timeouts) and, in `report`, whatever the check contributes when the run ends (an await's
// matching rule, a watch's summary; nothing by default). Exhaustion and cancellation keep the last value.

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "stop.hpp"  // stop_reason

#include <cstdint>    // uint8_t, uint32_t, uint64_t
#include <exception>  // exception_ptr
#include <optional>   // optional
#include <stdexcept>  // logic_error
#include <string>     // string

POLLSTER_NAMESPACE_BEGIN

/// Why a run ended.
enum class cause : std::uint8_t {
  running,    ///< not ended yet (an outcome read from a poller still in progress)
  done,       ///< a check said done: `value()` holds the result
  failed,     ///< a check said failed: `error()` holds the error
  exhausted,  ///< the stop rule said stop (attempts, elapsed, custom): `stop` says which; nothing is invented
  deadline,   ///< the deadline was reached (a check in flight then is aborted), or a server hint pointed past it
  cancelled,  ///< a cancel token or `cancel()`; never retried
  exception,  ///< the check threw and a driver captured it into `outcome::exception` (poll_until rethrows instead)
};

/// "done", "failed", ...: for logs and formatters.
constexpr const char* to_string(cause c) noexcept {
  switch (c) {
    case cause::running: return "running";
    case cause::done: return "done";
    case cause::failed: return "failed";
    case cause::exhausted: return "exhausted";
    case cause::deadline: return "deadline";
    case cause::cancelled: return "cancelled";
    case cause::exception: return "exception";
  }
  return "unknown";
}

/// How the last attempt ended. An asynchronous check may time out or drop its completion, and its error type
/// need not be able to say so: the outcome does, here and in `timeouts` / `abandoned`.
enum class attempt_end : std::uint8_t {
  none,       ///< no attempt was made
  reported,   ///< the check reported a step
  timed_out,  ///< the attempt passed its timeout (a transient failure; its late completion was ignored)
  abandoned,  ///< the completion was destroyed without reporting (a transient failure)
  aborted,    ///< the run ended (cancelled, deadline) while the attempt was in flight; its abort action ran
};

constexpr const char* to_string(attempt_end e) noexcept {
  switch (e) {
    case attempt_end::none: return "none";
    case attempt_end::reported: return "reported";
    case attempt_end::timed_out: return "timed out";
    case attempt_end::abandoned: return "abandoned";
    case attempt_end::aborted: return "aborted";
  }
  return "unknown";
}

/// Thrown by `outcome::value()` when the run did not end done (and by `error()` when it did not end failed).
class bad_outcome_access : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// The report of a check that contributes nothing to its outcome.
struct no_report {};

/// What a check's `report(const run_summary&)` may look at when the run ends (to say why it ended, in words).
struct run_summary {
  pollster::cause cause = pollster::cause::running;
  stop_reason stop = stop_reason::none;
  std::uint64_t attempts = 0;
  duration elapsed{};
  std::uint32_t timeouts = 0;
};

/// What a run ended with: a full account, in every case. Exhaustion and cancellation keep the last value and the
/// last error seen; nothing pretends to be an error the server sent.
template <class T, class E, class R = no_report>
struct outcome {
  using value_type = T;
  using error_type = E;
  using report_type = R;

  pollster::cause cause = pollster::cause::running;
  stop_reason stop = stop_reason::none;    ///< the stop rule's reason when cause is exhausted or deadline
  std::uint32_t nudges = 0;                ///< nudges received
  std::optional<T> last_value;             ///< the latest value any check reported (the result when done)
  std::optional<E> last_error;             ///< the latest error any check reported (the error when failed)
  std::exception_ptr exception;            ///< cause exception: what the check threw (runner, asio)
  std::uint64_t attempts = 0;              ///< checks started
  duration elapsed{};                      ///< from the start to the end of the run
  duration slept{};                        ///< idle time between checks (includes budget_wait)
  duration budget_wait{};                  ///< of which: waiting for a shared rate budget or a free slot (runner)
  std::uint32_t timeouts = 0;              ///< attempts that passed their timeout (transient failures)
  std::uint32_t abandoned = 0;             ///< completions destroyed without reporting (transient failures)
  attempt_end last_attempt = attempt_end::none;  ///< how the last attempt ended
  R report{};                              ///< what the check contributed when the run ended (`report()`)

  bool ok() const noexcept { return cause == pollster::cause::done; }
  explicit operator bool() const noexcept { return ok(); }

  /// The result; throws bad_outcome_access unless the run ended done.
  const T& value() const& {
    if (cause != pollster::cause::done || !last_value) throw_access("value()", "done");
    return *last_value;
  }
  T&& value() && {
    if (cause != pollster::cause::done || !last_value) throw_access("value()", "done");
    return std::move(*last_value);
  }
  /// The permanent error; throws bad_outcome_access unless the run ended failed.
  const E& error() const& {
    if (cause != pollster::cause::failed || !last_error) throw_access("error()", "failed");
    return *last_error;
  }

 private:
  [[noreturn]] void throw_access(const char* what, const char* needed) const {
    throw bad_outcome_access(std::string("pollster::outcome: ") + what + " needs cause " + needed + ", got " +
                             to_string(cause));
  }
};

POLLSTER_NAMESPACE_END
