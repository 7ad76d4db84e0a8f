# pollster from a release archive on GitHub. cmake/release.cmake writes REF (the release's commit, which the tag
# v<version> names too: a commit is served whether or not tags reach the host) and SHA512 (of the archive GitHub
# serves for it, computed locally as `git archive | gzip -n`). cmake/ports-local/pollster/ builds the checkout instead.
vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO pollster-cpp/pollster
    REF 49a85ea1b01e3910fedeb52b04f515ca78074ef5
    SHA512 5ded1aa13e3ab5e2c8a4db74134637c51d707a9e326c8e4201261c21a22625c0545c28d1fd0746894bdce3a84a25c595f1fe09f8ff10a99640ebf7be050f1ba0
    HEAD_REF main
)

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
