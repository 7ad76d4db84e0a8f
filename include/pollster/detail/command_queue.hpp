// SPDX-License-Identifier: MIT
#pragma once

// What a runner shares with its handles and with the completions of its asynchronous checks: the command queue that
// other threads write (submit, nudge, cancel, complete), the handle slots, and the wake signal that interrupts the
// driving thread's sleep on the clock. It outlives the runner while a handle or a completion holds it; once the
// runner is gone (`closed`), commands are dropped.

#include "../cancel.hpp"
#include "../check.hpp"
#include "config.hpp"
#include "slot_table.hpp"

#include <atomic>   // atomic
#include <cstdint>  // uint8_t, uint32_t
#include <mutex>    // mutex, lock_guard
#include <vector>   // vector

POLLSTER_NAMESPACE_BEGIN
namespace detail {

class runner_node;

struct command {
  enum kind_type : std::uint8_t { insert, nudge, cancel, complete };
  kind_type kind;
  std::uint32_t slot;
  std::uint32_t generation;
  runner_node* node;       // dereferenced only while the slot's generation still matches: the node is alive then
  attempt_base* attempt;   // complete: the attempt whose step arrived (the command holds a reference)
};

struct runner_shared final : attempt_listener {
  std::mutex mutex;
  std::vector<command> commands;  // guarded by mutex
  std::atomic<bool> has_commands{false};
  std::atomic<bool> stopping{false};
  bool closed = false;  // guarded by mutex: the runner is gone, commands are dropped
  slot_table slots;
  wake_signal wake;  // the driving thread sleeps on the clock with wake.token()

  /// Queues a command and wakes the driving thread. False when the runner is gone (the command is dropped).
  bool push(const command& c) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (closed) return false;
      commands.push_back(c);
      has_commands.store(true, std::memory_order_release);
    }
    wake.wake();
    return true;
  }

  /// A completion arrived (any thread): queue it for the driving thread, which checks that the attempt is still its
  /// node's current one before it touches anything.
  void attempt_completed(attempt_base& attempt) noexcept override {
    attempt.retain();
    bool queued = false;
    try {
      queued = push(command{command::complete, attempt.slot(), attempt.generation(),
                            static_cast<runner_node*>(attempt.owner()), &attempt});
    } catch (...) {
      // Out of memory for the queue: the step is lost, and the attempt's timeout ends it instead.
    }
    if (!queued) attempt.release();
  }
};

}  // namespace detail
POLLSTER_NAMESPACE_END
