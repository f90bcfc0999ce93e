# bench/run_bench.py's CPU self-test (included from tests/CMakeLists.txt after api_tests.cmake, whose
# DECONVTUNE_TEST_PYTHON, Debian's python with torch, it runs under). It drives the benchmark's
# tool-calling code against a fake deconvtune that keeps the CLI's `run --json` / `inspect
# --list-configs --json` contract, so a change of that contract on either side fails here, not on
# the GPU machine. Any failed check exits 1.
add_test(NAME Bench.RunBenchSelftest
         COMMAND ${DECONVTUNE_TEST_PYTHON} ${CMAKE_SOURCE_DIR}/bench/run_bench.py --selftest
                 --reference-dir ${CMAKE_SOURCE_DIR}/bench/reference)
set_tests_properties(Bench.RunBenchSelftest PROPERTIES TIMEOUT 300)
