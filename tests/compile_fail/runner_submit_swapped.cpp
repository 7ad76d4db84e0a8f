// expect: pollster::runner::submit: the schedule and the stop rule are swapped
#include <pollster/pollster.hpp>

#include <chrono>

int main() {
  using namespace std::chrono_literals;
  pollster::manual_clock clock;
  pollster::runner<pollster::manual_clock> fleet{clock};
  auto check = [] { return true; };
  auto done = [](const auto&) {};
#ifdef POLLSTER_COMPILE_FAIL_CONTROL
  fleet.submit(check, pollster::constant{1s}, pollster::after_attempts{3}, done);
#else
  fleet.submit(check, pollster::after_attempts{3}, pollster::constant{1s}, done);
#endif
  return static_cast<int>(fleet.run());
}
