# The packaging consumer checks: does pollster work the ways users take it in, with the README's own lines?
#
#   cmake [-DWORK_DIR=dir] [-DCXX_COMPILER=c++] [-DGENERATOR=Ninja] -P cmake/check_consumers.cmake
#
# README.md's "Consuming pollster" blocks are found by what they contain (exactly one each) and run as written, in a
# clean directory under WORK_DIR, on a copy of this checkout. The one substitution: /opt/pollster becomes
# WORK_DIR/opt/pollster (a check must not write to /opt). A ```cmake block is appended to a three-line harness
# (cmake_minimum_required, project(app), add_executable(app app.cpp)); app.cpp is tests/consumers/main.cpp, which
# checks the Heat plan's 52 polls and exits non-zero otherwise.
#   1. README install (sh): configure and `cmake --install` to /opt/pollster;
#   2. README find_package (cmake), against that prefix, both find_package lines (pollster::pollster, pollster::fmt);
#   3. README pkg-config (sh), compile and run;
#   4. the installed tree MOVED elsewhere: no file names the old prefix; find_package (with and without fmt) and
#      pkg-config from the new place;
#   5. fmt hidden from the consumer (CMAKE_IGNORE_PATH on fmt's CMake package): plain find_package works, COMPONENTS
#      fmt is refused because fmt is missing, OPTIONAL_COMPONENTS fmt reports it missing;
#   6. an install without fmt: plain find_package works, COMPONENTS fmt is refused saying why;
#   7. add_subdirectory: a parent that exports its own library linking pollster::pollster from its build tree, and a
#      downstream project that uses that export; then the README's add_subdirectory block;
#   8. README FetchContent (cmake) exactly as written: git is pointed from the README's GIT_REPOSITORY to this clone
#      (git's url.<this clone>.insteadOf, in the environment only), so the README's GIT_TAG must be a commit of this
#      clone, and its version.hpp must say the version the line's comment names.
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
if(NOT GENERATOR)
  find_program(_ninja ninja)
  if(_ninja)
    set(GENERATOR Ninja)
  endif()
endif()
if(GENERATOR)
  list(APPEND _common_args -G "${GENERATOR}")
  set(ENV{CMAKE_GENERATOR} "${GENERATOR}")  # for the README's own cmake lines, which name no generator
