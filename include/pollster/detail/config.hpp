// SPDX-License-Identifier: MIT
#pragma once

#include "../version.hpp"

// Everything public lives in pollster::v0. The inline namespace makes two differently versioned copies of
// pollster in one program fail to link instead of silently breaking the one-definition rule.
#ifndef POLLSTER_NAMESPACE_BEGIN
#define POLLSTER_NAMESPACE_BEGIN \
  namespace pollster {           \
  inline namespace v0 {
#define POLLSTER_NAMESPACE_END \
  }                            \
  }
#endif

// C++20 extras (std::stop_token interop, designated-initializer friendly options) switch on by feature test.
// <version> defines the library feature macros; without it, the test below depends on what was included first.
#if __has_include(<version>)
#include <version>  // __cpp_lib_jthread
#endif
#ifndef POLLSTER_HAS_STD_STOP_TOKEN
#if defined(__cpp_lib_jthread) && __cpp_lib_jthread >= 201911L
#define POLLSTER_HAS_STD_STOP_TOKEN 1
#else
#define POLLSTER_HAS_STD_STOP_TOKEN 0
#endif
#endif

// Keeps a hot loop out of its caller, so that its code, and its cost, do not depend on how the caller is inlined.
#ifndef POLLSTER_NOINLINE
#if defined(__GNUC__) || defined(__clang__)
#define POLLSTER_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define POLLSTER_NOINLINE __declspec(noinline)
#else
#define POLLSTER_NOINLINE
#endif
#endif

// Keeps a helper of a hot function inside it: a function split in two for sharing (poller::step and conclude)
// must not cost a call and a result passed through memory on every check.
#ifndef POLLSTER_ALWAYS_INLINE
#if defined(__GNUC__) || defined(__clang__)
#define POLLSTER_ALWAYS_INLINE __attribute__((always_inline)) inline
#elif defined(_MSC_VER)
#define POLLSTER_ALWAYS_INLINE __forceinline
#else
#define POLLSTER_ALWAYS_INLINE inline
#endif
#endif

// Inlines everything a function calls into it: the runner's step of one poller, so that the poller's step, with
// its saturating time arithmetic, does not cost a call on every check whatever g++'s inliner estimates.
#ifndef POLLSTER_FLATTEN
#if defined(__GNUC__) || defined(__clang__)
#define POLLSTER_FLATTEN __attribute__((flatten))
#else
#define POLLSTER_FLATTEN
#endif
#endif

// Branch hints for the differ's hot loops (which way the common case goes: a key found, a key in order).
#ifndef POLLSTER_LIKELY
#if defined(__GNUC__) || defined(__clang__)
#define POLLSTER_LIKELY(condition) __builtin_expect(static_cast<bool>(condition), 1)
#define POLLSTER_UNLIKELY(condition) __builtin_expect(static_cast<bool>(condition), 0)
#else
#define POLLSTER_LIKELY(condition) (condition)
#define POLLSTER_UNLIKELY(condition) (condition)
#endif
#endif
