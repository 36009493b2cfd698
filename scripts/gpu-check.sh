#!/usr/bin/env bash
# Runs on a GPU host what `scripts/build-cuda.sh --tests` bundled in target/cuda/gpu-check.tar.xz
# (the CUDA build of `imgmeta`, the detector's test binary, the model and libheif): the
# detector's tests on the GPU (parity with onnxruntime's golden outputs, batches against
# single runs, DeepDream's gradients), then `imgmeta bench detect` on the GPU at batch sizes
# 1 to 64 (and per module at 1 and 16) and, for comparison, on that host's CPU. No Rust,
# toolkit or network is needed there: the CUDA 13 libraries come from the host's Python
# environment (the README's "GPU hosts").
# Usage: scripts/gpu-check.sh [BUNDLE.tar.xz | DIR] (default target/cuda/gpu-check.tar.xz).
# GPU_CHECK_DEVICE (default cuda; cuda:N, or cpu to try the bundle on a machine without a GPU,
# with the toolchain's lib and lib/stubs on LD_LIBRARY_PATH) and GPU_CHECK_IMAGE (default the
# motorcycle fixture) change what runs.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle="${1:-target/cuda/gpu-check.tar.xz}"
if [[ -f "$bundle" ]]; then
  dir="$(mktemp -d)"
  trap 'rm -rf "$dir"' EXIT
  xz -dc "$bundle" | tar -C "$dir" -xf - || { echo "gpu-check: cannot unpack $bundle" >&2; exit 1; }
else
  dir="$(cd "$bundle" && pwd)"
fi
fail=0
export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# The CUDA 13 runtime libraries of the host's pip-installed nvidia packages, if any.
nvidia_lib="$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)"
if [[ ! -d "$nvidia_lib" ]]; then
  # Another layout of the same wheels, or a system toolkit.
  cublas="$(find / -xdev -name 'libcublas.so.13*' 2>/dev/null | head -1)"
  nvidia_lib="${cublas%/*}"
fi
[[ -d "$nvidia_lib" ]] && export LD_LIBRARY_PATH="$nvidia_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "gpu-check: LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
missing="$(ldd "$dir/imgmeta" | grep 'not found' || true)"
if [[ -n "$missing" ]]; then
  echo "gpu-check: libraries not found:"; echo "$missing"; exit 1
fi

export IMGMETA_MODEL_DIR="$dir/models"
# The test binary reads its fixtures from this checkout.
export CARGO_MANIFEST_DIR="$PWD/crates/imgmeta-vision"
echo "== the detector's tests on ${GPU_CHECK_DEVICE:-cuda}"
IMGMETA_TEST_DEVICE="${GPU_CHECK_DEVICE:-cuda}" "$dir/vision-tests" --test-threads 1 --nocapture 2>&1 \
  | grep -Ev '^$|^running|^test result'
[[ "${PIPESTATUS[0]}" == 0 ]] || fail=1

image="${GPU_CHECK_IMAGE:-crates/imgmeta-vision/tests/fixtures/motorcycle.png}"
echo "== imgmeta bench detect $image"
for batch in 1 2 4 8 16 32 64; do
  IMGMETA_DEVICE="${GPU_CHECK_DEVICE:-cuda}" "$dir/imgmeta" bench detect "$image" --runs 10 --batch "$batch" 2>/dev/null || fail=1
done
echo "== per module, batch 1 and 16"
for batch in 1 16; do
  IMGMETA_DEVICE="${GPU_CHECK_DEVICE:-cuda}" "$dir/imgmeta" bench detect "$image" --runs 10 --batch "$batch" --modules 2>/dev/null \
    | python3 -c 'import json, sys; r = json.loads(sys.stdin.read()); print(r["batch"], r["modules"])' || fail=1
done
for threads in 2 16; do
  IMGMETA_DEVICE=cpu "$dir/imgmeta" bench detect "$image" --runs 10 --threads "$threads" 2>/dev/null || fail=1
done
echo "gpu-check: $([[ $fail == 0 ]] && echo passed || echo FAILED)"
exit "$fail"
