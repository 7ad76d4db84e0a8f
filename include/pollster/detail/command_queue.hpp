// SPDX-License-Identifier: MIT
#pragma once

// The runner's command queue: what other threads ask of the driving thread (submit, nudge, cancel, and the
// completion of an asynchronous check), under a mutex, with a flag that lets the driving thread skip the lock when
// there is nothing to take. The runner's shared state (runner.hpp) adds the handle slots and the wake signal; once
// the runner is gone (`closed`), commands are dropped.

#include "config.hpp"

#include <atomic>   // atomic
#include <cstdint>  // uint8_t, uint32_t
#include <mutex>    // mutex, lock_guard
#include <vector>   // vector

POLLSTER_NAMESPACE_BEGIN
namespace detail {

class runner_node;
class attempt_base;

struct command {
  enum kind_type : std::uint8_t { insert, nudge, cancel, complete };
  kind_type kind;
  std::uint32_t slot;
  std::uint32_t generation;
  runner_node* node;      // dereferenced only while the slot's generation still matches: the node is alive then
  attempt_base* attempt;  // complete: the attempt whose step arrived (the command holds a reference)
};

struct command_queue {
  std::mutex mutex;
  std::vector<command> commands;  // guarded by mutex
  std::atomic<bool> has_commands{false};
  bool closed = false;  // guarded by mutex: the runner is gone, commands are dropped

  /// Queues a command; false when the runner is gone (the command is dropped). The caller then wakes the driver.
  bool enqueue(const command& c) {
    std::lock_guard<std::mutex> lock(mutex);
    if (closed) return false;
    commands.push_back(c);
    has_commands.store(true, std::memory_order_release);
    return true;
  }
};

}  // namespace detail
POLLSTER_NAMESPACE_END
