# The public API's tests (included from tests/CMakeLists.txt): the C++ API and the heuristic
# (GoogleTest), the C API from a C program, the Python package, and the installed package used by
# the examples/ programs.
add_executable(deconvtune_api_tests test_api.cpp test_api_heuristic.cpp)
# The public API through libdeconvtune.so; the internals only to set up DB contents and check
# outputs against the float64 reference (the library keeps its own copy hidden).
target_link_libraries(deconvtune_api_tests PRIVATE deconvtune_shared deconvtune_tuner deconvtune_reference
                      GTest::gtest GTest::gtest_main)
target_compile_definitions(deconvtune_api_tests PRIVATE
  DECONVTUNE_EXPECTED_VERSION="${PROJECT_VERSION}"
  DECONVTUNE_CLI="$<TARGET_FILE:deconvtune>")
set_target_properties(deconvtune_api_tests PROPERTIES BUILD_RPATH "${CUDAToolkit_LIBRARY_DIR}")
add_dependencies(deconvtune_api_tests deconvtune)
gtest_discover_tests(deconvtune_api_tests DISCOVERY_TIMEOUT 60
                     PROPERTIES SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")

add_executable(deconvtune_api_c_test test_api_c.c)
target_link_libraries(deconvtune_api_c_test PRIVATE deconvtune_shared Threads::Threads)
set_target_properties(deconvtune_api_c_test PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON)
add_test(NAME ApiC.ErrorPathsFromC
         COMMAND deconvtune_api_c_test ${CMAKE_CURRENT_BINARY_DIR}/api_c_test.db ${PROJECT_VERSION})

# Install into a temporary prefix and build and run examples/ against that copy.
add_test(NAME Api.InstallAndBuildExamples
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/install_examples.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR}
                 ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_DIR} ${CMAKE_INSTALL_LIBDIR})
set_tests_properties(Api.InstallAndBuildExamples PROPERTIES TIMEOUT 300)
if(DECONVTUNE_SANITIZE)
  # The installed library is instrumented: the examples are built with the same compilers and
  # sanitizers. Under clang they take the shared ASan runtime: it serves a library built either way
  # (its ASan symbols left undefined, or the shared runtime linked in, when a static runtime beside
  # it would be refused). Leak checks belong to the library's own tests, not to the examples.
  set(example_flags "-fsanitize=${DECONVTUNE_SANITIZE}")
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-runtime-dir
                    OUTPUT_VARIABLE clang_runtime_dir OUTPUT_STRIP_TRAILING_WHITESPACE)
    string(APPEND example_flags " -shared-libasan -Wl,-rpath,${clang_runtime_dir}")
  endif()
  set_tests_properties(Api.InstallAndBuildExamples PROPERTIES ENVIRONMENT
    "EXAMPLE_CC=${CMAKE_C_COMPILER};EXAMPLE_CXX=${CMAKE_CXX_COMPILER};EXAMPLE_FLAGS=${example_flags};ASAN_OPTIONS=detect_leaks=0")
endif()

# The Python package: offline pip install into a fresh venv, then the package tests; and the torch
# module with the system python (Debian's PyTorch). A sanitizer build's library cannot be loaded
# into an uninstrumented python, so there the tests skip what loads it.
find_program(DECONVTUNE_TEST_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT DECONVTUNE_TEST_PYTHON)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  set(DECONVTUNE_TEST_PYTHON ${Python3_EXECUTABLE})
endif()
if(DECONVTUNE_SANITIZE)
  set(api_test_library_dir "")
else()
  set(api_test_library_dir $<TARGET_FILE_DIR:deconvtune_shared>)
endif()
add_test(NAME Api.PythonPackageInstallsOffline
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/python/run_package_test.sh ${DECONVTUNE_TEST_PYTHON}
                 ${CMAKE_SOURCE_DIR} "${api_test_library_dir}" ${PROJECT_VERSION})
