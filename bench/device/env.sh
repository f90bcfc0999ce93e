# Sourced first by the device scripts (`source "$(dirname "$0")/env.sh"`): $root, the repository
# root, as the working directory; the carried binaries executable (a carry does not keep the
# mode); the carried libraries (.carry/lib: libdeconvtune, SQLite, OpenSSL) and CUDA's on the
# loader's path.
# shellcheck shell=bash
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
chmod +x "$root"/.carry/deconvtune* 2> /dev/null || true
export LD_LIBRARY_PATH=$root/.carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
