# Keeps pollster's tests to the Catch2 names that work in both Catch2 v2 and v3: those listed in
# tests/pollster_catch.hpp (`// v3 <header>: <names>` lines, each checked against Catch2 v3's headers).
#
#   cmake [-DTESTS_DIR=tests] [-DCATCH2_V2_HEADER=/usr/include/catch2/catch.hpp] -P cmake/check_catch_names.cmake
#   cmake -DSELF_TEST=ON [-DWORK_DIR=dir] -P cmake/check_catch_names.cmake   # it fails on each kind of mistake
#
# CI has only Catch2 v2 (Debian bookworm ships no v3, and nothing is downloaded at build time), so it cannot build the
# tests against v3; this check is what it can do instead. In every .cpp/.hpp under TESTS_DIR (comments and string
# literals skipped) it fails on:
#   - a Catch2 macro (any public macro v2's catch2/catch.hpp defines: REQUIRE_THAT, BENCHMARK, CATCH_CONFIG_MAIN ...)
#     that the shim does not list;
#   - a Catch:: name the shim does not list (v2's Catch::Matchers::Contains is a range matcher in v3);
#   - a name v2 puts in the global namespace and v3 does not (Approx: write Catch::Approx);
#   - a Catch::Generators function used unqualified inside GENERATE(...) that the shim does not list;
#   - `using namespace Catch...`, and a Catch2 header included other than through pollster_catch.hpp.
cmake_minimum_required(VERSION 3.14)

