// expect: pollster::poller: the schedule and the stop rule are swapped
#include <pollster/pollster.hpp>

#include <chrono>

int main() {
  using namespace std::chrono_literals;
  auto check = [] { return true; };
#ifdef POLLSTER_COMPILE_FAIL_CONTROL
  auto p = pollster::make_poller(check, pollster::constant{1s}, pollster::never{}, pollster::manual_clock::time_point{});
#else
  auto p = pollster::make_poller(check, pollster::never{}, pollster::constant{1s}, pollster::manual_clock::time_point{});
#endif
  return p.done() ? 1 : 0;
}
