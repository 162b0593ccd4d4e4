# Stand-in for Slicer's UseSlicer.cmake (see README.md beside this file).

# Slicer names the extension after project() unless EXTENSION_NAME or MODULE_NAME says otherwise;
# the description file, the package and <Extension>Config.cmake all carry this name.
if(NOT DEFINED EXTENSION_NAME OR "${EXTENSION_NAME}" STREQUAL "")
  if(DEFINED MODULE_NAME AND NOT "${MODULE_NAME}" STREQUAL "")
    set(EXTENSION_NAME ${MODULE_NAME})
  else()
    set(EXTENSION_NAME ${PROJECT_NAME})
  endif()
endif()
if("${EXTENSION_NAME}" MATCHES "^$|^Slicer$|^Project$")
  message(FATAL_ERROR "error: Make sure to call 'project(<extension_name>)' or set EXTENSION_NAME "
    "(or MODULE_NAME) prior to call 'include(\${Slicer_USE_FILE})' !")
endif()

# On Linux an extension installs into its own prefix with Slicer's layout; Slicer adds the
# qt-scripted-modules folder to its module paths and to sys.path.
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR "${Slicer_INSTALL_ROOT}${Slicer_QTSCRIPTEDMODULES_LIB_DIR}")

# Extension defaults, as Slicer sets them when the extension's CMakeLists.txt does not.
if(NOT DEFINED EXTENSION_DEPENDS)
  set(EXTENSION_DEPENDS NA)
endif()
if(NOT DEFINED EXTENSION_LICENSE_FILE)
  set(EXTENSION_LICENSE_FILE ${Slicer_LICENSE_FILE})
endif()
if(NOT DEFINED EXTENSION_README_FILE)
  set(EXTENSION_README_FILE ${Slicer_README_FILE})
endif()
if(NOT DEFINED EXTENSION_SOURCE_DIR)
  set(EXTENSION_SOURCE_DIR ${CMAKE_SOURCE_DIR})
endif()
if(NOT DEFINED EXTENSION_SUPERBUILD_BINARY_DIR)
  set(EXTENSION_SUPERBUILD_BINARY_DIR ${CMAKE_BINARY_DIR})
endif()
if(NOT DEFINED EXTENSION_BUILD_SUBDIRECTORY)
  set(EXTENSION_BUILD_SUBDIRECTORY ".")
endif()
if(NOT DEFINED EXTENSION_ENABLED)
  set(EXTENSION_ENABLED 1)
endif()

# Slicer's extension testing: include(CTest) gives BUILD_TESTING (ON by default) and enable_testing().
include(CTest)

include(CMakeParseArguments)
include(SlicerMacroBuildScriptedModule)
include(SlicerMacroPythonTesting)
