// expect: pollster::pending\(delay\): write pending\(pollster::retry_after\(delay\)\) for a hint
#include <pollster/pollster.hpp>

#include <chrono>

int main() {
  using namespace std::chrono_literals;
  pollster::manual_clock clock;
  auto check = []() -> pollster::step<int, int> {
#ifdef POLLSTER_COMPILE_FAIL_CONTROL
    return pollster::pending(pollster::retry_after(5s));
#else
    return pollster::pending(5s);
#endif
  };
  return pollster::poll_until(clock, check, pollster::constant{1s}, pollster::after_attempts{1}).attempts == 1 ? 0 : 1;
}
