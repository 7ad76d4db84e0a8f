// One include for Catch2 v3 (split headers: vcpkg, Homebrew, Conan) and v2 (Debian bookworm's single header).
// Tests are written with Catch2 v3's names; under v2 this header supplies the two v3 names v2 spells differently.
// cmake/check_catch_names.cmake (CI) keeps every test to the names listed below.
//
// Catch2 v3 names the tests rely on, each checked against Catch2 v3.7.1's own headers (catchorg/Catch2,
// src/catch2/...). One line per header: `// v3 <header>: <names>`; a test that needs another name adds it here
// after checking it in v3 (and v2) and including its v3 header below.
//
// v3 catch2/catch_test_macros.hpp: TEST_CASE SECTION REQUIRE REQUIRE_FALSE CHECK CHECK_FALSE CHECK_NOTHROW
// v3 catch2/catch_test_macros.hpp: REQUIRE_NOTHROW CHECK_THROWS_AS REQUIRE_THROWS_AS STATIC_REQUIRE
// v3 catch2/catch_test_macros.hpp: STATIC_REQUIRE_FALSE FAIL SUCCEED
// v3 catch2/catch_message.hpp: INFO UNSCOPED_INFO CAPTURE WARN
// v3 catch2/matchers/catch_matchers.hpp: CHECK_THROWS_WITH REQUIRE_THROWS_WITH CHECK_THAT REQUIRE_THAT
// v3 catch2/generators/catch_generators.hpp: GENERATE Catch::Generators::as
// v3 catch2/catch_approx.hpp: Catch::Approx
// v3 catch2/matchers/catch_matchers_string.hpp: Catch::Matchers::ContainsSubstring
//
// v2 spells two of them differently: `Approx` is Catch::Detail::Approx (v2 also puts a global `Approx`, which v3
// does not have), and the substring matcher is Catch::Matchers::Contains (in v3, Contains matches a range element).
#pragma once

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_message.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#define POLLSTER_CATCH2_MAJOR 3
#else
#include <catch2/catch.hpp>

#include <string>  // string
#define POLLSTER_CATCH2_MAJOR 2

namespace Catch {
using Detail::Approx;  // v3: Catch::Approx
namespace Matchers {
/// v3's name for v2's substring matcher.
inline StdString::ContainsMatcher ContainsSubstring(const std::string& text,
                                                    CaseSensitive::Choice sensitivity = CaseSensitive::Yes) {
  return Contains(text, sensitivity);
}
}  // namespace Matchers
}  // namespace Catch
#endif
