# pollster_github_archive(REPO_DIR <git checkout> REF <commit-ish> PREFIX <top directory> OUTPUT <file.tar.gz>
#                         [SHA512 <var>])
#
# Writes the .tar.gz that GitHub serves for <REF> (https://github.com/<owner>/<name>/archive/<REF>.tar.gz) and
# stores its SHA512 in <var>: `git archive --format=tar --prefix=<PREFIX>/ <REF> | gzip -n`. GitHub names the top
# directory <name>-<REF> for a commit and <name>-<tag without its leading v> for a tag.
#
# Why this is byte-identical to GitHub's archive, as far as was checked (cmake/README.md, "Release archives"): the
# SHA512s that vcpkg's ports record for GitHub archives were reproduced this way with git 2.39 and gzip 1.12 for 13
# Catch2 tags, 23 fmt tags, 5 nlohmann/json tags and 10 HowardHinnant/date commits, none differing. Git's own gzip
# (`git archive --format=tar.gz`) gives other bytes, so gzip -n it is. The archive of a tag and of its commit are
# the same bytes (the tar header records the commit). export-ignore/export-subst attributes would apply the same
# way; pollster has none.
include_guard(GLOBAL)

function(pollster_github_archive)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "REPO_DIR;REF;PREFIX;OUTPUT;SHA512" "")
  foreach(required REPO_DIR REF PREFIX OUTPUT)
    if(NOT arg_${required})
      message(FATAL_ERROR "pollster_github_archive: ${required} is required")
    endif()
  endforeach()
  find_program(POLLSTER_GIT git)
  find_program(POLLSTER_GZIP gzip)
  if(NOT POLLSTER_GIT OR NOT POLLSTER_GZIP)
    message(FATAL_ERROR "pollster_github_archive needs git and gzip on the PATH")
  endif()
  get_filename_component(output_dir "${arg_OUTPUT}" DIRECTORY)
  file(MAKE_DIRECTORY "${output_dir}")
  execute_process(
    COMMAND "${POLLSTER_GIT}" -C "${arg_REPO_DIR}" archive --format=tar "--prefix=${arg_PREFIX}/" "${arg_REF}"
    COMMAND "${POLLSTER_GZIP}" -n
    OUTPUT_FILE "${arg_OUTPUT}"
    RESULTS_VARIABLE results
    ERROR_VARIABLE errors)
  foreach(result IN LISTS results)
    if(NOT result EQUAL 0)
      file(REMOVE "${arg_OUTPUT}")
      message(FATAL_ERROR "pollster_github_archive: `git archive ${arg_REF} | gzip -n` failed (${results}):\n${errors}")
    endif()
  endforeach()
  if(arg_SHA512)
    file(SHA512 "${arg_OUTPUT}" sha512)
    set(${arg_SHA512} "${sha512}" PARENT_SCOPE)
  endif()
endfunction()
