# The release procedure: name a commit as pollster <VERSION> everywhere a user pins it.
#
#   cmake -DVERSION=0.2.0 [-DCOMMIT=HEAD] [-DTAG=ON] -P cmake/release.cmake
#
# Before: include/pollster/version.hpp says VERSION in COMMIT (bump it in an ordinary commit first), and COMMIT is
# HEAD or one of its ancestors. The script then
#   1. creates the annotated tag v<VERSION> on COMMIT (TAG=OFF skips it; an existing tag must already name COMMIT);
#   2. writes the GitHub archive of COMMIT exactly as GitHub serves it (cmake/github_archive.cmake) and takes its
#      SHA512;
#   3. writes REF (COMMIT's hash) and SHA512 into cmake/ports/pollster/portfile.cmake, the version into both ports'
#      vcpkg.json, and COMMIT's hash into the README's FetchContent line (GIT_TAG) and major.minor into its
#      find_package line.
# It commits nothing and pushes nothing: it prints the two commands that do, after you have read `git diff`.
#
# Why a commit and not the tag: GitHub serves a commit that is on a published branch whether or not tags are pushed,
# so the port and the FetchContent line work in both cases; the tag is for people (`git describe`, release pages).
# CI (cmake/vcpkg_offline_check.cmake and cmake/check_consumers.cmake) recomputes the SHA512 and runs the README's
# FetchContent lines against a clone, so a wrong hash or a rewritten commit fails there.
cmake_minimum_required(VERSION 3.19)
include("${CMAKE_CURRENT_LIST_DIR}/github_archive.cmake")

