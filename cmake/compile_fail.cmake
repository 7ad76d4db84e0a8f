# A compile-failure test (in the manner of fmt's test/compile-error-test): SOURCE must fail to compile with a
# diagnostic that matches the regular expression on its first line ("// expect: ..."), and must compile when
# POLLSTER_COMPILE_FAIL_CONTROL is defined (so that it fails for the reason it names, not another).
#   cmake -DCXX=... -DSTD=17 -DINCLUDE=.../include -DSOURCE=... -P cmake/compile_fail.cmake
file(STRINGS "${SOURCE}" _first LIMIT_COUNT 1)
string(REGEX REPLACE "^// expect: " "" _expect "${_first}")
execute_process(COMMAND "${CXX}" -std=c++${STD} -fsyntax-only -I "${INCLUDE}" "${SOURCE}"
                RESULT_VARIABLE _failed OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
if(_failed EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must fail with: ${_expect}")
endif()
if(NOT _err MATCHES "${_expect}")
  message(FATAL_ERROR "${SOURCE} failed without the expected message (${_expect}):\n${_err}")
endif()
string(REGEX MATCHALL "error:" _errors "${_err}")
list(LENGTH _errors _count)
execute_process(COMMAND "${CXX}" -std=c++${STD} -fsyntax-only -DPOLLSTER_COMPILE_FAIL_CONTROL -I "${INCLUDE}"
                        "${SOURCE}" RESULT_VARIABLE _control ERROR_VARIABLE _control_err)
if(NOT _control EQUAL 0)
  message(FATAL_ERROR "${SOURCE}: the control (POLLSTER_COMPILE_FAIL_CONTROL) must compile:\n${_control_err}")
endif()
message(STATUS "${SOURCE}: fails as expected (${_count} error line(s)); the control compiles")