get_filename_component(_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(NOT TESTS_DIR)
  set(TESTS_DIR "${_root}/tests")
endif()
if(NOT SHIM)
  set(SHIM "${_root}/tests/pollster_catch.hpp")
endif()

if(NOT CATCH2_V2_HEADER)
  find_file(CATCH2_V2_HEADER catch2/catch.hpp PATHS /usr/local/include /usr/include)  # -P mode searches no system dirs
endif()

if(SELF_TEST)
  # Each bad sample must fail the check; the good one must pass.
  if(NOT WORK_DIR)
    set(WORK_DIR "${_root}/build-catch-names")
  endif()
  set(_dir "${WORK_DIR}/self-test")
  set(_good [[#include "pollster_catch.hpp"
TEST_CASE("x") { CHECK(1.0 == Catch::Approx(1.0)); const int n = GENERATE(1, 2); REQUIRE(n > 0); } // Approx
]])
  set(_bad_unqualified_approx [[TEST_CASE("x") { CHECK(1.0 == Approx(1.0)); }]])
  set(_bad_v2_matcher [[TEST_CASE("x") { REQUIRE_THROWS_WITH(f(), Catch::Matchers::Contains("a")); }]])
  set(_bad_unlisted_macro [[TEST_CASE("x") { BENCHMARK("b") { return 1; }; }]])
  set(_bad_unlisted_generator [[TEST_CASE("x") { const int n = GENERATE(range(1, 3)); CHECK(n > 0); }]])
  set(_bad_using_namespace [[using namespace Catch::Matchers;]])
  set(_bad_direct_include [[#include <catch2/catch.hpp>]])
  foreach(_sample good bad_unqualified_approx bad_v2_matcher bad_unlisted_macro bad_unlisted_generator
                  bad_using_namespace bad_direct_include)
    file(REMOVE_RECURSE "${_dir}/${_sample}")
    file(WRITE "${_dir}/${_sample}/sample_test.cpp" "${_${_sample}}\n")
    execute_process(COMMAND "${CMAKE_COMMAND}" "-DTESTS_DIR=${_dir}/${_sample}" "-DSHIM=${SHIM}"
                            "-DCATCH2_V2_HEADER=${CATCH2_V2_HEADER}" -P "${CMAKE_CURRENT_LIST_FILE}"
                    RESULT_VARIABLE _result OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
    if(_sample STREQUAL "good" AND NOT _result EQUAL 0)
      message(FATAL_ERROR "check_catch_names self-test: the good sample failed:\n${_out}")
    elseif(NOT _sample STREQUAL "good" AND _result EQUAL 0)
      message(FATAL_ERROR "check_catch_names self-test: the sample '${_sample}' passed, it should fail:\n${_out}")
    endif()
    message(STATUS "ok   self-test ${_sample}: ${_result}")
  endforeach()
  file(REMOVE_RECURSE "${_dir}")
  message(STATUS "check_catch_names self-test: 1 good sample passes, 6 bad samples fail")
  return()
endif()

# The names the shim lists.
file(STRINGS "${SHIM}" _shim_lines REGEX "^// v3 [^:]+: ")
set(_allowed "")
foreach(_line IN LISTS _shim_lines)
  string(REGEX REPLACE "^// v3 [^:]+: " "" _names "${_line}")
  separate_arguments(_names UNIX_COMMAND "${_names}")
  list(APPEND _allowed ${_names})
endforeach()
if(NOT _allowed)
  message(FATAL_ERROR "check_catch_names: ${SHIM} lists no `// v3 <header>: <names>` lines")
endif()

# Catch2 v2's public macros and its global names, from Debian's single header.
set(_v2_macros "")
set(_v2_global_names "")
if(CATCH2_V2_HEADER AND EXISTS "${CATCH2_V2_HEADER}")
  file(STRINGS "${CATCH2_V2_HEADER}" _defines REGEX "^[ ]*#[ ]*define[ ]+[A-Z][A-Z0-9_]*")
  foreach(_define IN LISTS _defines)
    string(REGEX REPLACE "^[ ]*#[ ]*define[ ]+([A-Z][A-Z0-9_]*).*" "\\1" _macro "${_define}")
    if(NOT _macro MATCHES "^(INTERNAL_|CATCH_INTERNAL_|TWOBLUECUBES_|CATCH_CATCH_|C_A_T_C_H)")
      list(APPEND _v2_macros "${_macro}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES _v2_macros)
  file(STRINGS "${CATCH2_V2_HEADER}" _usings REGEX "^using Catch::")
  foreach(_using IN LISTS _usings)
    string(REGEX REPLACE "^using Catch::([A-Za-z_]+::)*([A-Za-z_]+);.*" "\\2" _name "${_using}")
    list(APPEND _v2_global_names "${_name}")
  endforeach()
  list(REMOVE_DUPLICATES _v2_global_names)
else()
  message(WARNING "check_catch_names: Catch2 v2's catch2/catch.hpp not found; unlisted macros are not checked")
  set(_v2_global_names Approx)
endif()
set(_generator_functions as values table range take filter repeat map chunk random from_range)

# Tokens: comments and literals are matched whole (and skipped), so words inside them are not names.
set(_token_regex "//[^\n]*|/[*]([^*]|[*]+[^*/])*[*]+/|\"([^\"\\\\\n]|\\\\.)*\"|'([^'\\\\\n]|\\\\.)*'")
string(APPEND _token_regex "|[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*|[(){}<>,]")

file(GLOB_RECURSE _sources "${TESTS_DIR}/*.cpp" "${TESTS_DIR}/*.hpp")
list(FILTER _sources EXCLUDE REGEX "/consumers/")
list(REMOVE_ITEM _sources "${SHIM}")
set(_violations "")
set(_used "")
foreach(_source IN LISTS _sources)
  file(RELATIVE_PATH _name "${TESTS_DIR}" "${_source}")
  file(READ "${_source}" _text)
  if(_text MATCHES "(^|\n)[ ]*#[ ]*include[ ]*[<\"]catch2/")
    list(APPEND _violations "${_name}: includes a Catch2 header directly; include \"pollster_catch.hpp\"")
  endif()
  string(REGEX MATCHALL "${_token_regex}" _tokens "${_text}")
  set(_previous "")
  set(_before_previous "")
  set(_generate_depth 0)
  foreach(_token IN LISTS _tokens)
    if(_token MATCHES "^(//|/[*]|\"|')")
      continue()
    endif()
    if(_token MATCHES "^Catch::")
      list(APPEND _used "${_token}")
      if(NOT _token IN_LIST _allowed)
        list(APPEND _violations "${_name}: ${_token} is not a name the shim lists")
      endif()
    elseif(_token IN_LIST _v2_macros)
      list(APPEND _used "${_token}")
      if(NOT _token IN_LIST _allowed)
        list(APPEND _violations "${_name}: the Catch2 macro ${_token} is not one the shim lists")
      endif()
    elseif(_token IN_LIST _v2_global_names)
      list(APPEND _violations "${_name}: ${_token} is Catch2 v2's global name (v3 has only Catch::${_token})")
    endif()
    if(_before_previous STREQUAL "using" AND _previous STREQUAL "namespace" AND _token MATCHES "^Catch(::|$)")
      list(APPEND _violations "${_name}: using namespace ${_token}")
    endif()
    # Generator functions inside GENERATE(...), where Catch2 makes them usable unqualified.
    if(_generate_depth GREATER 0)
      if(_token STREQUAL "(")
        math(EXPR _generate_depth "${_generate_depth} + 1")
      elseif(_token STREQUAL ")")
        math(EXPR _generate_depth "${_generate_depth} - 1")
      elseif(_token IN_LIST _generator_functions)
        list(APPEND _used "Catch::Generators::${_token}")
        if(NOT "Catch::Generators::${_token}" IN_LIST _allowed)
          list(APPEND _violations "${_name}: the generator ${_token} (Catch::Generators::${_token}) is not listed")
        endif()
      endif()
    elseif(_token STREQUAL "(" AND _previous MATCHES "^GENERATE(_COPY|_REF)?$")
      set(_generate_depth 1)
    endif()
    set(_before_previous "${_previous}")
    set(_previous "${_token}")
  endforeach()
endforeach()

list(LENGTH _sources _source_count)
if(_violations)
  list(JOIN _violations "\n  " _text)
  message(FATAL_ERROR "check_catch_names FAILED: the tests use Catch2 names that do not work in both v2 and v3 (or "
                      "that tests/pollster_catch.hpp does not list):\n  ${_text}")
endif()
list(REMOVE_DUPLICATES _used)
list(SORT _used)
list(JOIN _used " " _used_text)
list(LENGTH _v2_macros _macro_count)
message(STATUS "check_catch_names: ${_source_count} test sources use only listed Catch2 names (${_used_text}); "
               "${_macro_count} v2 macros known")
