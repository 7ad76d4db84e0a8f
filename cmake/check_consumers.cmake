# The packaging consumer checks: does pollster work the ways users take it in?
#
#   cmake [-DWORK_DIR=dir] [-DCXX_COMPILER=c++] [-DGENERATOR=Ninja] -P cmake/check_consumers.cmake
#
# 1. install (with pollster::fmt) to one prefix, then MOVE the prefix: everything below uses the moved tree, so
#    the CMake package and pollster.pc must be relocatable; no installed file may name the original prefix;
# 2. find_package(pollster CONFIG REQUIRED COMPONENTS fmt) from the moved prefix, build and run (pollster::fmt),
#    and plain find_package (pollster::pollster);
# 3. an install without fmt: plain find_package works, asking for the fmt component fails with a clear message;
# 4. pkg-config --modversion/--cflags/--libs pollster against the moved prefix, compile and run with those flags;
# 5. add_subdirectory: a parent that exports its own library linking pollster::pollster from its build tree, and a
#    downstream project that uses that export;
# 6. FetchContent from this checkout (SOURCE_DIR) with FETCHCONTENT_FULLY_DISCONNECTED=ON.
# Each consumer's program (tests/consumers/main.cpp) checks the Heat plan's 52 polls and exits non-zero otherwise.
cmake_minimum_required(VERSION 3.14)

