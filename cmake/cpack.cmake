# CPack for a top-level pollster build (included by cmake/install.cmake when POLLSTER_INSTALL is on):
#
#   cmake -S . -B build-deb -DPOLLSTER_BUILD_TESTS=OFF -DPOLLSTER_BUILD_EXAMPLES=OFF
#   cpack -G DEB --config build-deb/CPackConfig.cmake -B build-deb/packages
#
# gives libpollster-dev_<version>_all.deb: the headers in /usr/include/pollster, the CMake package in
# /usr/share/cmake/pollster, pollster.pc in /usr/share/pkgconfig and the licence in /usr/share/doc/pollster. Nothing
# in it depends on the architecture, hence "Architecture: all". cmake/check_deb.cmake (CI) builds it and checks its
# control fields and exact file list, then builds consumers against the unpacked package.
set(POLLSTER_PACKAGE_CONTACT "The pollster developers <${PROJECT_HOMEPAGE_URL}>" CACHE STRING
    "The Maintainer of the .deb (Debian wants 'Name <email>'; set yours when you publish the package)")

set(CPACK_PACKAGE_NAME pollster)
set(CPACK_PACKAGE_VENDOR "The pollster developers")
set(CPACK_PACKAGE_CONTACT "${POLLSTER_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "header-only C++17 polling with backoff")
string(CONCAT CPACK_PACKAGE_DESCRIPTION "${PROJECT_DESCRIPTION}. The headers, the CMake package "
       "(pollster::pollster; pollster::fmt for the fmt formatters; pollster::curl for the libcurl transport) and "
       "pollster.pc.")
set(CPACK_RESOURCE_FILE_LICENSE "${PROJECT_SOURCE_DIR}/LICENSE")
set(CPACK_GENERATOR TGZ)
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build[^/]*/" "/\\\\.cache/")

# Debian's name for a development package; a header-only package is the same on every architecture.
set(CPACK_DEBIAN_PACKAGE_NAME libpollster-dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# pollster::fmt needs fmt, pollster::curl libcurl and pollster::redis hiredis, and only those who ask for the component
# look for it.
set(_pollster_suggests "")
if(POLLSTER_CONFIG_WITH_FMT)
  list(APPEND _pollster_suggests libfmt-dev)
endif()
if(POLLSTER_CONFIG_WITH_CURL)
  list(APPEND _pollster_suggests "libcurl4-openssl-dev | libcurl-dev")
endif()
if(POLLSTER_CONFIG_WITH_REDIS)
  list(APPEND _pollster_suggests libhiredis-dev)
endif()
list(JOIN _pollster_suggests ", " CPACK_DEBIAN_PACKAGE_SUGGESTS)

include(CPack)
