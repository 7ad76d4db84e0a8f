// expect: pollster::poll_until: the schedule and the stop rule are swapped
#include <pollster/pollster.hpp>

#include <chrono>

int main() {
  using namespace std::chrono_literals;
  pollster::manual_clock clock;
  auto check = [] { return true; };
#ifdef POLLSTER_COMPILE_FAIL_CONTROL
  return pollster::poll_until(clock, check, pollster::geometric{1s, 2.0, 10s}, pollster::before_deadline{10s}).ok() ? 0 : 1;
#else
  return pollster::poll_until(clock, check, pollster::before_deadline{10s}, pollster::geometric{1s, 2.0, 10s}).ok() ? 0 : 1;
#endif
}
