# The list of pollster's headers, in one place for the single-header generator, the single-header test staging and
# the "each header compiles alone" check. New headers are picked up by globbing; nothing here needs editing unless a
# header is an optional integration.
include_guard(GLOBAL)

get_filename_component(POLLSTER_HEADERS_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

# Optional integrations: never in the umbrella nor the single header, and each needs its own dependency.
set(POLLSTER_OPTIONAL_INTEGRATIONS fmt.hpp asio.hpp curl.hpp curl_poll.hpp redis.hpp redis_client.hpp redis_budget.hpp
    redis_work.hpp redis_stream.hpp)

# pollster_public_headers(<var>): include/pollster/*.hpp, relative to include/pollster ("clock.hpp").
function(pollster_public_headers out_var)
  file(GLOB headers RELATIVE "${POLLSTER_HEADERS_ROOT}/include/pollster"
       "${POLLSTER_HEADERS_ROOT}/include/pollster/*.hpp")
  list(SORT headers)
  set(${out_var} "${headers}" PARENT_SCOPE)
endfunction()

# pollster_all_headers(<var>): the public headers and detail/ (not single/), relative to include/pollster.
function(pollster_all_headers out_var)
  file(GLOB_RECURSE headers RELATIVE "${POLLSTER_HEADERS_ROOT}/include/pollster"
       "${POLLSTER_HEADERS_ROOT}/include/pollster/*.hpp")
  list(FILTER headers EXCLUDE REGEX "^single/")
  list(SORT headers)
  set(${out_var} "${headers}" PARENT_SCOPE)
endfunction()

# pollster_write_if_changed(<path> <content>): write a generated file only when its content changes, so that a
# re-configure does not rebuild what includes it (file(CONFIGURE) would do, but needs CMake 3.18).
function(pollster_write_if_changed path content)
  file(WRITE "${path}.tmp" "${content}")
  configure_file("${path}.tmp" "${path}" COPYONLY)
  file(REMOVE "${path}.tmp")
endfunction()