# The torch tests: the fused module, its CPU path and training (test_torch.py), and convert() on
# whole models (test_convert.py), on the CPU; then their GPU cases (the Gpu classes) as one more
# test, reported skipped without a GPU.
set(torch_test_environment
  "PYTHONPATH=${CMAKE_SOURCE_DIR}/python;DECONVTUNE_REFERENCE_DIR=${CMAKE_SOURCE_DIR}/bench/reference;DECONVTUNE_TEST_LIBRARY_DIR=${api_test_library_dir}")
add_test(NAME Api.PythonTorchModule
         COMMAND ${DECONVTUNE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_torch.py)
add_test(NAME Api.PythonTorchConvert
         COMMAND ${DECONVTUNE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_convert.py)
# The torch.compile backend's graph pass and autotune() (test_compile.py); its torch.compile cases
# need PyTorch >= 2 and say so where it is older.
add_test(NAME Api.PythonTorchCompileAndAutotune
         COMMAND ${DECONVTUNE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/python/test_compile.py)
set_tests_properties(Api.PythonTorchModule Api.PythonTorchConvert Api.PythonTorchCompileAndAutotune PROPERTIES
  ENVIRONMENT "${torch_test_environment};DECONVTUNE_TEST_GPU=0")
add_test(NAME Api.PythonTorchGpu
         COMMAND bash -c "set -e; for f in test_torch.py test_convert.py test_compile.py; do '${DECONVTUNE_TEST_PYTHON}' '${CMAKE_CURRENT_SOURCE_DIR}/python/'$f -k Gpu.; done")
set_tests_properties(Api.PythonTorchGpu PROPERTIES ENVIRONMENT "${torch_test_environment}"
                     SKIP_REGULAR_EXPRESSION "skipped 'needs a CUDA GPU")
set_tests_properties(Api.PythonPackageInstallsOffline Api.PythonTorchModule Api.PythonTorchConvert
                     Api.PythonTorchCompileAndAutotune Api.PythonTorchGpu PROPERTIES TIMEOUT 300)
# The package's version is the project's.
add_test(NAME Api.PythonVersionIsTheProjectVersion
         COMMAND ${DECONVTUNE_TEST_PYTHON} -c
                 "import sys; sys.path.insert(0, '${CMAKE_SOURCE_DIR}/python'); import deconvtune; v = deconvtune.__version__; print(v); sys.exit(v != '${PROJECT_VERSION}')")

# `deconvtune default-report` on a CPU: winners from a simulated tuning run (two problems of the
# benchmark set), each problem's default picked with its own winner left out.
add_test(NAME Api.DefaultReportFromSimulatedTuning
         COMMAND bash -c "set -e; d=$(mktemp -d); trap 'rm -rf $d' EXIT; head -n 2 '${CMAKE_SOURCE_DIR}/bench/problems.jsonl' >$d/p.jsonl; '$<TARGET_FILE:deconvtune>' autotune --simulate --problems $d/p.jsonl --db $d/t.db --max-trials 6 --precision fp32 >$d/tune.log 2>&1 || { cat $d/tune.log; exit 1; }; '$<TARGET_FILE:deconvtune>' default-report --problems $d/p.jsonl --db $d/t.db --precisions fp32 --out $d/r.md; grep -Eq 'Over the 2 rows with a tuned winner: heuristic / winner geometric mean [0-9.]+x' $d/r.md; grep -c '(nearest)' $d/r.md | grep -qx 2; ! grep -q 'not tuned' $d/r.md")

# The launch-overhead benchmark runs (briefly; its figure is taken on the device by
# bench/device/api.sh) and, without a GPU, says so and exits 0.
if(TARGET deconvtune_launch_overhead)
add_test(NAME Api.LaunchOverheadBenchmark
         COMMAND deconvtune_launch_overhead --benchmark_min_time=0.01)
set_tests_properties(Api.LaunchOverheadBenchmark PROPERTIES SKIP_REGULAR_EXPRESSION "skipped: no GPU")
endif()