endif()
if(CXX_COMPILER)
  list(APPEND _common_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
  set(ENV{CXX} "${CXX_COMPILER}")  # likewise
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
  file(GLOB_RECURSE programs LIST_DIRECTORIES false "${build}/consumer" "${build}/app")
  list(GET programs 0 program)
  run("${what}: run" "${program}")
  string(STRIP "${run_output}" line)
  message(STATUS "ok   ${what}: ${line}")
endfunction()
# refused(<what> <must match> <source> <build> <cmake args>...): configuring must fail, saying <must match>.
function(refused what pattern source build)
  execute_process(COMMAND "${CMAKE_COMMAND}" -S "${source}" -B "${build}" ${_common_args} ${ARGN}
                  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(result EQUAL 0 OR NOT out MATCHES "${pattern}")
    message(FATAL_ERROR "consumer check FAILED: ${what} should fail to configure, saying '${pattern}' "
                        "(exit ${result}):\n${out}")
  endif()
  message(STATUS "ok   ${what}: refused, saying '${pattern}'")
endfunction()

# readme_block(<var> <language> <regex>): the one ```<language> block of README.md whose text matches <regex>.
file(READ "${POLLSTER_SOURCE_DIR}/README.md" _readme)
# A CMake list splits at `;` and not inside unbalanced `[`/`]`: both stand in for themselves until a block is picked.
string(REPLACE ";" "@SEMICOLON@" _readme "${_readme}")
string(REPLACE "[" "@LBRACKET@" _readme "${_readme}")
string(REPLACE "]" "@RBRACKET@" _readme "${_readme}")
string(REGEX MATCHALL "\n```[a-z]*\n([^`]|`[^`]|``[^`])*```" _readme_blocks "\n${_readme}")
function(readme_block out_var language regex)
  set(found "")
  foreach(block IN LISTS _readme_blocks)
    if(block MATCHES "^\n```${language}\n" AND block MATCHES "${regex}")
      string(REGEX REPLACE "^\n```${language}\n" "" block "${block}")
      string(REGEX REPLACE "```$" "" block "${block}")
      list(APPEND found "${block}")
    endif()
  endforeach()
  list(LENGTH found count)
  if(NOT count EQUAL 1)
    message(FATAL_ERROR "consumer check FAILED: README.md should have exactly one ```${language} block matching "
                        "'${regex}', it has ${count}")
  endif()
  string(REPLACE "@LBRACKET@" "[" found "${found}")
  string(REPLACE "@RBRACKET@" "]" found "${found}")
  string(REPLACE "@SEMICOLON@" ";" found "${found}")
  set(${out_var} "${found}" PARENT_SCOPE)
endfunction()
# readme_sh(<what> <block> <directory>): run a README shell block in <directory> with `sh -e` (every line must work).
function(readme_sh what block directory)
  string(REPLACE "/opt/pollster" "${WORK_DIR}/opt/pollster" script "${block}")
  string(MAKE_C_IDENTIFIER "${what}" name)
  file(WRITE "${WORK_DIR}/readme_${name}.sh" "cd '${directory}'\n${script}")
  run("README ${what} (${WORK_DIR}/readme_${name}.sh)" sh -e -x "${WORK_DIR}/readme_${name}.sh")
endfunction()
# readme_cmake_project(<directory> <block> [<epilogue>]): the harness, the README block as written, an epilogue.
function(readme_cmake_project directory block)
  file(MAKE_DIRECTORY "${directory}")
  file(WRITE "${directory}/CMakeLists.txt" "cmake_minimum_required(VERSION 3.14)\nproject(app LANGUAGES CXX)\n"
       "add_executable(app app.cpp)\n# README.md:\n${block}# harness:\n${ARGN}\n")
  configure_file("${_consumers}/main.cpp" "${directory}/app.cpp" COPYONLY)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# A copy of the checkout (what the README's `-S .` and third_party/pollster refer to), without build directories.
set(_copy "${WORK_DIR}/pollster")
file(COPY "${POLLSTER_SOURCE_DIR}/CMakeLists.txt" "${POLLSTER_SOURCE_DIR}/LICENSE" "${POLLSTER_SOURCE_DIR}/README.md"
     "${POLLSTER_SOURCE_DIR}/cmake" "${POLLSTER_SOURCE_DIR}/include" DESTINATION "${_copy}")

# 1. README install, with fmt (the default of a top-level build).
readme_block(_install sh "cmake --install")
readme_sh("install" "${_install}" "${_copy}")
set(_prefix "${WORK_DIR}/opt/pollster")
message(STATUS "ok   README install: ${_prefix}")

# 2. README find_package, both lines, against the prefix.
readme_block(_find_package cmake "find_package\\(pollster")
readme_cmake_project("${WORK_DIR}/readme-find-package" "${_find_package}"
                     "target_compile_definitions(app PRIVATE POLLSTER_CONSUMER_WITH_FMT)")
consumer("README find_package (pollster::pollster and pollster::fmt)" "${WORK_DIR}/readme-find-package"
         "${WORK_DIR}/readme-find-package/build" "-DCMAKE_PREFIX_PATH=${_prefix}")

# 3. README pkg-config.
readme_block(_pkg_config_block sh "pkg-config --cflags")
set(_pkg_app "${WORK_DIR}/readme-pkg-config")
file(MAKE_DIRECTORY "${_pkg_app}")
configure_file("${_consumers}/main.cpp" "${_pkg_app}/app.cpp" COPYONLY)
readme_sh("pkg-config" "${_pkg_config_block}" "${_pkg_app}")
run("README pkg-config: run a.out" "${_pkg_app}/a.out")
string(STRIP "${run_output}" _line)
message(STATUS "ok   README pkg-config: ${_line}")

# 4. Move the installed tree; everything below uses the moved tree.
set(_moved "${WORK_DIR}/moved-prefix")
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
foreach(_expected include/pollster/pollster.hpp include/pollster/version.hpp share/pkgconfig/pollster.pc
                  share/cmake/pollster/pollsterConfig.cmake share/cmake/pollster/pollsterConfigVersion.cmake
                  share/cmake/pollster/pollsterTargets.cmake share/cmake/pollster/pollsterFmtTargets.cmake
                  share/doc/pollster/copyright)
  if(NOT EXISTS "${_moved}/${_expected}")
    message(FATAL_ERROR "consumer check FAILED: the install has no ${_expected}; it has:\n${_installed}")
  endif()
endforeach()
if(EXISTS "${_moved}/include/pollster/single" OR EXISTS "${_moved}/lib")
  message(FATAL_ERROR "consumer check FAILED: the install should ship neither include/pollster/single/ nor lib/")
endif()
message(STATUS "ok   install: ${_installed_count} files, moved to ${_moved}, none names the original prefix")

consumer("find_package COMPONENTS fmt (moved prefix)" "${_consumers}/find_package" "${WORK_DIR}/find-package-fmt"
         "-DCMAKE_PREFIX_PATH=${_moved}" -DCONSUMER_WITH_FMT=ON "-DCONSUMER_EXPECT_VERSION=${_version}")
consumer("find_package (moved prefix)" "${_consumers}/find_package" "${WORK_DIR}/find-package"
         "-DCMAKE_PREFIX_PATH=${_moved}" "-DCONSUMER_EXPECT_VERSION=${_version}")
find_program(_pkg_config pkg-config)
if(NOT _pkg_config)
  message(FATAL_ERROR "consumer check FAILED: pkg-config not found (Debian: apt-get install pkg-config)")
endif()
set(ENV{PKG_CONFIG_PATH} "${_moved}/share/pkgconfig")
run("pkg-config --modversion" "${_pkg_config}" --modversion pollster)
string(STRIP "${run_output}" _pc_version)
run("pkg-config --cflags" "${_pkg_config}" --cflags pollster)
string(STRIP "${run_output}" _pc_cflags)
if(NOT _pc_version STREQUAL _version OR NOT _pc_cflags MATCHES "-I([^ ]+)")
  message(FATAL_ERROR "consumer check FAILED: pkg-config says version '${_pc_version}', cflags '${_pc_cflags}'")
endif()
get_filename_component(_pc_include "${CMAKE_MATCH_1}" REALPATH)
get_filename_component(_moved_include "${_moved}/include" REALPATH)
if(NOT _pc_include STREQUAL _moved_include)
  message(FATAL_ERROR "consumer check FAILED: pkg-config's include directory ${_pc_include} is not the moved "
                      "prefix's ${_moved_include}")
endif()
message(STATUS "ok   pkg-config (moved prefix): version ${_pc_version}, cflags '${_pc_cflags}'")

# 5. A consumer on a machine without fmt: fmt's CMake package is hidden from it (CMAKE_IGNORE_PATH).
# (Debian's merged /usr also shows it under /lib.)
file(GLOB _fmt_config_dirs LIST_DIRECTORIES true /usr/lib/cmake/fmt /usr/lib/*/cmake/fmt /lib/cmake/fmt
     /lib/*/cmake/fmt /usr/local/lib/cmake/fmt /usr/local/lib/*/cmake/fmt /usr/share/cmake/fmt /usr/local/share/cmake/fmt)
file(WRITE "${WORK_DIR}/hide-fmt.cmake" "set(CMAKE_IGNORE_PATH \"${_fmt_config_dirs}\" CACHE STRING \"\")\n")
set(_hide_fmt -C "${WORK_DIR}/hide-fmt.cmake")
consumer("find_package without fmt available" "${_consumers}/find_package" "${WORK_DIR}/find-package-no-fmt"
         ${_hide_fmt} "-DCMAKE_PREFIX_PATH=${_moved}")
refused("find_package COMPONENTS fmt without fmt available" "configuration file provided by \"fmt\""
        "${_consumers}/find_package" "${WORK_DIR}/find-package-no-fmt-fmt" ${_hide_fmt} "-DCMAKE_PREFIX_PATH=${_moved}"
        -DCONSUMER_WITH_FMT=ON)
consumer("find_package OPTIONAL_COMPONENTS fmt without fmt available" "${_consumers}/find_package"
         "${WORK_DIR}/find-package-optional-fmt" ${_hide_fmt} "-DCMAKE_PREFIX_PATH=${_moved}"
         -DCONSUMER_OPTIONAL_FMT=ON -DCONSUMER_EXPECT_FMT_FOUND=OFF)
consumer("find_package OPTIONAL_COMPONENTS fmt with fmt available" "${_consumers}/find_package"
         "${WORK_DIR}/find-package-optional-fmt-found" "-DCMAKE_PREFIX_PATH=${_moved}" -DCONSUMER_OPTIONAL_FMT=ON
         -DCONSUMER_EXPECT_FMT_FOUND=ON)

# 6. An install without fmt.
set(_nofmt "${WORK_DIR}/prefix-without-fmt")
run("install without fmt: configure" "${CMAKE_COMMAND}" -S "${_copy}" -B "${WORK_DIR}/pollster-nofmt"
    ${_common_args} -DPOLLSTER_BUILD_TESTS=OFF -DPOLLSTER_BUILD_EXAMPLES=OFF -DPOLLSTER_BUILD_BENCHMARKS=OFF
    -DPOLLSTER_INSTALL=ON -DPOLLSTER_WITH_FMT=OFF "-DCMAKE_INSTALL_PREFIX=${_nofmt}")
run("install without fmt: install" "${CMAKE_COMMAND}" --install "${WORK_DIR}/pollster-nofmt")
consumer("find_package, an install without fmt" "${_consumers}/find_package" "${WORK_DIR}/find-package-nofmt"
         "-DCMAKE_PREFIX_PATH=${_nofmt}")
refused("find_package COMPONENTS fmt, an install without fmt" "built without its fmt integration"
        "${_consumers}/find_package" "${WORK_DIR}/find-package-nofmt-fmt" "-DCMAKE_PREFIX_PATH=${_nofmt}"
        -DCONSUMER_WITH_FMT=ON)

# 7. add_subdirectory: a parent with its own build-tree export and a downstream user of it; the README's block.
consumer("add_subdirectory parent with export()" "${_consumers}/add_subdirectory" "${WORK_DIR}/parent"
         "-DPOLLSTER_SOURCE_DIR=${_copy}")
consumer("downstream of the parent's build-tree export" "${_consumers}/add_subdirectory/downstream"
         "${WORK_DIR}/downstream" "-Dparent_DIR=${WORK_DIR}/parent" "-Dpollster_DIR=${WORK_DIR}/parent/pollster")
readme_block(_add_subdirectory cmake "add_subdirectory\\(")
readme_cmake_project("${WORK_DIR}/readme-add-subdirectory" "${_add_subdirectory}")
file(MAKE_DIRECTORY "${WORK_DIR}/readme-add-subdirectory/third_party")
file(CREATE_LINK "${_copy}" "${WORK_DIR}/readme-add-subdirectory/third_party/pollster" SYMBOLIC)
consumer("README add_subdirectory" "${WORK_DIR}/readme-add-subdirectory" "${WORK_DIR}/readme-add-subdirectory/build")

# 8. README FetchContent, exactly as written, from this clone.
readme_block(_fetchcontent cmake "FetchContent_Declare")
if(NOT _fetchcontent MATCHES "GIT_REPOSITORY[ ]+([^ \n]+)")
  message(FATAL_ERROR "consumer check FAILED: the README's FetchContent block has no GIT_REPOSITORY")
endif()
set(_repository "${CMAKE_MATCH_1}")
if(NOT _fetchcontent MATCHES "GIT_TAG[ ]+([0-9a-f]+)[ ]*#[ ]*([0-9]+\\.[0-9]+\\.[0-9]+)\n")
  message(FATAL_ERROR "consumer check FAILED: the README's FetchContent block should pin `GIT_TAG <commit> # <version>` "
                      "(cmake/release.cmake writes it)")
endif()
set(_pinned "${CMAKE_MATCH_1}")
set(_pinned_version "${CMAKE_MATCH_2}")
if(NOT EXISTS "${POLLSTER_SOURCE_DIR}/.git")
  message(STATUS "skip README FetchContent: ${POLLSTER_SOURCE_DIR} is not a git clone")
else()
  execute_process(COMMAND git -C "${POLLSTER_SOURCE_DIR}" show "${_pinned}:include/pollster/version.hpp"
                  RESULT_VARIABLE _result OUTPUT_VARIABLE _pinned_header ERROR_VARIABLE _error)
  execute_process(COMMAND git -C "${POLLSTER_SOURCE_DIR}" rev-parse --is-shallow-repository
                  OUTPUT_VARIABLE _shallow OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT _result EQUAL 0 AND _shallow STREQUAL "true")
    # A shallow clone (a CI's `--depth 1`) lacks the pinned release commit: nothing to check it against here.
    message(STATUS "skip README FetchContent: ${_pinned} is not in this shallow clone")
  elseif(NOT _result EQUAL 0)
    message(FATAL_ERROR "consumer check FAILED: the README's GIT_TAG ${_pinned} is not a commit of this clone "
                        "(a rewritten release commit: run cmake/release.cmake again):\n${_error}")
  endif()
endif()
if(EXISTS "${POLLSTER_SOURCE_DIR}/.git" AND _result EQUAL 0)
  set(_header_version "")
  foreach(_part MAJOR MINOR PATCH)
    string(REGEX MATCH "POLLSTER_VERSION_${_part} ([0-9]+)" _match "${_pinned_header}")
    list(APPEND _header_version "${CMAKE_MATCH_1}")
  endforeach()
  list(JOIN _header_version "." _header_version)
  if(NOT _header_version STREQUAL _pinned_version)
    message(FATAL_ERROR "consumer check FAILED: the README pins ${_pinned} as ${_pinned_version}, but its "
                        "version.hpp says ${_header_version}")
  endif()
  readme_cmake_project("${WORK_DIR}/readme-fetchcontent" "${_fetchcontent}")
  # git, and only git, reads the README's URL as this clone.
  set(ENV{GIT_CONFIG_COUNT} 1)
  set(ENV{GIT_CONFIG_KEY_0} "url.${POLLSTER_SOURCE_DIR}.insteadOf")
  set(ENV{GIT_CONFIG_VALUE_0} "${_repository}")
  consumer("README FetchContent (${_repository} at ${_pinned}, pollster ${_pinned_version})"
           "${WORK_DIR}/readme-fetchcontent" "${WORK_DIR}/readme-fetchcontent/build")
  unset(ENV{GIT_CONFIG_COUNT})
  unset(ENV{GIT_CONFIG_KEY_0})
  unset(ENV{GIT_CONFIG_VALUE_0})
endif()

message(STATUS "consumer checks: all passed (pollster ${_version})")
