#!/usr/bin/env bash
# Builds the `imgmeta` binary with the detector on CUDA (`--features cuda`), on a machine with no
# GPU and no system CUDA: the CUDA 13.0 toolchain comes from PyPI wheels into .cuda/ (see
# scripts/cuda-toolchain.sh), the build goes to target/cuda so the normal build is untouched.
# CUDA_COMPUTE_CAP (default 90, H100/H200) picks the GPU generation. Prints the binary's path.
# What a GPU host needs to run it: the README's "GPU hosts".
# `--tests` also builds the detector's test binary (parity with onnxruntime, batches, DeepDream)
# for the GPU and bundles both binaries, the model and libheif into target/cuda/gpu-check.tar.xz
# for scripts/gpu-check.sh on a GPU host.
set -euo pipefail
tests=false
case "${1:-}" in
  --tests) tests=true ;;
  "") ;;
  *) echo "usage: $0 [--tests]" >&2; exit 2 ;;
esac
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
if $tests; then
  # The path of the test executable, from cargo's JSON messages.
  test_bin="$(cargo test --release --locked -p imgmeta-vision --test vision --features cuda --no-run \
    --message-format json 2>/dev/null \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "vision":
        print(m["executable"])')"
  [[ -x "$test_bin" ]] || { echo "build-cuda: the vision test binary was not built" >&2; exit 1; }
  out="$CARGO_TARGET_DIR/gpu-check"
  rm -rf "$out" && mkdir -p "$out/models" "$out/lib"
  cp "$bin" "$out/imgmeta" && cp "$test_bin" "$out/vision-tests"
  strip "$out/imgmeta" "$out/vision-tests"
  IMGMETA_MODEL_DIR="$out/models" LD_LIBRARY_PATH="$CUDA_HOME/lib:$CUDA_HOME/lib/stubs" \
    "$bin" models fetch >/dev/null
  rm -f "$out"/models/*.onnx
  # libheif and what it loads (a GPU host rarely has them); not the C runtime, not CUDA's.
  ldd "$out/imgmeta" "$(ldconfig -p | sed -n 's/.*libheif\.so\.1 .*=> //p' | head -1)" \
    | awk '$3 ~ /^\// {print $3}' | sort -u \
    | grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|ld-linux[^/]*|libcu[a-z]*|libnvrtc)\.so' \
    | xargs -r cp -L -t "$out/lib"
  # One compressed file, small enough to carry to a GPU host.
  tar -C "$out" -cf - . | xz -T0 -6 >"$CARGO_TARGET_DIR/gpu-check.tar.xz"
  echo "build-cuda: $CARGO_TARGET_DIR/gpu-check.tar.xz ($(du -h "$CARGO_TARGET_DIR/gpu-check.tar.xz" | cut -f1)) holds the binary, the test binary, the model and libheif: scripts/gpu-check.sh runs them on a GPU host"
fi
echo "build-cuda: on a GPU host see the README's \"GPU hosts\" (driver >= 580, LD_LIBRARY_PATH, IMGMETA_DEVICE=cuda)"
