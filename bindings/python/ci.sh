#!/usr/bin/env bash
# Builds and tests the Python package as a user installs it: a fresh virtual environment,
# `pip install ./bindings/python` (maturin builds the abi3 wheel from the Rust sources),
# then the pytest suite, verbosely so that the pass count shows.
#
# Needs CPython >= 3.9 with venv and pip (PYTHON=python3.11 picks one), cargo, and PyPI
# for maturin, pytest and cbor2. The venv goes to target/python-venv (DATAHIKE_PY_VENV
# moves it); the crate builds into the workspace's target/ unless CARGO_TARGET_DIR is set.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
venv="${DATAHIKE_PY_VENV:-$root/target/python-venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

"$python" -c 'import sys; assert sys.version_info >= (3, 9), sys.version' \
    || { echo "ci.sh: CPython >= 3.9 needed, $python is $("$python" --version 2>&1)" >&2; exit 1; }

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet pytest cbor2

start=$(date +%s)
"$venv/bin/python" -m pip install "$here"
echo "ci.sh: pip install ./bindings/python took $(( $(date +%s) - start )) s"

# Run from the tests directory so that `import datahike` is the installed package, not
# the source tree (which has no native module).
cd "$here/tests"
"$venv/bin/python" -m pytest -v -p no:cacheprovider .
