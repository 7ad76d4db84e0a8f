// The common case: wait until a server is ACTIVE, polling on OpenStack Heat's schedule (1 s x 1.1, capped at
// 20 s) with a 15-minute deadline. The fake API below turns ACTIVE after 10 minutes, and the manual clock makes
// those 10 minutes pass instantly; drop `clock` from poll_until to poll on the real steady clock.

#include <pollster/pollster.hpp>

#include <chrono>   // literals
#include <cstdio>   // printf
#include <string>   // string

using namespace std::chrono_literals;

int main() {
  pollster::manual_clock clock;
  auto get_server_status = [&] { return clock.now().time_since_epoch() < 10min ? "BUILD" : "ACTIVE"; };

  auto check = [&]() -> pollster::step<std::string, std::string> {
    const std::string status = get_server_status();
    if (status == "ACTIVE") return pollster::done(status);
    if (status == "ERROR") return pollster::failed(status);
    return pollster::pending(status);  // kept as the last value, whatever happens next
  };
  const auto result =
      pollster::poll_until(clock, check, pollster::presets::heat(), pollster::before_deadline{15min});

  std::printf("%s: %s after %llu checks in %.2f s\n", pollster::to_string(result.cause),
              result.last_value.value_or("nothing").c_str(), static_cast<unsigned long long>(result.attempts),
              std::chrono::duration<double>(result.elapsed).count());
  return result.ok() ? 0 : 1;  // prints "done: ACTIVE after 53 checks in 601.14 s"
}
