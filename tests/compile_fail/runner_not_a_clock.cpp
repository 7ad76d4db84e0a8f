// expect: pollster::runner: Clock must be a pollster clock
#include <pollster/pollster.hpp>

#include <chrono>

int main() {
#ifdef POLLSTER_COMPILE_FAIL_CONTROL
  pollster::steady_clock clock;
  pollster::runner<pollster::steady_clock> fleet{clock};
#else
  std::chrono::steady_clock clock;  // std's clock has no interruptible sleep: wrap it, or use pollster::steady_clock
  pollster::runner<std::chrono::steady_clock> fleet{clock};
#endif
  return static_cast<int>(fleet.size());
}
