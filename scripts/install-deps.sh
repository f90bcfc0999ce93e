#!/usr/bin/env bash
# Installs what deconvtune needs on Debian 12 (run as root, or through sudo). Idempotent: installs
# only what is missing.
#   scripts/install-deps.sh          building the library and the CLI (a compiler, CMake, 5 -dev
#                                    packages)
#   scripts/install-deps.sh --test   and what scripts/check.sh needs: GoogleTest, Google Benchmark,
#                                    clang-14 with its sanitizer/libFuzzer runtime, clang-format, and
#                                    Debian's PyTorch with NumPy for the Python package's tests (by
#                                    far the largest part: libtorch and what Debian builds it with),
#                                    Slurm with munge and jq (tests/slurm_array.sh, which starts
#                                    daemons of its own, whatever the system runs)
set -euo pipefail

packages=(cmake g++ make pkg-config
          nlohmann-json3-dev libcli11-dev libfmt-dev libsqlite3-dev libssl-dev)
case "${1:-}" in
  "") ;;
  --test)
    packages+=(libgtest-dev libgmock-dev googletest libbenchmark-dev clang-format
               clang-14 libclang-rt-14-dev  # the sanitizer build and libFuzzer (scripts/check.sh)
               python3-torch python3-numpy  # tests/python under Debian's /usr/bin/python3
               slurm-wlm munge jq)  # tests/slurm_array.sh: a one-node Slurm runs docs/slurm/
    ;;
  *)
    echo "install-deps: unknown argument '$1' (no argument: build deps; --test: and test deps)" >&2
    exit 2
    ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root (or install sudo)" >&2; exit 1; }
    as_root=(sudo -E)
  fi
  "${as_root[@]}" apt-get update -q
  "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi

cuda_root=${CUDA_HOME:-/usr/local/cuda}
if [[ ! -f "$cuda_root/include/nvrtc.h" ]]; then
  echo "install-deps: the CUDA toolkit (NVRTC) is missing at $cuda_root." >&2
  echo "  deconvtune needs CUDA >= 12 with NVRTC; install it (https://developer.nvidia.com/cuda-downloads)" >&2
  echo "  or point CUDA_HOME at it. No GPU or driver is needed to build and run the CPU tests." >&2
  exit 1
fi
echo "install-deps: CUDA toolkit at $cuda_root ($("$cuda_root/bin/nvcc" --version 2>/dev/null | tail -n 2 | head -n 1 || echo 'nvcc absent, NVRTC present'))"
