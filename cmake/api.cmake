# libdeconvtune.so (the public C++ and C API of include/deconvtune/, implemented in engine/engine.cpp
# and engine/c_api.cpp), its install rules, the CMake package (find_package(deconvtune) ->
# deconvtune::deconvtune) and the pkg-config file. Included from the top-level CMakeLists.txt.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
enable_language(C)  # the C API is tested from C (tests/test_api_c.c)

add_library(deconvtune_shared SHARED engine/engine.cpp engine/c_api.cpp)
add_library(deconvtune::deconvtune ALIAS deconvtune_shared)
# 0.x releases may break the ABI at each minor version, so the SONAME carries it (libdeconvtune.so.0.1).
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(DECONVTUNE_SOVERSION "0.${PROJECT_VERSION_MINOR}")
else()
  set(DECONVTUNE_SOVERSION "${PROJECT_VERSION_MAJOR}")
endif()
set_target_properties(deconvtune_shared PROPERTIES
  OUTPUT_NAME deconvtune
  EXPORT_NAME deconvtune
  VERSION ${PROJECT_VERSION}
  SOVERSION ${DECONVTUNE_SOVERSION}
  # Only what deconvtune.h / deconvtune.hpp mark DECONVTUNE_API leaves the library.
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON
  BUILD_RPATH "${CUDAToolkit_LIBRARY_DIR}"
  INSTALL_RPATH "${CUDAToolkit_LIBRARY_DIR}")
target_include_directories(deconvtune_shared PUBLIC
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_features(deconvtune_shared PUBLIC cxx_std_17)
target_compile_definitions(deconvtune_shared PRIVATE DECONVTUNE_VERSION="${PROJECT_VERSION}")
# engine/ sits on the tuner (OnMiss::kTune) and its heuristic.
target_link_libraries(deconvtune_shared PRIVATE deconvtune_tuner)
# The static internals stay internal (no symbol clashes with a host that links its own fmt or
# SQLite), and a missing symbol fails the link here rather than at a user's dlopen.
target_link_options(deconvtune_shared PRIVATE LINKER:--exclude-libs,ALL)
# Sanitizer and fuzzing builds leave the runtimes' symbols to the executable (clang's way).
if(NOT DECONVTUNE_SANITIZE AND NOT DECONVTUNE_FUZZ)
  target_link_options(deconvtune_shared PRIVATE LINKER:--no-undefined)
endif()

install(TARGETS deconvtune_shared EXPORT deconvtuneTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/deconvtune DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The CLI: `deconvtune tune` and the measurement workers that tune-on-miss runs (bin/ beside lib/).
install(TARGETS deconvtune RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set(DECONVTUNE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/deconvtune)
install(EXPORT deconvtuneTargets NAMESPACE deconvtune:: DESTINATION ${DECONVTUNE_CMAKE_DIR})
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/deconvtuneConfig.cmake.in
  ${CMAKE_BINARY_DIR}/deconvtuneConfig.cmake INSTALL_DESTINATION ${DECONVTUNE_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/deconvtuneConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
# The .pc file finds the prefix relative to itself (pkgconf's ${pcfiledir}): relocatable.
file(RELATIVE_PATH DECONVTUNE_PC_TO_PREFIX "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
configure_file(${CMAKE_SOURCE_DIR}/cmake/deconvtune.pc.in ${CMAKE_BINARY_DIR}/deconvtune.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/deconvtuneConfig.cmake
              ${CMAKE_BINARY_DIR}/deconvtuneConfigVersion.cmake
        DESTINATION ${DECONVTUNE_CMAKE_DIR})
install(FILES ${CMAKE_BINARY_DIR}/deconvtune.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The launch-overhead benchmark (Google Benchmark): host time of a cached plan's run().
if(DECONVTUNE_BUILD_BENCHMARKS)
find_package(benchmark REQUIRED)
add_executable(deconvtune_launch_overhead bench/launch_overhead.cpp)
target_link_libraries(deconvtune_launch_overhead PRIVATE deconvtune_shared benchmark::benchmark
                      ${CMAKE_DL_LIBS})
# cuda.h for the driver's types; the driver itself is dlopen'ed for the benchmark's buffers.
target_include_directories(deconvtune_launch_overhead SYSTEM PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
set_target_properties(deconvtune_launch_overhead PROPERTIES BUILD_RPATH "${CUDAToolkit_LIBRARY_DIR}")
endif()
