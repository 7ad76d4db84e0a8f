# The imported target hiredis::hiredis, from whatever hiredis is installed: upstream's CMake package (hiredis 1.x,
# vcpkg) when there is one, else the header and the library found directly (Debian's libhiredis-dev 0.14 installs
# only a variables-only HiredisConfig.cmake and a .pc). Sets POLLSTER_HIREDIS_FOUND. Used by pollster's own build for
# pollster::redis, and installed beside pollsterConfig.cmake, which includes it for the redis component.
if(NOT TARGET hiredis::hiredis)
  find_package(hiredis CONFIG QUIET)
endif()
if(NOT TARGET hiredis::hiredis)
  find_path(POLLSTER_HIREDIS_INCLUDE_DIR hiredis/hiredis.h)
  find_library(POLLSTER_HIREDIS_LIBRARY NAMES hiredis)
  if(POLLSTER_HIREDIS_INCLUDE_DIR AND POLLSTER_HIREDIS_LIBRARY)
    add_library(hiredis::hiredis UNKNOWN IMPORTED)
    set_target_properties(hiredis::hiredis PROPERTIES
      IMPORTED_LOCATION "${POLLSTER_HIREDIS_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${POLLSTER_HIREDIS_INCLUDE_DIR}")
  endif()
endif()
if(TARGET hiredis::hiredis)
  set(POLLSTER_HIREDIS_FOUND ON)
else()
  set(POLLSTER_HIREDIS_FOUND OFF)
endif()
