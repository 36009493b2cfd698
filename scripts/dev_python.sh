#!/usr/bin/env bash
# Prints the path of a Python with the development-time packages the tests use (today the
# `standardwebhooks` reference implementation, which verifies our webhook signatures
# independently), creating the virtual environment `.venv-dev` on first use (pip, PyPI).
# Fails loudly when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-dev
want="standardwebhooks==1.1.0"
if ! "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
  if ! python3 -m venv "$venv" >&2; then
    # Debian's own Python keeps venv in a package of its own.
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$want" >&2
fi
echo "$PWD/$venv/bin/python"
