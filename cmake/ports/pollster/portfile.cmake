# Header-only: nothing is compiled, so one (release) configuration is enough.
set(VCPKG_BUILD_TYPE release)

vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO pollster-cpp/pollster
    REF "v${VERSION}"
    # Placeholder until the v${VERSION} tag is published: vcpkg prints the archive's real SHA512 on the first
    # install attempt; put it here.
    SHA512 0
    HEAD_REF main
)

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
    FEATURES
        fmt POLLSTER_WITH_FMT
)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        # No curl feature yet: the libcurl transport (pollster::curl) is not packaged, so libcurl is no dependency.
        -DPOLLSTER_WITH_CURL=OFF
        -DPOLLSTER_BUILD_TESTS=OFF
        -DPOLLSTER_BUILD_EXAMPLES=OFF
        -DPOLLSTER_BUILD_BENCHMARKS=OFF
        -DPOLLSTER_INSTALL=ON
        -DPOLLSTER_INSTALL_CMAKEDIR=share/pollster
)

vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME pollster)
vcpkg_fixup_pkgconfig()

# A header-only port installs no libraries; drop the directories vcpkg's post-build checks reject when empty.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug" "${CURRENT_PACKAGES_DIR}/lib")

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
