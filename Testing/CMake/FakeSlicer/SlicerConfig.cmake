# Stand-in for the SlicerConfig.cmake of a Slicer 5.8 build tree, for configuring, building and
# installing this extension without Slicer (Testing/Python/test_extension_build.py). Use with
# -DSlicer_DIR=<this folder>. It implements only what our CMakeLists.txt files call, with the
# semantics of Slicer's own CMake code; nothing here compiles or launches Slicer.

set(Slicer_VERSION_MAJOR 5)
set(Slicer_VERSION_MINOR 8)
set(Slicer_VERSION "${Slicer_VERSION_MAJOR}.${Slicer_VERSION_MINOR}.0")
set(Slicer_REVISION "33216")
set(Slicer_WC_ROOT "https://github.com/Slicer/Slicer")
set(Slicer_OS "linux")
set(Slicer_ARCHITECTURE "amd64")
set(Slicer_ORGANIZATION_NAME "slicer.org")

set(Slicer_CMAKE_DIR ${CMAKE_CURRENT_LIST_DIR})
set(Slicer_EXTENSIONS_CMAKE_DIR ${CMAKE_CURRENT_LIST_DIR})
# Extensions include Slicer's modules by name (include(SlicerMacroExtractRepositoryInfo)).
list(PREPEND CMAKE_MODULE_PATH ${Slicer_CMAKE_DIR})

set(Slicer_USE_FILE ${CMAKE_CURRENT_LIST_DIR}/UseSlicer.cmake)
set(Slicer_EXTENSION_GENERATE_CONFIG ${CMAKE_CURRENT_LIST_DIR}/SlicerExtensionGenerateConfig.cmake)
set(Slicer_EXTENSION_CPACK ${CMAKE_CURRENT_LIST_DIR}/SlicerExtensionCPack.cmake)

set(Slicer_USE_PYTHONQT ON)
set(Slicer_BUILD_CLI_SUPPORT OFF)
# Tests are registered against a launcher that only says it is not Slicer (ctest -N lists them).
set(Slicer_LAUNCHER_EXECUTABLE ${CMAKE_CURRENT_LIST_DIR}/Slicer)

# Folders relative to the build tree and to the install prefix, as in a Linux Slicer build.
set(Slicer_INSTALL_ROOT "./")
set(Slicer_LIB_DIR "lib/Slicer-${Slicer_VERSION_MAJOR}.${Slicer_VERSION_MINOR}")
set(Slicer_SHARE_DIR "share/Slicer-${Slicer_VERSION_MAJOR}.${Slicer_VERSION_MINOR}")
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR "${Slicer_LIB_DIR}/qt-scripted-modules")

# Slicer points these at its own README and licence: an extension that names none still packages.
set(Slicer_README_FILE ${CMAKE_CURRENT_LIST_DIR}/README.md)
set(Slicer_LICENSE_FILE ${CMAKE_CURRENT_LIST_DIR}/README.md)

set(SlicerConfig_INCLUDED_ONCE TRUE)
