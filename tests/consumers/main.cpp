// SPDX-License-Identifier: MIT
// The program every consumer project builds (find_package, add_subdirectory, FetchContent, pkg-config): it uses
// pollster as a user would and exits non-zero, saying why, when the numbers are wrong.
#include <pollster/pollster.hpp>

#include <chrono>    // seconds
#include <cstdio>    // printf, fprintf
#include <string>    // string

#if defined(POLLSTER_CONSUMER_WITH_FMT)
#include <pollster/fmt.hpp>

#include <fmt/format.h>  // format
#endif

#if defined(POLLSTER_CONSUMER_LIBRARY)
int parent_library_polls();  // from the parent's own library (add_subdirectory and downstream consumers)
#endif

int main() {
  const pollster::plan plan = pollster::plan_for(pollster::presets::heat(), std::chrono::seconds(600));
  if (plan.polls != 52) {
    std::fprintf(stderr, "consumer: Heat plan for 600 s needs 52 polls, got %llu\n",
                 static_cast<unsigned long long>(plan.polls));
    return 1;
  }
#if defined(POLLSTER_CONSUMER_LIBRARY)
  if (parent_library_polls() != 52) {
    std::fprintf(stderr, "consumer: the parent library computed %d polls, expected 52\n", parent_library_polls());
    return 1;
  }
#endif
#if defined(POLLSTER_CONSUMER_WITH_FMT)
  const std::string text = fmt::format("{}", plan);
  if (text.find("52") == std::string::npos) {
    std::fprintf(stderr, "consumer: fmt::format(\"{}\", plan) should mention 52 polls, got '%s'\n", text.c_str());
    return 1;
  }
  std::printf("consumer (with pollster::fmt): %s\n", text.c_str());
#else
  std::printf("consumer: pollster %d.%d.%d, Heat plan for 600 s: %llu polls\n", POLLSTER_VERSION_MAJOR,
              POLLSTER_VERSION_MINOR, POLLSTER_VERSION_PATCH, static_cast<unsigned long long>(plan.polls));
#endif
  return 0;
}
