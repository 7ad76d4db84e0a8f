// SPDX-License-Identifier: MIT
#include <pollster/pollster.hpp>

#include <chrono>  // seconds

int parent_library_polls() {
  return static_cast<int>(pollster::plan_for(pollster::presets::heat(), std::chrono::seconds(600)).polls);
}
