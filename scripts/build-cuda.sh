#!/usr/bin/env bash
# Builds the `imgmeta` binary with the detector on CUDA (`--features cuda`), on a machine with no
# GPU and no system CUDA: the CUDA 13.0 toolchain comes from PyPI wheels into .cuda/ (see
# scripts/cuda-toolchain.sh), the build goes to target/cuda so the normal build is untouched.
# CUDA_COMPUTE_CAP (default 90, H100/H200) picks the GPU generation. Prints the binary's path.
# What a GPU host needs to run it: the README's "GPU hosts".
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/cuda-toolchain.sh
source scripts/cuda-toolchain.sh

cargo fetch --locked >/dev/null
cuda_toolchain_install
cuda_toolchain_env
echo "build-cuda: nvcc $("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), sm_$CUDA_COMPUTE_CAP, into $CARGO_TARGET_DIR" >&2
cargo build --release --locked -p imgmeta-cli --bin imgmeta --features cuda

bin="$CARGO_TARGET_DIR/release/imgmeta"
[[ -x "$bin" ]] || { echo "build-cuda: $bin was not built" >&2; exit 1; }
# It starts with the toolchain's libraries and the driver stub (no device is touched).
LD_LIBRARY_PATH="$CUDA_HOME/lib:$CUDA_HOME/lib/stubs" "$bin" --version >/dev/null \
  || { echo "build-cuda: $bin does not start" >&2; exit 1; }
echo "build-cuda: built $bin"
echo "build-cuda: its libraries: $(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
echo "build-cuda: on a GPU host see the README's \"GPU hosts\" (driver >= 580, LD_LIBRARY_PATH, IMGMETA_DEVICE=cuda)"
