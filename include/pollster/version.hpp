// pollster — polling with backoff, header-only C++17.
// SPDX-License-Identifier: MIT
#pragma once

/// The version CMake reads (keep the three numbers on their own lines).
#define POLLSTER_VERSION_MAJOR 0
#define POLLSTER_VERSION_MINOR 1
#define POLLSTER_VERSION_PATCH 0

/// One number for preprocessor comparisons: major * 10000 + minor * 100 + patch.
#define POLLSTER_VERSION (POLLSTER_VERSION_MAJOR * 10000 + POLLSTER_VERSION_MINOR * 100 + POLLSTER_VERSION_PATCH)
