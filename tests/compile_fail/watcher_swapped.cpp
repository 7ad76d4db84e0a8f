// expect: pollster::watcher: the schedule and the stop rule are swapped
#include <pollster/pollster.hpp>

#include <chrono>
#include <vector>

struct item {
  int id;
  bool operator==(const item& other) const { return id == other.id; }
};

int main() {
  using namespace std::chrono_literals;
  pollster::manual_clock clock;
  auto list = [] { return std::vector<item>{{1}}; };
  auto handler = [](const auto&) {};
#ifdef POLLSTER_COMPILE_FAIL_CONTROL
  pollster::watcher w(list, &item::id, handler, pollster::constant{1s}, pollster::after_attempts{2});
#else
  pollster::watcher w(list, &item::id, handler, pollster::after_attempts{2}, pollster::constant{1s});
#endif
  return w.run(clock).attempts == 2 ? 0 : 1;
}