get_filename_component(_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(NOT DEFINED VERSION OR NOT VERSION MATCHES "^([0-9]+)\\.([0-9]+)\\.([0-9]+)$")
  message(FATAL_ERROR "release: pass -DVERSION=<major>.<minor>.<patch>, got '${VERSION}'")
endif()
set(_major_minor "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")
if(NOT DEFINED COMMIT)
  set(COMMIT HEAD)
endif()
if(NOT DEFINED TAG)
  set(TAG ON)
endif()

find_program(_git git REQUIRED)
function(_git out_var)
  execute_process(COMMAND "${_git}" -C "${_root}" ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out
                  ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT result EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "release: git ${command} failed:\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

# 1. The commit: a full hash, reachable from HEAD, whose version.hpp says VERSION.
_git(_hash rev-parse --verify "${COMMIT}^{commit}")
execute_process(COMMAND "${_git}" -C "${_root}" merge-base --is-ancestor "${_hash}" HEAD RESULT_VARIABLE _ancestor)
if(NOT _ancestor EQUAL 0)
  message(FATAL_ERROR "release: ${COMMIT} (${_hash}) is not HEAD or an ancestor of it")
endif()
_git(_version_hpp show "${_hash}:include/pollster/version.hpp")
set(_header_version "")
foreach(_part MAJOR MINOR PATCH)
  if(NOT _version_hpp MATCHES "\n#define POLLSTER_VERSION_${_part} ([0-9]+)\n")
    message(FATAL_ERROR "release: no POLLSTER_VERSION_${_part} line in ${_hash}:include/pollster/version.hpp")
  endif()
  list(APPEND _header_version "${CMAKE_MATCH_1}")
endforeach()
list(JOIN _header_version "." _header_version)
if(NOT _header_version STREQUAL VERSION)
  message(FATAL_ERROR "release: include/pollster/version.hpp in ${_hash} says ${_header_version}, not ${VERSION}; "
                      "bump it (and commit) first")
endif()

# The files this script rewrites must have no uncommitted changes, so that nothing of yours is overwritten.
set(_port "${_root}/cmake/ports/pollster/portfile.cmake")
set(_manifests "${_root}/cmake/ports/pollster/vcpkg.json" "${_root}/cmake/ports-local/pollster/vcpkg.json")
set(_readme "${_root}/README.md")
_git(_dirty status --porcelain -- "${_port}" ${_manifests} "${_readme}")
if(_dirty)
  message(FATAL_ERROR "release: commit or stash these first:\n${_dirty}")
endif()

# 2. The tag.
set(_tag "v${VERSION}")
execute_process(COMMAND "${_git}" -C "${_root}" rev-parse -q --verify "refs/tags/${_tag}^{commit}"
                RESULT_VARIABLE _tag_missing OUTPUT_VARIABLE _tagged OUTPUT_STRIP_TRAILING_WHITESPACE)
if(_tag_missing EQUAL 0)
  if(NOT _tagged STREQUAL _hash)
    message(FATAL_ERROR "release: the tag ${_tag} already names ${_tagged}, not ${_hash}")
  endif()
  message(STATUS "release: the tag ${_tag} already names ${_hash}")
elseif(TAG)
  _git(_ignored tag -a "${_tag}" -m "pollster ${VERSION}" "${_hash}")
  message(STATUS "release: tagged ${_hash} as ${_tag}")
else()
  message(STATUS "release: TAG=OFF, no tag created")
endif()

# 3. The archive GitHub serves for the commit, and its hash.
file(READ "${_port}" _portfile)
if(NOT _portfile MATCHES "\n[ ]*REPO ([^/\n ]+)/([^/\n ]+)\n")
  message(FATAL_ERROR "release: no `REPO owner/name` line in ${_port}")
endif()
set(_repo_name "${CMAKE_MATCH_2}")
set(_archive "${_root}/build-release/${_repo_name}-${_hash}.tar.gz")
pollster_github_archive(REPO_DIR "${_root}" REF "${_hash}" PREFIX "${_repo_name}-${_hash}" OUTPUT "${_archive}"
                        SHA512 _sha512)
message(STATUS "release: ${_archive}\n   SHA512 ${_sha512}")

# 4. The port, the manifests and the README.
function(_replace_once file_var regex replacement what)
  string(REGEX MATCHALL "${regex}" matches "${${file_var}}")
  list(LENGTH matches count)
  if(NOT count EQUAL 1)
    message(FATAL_ERROR "release: expected exactly one ${what}, found ${count}")
  endif()
  string(REGEX REPLACE "${regex}" "${replacement}" replaced "${${file_var}}")
  set(${file_var} "${replaced}" PARENT_SCOPE)
endfunction()

_replace_once(_portfile "\n    REF [^\n]*" "\n    REF ${_hash}" "REF line in the portfile")
_replace_once(_portfile "\n    SHA512 [^\n]*" "\n    SHA512 ${_sha512}" "SHA512 line in the portfile")
file(WRITE "${_port}" "${_portfile}")
foreach(_manifest IN LISTS _manifests)
  file(READ "${_manifest}" _json)
  _replace_once(_json "\n  \"version\": \"[^\"]*\"" "\n  \"version\": \"${VERSION}\"" "version in ${_manifest}")
  file(WRITE "${_manifest}" "${_json}")
endforeach()
file(READ "${_readme}" _text)
_replace_once(_text "\n([ ]*GIT_TAG[ ]+)[^\n]*" "\n\\1${_hash} # ${VERSION}" "GIT_TAG line in README.md")
_replace_once(_text "find_package\\(pollster [0-9]+\\.[0-9]+ " "find_package(pollster ${_major_minor} "
              "versioned find_package(pollster ...) in README.md")
file(WRITE "${_readme}" "${_text}")

execute_process(COMMAND "${_git}" -C "${_root}" rev-parse -q --verify "refs/tags/${_tag}" RESULT_VARIABLE _no_tag
                OUTPUT_QUIET)
set(_push "git push origin HEAD")
if(_no_tag EQUAL 0)
  string(APPEND _push " ${_tag}")
endif()
message(STATUS "release: pollster ${VERSION} is ${_hash}. Now read `git diff`, then:\n"
               "  git commit -am \"pollster ${VERSION}: the vcpkg port and the README's FetchContent line name ${_hash}\"\n"
               "  ${_push}")
