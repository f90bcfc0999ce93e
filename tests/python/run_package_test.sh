#!/usr/bin/env bash
# CTest "Api.PythonPackageInstallsOffline": a fresh venv, `pip install --no-index ./python` (pip's
# default build isolation, no network, no compiler), then test_package.py with the venv's python.
#   run_package_test.sh PYTHON SOURCE_DIR LIBRARY_DIR EXPECTED_VERSION
set -euo pipefail
python=$1 source=$2 library_dir=$3 version=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/deconvtune-pip-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
# No index, no cache, no network: everything pip needs must be in ./python.
PIP_NO_INDEX=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
  "$work/venv/bin/pip" install --no-index "$source/python" >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
cd "$work"  # not the source tree: the installed copy must be the one imported
DECONVTUNE_EXPECTED_VERSION=$version DECONVTUNE_TEST_LIBRARY_DIR=$library_dir \
  "$work/venv/bin/python" "$source/tests/python/test_package.py"
