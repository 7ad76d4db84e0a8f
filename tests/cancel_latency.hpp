// Measures cancel-to-return on the real clock, for the smoke tests of every driver: a thread asks to cancel (or
// stop) once the driver is asleep, and the time from that request to the driver's return is printed and bounded.
// The drivers sleep on an hour-long schedule, so only a wake-up can make them return in time.
#pragma once

#include <pollster/cancel.hpp>
#include <pollster/clock.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

namespace cancel_latency {

/// A clock whose time_point is not steady_clock's (the system clock): what a user's own clock looks like. Its
/// sleep converts the wait to the steady clock and is interrupted by the token, as the clock contract asks.
struct wall_clock {
  using duration = std::chrono::system_clock::duration;
  using time_point = std::chrono::system_clock::time_point;
  time_point now() const noexcept { return std::chrono::system_clock::now(); }
  bool sleep_until(time_point until, const pollster::cancel_token& token) const {
    const auto left = until - now();
    const auto steady_until = until == time_point::max() || left > std::chrono::hours(24 * 365)
                                  ? std::chrono::steady_clock::time_point::max()
                                  : std::chrono::steady_clock::now() +
                                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(left);
    return pollster::sleep_for_real(steady_until, token);
  }
};

/// Runs `drive` on this thread and `cancel` on another 30 ms later; returns the milliseconds from the cancel
/// request to `drive`'s return, and prints them under `name`.
inline double measure(const char* name, const std::function<void()>& drive, const std::function<void()>& cancel) {
  std::chrono::steady_clock::time_point asked{};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    asked = std::chrono::steady_clock::now();
    cancel();
  });
  drive();
  const auto returned = std::chrono::steady_clock::now();
  canceller.join();
  const double ms = std::chrono::duration<double, std::milli>(returned - asked).count();
  std::printf("cancel-to-return %-40s %8.3f ms\n", name, ms);
  return ms;
}

}  // namespace cancel_latency
