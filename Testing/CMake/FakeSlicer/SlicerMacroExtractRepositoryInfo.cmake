# Stand-in for Slicer's SlicerMacroExtractRepositoryInfo.cmake (git part; see README.md).
#
# Sets <prefix>_WC_TYPE (git or local), _WC_REVISION, _WC_URL and _WC_ROOT. As in Slicer, the URL
# is `git config --get remote.origin.url`: empty in a git checkout with no "origin", which the
# description step then refuses (the Extensions Index always builds a clone, which has one).

macro(SlicerMacroExtractRepositoryInfo)
  cmake_parse_arguments(MY "" "VAR_PREFIX;SOURCE_DIR" "" ${ARGN})
  if("${MY_VAR_PREFIX}" STREQUAL "")
    message(FATAL_ERROR "error: VAR_PREFIX should be specified !")
  endif()
  if("${MY_SOURCE_DIR}" STREQUAL "")
    set(MY_SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()

  set(${MY_VAR_PREFIX}_WC_TYPE local)
  set(${MY_VAR_PREFIX}_WC_URL "NA")
  set(${MY_VAR_PREFIX}_WC_ROOT "NA")
  set(${MY_VAR_PREFIX}_WC_REVISION 0)
  set(${MY_VAR_PREFIX}_WC_LAST_CHANGED_DATE "")

  find_package(Git REQUIRED)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-list -n 1 HEAD
    WORKING_DIRECTORY ${MY_SOURCE_DIR}
    RESULT_VARIABLE _git_result OUTPUT_VARIABLE _git_revision ERROR_QUIET
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(_git_result EQUAL 0)
    set(${MY_VAR_PREFIX}_WC_TYPE git)
    set(${MY_VAR_PREFIX}_WC_REVISION ${_git_revision})
    execute_process(COMMAND ${GIT_EXECUTABLE} config --get remote.origin.url
      WORKING_DIRECTORY ${MY_SOURCE_DIR}
      OUTPUT_VARIABLE ${MY_VAR_PREFIX}_WC_URL ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    set(${MY_VAR_PREFIX}_WC_ROOT ${${MY_VAR_PREFIX}_WC_URL})
    execute_process(COMMAND ${GIT_EXECUTABLE} log -1 --format=%ci HEAD
      WORKING_DIRECTORY ${MY_SOURCE_DIR}
      OUTPUT_VARIABLE ${MY_VAR_PREFIX}_WC_LAST_CHANGED_DATE ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  endif()
endmacro()
