#include "pollster_catch.hpp"

#include <pollster/clock.hpp>

#include <atomic>
#include <chrono>
#include <thread>

using namespace std::chrono_literals;
using pollster::manual_clock;

TEST_CASE("manual clock starts at zero and moves only when told", "[clock]") {
  manual_clock clock;
  CHECK(clock.now().time_since_epoch() == 0ns);
  clock.advance(1500ms);
  CHECK(clock.now().time_since_epoch() == 1500ms);
  clock.advance(-5s);  // time never goes backwards
  CHECK(clock.now().time_since_epoch() == 1500ms);
  clock.advance_to(manual_clock::time_point{1s});
  CHECK(clock.now().time_since_epoch() == 1500ms);
  clock.advance_to(manual_clock::time_point{3s});
  CHECK(clock.now().time_since_epoch() == 3s);
}

TEST_CASE("manual clock saturates instead of wrapping", "[clock][saturation]") {
  manual_clock clock{manual_clock::time_point{pollster::duration::max() - 1s}};
  clock.advance(10s);
  CHECK(clock.now() == manual_clock::time_point::max());
  clock.advance(pollster::duration::max());
  CHECK(clock.now() == manual_clock::time_point::max());
}

TEST_CASE("a virtual sleep jumps to its end and is counted", "[clock]") {
  manual_clock clock;
  CHECK(pollster::sleep_for(clock, 10min));
  CHECK(clock.now().time_since_epoch() == 10min);
  CHECK(clock.sleep_count() == 1);
  CHECK(clock.time_slept() == 10min);
  // A sleep that ends in the past takes no time but still counts as a sleep.
  CHECK(clock.sleep_until(manual_clock::time_point{1s}, {}));
  CHECK(clock.now().time_since_epoch() == 10min);
  CHECK(clock.sleep_count() == 2);
}

TEST_CASE("a stopped token refuses a virtual sleep", "[clock][stop]") {
  manual_clock clock;
  pollster::cancel_source source;
  source.request_cancel();
  CHECK_FALSE(pollster::sleep_for(clock, 1s, source.get_token()));
  CHECK(clock.now().time_since_epoch() == 0ns);
}

TEST_CASE("stop source and tokens", "[stop]") {
  pollster::cancel_token none;
  CHECK_FALSE(none.cancel_possible());
  CHECK_FALSE(none.cancel_requested());

  pollster::cancel_source source;
  const pollster::cancel_token token = source.get_token();
  CHECK(token.cancel_possible());
  CHECK_FALSE(token.cancel_requested());
  CHECK(source.request_cancel());
  CHECK_FALSE(source.request_cancel());  // only the first request counts
  CHECK(token.cancel_requested());
  CHECK(token == source.get_token());
  CHECK(token != none);
}

TEST_CASE("stop callbacks run once, at once when registered late, never after they are destroyed", "[stop]") {
  pollster::cancel_source source;
  int first = 0;
  int removed = 0;
  {
    pollster::cancel_callback<std::function<void()>> gone(source.get_token(), [&] { ++removed; });
  }
  pollster::cancel_callback<std::function<void()>> keep(source.get_token(), [&] { ++first; });
  source.request_cancel();
  source.request_cancel();
  CHECK(first == 1);
  CHECK(removed == 0);
  int late = 0;
  pollster::cancel_callback<std::function<void()>> after(source.get_token(), [&] { ++late; });
  CHECK(late == 1);
}

// The one real-clock test of this file: a stop request must wake a long sleep at once. Bounded: the sleeper
// would sleep an hour; the test asserts it woke, and the stop comes from another thread right away.
TEST_CASE("a stop request interrupts a real sleep at once", "[clock][stop][realtime]") {
  pollster::steady_clock clock;
  pollster::cancel_source source;
  std::atomic<bool> woke{false};
  std::atomic<bool> slept_fully{true};
  std::atomic<bool> started{false};
  std::thread sleeper([&] {
    started = true;
    slept_fully = pollster::sleep_for(clock, std::chrono::hours(1), source.get_token());
    woke = true;
  });
  while (!started) std::this_thread::yield();
  source.request_cancel();
  sleeper.join();
  CHECK(woke);
  CHECK_FALSE(slept_fully);
}

#if POLLSTER_HAS_STD_STOP_TOKEN
TEST_CASE("a std::stop_token stops pollster through the bridge", "[stop][cxx20]") {
  std::stop_source std_source;
  pollster::bridge_cancel_token bridge(std_source.get_token());
  const pollster::cancel_token token = bridge.get_token();
  CHECK_FALSE(token.cancel_requested());
  std_source.request_stop();
  CHECK(token.cancel_requested());
}
#endif
