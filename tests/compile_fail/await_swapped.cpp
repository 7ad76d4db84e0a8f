// expect: pollster::await_operation: the schedule and the stop rule are swapped
#include <pollster/pollster.hpp>

#include <chrono>
#include <string>

struct status {
  std::string state;
};

int main() {
  using namespace std::chrono_literals;
  pollster::manual_clock clock;
  auto fetch = [] { return status{"ACTIVE"}; };
  auto rule = pollster::succeed_when(pollster::path(&status::state) == "ACTIVE");
#ifdef POLLSTER_COMPILE_FAIL_CONTROL
  return pollster::await_operation(clock, fetch, rule, pollster::constant{1s}, pollster::never{}).ok() ? 0 : 1;
#else
  return pollster::await_operation(clock, fetch, rule, pollster::never{}, pollster::constant{1s}).ok() ? 0 : 1;
#endif
}
