# What pollster's HTTP servers, examples and tests need besides libcurl: cpp-httplib (Debian's libcpp-httplib-dev is a
# compiled library found by pkg-config; upstream and vcpkg install a CMake package, httplib::httplib) and nlohmann/json
# (nlohmann-json3-dev). Include it in each directory that needs them; it sets, in that directory:
#   POLLSTER_HTTP_DEPS_FOUND         both were found
#   POLLSTER_HTTP_DEPS_MISSING       what to install otherwise, for a message
#   pollster_cpp_httplib (target)    links whichever cpp-httplib was found
if(NOT TARGET pollster_cpp_httplib)
  find_package(httplib CONFIG QUIET)
  if(TARGET httplib::httplib)
    add_library(pollster_cpp_httplib INTERFACE IMPORTED GLOBAL)
    target_link_libraries(pollster_cpp_httplib INTERFACE httplib::httplib)
  else()
    find_package(PkgConfig QUIET)
    if(PkgConfig_FOUND)
      pkg_check_modules(POLLSTER_CPPHTTPLIB QUIET IMPORTED_TARGET GLOBAL cpp-httplib)
    endif()
    if(TARGET PkgConfig::POLLSTER_CPPHTTPLIB)
      add_library(pollster_cpp_httplib INTERFACE IMPORTED GLOBAL)
      target_link_libraries(pollster_cpp_httplib INTERFACE PkgConfig::POLLSTER_CPPHTTPLIB)
    endif()
  endif()
endif()
find_package(nlohmann_json 3 CONFIG QUIET)
find_package(Threads REQUIRED)

set(POLLSTER_HTTP_DEPS_MISSING "")
if(NOT TARGET pollster_cpp_httplib)
  list(APPEND POLLSTER_HTTP_DEPS_MISSING "cpp-httplib (libcpp-httplib-dev)")
endif()
if(NOT TARGET nlohmann_json::nlohmann_json)
  list(APPEND POLLSTER_HTTP_DEPS_MISSING "nlohmann/json (nlohmann-json3-dev)")
endif()
if(POLLSTER_HTTP_DEPS_MISSING)
  set(POLLSTER_HTTP_DEPS_FOUND OFF)
  list(JOIN POLLSTER_HTTP_DEPS_MISSING " and " POLLSTER_HTTP_DEPS_MISSING)
else()
  set(POLLSTER_HTTP_DEPS_FOUND ON)
endif()
