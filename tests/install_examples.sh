#!/usr/bin/env bash
# CTest "Api.InstallAndBuildExamples": installs the build into a temporary prefix, checks what was
# installed, then builds examples/ against that installed copy only (a C program through
# pkg-config, a CMake project through find_package(deconvtune)) and runs both. Without a GPU each
# example must exit 0 saying "no GPU"; with one, each must print "ok" (output matches float64).
#
#   tests/install_examples.sh BUILD_DIR SOURCE_DIR CUDA_INCLUDE_DIR CUDA_LIBRARY_DIR INSTALL_LIBDIR
# EXAMPLE_CC, EXAMPLE_CXX and EXAMPLE_FLAGS (environment) build the examples as the library was
# built (a sanitizer build's library needs its runtime in the program).
set -euo pipefail
build=$1 source=$2 cuda_include=$3 cuda_lib=$4 libdir=$5
example_cc=${EXAMPLE_CC:-cc}
read -r -a example_flags <<<"${EXAMPLE_FLAGS:-}"
work=$(mktemp -d "${TMPDIR:-/tmp}/deconvtune-install-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
export DECONVTUNE_DB=$work/tuning.db  # the examples use the default DB path: keep it private

fail() { echo "install test: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; fail "cmake --install failed"; }
for f in "$libdir/libdeconvtune.so" "$libdir/pkgconfig/deconvtune.pc" \
         "$libdir/cmake/deconvtune/deconvtuneConfig.cmake" "$libdir/cmake/deconvtune/deconvtuneConfigVersion.cmake" \
         include/deconvtune/deconvtune.h include/deconvtune/deconvtune.hpp bin/deconvtune; do
  [[ -e "$prefix/$f" ]] || fail "$f was not installed"
done
# The versioned library: libdeconvtune.so -> .so.MAJOR.MINOR (the SONAME) -> .so.VERSION.
soname=$(objdump -p "$prefix/$libdir/libdeconvtune.so" | awk '/SONAME/ {print $2}')
[[ "$soname" =~ ^libdeconvtune\.so\.[0-9]+ ]] || fail "unexpected SONAME '$soname'"
[[ -e "$prefix/$libdir/$soname" ]] || fail "the SONAME file $soname is missing"
# Only the public headers are installed.
extra=$(find "$prefix/include" -type f ! -name 'deconvtune.h' ! -name 'deconvtune.hpp')
[[ -z "$extra" ]] || fail "internal headers were installed: $extra"

# A C program through pkg-config, compiled as C99 with warnings as errors.
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
[[ "$(pkg-config --modversion deconvtune)" == "$(sed -n 's/^Version: //p' "$prefix/$libdir/pkgconfig/deconvtune.pc")" ]] || fail "pkg-config cannot read deconvtune.pc"
# shellcheck disable=SC2046
"$example_cc" -std=c99 -Wall -Wextra -Werror "${example_flags[@]}" "$source/examples/c/example.c" -o "$work/c_example" \
   $(pkg-config --cflags --libs deconvtune) -I"$cuda_include" -L"$cuda_lib" \
   -lcudart_static -lpthread -ldl -lrt -lm || fail "the C example does not build against the installed copy"

# A CMake project through find_package(deconvtune).
cmake_compiler=()
[ -n "${EXAMPLE_CXX:-}" ] && cmake_compiler=(-DCMAKE_CXX_COMPILER="$EXAMPLE_CXX")
cmake -S "$source/examples/cmake" -B "$work/cmake_build" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_TYPE=Release "${cmake_compiler[@]}" -DCMAKE_CXX_FLAGS="${EXAMPLE_FLAGS:-}" \
      -DCMAKE_EXE_LINKER_FLAGS="${EXAMPLE_FLAGS:-}" >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; fail "find_package(deconvtune) failed"; }
cmake --build "$work/cmake_build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "the CMake example does not build"; }

# Neither example may pick up the build tree's library.
for exe in "$work/c_example" "$work/cmake_build/deconvtune_cmake_example"; do
  resolved=$(ldd "$exe" | awk '/libdeconvtune/ {print $3}')
  [[ "$resolved" == "$prefix/"* ]] || fail "$exe loads libdeconvtune from '$resolved', not the installed copy"
done

for exe in "$work/c_example" "$work/cmake_build/deconvtune_cmake_example"; do
  set +e
  output=$("$exe" 2>&1)
  code=$?
  set -e
  echo "--- $(basename "$exe") (exit $code)"
  echo "$output"
  [[ $code -eq 0 ]] || fail "$(basename "$exe") exited $code"
  grep -Eq '^(no GPU: .+|ok)$' <<<"$output" || fail "$(basename "$exe") said neither 'no GPU' nor 'ok'"
done
echo "install test: passed"
