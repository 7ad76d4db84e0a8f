// libFuzzer target for pollster/http.hpp: the bytes become the header values of a response (Date, Retry-After,
// X-Poll-Interval, RateLimit, RateLimit-Policy, X-RateLimit-*, ETag) and its status. Reading the hints, classifying
// and turning the response into a step must never crash, throw or overflow, and every delay must be a duration
// from zero up: aborts on the first violation.
//
// Build: cmake -DPOLLSTER_BUILD_FUZZERS=ON with clang; run: ./http_fuzz -max_total_time=30
#include <pollster/http.hpp>

#include <chrono>     // system_clock
#include <cstddef>    // size_t
#include <cstdint>    // uint8_t
#include <cstdio>     // fprintf
#include <cstdlib>    // abort
#include <stdexcept>  // runtime_error
#include <string>     // string

namespace {

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "http_fuzz: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const char* const names[] = {"Date",
                                      "Retry-After",
                                      "X-Poll-Interval",
                                      "RateLimit",
                                      "RateLimit-Policy",
                                      "X-RateLimit-Remaining",
                                      "X-RateLimit-Reset",
                                      "X-RateLimit-Limit",
                                      "ETag"};
  constexpr std::size_t fields = sizeof names / sizeof names[0];
  if (size < 2) return 0;
  pollster::http_response r;
  r.status = 100 + (data[0] | (data[1] << 8)) % 500;
  // Around now, and at the far ends of what a time point holds.
  const auto epochs = {std::chrono::system_clock::time_point{std::chrono::seconds{1700000000}},
                       std::chrono::system_clock::time_point{std::chrono::seconds{1}},
                       std::chrono::system_clock::time_point::max() - std::chrono::hours(24)};
  r.received_at = *(epochs.begin() + data[0] % 3);
  // The rest: field values separated by '\n', in the order of `names`; a field may come twice.
  std::string value;
  std::size_t field = 0;
  for (std::size_t i = 2; i < size; ++i) {
    if (data[i] == '\n') {
      r.headers.add(names[field % fields], value);
      value.clear();
      ++field;
      continue;
    }
    value += static_cast<char>(data[i]);
  }
  r.headers.add(names[field % fields], value);
  r.body = value;

  const pollster::http_hints hints = pollster::read_hints(r);
  if (hints.retry_after) require(*hints.retry_after >= pollster::duration::zero(), "negative Retry-After");
  if (hints.poll_interval) require(*hints.poll_interval >= pollster::duration::zero(), "negative X-Poll-Interval");
  for (const pollster::rate_limit& limit : hints.rate_limits) {
    if (limit.reset) require(*limit.reset >= pollster::duration::zero(), "negative reset");
    if (limit.window) require(*limit.window > pollster::duration::zero(), "window not positive");
    if (const auto rate = limit.sustainable_rate()) require(*rate >= 0.0, "negative rate");
  }
  if (const auto delay = hints.delay()) require(*delay >= pollster::duration::zero(), "negative delay");
  const auto step = pollster::step_from_response(r, [](const pollster::http_response& x) -> int {
    if (x.body.size() % 2 == 1) throw std::runtime_error("odd body");
    return static_cast<int>(x.body.size());
  });
  require(!step.hint || step.hint.value() >= pollster::duration::zero(), "negative hint");
  const bool needs_error = step.kind == pollster::step_kind::failed || step.kind == pollster::step_kind::transient;
  require(step.error.has_value() == needs_error, "an error on a done or pending step, or none on a failure");
  pollster::conditional_request validators;
  validators.remember(r);
  pollster::http_request next("http://fuzz/");
  validators.apply(next);
  require(next.headers.size() <= 2, "more than two validators");
  return 0;
}