get_filename_component(_source "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(NOT POLLSTER_SOURCE_DIR)
  set(POLLSTER_SOURCE_DIR "${_source}")
endif()
if(NOT WORK_DIR)
  set(WORK_DIR "${POLLSTER_SOURCE_DIR}/build-consumers")
endif()
set(_consumers "${POLLSTER_SOURCE_DIR}/tests/consumers")

set(_common_args "")
if(GENERATOR)
  list(APPEND _common_args -G "${GENERATOR}")
else()
  find_program(_ninja ninja)
  if(_ninja)
    list(APPEND _common_args -G Ninja)
  endif()
endif()
if(CXX_COMPILER)
  list(APPEND _common_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
else()
  set(CXX_COMPILER c++)
endif()

file(STRINGS "${POLLSTER_SOURCE_DIR}/include/pollster/version.hpp" _version_lines
     REGEX "^#define POLLSTER_VERSION_(MAJOR|MINOR|PATCH) [0-9]+$")
set(_version "")
foreach(_part MAJOR MINOR PATCH)
  string(REGEX MATCH "POLLSTER_VERSION_${_part} ([0-9]+)" _match "${_version_lines}")
  list(APPEND _version "${CMAKE_MATCH_1}")
endforeach()
list(JOIN _version "." _version)

# run(<what> <command>...): run a command; stop with its output when it fails.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT result EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "consumer check FAILED: ${what}\n  command: ${command}\n  exit: ${result}\n${out}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()
# consumer(<what> <source> <build> <cmake args>...): configure, build and run one consumer project.
function(consumer what source build)
  run("${what}: configure" "${CMAKE_COMMAND}" -S "${source}" -B "${build}" ${_common_args} ${ARGN})
  run("${what}: build" "${CMAKE_COMMAND}" --build "${build}" --parallel 2)
  run("${what}: run" "${build}/consumer")
  string(STRIP "${run_output}" line)
  message(STATUS "ok   ${what}: ${line}")
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# 1. Install with fmt, then move the installed tree.
set(_prefix "${WORK_DIR}/installed-prefix")
set(_moved "${WORK_DIR}/moved-prefix")
run("install with fmt: configure" "${CMAKE_COMMAND}" -S "${POLLSTER_SOURCE_DIR}" -B "${WORK_DIR}/pollster-build"
    ${_common_args} -DPOLLSTER_BUILD_TESTS=OFF -DPOLLSTER_BUILD_EXAMPLES=OFF -DPOLLSTER_BUILD_BENCHMARKS=OFF
    -DPOLLSTER_INSTALL=ON -DPOLLSTER_WITH_FMT=ON "-DCMAKE_INSTALL_PREFIX=${_prefix}")
run("install with fmt: build" "${CMAKE_COMMAND}" --build "${WORK_DIR}/pollster-build")
run("install with fmt: install" "${CMAKE_COMMAND}" --install "${WORK_DIR}/pollster-build")
file(RENAME "${_prefix}" "${_moved}")
file(GLOB_RECURSE _installed RELATIVE "${_moved}" "${_moved}/*")
list(LENGTH _installed _installed_count)
foreach(_file IN LISTS _installed)
  file(READ "${_moved}/${_file}" _text)
  string(FIND "${_text}" "${_prefix}" _at)
  if(NOT _at EQUAL -1)
    message(FATAL_ERROR "consumer check FAILED: installed ${_file} names the install prefix ${_prefix}; the "
                        "package would break when moved")
  endif()
endforeach()
# The config directory follows GNUInstallDirs' libdir (lib, lib64, lib/<multiarch>), so look for it.
file(GLOB_RECURSE _config RELATIVE "${_moved}" "${_moved}/*/pollsterConfig.cmake")
if(NOT _config)
  message(FATAL_ERROR "consumer check FAILED: the install has no pollsterConfig.cmake; it has:\n${_installed}")
endif()
get_filename_component(_config_dir "${_config}" DIRECTORY)
foreach(_expected include/pollster/pollster.hpp include/pollster/version.hpp share/pkgconfig/pollster.pc
                  ${_config_dir}/pollsterConfigVersion.cmake ${_config_dir}/pollsterTargets.cmake)
  if(NOT EXISTS "${_moved}/${_expected}")
    message(FATAL_ERROR "consumer check FAILED: the install has no ${_expected}; it has:\n${_installed}")
  endif()
endforeach()
if(EXISTS "${_moved}/include/pollster/single")
  message(FATAL_ERROR "consumer check FAILED: the install should not ship include/pollster/single/")
endif()
message(STATUS "ok   install: ${_installed_count} files, moved to ${_moved}, none names the original prefix")

# 2. find_package from the moved prefix, with and without the fmt component.
consumer("find_package COMPONENTS fmt (moved prefix)" "${_consumers}/find_package" "${WORK_DIR}/find-package-fmt"
         "-DCMAKE_PREFIX_PATH=${_moved}" -DCONSUMER_WITH_FMT=ON "-DCONSUMER_EXPECT_VERSION=${_version}")
consumer("find_package (moved prefix)" "${_consumers}/find_package" "${WORK_DIR}/find-package"
         "-DCMAKE_PREFIX_PATH=${_moved}" "-DCONSUMER_EXPECT_VERSION=${_version}")

# 3. An install without fmt: the plain package works; the fmt component is refused, saying why.
set(_nofmt "${WORK_DIR}/prefix-without-fmt")
run("install without fmt: configure" "${CMAKE_COMMAND}" -S "${POLLSTER_SOURCE_DIR}" -B "${WORK_DIR}/pollster-nofmt"
    ${_common_args} -DPOLLSTER_BUILD_TESTS=OFF -DPOLLSTER_BUILD_EXAMPLES=OFF -DPOLLSTER_BUILD_BENCHMARKS=OFF
    -DPOLLSTER_INSTALL=ON -DPOLLSTER_WITH_FMT=OFF "-DCMAKE_INSTALL_PREFIX=${_nofmt}")
run("install without fmt: install" "${CMAKE_COMMAND}" --install "${WORK_DIR}/pollster-nofmt")
consumer("find_package without fmt" "${_consumers}/find_package" "${WORK_DIR}/find-package-nofmt"
         "-DCMAKE_PREFIX_PATH=${_nofmt}")
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${_consumers}/find_package" -B "${WORK_DIR}/find-package-nofmt-fmt"
                ${_common_args} "-DCMAKE_PREFIX_PATH=${_nofmt}" -DCONSUMER_WITH_FMT=ON
                RESULT_VARIABLE _result OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
if(_result EQUAL 0 OR NOT _out MATCHES "built without its fmt integration")
  message(FATAL_ERROR "consumer check FAILED: COMPONENTS fmt against an install without fmt should fail and say "
                      "why (exit ${_result}):\n${_out}")
endif()
message(STATUS "ok   find_package COMPONENTS fmt without fmt installed: refused with a clear message")

# 4. pkg-config against the moved prefix.
if(SKIP_PKG_CONFIG)
  message(STATUS "skip pkg-config (SKIP_PKG_CONFIG)")
else()
  find_program(_pkg_config pkg-config)
  if(NOT _pkg_config)
    message(FATAL_ERROR "consumer check FAILED: pkg-config not found (Debian: apt-get install pkg-config; or "
                        "pass -DSKIP_PKG_CONFIG=ON)")
  endif()
  set(ENV{PKG_CONFIG_PATH} "${_moved}/share/pkgconfig")
  run("pkg-config --modversion" "${_pkg_config}" --modversion pollster)
  string(STRIP "${run_output}" _pc_version)
  if(NOT _pc_version STREQUAL _version)
    message(FATAL_ERROR "consumer check FAILED: pkg-config says version '${_pc_version}', expected ${_version}")
  endif()
  run("pkg-config --cflags" "${_pkg_config}" --cflags pollster)
  string(STRIP "${run_output}" _pc_cflags)
  run("pkg-config --libs" "${_pkg_config}" --libs pollster)
  string(STRIP "${run_output}" _pc_libs)
  if(NOT _pc_cflags MATCHES "-I([^ ]+)")
    message(FATAL_ERROR "consumer check FAILED: pkg-config --cflags gave no include directory: '${_pc_cflags}'")
  endif()
  get_filename_component(_pc_include "${CMAKE_MATCH_1}" REALPATH)
  get_filename_component(_moved_include "${_moved}/include" REALPATH)
  if(NOT _pc_include STREQUAL _moved_include)
    message(FATAL_ERROR "consumer check FAILED: pkg-config's include directory ${CMAKE_MATCH_1} is not the moved "
                        "prefix's ${_moved_include}")
  endif()
  separate_arguments(_pc_cflags_list UNIX_COMMAND "${_pc_cflags}")
  separate_arguments(_pc_libs_list UNIX_COMMAND "${_pc_libs}")
  run("pkg-config consumer: compile" "${CXX_COMPILER}" -std=c++17 ${_pc_cflags_list} "${_consumers}/main.cpp"
      -o "${WORK_DIR}/pkg-config-consumer" ${_pc_libs_list})
  run("pkg-config consumer: run" "${WORK_DIR}/pkg-config-consumer")
  string(STRIP "${run_output}" _line)
  message(STATUS "ok   pkg-config (moved prefix, cflags '${_pc_cflags}'): ${_line}")
endif()

# 5. add_subdirectory with the parent's own build-tree export, then a downstream user of that export.
consumer("add_subdirectory parent with export()" "${_consumers}/add_subdirectory" "${WORK_DIR}/parent"
         "-DPOLLSTER_SOURCE_DIR=${POLLSTER_SOURCE_DIR}")
consumer("downstream of the parent's build-tree export" "${_consumers}/add_subdirectory/downstream"
         "${WORK_DIR}/downstream" "-Dparent_DIR=${WORK_DIR}/parent" "-Dpollster_DIR=${WORK_DIR}/parent/pollster")

# 6. FetchContent from the local checkout, fully disconnected.
consumer("FetchContent (SOURCE_DIR, fully disconnected)" "${_consumers}/fetchcontent" "${WORK_DIR}/fetchcontent"
         "-DPOLLSTER_SOURCE_DIR=${POLLSTER_SOURCE_DIR}" -DFETCHCONTENT_FULLY_DISCONNECTED=ON)

message(STATUS "consumer checks: all passed (pollster ${_version})")
