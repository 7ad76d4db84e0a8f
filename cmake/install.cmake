# Exports and install rules for pollster, included from the top-level CMakeLists.txt. cmake/README.md says where
# everything goes and why.
#
# The build-tree export and the build-tree pollsterConfig.cmake are always written, so a parent that vendors pollster
# (add_subdirectory, FetchContent) can export its own targets that link pollster::pollster, and a downstream
# project can find_package(pollster) straight from a pollster build directory. The install rules (and CPack) are
# generated only when POLLSTER_INSTALL is on.
include(CMakePackageConfigHelpers)

# pollster is header-only, so nothing it installs depends on the architecture: the CMake package, the .pc and the
# licence go to the data directory (share/), never to a multiarch lib/<triplet>/. The vcpkg port overrides the first
# two (share/pollster and lib/pkgconfig, as vcpkg's post-build checks want).
set(POLLSTER_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/pollster" CACHE STRING
    "Where pollsterConfig.cmake is installed, relative to the prefix")
set(POLLSTER_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_DATADIR}/pkgconfig" CACHE STRING
    "Where pollster.pc is installed, relative to the prefix")
set(POLLSTER_INSTALL_DOCDIR "${CMAKE_INSTALL_DATADIR}/doc/pollster" CACHE STRING
    "Where the licence is installed (as 'copyright'), relative to the prefix")
foreach(_pollster_dir POLLSTER_INSTALL_CMAKEDIR POLLSTER_INSTALL_PKGCONFIGDIR POLLSTER_INSTALL_DOCDIR)
  if(IS_ABSOLUTE "${${_pollster_dir}}")
    message(FATAL_ERROR "pollster: ${_pollster_dir} must be relative to the install prefix so that the package "
                        "stays relocatable, got '${${_pollster_dir}}'")
  endif()
endforeach()

# Two export sets: pollsterTargets.cmake (pollster::pollster) and pollsterFmtTargets.cmake (pollster::fmt). The
# config includes the second only when the fmt component is asked for, so fmt is looked for only then.
set(POLLSTER_CONFIG_WITH_FMT OFF)
if(TARGET pollster_fmt)
  set(POLLSTER_CONFIG_WITH_FMT ON)
endif()

# Build tree: export(TARGETS) needs no install rules, so it also works for a parent that vendors pollster with
# POLLSTER_INSTALL off (the default there).
export(TARGETS pollster NAMESPACE pollster:: FILE "${PROJECT_BINARY_DIR}/pollsterTargets.cmake")
if(POLLSTER_CONFIG_WITH_FMT)
  export(TARGETS pollster_fmt NAMESPACE pollster:: FILE "${PROJECT_BINARY_DIR}/pollsterFmtTargets.cmake")
endif()

configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/pollsterConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/pollsterConfig.cmake"
  INSTALL_DESTINATION "${POLLSTER_INSTALL_CMAKEDIR}")
# 0.x: a new minor version may break the API, so only the same major.minor is compatible. ARCH_INDEPENDENT: a
# header-only package installed by a 64-bit build serves a 32-bit consumer too.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/pollsterConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)

if(NOT POLLSTER_INSTALL)
  return()
endif()

# The single header (include/pollster/single/) is for vendoring by copying; an install ships the headers proper.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/pollster" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        PATTERN "single" EXCLUDE)

install(TARGETS pollster EXPORT pollsterTargets)
install(EXPORT pollsterTargets NAMESPACE pollster:: DESTINATION "${POLLSTER_INSTALL_CMAKEDIR}")
if(POLLSTER_CONFIG_WITH_FMT)
  install(TARGETS pollster_fmt EXPORT pollsterFmtTargets)
  install(EXPORT pollsterFmtTargets NAMESPACE pollster:: DESTINATION "${POLLSTER_INSTALL_CMAKEDIR}")
endif()
install(FILES "${PROJECT_BINARY_DIR}/pollsterConfig.cmake" "${PROJECT_BINARY_DIR}/pollsterConfigVersion.cmake"
        DESTINATION "${POLLSTER_INSTALL_CMAKEDIR}")

# pollster.pc finds its prefix from its own location (${pcfiledir}), so `cmake --install --prefix` and moving the
# installed tree both keep it right. The climb from the .pc directory to the prefix follows the chosen directory.
file(RELATIVE_PATH POLLSTER_PC_PREFIX_FROM_PCFILEDIR "/prefix/${POLLSTER_INSTALL_PKGCONFIGDIR}" "/prefix")
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(POLLSTER_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(POLLSTER_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file("${PROJECT_SOURCE_DIR}/cmake/pollster.pc.in" "${PROJECT_BINARY_DIR}/pollster.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/pollster.pc" DESTINATION "${POLLSTER_INSTALL_PKGCONFIGDIR}")

# The licence, under the name Debian and vcpkg both use.
install(FILES "${PROJECT_SOURCE_DIR}/LICENSE" DESTINATION "${POLLSTER_INSTALL_DOCDIR}" RENAME copyright)

# `cpack -G DEB` (and TGZ) from a top-level build directory; a parent that vendors pollster keeps its own CPack.
if(PROJECT_SOURCE_DIR STREQUAL CMAKE_SOURCE_DIR)
  include("${PROJECT_SOURCE_DIR}/cmake/cpack.cmake")
endif()
