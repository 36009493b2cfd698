#!/usr/bin/env bash
# Prints the path of a Python with the development-time packages the tests use, creating the
# virtual environment `.venv-dev` on first use (pip, PyPI), and adding what a newer checkout
# asks for to an existing one. Today: the `standardwebhooks` reference implementation, which
# verifies our webhook signatures independently, and `openapi-spec-validator`, which checks
# the API's OpenAPI document independently. Fails loudly when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-dev
want=("standardwebhooks==1.1.0" "openapi-spec-validator==0.9.0")
# The modules those packages install, checked before anything is installed.
imports="import standardwebhooks, openapi_spec_validator"
if ! "$venv/bin/python" -c "$imports" 2>/dev/null; then
  if [ ! -x "$venv/bin/pip" ]; then
    if ! python3 -m venv "$venv" >&2; then
      # Debian's own Python keeps venv in a package of its own.
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
      rm -rf "$venv"
      python3 -m venv "$venv" >&2
    fi
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${want[@]}" >&2
fi
echo "$PWD/$venv/bin/python"
