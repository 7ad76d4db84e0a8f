// expect: pollster::poll_until: the check must return bool, std::optional<T>, pollster::step<T, E>
#include <pollster/pollster.hpp>

#include <chrono>

int main() {
  using namespace std::chrono_literals;
  pollster::manual_clock clock;
#ifdef POLLSTER_COMPILE_FAIL_CONTROL
  auto check = [] { return 1 > 0; };
#else
  auto check = [](int attempt) { return attempt > 3; };  // a check takes a const poll_state&, or nothing
#endif
  return pollster::poll_until(clock, check, pollster::constant{1s}).ok() ? 0 : 1;
}
