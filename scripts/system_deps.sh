#!/usr/bin/env bash
# Installs the system libraries the build links and the binary loads, when they are missing:
# libheif (HEIC/HEIF and AVIF decoding, found with pkg-config by libheif-sys) with its HEVC and
# AV1 decoders. Debian bookworm's libheif1 1.15 has libde265 and dav1d/aom built in; newer
# releases (Debian trixie, Ubuntu 24.04) ship them as libheif-plugin-* packages, installed
# here when the distribution has them. Used by scripts/up.sh and scripts/test.sh; fails loudly
# when libheif >= 1.14 cannot be found or installed.
set -euo pipefail

have_libheif() { pkg-config --atleast-version=1.14 libheif 2>/dev/null; }

if ! command -v pkg-config >/dev/null || ! have_libheif; then
  if ! command -v apt-get >/dev/null; then
    echo "system_deps.sh: libheif >= 1.14 (with pkg-config) is needed; install libheif-dev and pkg-config" >&2
    exit 1
  fi
  [ "$(id -u)" = 0 ] && sudo="" || sudo="sudo"
  $sudo apt-get update -qq
  packages=(pkg-config libheif-dev)
  for plugin in libheif-plugin-libde265 libheif-plugin-dav1d; do
    apt-cache show "$plugin" >/dev/null 2>&1 && packages+=("$plugin")
  done
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

if ! have_libheif; then
  echo "system_deps.sh: libheif >= 1.14 is still not found by pkg-config after installing libheif-dev" >&2
  exit 1
fi
