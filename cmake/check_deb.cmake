# The .deb CPack makes (cmake/cpack.cmake), checked with Debian's own tools:
#
#   cmake [-DWORK_DIR=dir] [-DCXX_COMPILER=c++] [-DGENERATOR=Ninja] -P cmake/check_deb.cmake
#
#   1. configure a top-level build (tests and examples off) and run `cpack -G DEB`, as the README says;
#   2. dpkg-deb -f: Package libpollster-dev, Version = version.hpp, Architecture all, Section libdevel, Suggests
#      libfmt-dev, libcurl and libhiredis-dev, no Depends;
#   3. dpkg-deb -c: the file list, exactly: the headers of include/pollster/ (not single/), the CMake package in
#      usr/share/cmake/pollster, usr/share/pkgconfig/pollster.pc and usr/share/doc/pollster/copyright (= LICENSE);
#   4. dpkg installs it into a private root (--instdir/--admindir, the machine's own dpkg database is not touched),
#      a find_package consumer (with pollster::fmt) and a pkg-config consumer build and run against that root, and
#      dpkg removes it again leaving no file behind.
cmake_minimum_required(VERSION 3.14)

get_filename_component(_source "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(NOT WORK_DIR)
  set(WORK_DIR "${_source}/build-deb-check")
endif()
set(_common_args "")
if(GENERATOR)
  list(APPEND _common_args -G "${GENERATOR}")
endif()
if(CXX_COMPILER)
  list(APPEND _common_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
else()
  set(CXX_COMPILER c++)
endif()

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "deb check FAILED: ${what}\n  command: ${command}\n  exit: ${result}\n${out}${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()
foreach(_tool dpkg-deb dpkg)
  find_program(_${_tool} ${_tool})
  if(NOT _${_tool})
    message(FATAL_ERROR "deb check FAILED: ${_tool} not found (this check runs on Debian/Ubuntu)")
  endif()
endforeach()

file(STRINGS "${_source}/include/pollster/version.hpp" _version_lines
     REGEX "^#define POLLSTER_VERSION_(MAJOR|MINOR|PATCH) [0-9]+$")
set(_version "")
foreach(_part MAJOR MINOR PATCH)
  string(REGEX MATCH "POLLSTER_VERSION_${_part} ([0-9]+)" _match "${_version_lines}")
  list(APPEND _version "${CMAKE_MATCH_1}")
endforeach()
list(JOIN _version "." _version)

file(REMOVE_RECURSE "${WORK_DIR}")
# 1. Build the package.
run("configure" "${CMAKE_COMMAND}" -S "${_source}" -B "${WORK_DIR}/build" ${_common_args}
    -DPOLLSTER_BUILD_TESTS=OFF -DPOLLSTER_BUILD_EXAMPLES=OFF -DPOLLSTER_WITH_CURL=ON -DPOLLSTER_WITH_REDIS=ON)
run("cpack -G DEB" cpack -G DEB --config "${WORK_DIR}/build/CPackConfig.cmake" -B "${WORK_DIR}/packages")
set(_deb "${WORK_DIR}/packages/libpollster-dev_${_version}_all.deb")
if(NOT EXISTS "${_deb}")
  file(GLOB _made "${WORK_DIR}/packages/*")
  message(FATAL_ERROR "deb check FAILED: no ${_deb}; cpack made: ${_made}")
endif()

# 2. Control fields.
foreach(_field_value "Package=libpollster-dev" "Version=${_version}" "Architecture=all" "Section=libdevel"
                     "Suggests=libfmt-dev, libcurl4-openssl-dev | libcurl-dev, libhiredis-dev" "Depends=")
  string(REPLACE "=" ";" _pair "${_field_value}")
  list(GET _pair 0 _field)
  list(LENGTH _pair _n)
  set(_expected "")
  if(_n EQUAL 2)
    list(GET _pair 1 _expected)
  endif()
  run("dpkg-deb -f ${_field}" "${_dpkg-deb}" -f "${_deb}" "${_field}")
  string(STRIP "${run_output}" _value)
  if(NOT _value STREQUAL _expected)
    message(FATAL_ERROR "deb check FAILED: ${_field} is '${_value}', expected '${_expected}'")
  endif()
endforeach()
message(STATUS "ok   control: libpollster-dev ${_version}, Architecture all, Section libdevel, Suggests libfmt-dev, "
               "libcurl and hiredis, no Depends")

# 3. The file list, exactly.
file(GLOB_RECURSE _headers RELATIVE "${_source}/include" "${_source}/include/pollster/*.hpp")
list(FILTER _headers EXCLUDE REGEX "^pollster/single/")
set(_expected ./usr/ ./usr/include/ ./usr/include/pollster/ ./usr/share/ ./usr/share/cmake/ ./usr/share/cmake/pollster/
    ./usr/share/cmake/pollster/pollsterConfig.cmake ./usr/share/cmake/pollster/pollsterConfigVersion.cmake
    ./usr/share/cmake/pollster/pollsterTargets.cmake ./usr/share/cmake/pollster/pollsterFmtTargets.cmake
    ./usr/share/cmake/pollster/pollsterCurlTargets.cmake ./usr/share/cmake/pollster/pollsterRedisTargets.cmake
    ./usr/share/cmake/pollster/pollster_hiredis.cmake
    ./usr/share/doc/ ./usr/share/doc/pollster/ ./usr/share/doc/pollster/copyright ./usr/share/pkgconfig/
    ./usr/share/pkgconfig/pollster.pc)
foreach(_header IN LISTS _headers)
  list(APPEND _expected "./usr/include/${_header}")
  get_filename_component(_dir "${_header}" DIRECTORY)
  list(APPEND _expected "./usr/include/${_dir}/")
endforeach()
list(REMOVE_DUPLICATES _expected)
list(SORT _expected)
run("dpkg-deb -c" "${_dpkg-deb}" -c "${_deb}")
string(REGEX REPLACE "\n$" "" _listing "${run_output}")
string(REPLACE "\n" ";" _listing "${_listing}")
set(_actual "")
foreach(_line IN LISTS _listing)
  string(REGEX REPLACE "^.* (\\./[^ ]*)$" "\\1" _path "${_line}")
  list(APPEND _actual "${_path}")
endforeach()
list(SORT _actual)
if(NOT _actual STREQUAL _expected)
  set(_extra ${_actual})
  list(REMOVE_ITEM _extra ${_expected})
  set(_missing ${_expected})
  list(REMOVE_ITEM _missing ${_actual})
  message(FATAL_ERROR "deb check FAILED: the file list differs.\n  unexpected: ${_extra}\n  missing: ${_missing}")
endif()
list(LENGTH _actual _entries)
message(STATUS "ok   file list: exactly the ${_entries} expected entries")

# 4. dpkg installs it into a private root; consumers build against it; dpkg removes it.
set(_root "${WORK_DIR}/root")
set(_admin "${_root}/var/lib/dpkg")
file(MAKE_DIRECTORY "${_admin}/info" "${_admin}/updates")
file(TOUCH "${_admin}/status")
set(_dpkg_private "${_dpkg}" "--instdir=${_root}" "--admindir=${_admin}" --log=/dev/null)
run("dpkg -i (private root)" ${_dpkg_private} -i "${_deb}")
run("dpkg -s" "${_dpkg}" "--admindir=${_admin}" -s libpollster-dev)
if(NOT run_output MATCHES "Status: install ok installed")
  message(FATAL_ERROR "deb check FAILED: dpkg -s says:\n${run_output}")
endif()
file(READ "${_root}/usr/share/doc/pollster/copyright" _copyright)
file(READ "${_source}/LICENSE" _license)
if(NOT _copyright STREQUAL _license)
  message(FATAL_ERROR "deb check FAILED: usr/share/doc/pollster/copyright is not LICENSE")
endif()
run("find_package consumer: configure" "${CMAKE_COMMAND}" -S "${_source}/tests/consumers/find_package"
    -B "${WORK_DIR}/consumer" ${_common_args} "-DCMAKE_PREFIX_PATH=${_root}/usr" -DCONSUMER_WITH_FMT=ON
    "-DCONSUMER_EXPECT_VERSION=${_version}")
run("find_package consumer: build" "${CMAKE_COMMAND}" --build "${WORK_DIR}/consumer")
run("find_package consumer: run" "${WORK_DIR}/consumer/consumer")
string(STRIP "${run_output}" _line)
set(ENV{PKG_CONFIG_PATH} "${_root}/usr/share/pkgconfig")
run("pkg-config" pkg-config --cflags --libs pollster)
string(STRIP "${run_output}" _flags)
separate_arguments(_flag_list UNIX_COMMAND "${_flags}")
run("pkg-config consumer: compile" "${CXX_COMPILER}" -std=c++17 ${_flag_list} "${_source}/tests/consumers/main.cpp"
    -o "${WORK_DIR}/pkg-config-consumer")
run("pkg-config consumer: run" "${WORK_DIR}/pkg-config-consumer")
message(STATUS "ok   installed by dpkg into ${_root}: find_package consumer: ${_line}; pkg-config consumer runs")
run("dpkg -r (private root)" ${_dpkg_private} -r libpollster-dev)
file(GLOB_RECURSE _left LIST_DIRECTORIES false "${_root}/usr/*")
if(_left)
  message(FATAL_ERROR "deb check FAILED: dpkg -r left files behind: ${_left}")
endif()
message(STATUS "deb check: all passed (${_deb})")
