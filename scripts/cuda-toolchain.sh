# shellcheck shell=bash
# Sourced by build-cuda.sh and check-cuda.sh: installs a CUDA 13.0 toolchain from PyPI wheels into
# .cuda/toolchain (git-ignored; reinstalled only when the pinned list below changes) and exports
# what candle's CUDA build reads. No GPU and no system CUDA are needed:
#   - nvcc (candle-kernels' build.rs, through cudaforge, compiles its kernels to PTX and a static
#     library; cudarc's build.rs reads the toolkit's version from `nvcc --version`);
#   - the libraries the binary links dynamically: cudart, cuBLAS(Lt), cuRAND, NVRTC, and the
#     driver's libcuda.so.1, for which a stub is built here (the real one comes with the GPU
#     host's driver; the stub is never on the binary's run-time path).
# 13.0 because a GPU host with driver 580 (CUDA 13.0) cannot load PTX made by a newer nvcc.
# CUDA_COMPUTE_CAP (default 90: H100/H200) is the GPU generation the kernels are compiled for;
# set it for another GPU (80: A100, 89: L4/L40, 120: RTX 50xx).

CUDA_TOOLCHAIN_DIR="${CUDA_TOOLCHAIN_DIR:-$PWD/.cuda/toolchain}"
CUDA_WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.2.14
  nvidia-curand==10.4.0.35
)

cuda_toolchain_install() {
  local stamp="$CUDA_TOOLCHAIN_DIR/.installed"
  local want
  # The first line names this layout (symlinks, stub); bump it when the steps below change.
  want="$(printf '%s\n' "layout 2" "${CUDA_WHEELS[@]}")"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "cuda-toolchain: installing ${#CUDA_WHEELS[@]} wheels into $CUDA_TOOLCHAIN_DIR" >&2
  rm -rf "$CUDA_TOOLCHAIN_DIR"
  mkdir -p "$CUDA_TOOLCHAIN_DIR"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-compile \
    --target "$CUDA_TOOLCHAIN_DIR" "${CUDA_WHEELS[@]}"
  local home="$CUDA_TOOLCHAIN_DIR/nvidia/cu13"
  [[ -x "$home/bin/nvcc" ]] || { echo "cuda-toolchain: no nvcc in $home/bin" >&2; return 1; }

  # The wheels carry only versioned sonames; the linker's -lNAME wants libNAME.so.
  local lib so found base
  for lib in cudart cublas cublasLt curand nvrtc; do
    found=""
    for so in "$home/lib/lib$lib.so."[0-9]*; do
      [[ "$so" =~ /lib$lib\.so\.[0-9]+$ ]] && found="${so##*/}"
    done
    [[ -n "$found" ]] || { echo "cuda-toolchain: lib$lib.so.N missing from $home/lib" >&2; return 1; }
    ln -sfn "$found" "$home/lib/lib$lib.so"
  done

  # A stub libcuda.so (soname libcuda.so.1) defining every driver entry point cudarc declares,
  # each failing with CUDA_ERROR_STUB_LIBRARY (34), as the toolkit's own stub does. It exists
  # only so the binary links; at run time the driver's libcuda.so.1 is loaded instead.
  local version bindings="" f
  version="$(cuda_cudarc_version)"
  for f in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-"$version"/src/driver/sys/mod.rs; do
    [[ -f "$f" ]] && bindings="$f"
  done
  [[ -n "$bindings" ]] \
    || { echo "cuda-toolchain: cudarc $version's driver bindings not found (cargo fetch first)" >&2; return 1; }
  mkdir -p "$home/lib/stubs"
  grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$bindings" | awk '{print $4}' | sort -u \
    | awk '{printf "int %s(void) { return 34; }\n", $1}' >"$home/lib/stubs/libcuda_stub.c"
  base="$home/lib/stubs"
  cc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$base/libcuda.so" "$base/libcuda_stub.c"
  # So the binary can also start here (`--version`, `models fetch`) with lib/stubs on
  # LD_LIBRARY_PATH; a CUDA device then fails with CUDA_ERROR_STUB_LIBRARY.
  ln -sfn libcuda.so "$base/libcuda.so.1"

  printf '%s\n' "$want" >"$stamp"
}

# cudarc's version in Cargo.lock (its bindings name the driver entry points to stub).
cuda_cudarc_version() {
  awk '/^name = "cudarc"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock
}

cuda_toolchain_env() {
  export CUDA_HOME="$CUDA_TOOLCHAIN_DIR/nvidia/cu13"
  export CUDA_PATH="$CUDA_HOME" CUDA_ROOT="$CUDA_HOME"
  export NVCC="$CUDA_HOME/bin/nvcc"
  export PATH="$CUDA_HOME/bin:$PATH"
  export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
  # Its own target folder, so a CUDA build never invalidates or locks the normal one.
  export CARGO_TARGET_DIR="${CUDA_TARGET_DIR:-$PWD/target/cuda}"
  [[ "$("$NVCC" --version)" == *"release 13.0,"* ]] \
    || { echo "cuda-toolchain: $NVCC is not CUDA 13.0" >&2; return 1; }
}
