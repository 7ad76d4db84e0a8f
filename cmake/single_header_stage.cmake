# POLLSTER_TEST_SINGLE_HEADER=ON: build pollster's own tests, examples and benchmarks against the committed single
# header (include/pollster/single/pollster.hpp) instead of include/.
#
# The staged include directory ${PROJECT_BINARY_DIR}/single-header-include/pollster/ holds:
#   pollster.hpp             a copy of the committed single header;
#   every amalgamated header a stub that includes pollster.hpp, so `#include <pollster/schedule.hpp>` in a test
#                            compiles the amalgamated text, never the original header;
#   everything else          (optional integrations such as fmt.hpp, headers not yet in the umbrella) copied as
#                            is; their relative includes of amalgamated headers land on the stubs.
# include/ is not on the include path in this mode, so no test can reach an original header by accident. The
# committed single header must be fresh: configuring fails otherwise (the tests would test something stale).
include("${CMAKE_CURRENT_LIST_DIR}/amalgamate.cmake")

set(_pollster_single "${PROJECT_SOURCE_DIR}/include/pollster/single/pollster.hpp")
if(NOT EXISTS "${_pollster_single}")
  message(FATAL_ERROR "POLLSTER_TEST_SINGLE_HEADER: ${_pollster_single} does not exist; generate it with\n"
                      "  cmake -P cmake/amalgamate.cmake")
endif()
pollster_amalgamate(_pollster_expected _pollster_amalgamated)
file(READ "${_pollster_single}" _pollster_committed)
if(NOT _pollster_committed STREQUAL _pollster_expected)
  message(FATAL_ERROR "POLLSTER_TEST_SINGLE_HEADER: include/pollster/single/pollster.hpp is stale; regenerate it "
                      "with\n  cmake -P cmake/amalgamate.cmake")
endif()

set(POLLSTER_SINGLE_HEADER_STAGE_DIR "${PROJECT_BINARY_DIR}/single-header-include")
set(_pollster_stage "${POLLSTER_SINGLE_HEADER_STAGE_DIR}/pollster")
pollster_all_headers(_pollster_headers)
foreach(_pollster_header IN LISTS _pollster_headers)
  set(_pollster_source "${PROJECT_SOURCE_DIR}/include/pollster/${_pollster_header}")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_pollster_source}")
  if(_pollster_header STREQUAL "pollster.hpp")
    configure_file("${_pollster_single}" "${_pollster_stage}/pollster.hpp" COPYONLY)
  elseif(_pollster_header IN_LIST _pollster_amalgamated)
    get_filename_component(_pollster_dir "${_pollster_stage}/${_pollster_header}" DIRECTORY)
    file(RELATIVE_PATH _pollster_to_single "${_pollster_dir}" "${_pollster_stage}/pollster.hpp")
    pollster_write_if_changed("${_pollster_stage}/${_pollster_header}"
         "// Stub staged for POLLSTER_TEST_SINGLE_HEADER: this header's text is in the single header.\n#pragma once\n#include \"${_pollster_to_single}\"\n")
  else()
    configure_file("${_pollster_source}" "${_pollster_stage}/${_pollster_header}" COPYONLY)
  endif()
endforeach()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_pollster_single}")
list(LENGTH _pollster_amalgamated _pollster_count)
message(STATUS "pollster: testing against the single header (${_pollster_count} headers amalgamated), staged in "
               "${POLLSTER_SINGLE_HEADER_STAGE_DIR}")
