# bench/run_bench.py's CPU self-test (included from tests/CMakeLists.txt after api_tests.cmake, whose
# DECONVTUNE_TEST_PYTHON, Debian's python with torch, it runs under). It drives the benchmark's
# tool-calling code against a fake deconvtune that keeps the CLI's `run --json` / `inspect
# --list-configs --json` contract, so a change of that contract on either side fails here, not on
# the GPU machine. Any failed check exits 1.
add_test(NAME Bench.RunBenchSelftest
         COMMAND ${DECONVTUNE_TEST_PYTHON} ${CMAKE_SOURCE_DIR}/bench/run_bench.py --selftest
                 --reference-dir ${CMAKE_SOURCE_DIR}/bench/reference)
set_tests_properties(Bench.RunBenchSelftest PROPERTIES TIMEOUT 300)
# bench/decoder_bench.py's CPU self-test: every decoder through every row (torch.compile's skipped
# where PyTorch is older than 2.0) on a tiny batch, so the GPU run meets no Python error; the tuned
# row's autotune runs this build's CLI in its simulated mode.
add_test(NAME Bench.DecoderBenchSelftest
         COMMAND ${DECONVTUNE_TEST_PYTHON} ${CMAKE_SOURCE_DIR}/bench/decoder_bench.py --selftest)
set_tests_properties(Bench.DecoderBenchSelftest PROPERTIES TIMEOUT 300
                     ENVIRONMENT "PYTHONPATH=${CMAKE_SOURCE_DIR}/python;DECONVTUNE_WORKER=$<TARGET_FILE:deconvtune>")
# bench/device/sass_hotspots.py's self-test: the profile's per-instruction stall summary parses a
# source page of Nsight Compute's CSV shape and refuses one without samples.
add_test(NAME Bench.SassHotspotsSelftest
         COMMAND ${DECONVTUNE_TEST_PYTHON} ${CMAKE_SOURCE_DIR}/bench/device/sass_hotspots.py --selftest)
