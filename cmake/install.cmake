# Install rules and exports for pollster (included from the top-level CMakeLists.txt when POLLSTER_INSTALL is on).
include(CMakePackageConfigHelpers)

# vcpkg wants share/pollster; a plain install uses the conventional lib/cmake/pollster.
set(POLLSTER_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/pollster" CACHE STRING
    "Where pollsterConfig.cmake is installed, relative to the prefix")
set(POLLSTER_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_DATADIR}/pkgconfig" CACHE STRING
    "Where pollster.pc is installed, relative to the prefix (a header-only library is architecture independent)")

install(DIRECTORY include/pollster DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        PATTERN "single" EXCLUDE)

set(_pollster_export_targets pollster)
if(TARGET pollster_fmt)
  list(APPEND _pollster_export_targets pollster_fmt)
endif()
install(TARGETS ${_pollster_export_targets} EXPORT pollsterTargets)
install(EXPORT pollsterTargets NAMESPACE pollster:: DESTINATION "${POLLSTER_INSTALL_CMAKEDIR}")

# A parent project that vendors pollster with add_subdirectory can export its own targets against this file.
export(EXPORT pollsterTargets NAMESPACE pollster:: FILE "${PROJECT_BINARY_DIR}/pollsterTargets.cmake")

set(POLLSTER_CONFIG_WITH_FMT ${POLLSTER_WITH_FMT})
configure_package_config_file(cmake/pollsterConfig.cmake.in "${PROJECT_BINARY_DIR}/pollsterConfig.cmake"
  INSTALL_DESTINATION "${POLLSTER_INSTALL_CMAKEDIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/pollsterConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES "${PROJECT_BINARY_DIR}/pollsterConfig.cmake" "${PROJECT_BINARY_DIR}/pollsterConfigVersion.cmake"
        DESTINATION "${POLLSTER_INSTALL_CMAKEDIR}")

configure_file(cmake/pollster.pc.in "${PROJECT_BINARY_DIR}/pollster.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/pollster.pc" DESTINATION "${POLLSTER_INSTALL_PKGCONFIGDIR}")
