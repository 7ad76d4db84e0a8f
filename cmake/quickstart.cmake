# pollster's quick start: the README's two commands.
#
#   cmake -P cmake/quickstart.cmake demo   build and run the Heat demo (examples/heat_plan.cpp)
#   cmake -P cmake/quickstart.cmake test   build and run the whole test suite (ctest)
#
# On Debian/Ubuntu it first checks, with dpkg-query, which of the packages the build needs are missing; as root it
# installs them (apt-get update && apt-get install -y), otherwise it prints the one `sudo apt-get install ...` line
# and stops. Without dpkg (another system) it skips that and lets CMake find what is already installed.
# It then configures build/ in the checkout (Ninja when available), builds, and runs. Run it from anywhere.
cmake_minimum_required(VERSION 3.14)

get_filename_component(_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(_build "${_root}/build")

# cmake -P <script> <mode>: the mode is the first argument after the script.
set(_mode "")
math(EXPR _last "${CMAKE_ARGC} - 1")
foreach(_i RANGE 1 ${_last})
  if(CMAKE_ARGV${_i} STREQUAL "-P")
    math(EXPR _mode_index "${_i} + 2")
    if(_mode_index LESS CMAKE_ARGC)
      set(_mode "${CMAKE_ARGV${_mode_index}}")
    endif()
    break()
  endif()
endforeach()
if(NOT _mode STREQUAL "demo" AND NOT _mode STREQUAL "test")
  message(FATAL_ERROR "usage:\n  cmake -P cmake/quickstart.cmake demo   # build and run the Heat demo\n"
                      "  cmake -P cmake/quickstart.cmake test   # build and run the test suite")
endif()

function(_step what)
  message(STATUS "quickstart: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "quickstart: ${what} failed (exit ${result}): ${command}")
  endif()
endfunction()

# 1. Debian packages.
set(_packages catch2 libfmt-dev libbenchmark-dev libasio-dev libcurl4-openssl-dev libcpp-httplib-dev nlohmann-json3-dev
              pkg-config)
find_program(_ninja ninja)
find_program(_make make)
if(NOT _ninja AND NOT _make)
  list(APPEND _packages ninja-build)  # CMake needs a build tool; a machine with only a compiler may lack both
endif()
find_program(_dpkg_query dpkg-query)
if(_dpkg_query)
  set(_missing "")
  foreach(_package IN LISTS _packages)
    execute_process(COMMAND "${_dpkg_query}" -W "-f=\${Status}" "${_package}"
                    RESULT_VARIABLE _result OUTPUT_VARIABLE _status ERROR_QUIET)
    if(NOT _result EQUAL 0 OR NOT _status MATCHES "install ok installed")
      list(APPEND _missing "${_package}")
    endif()
  endforeach()
  if(_missing)
    list(JOIN _missing " " _missing_text)
    execute_process(COMMAND id -u OUTPUT_VARIABLE _uid OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(NOT _uid STREQUAL "0")
      message(FATAL_ERROR "quickstart: missing Debian packages: ${_missing_text}\nInstall them with\n\n"
                          "  sudo apt-get update && sudo apt-get install -y ${_missing_text}\n\n"
                          "and run this command again.")
    endif()
    set(ENV{DEBIAN_FRONTEND} noninteractive)
    _step("apt-get update" apt-get update)
    _step("apt-get install ${_missing_text}" apt-get install -y --no-install-recommends ${_missing})
  else()
    message(STATUS "quickstart: Debian packages present: ${_packages}")
  endif()
else()
  message(STATUS "quickstart: no dpkg-query (not Debian/Ubuntu); relying on CMake to find Catch2, fmt and "
                 "Google Benchmark already installed")
endif()

# 2. Configure once; a later run reuses build/ (and its generator).
set(_configure_args -S "${_root}" -B "${_build}" -DPOLLSTER_BUILD_TESTS=ON -DPOLLSTER_BUILD_EXAMPLES=ON)
if(NOT EXISTS "${_build}/CMakeCache.txt")
  find_program(_ninja ninja)  # may have just been installed
  if(_ninja)
    list(APPEND _configure_args -G Ninja)
  endif()
  # No optimisation: the suite builds in a third of RelWithDebInfo's time, and its tests need no speed.
  list(APPEND _configure_args -DCMAKE_BUILD_TYPE=Debug)
endif()
_step("configure ${_build}" "${CMAKE_COMMAND}" ${_configure_args})

cmake_host_system_information(RESULT _cores QUERY NUMBER_OF_LOGICAL_CORES)
if(NOT _cores OR _cores LESS 1)
  set(_cores 2)
endif()

if(_mode STREQUAL "demo")
  _step("build heat_plan" "${CMAKE_COMMAND}" --build "${_build}" --target heat_plan --parallel ${_cores})
  file(GLOB_RECURSE _demo LIST_DIRECTORIES false "${_build}/examples/heat_plan" "${_build}/examples/heat_plan.exe")
  if(NOT _demo)
    message(FATAL_ERROR "quickstart: built heat_plan but cannot find it under ${_build}/examples")
  endif()
  list(GET _demo 0 _demo)
  # The demo writes its chart into the current directory: build/, so the checkout stays clean.
  _step("run ${_demo} (in ${_build})" "${CMAKE_COMMAND}" -E chdir "${_build}" "${_demo}")
  if(EXISTS "${_build}/heat_plan.svg")
    message(STATUS "quickstart: the chart is ${_build}/heat_plan.svg (open it in a browser)")
  endif()
else()
  _step("build everything" "${CMAKE_COMMAND}" --build "${_build}" --parallel ${_cores})
  set(_ctest "${CMAKE_CTEST_COMMAND}")
  if(NOT _ctest)
    get_filename_component(_cmake_bin "${CMAKE_COMMAND}" DIRECTORY)
    set(_ctest "${_cmake_bin}/ctest")
  endif()
  _step("ctest" "${CMAKE_COMMAND}" -E chdir "${_build}" "${_ctest}" --output-on-failure --parallel ${_cores})
endif()
