# pollster from the checkout this port lives in (cmake/ports-local/pollster/ -> the checkout's root), offline: for
# users who vendor pollster and want it in their vcpkg tree. vcpkg's binary cache keys on this port's files, not on
# the checkout: after the checkout changes, `vcpkg remove pollster` before installing again (see cmake/README.md).
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

# Everything below is the same in cmake/ports-local/pollster/portfile.cmake (CI checks that).
# Header-only: nothing is compiled, so one (release) configuration is enough.
set(VCPKG_BUILD_TYPE release)

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
    FEATURES
        fmt POLLSTER_WITH_FMT
)

# vcpkg's layout: the CMake package in share/pollster; pollster.pc (it has a Libs: line) in lib/pkgconfig, the only
# place vcpkg's post-build checks allow it; the licence in share/pollster/copyright.
vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        -DPOLLSTER_BUILD_TESTS=OFF
        -DPOLLSTER_BUILD_EXAMPLES=OFF
        -DPOLLSTER_BUILD_BENCHMARKS=OFF
        # No port feature brings libcurl or hiredis: pollster::curl and pollster::redis stay out of the package.
        -DPOLLSTER_WITH_CURL=OFF
        -DPOLLSTER_WITH_REDIS=OFF
        -DPOLLSTER_INSTALL=ON
        -DPOLLSTER_INSTALL_CMAKEDIR=share/pollster
        -DPOLLSTER_INSTALL_PKGCONFIGDIR=lib/pkgconfig
        -DPOLLSTER_INSTALL_DOCDIR=share/pollster
    # Releases before pollster::curl and pollster::redis existed do not read these two.
    MAYBE_UNUSED_VARIABLES
        POLLSTER_WITH_CURL
        POLLSTER_WITH_REDIS
)

vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME pollster)
vcpkg_fixup_pkgconfig()

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
