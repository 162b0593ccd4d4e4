# Stand-in for Slicer's SlicerMacroPythonTesting.cmake (see README.md beside this file).

# The test runs slicer.testing.runUnitTest([binary dir, script dir], <script name>), which imports
# the script by name from either folder. Slicer only finds a missing script when the test runs;
# here the configure stops, so a wrong path in a CMakeLists.txt shows without Slicer.
function(_slicer_python_test_script_dir script out_var)
  if(IS_ABSOLUTE "${script}")
    set(candidates "${script}")
  else()
    set(candidates "${CMAKE_CURRENT_SOURCE_DIR}/${script}" "${CMAKE_CURRENT_BINARY_DIR}/${script}")
  endif()
  foreach(candidate IN LISTS candidates)
    if(EXISTS "${candidate}" AND NOT IS_DIRECTORY "${candidate}")
      get_filename_component(dir "${candidate}" DIRECTORY)
      set(${out_var} "${dir}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "Python test script '${script}' does not exist (looked for: ${candidates}).")
endfunction()

macro(slicer_add_python_test)
  cmake_parse_arguments(MY "" "TESTNAME_PREFIX;SCRIPT" "SLICER_ARGS;SCRIPT_ARGS" ${ARGN})
  _slicer_python_test_script_dir("${MY_SCRIPT}" _script_dir)
  get_filename_component(_test_name "${MY_SCRIPT}" NAME_WE)
  get_filename_component(_script_name "${MY_SCRIPT}" NAME)
  add_test(NAME py_${MY_TESTNAME_PREFIX}${_test_name}
    COMMAND ${Slicer_LAUNCHER_EXECUTABLE} --no-splash --testing ${MY_SLICER_ARGS}
      --python-script ${_script_dir}/${_script_name} ${MY_SCRIPT_ARGS})
  set_property(TEST py_${MY_TESTNAME_PREFIX}${_test_name} PROPERTY RUN_SERIAL TRUE)
endmacro()

macro(slicer_add_python_unittest)
  cmake_parse_arguments(MY "" "TESTNAME_PREFIX;SCRIPT" "SLICER_ARGS" ${ARGN})
  _slicer_python_test_script_dir("${MY_SCRIPT}" _script_dir)
  get_filename_component(_test_name "${MY_SCRIPT}" NAME_WE)
  # $<SEMICOLON> keeps the Python statement separator from splitting the argument.
  add_test(NAME py_${MY_TESTNAME_PREFIX}${_test_name}
    COMMAND ${Slicer_LAUNCHER_EXECUTABLE} --no-splash --testing ${MY_SLICER_ARGS}
      --python-code "import slicer.testing$<SEMICOLON> slicer.testing.runUnitTest(\
['${CMAKE_CURRENT_BINARY_DIR}', '${_script_dir}'], '${_test_name}')")
  set_property(TEST py_${MY_TESTNAME_PREFIX}${_test_name} PROPERTY RUN_SERIAL TRUE)
endmacro()
