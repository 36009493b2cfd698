#!/usr/bin/env bash
# CI's check that the CUDA build (`--features cuda`) still compiles, with the toolchain of
# scripts/cuda-toolchain.sh (PyPI wheels; no GPU needed). The `cuda` feature changes only what
# candle and imgmeta-vision compile (no other crate has CUDA-only code), and `cargo test` already
# compiles everything else, so the check runs only when an input of that part changed: the
# hash of imgmeta-vision's sources, its resolved dependency tree with the `cuda` feature
# (`cargo tree`: every crate, version and feature it compiles), the CLI's manifest (which wires
# the feature), these scripts and the Rust version. A passing check records that hash in
# `.ci/cuda-checked` (committed, so CI's fresh clones skip a check already passed on these
# inputs) and in a stamp beside the toolchain and target folder, outside the clone
# (IMGMETA_CUDA_CACHE, default ~/.cache/imgmeta-cuda).
# `cargo check` runs candle-kernels' build script, which compiles every CUDA kernel with nvcc;
# linking the binary is left to scripts/build-cuda.sh. Cold (wheels, kernels, check): 9 to 23
# min on 2 cores, most of it nvcc; warm, seconds. IMGMETA_CUDA_CHECK=force ignores both records.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${IMGMETA_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imgmeta-cuda}"
export CUDA_TOOLCHAIN_DIR="$cache/toolchain" CUDA_TARGET_DIR="$cache/target"
# shellcheck source=scripts/cuda-toolchain.sh
source scripts/cuda-toolchain.sh

inputs="$(
  {
    rustc -V
    # Path dependencies print their folder: left out, so every clone hashes alike.
    cargo tree --locked -p imgmeta-vision --features cuda -e normal,build --prefix none \
      -f '{p} {f}' | sed -E 's# \(/[^)]*\)##' | sort -u
    sha256sum crates/imgmeta-cli/Cargo.toml scripts/cuda-toolchain.sh scripts/check-cuda.sh
    find crates/imgmeta-vision -type f -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
)"
record=.ci/cuda-checked
if [[ "${IMGMETA_CUDA_CHECK:-}" != force ]] && grep -q "^$inputs " "$record" 2>/dev/null; then
  echo "check-cuda: inputs unchanged since a passing check ($(grep "^$inputs " "$record")); skipped"
  exit 0
fi
stamp="$cache/checked-$inputs"
if [[ -f "$stamp" && "${IMGMETA_CUDA_CHECK:-}" != force ]]; then
  echo "check-cuda: inputs unchanged since a passing check ($inputs, $(cat "$stamp")); skipped"
  exit 0
fi

start=$SECONDS
cargo fetch --locked >/dev/null
cuda_toolchain_install
cuda_toolchain_env
echo "check-cuda: cargo check --features cuda (sm_$CUDA_COMPUTE_CAP) into $CARGO_TARGET_DIR" >&2
cargo check --release --locked -p imgmeta-vision -p imgmeta-cli --all-targets --features imgmeta-cli/cuda
mkdir -p "$cache"
rm -f "$cache"/checked-*
date -u +%FT%TZ >"$stamp"
echo "$inputs $(date -u +%FT%TZ) $(uname -m)" >>"$record"
echo "check-cuda: the CUDA build compiles ($((SECONDS - start)) s); stamp $inputs"
