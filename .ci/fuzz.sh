#!/usr/bin/env bash
# Fuzz smoke run: every cargo-fuzz target of fuzz/ for FUZZ_SECONDS each (default 20), one
# target at a time in one process (no -jobs: libFuzzer's job mode forks and logs to files),
# starting from its corpus in fuzz/corpus/<target>/. Arbitrary input must give an error,
# never a panic, a hang (-timeout) or unbounded memory (-rss_limit_mb). Exits non-zero
# on the first crash, leaving the input in fuzz/artifacts/<target>/; replay it on stable with
# the corpus test once copied into the corpus. New corpus entries go to a scratch directory,
# so the repository's corpora change only when someone minimizes and commits them.
#   .ci/fuzz.sh                          every target, 20 s each
#   FUZZ_SECONDS=300 .ci/fuzz.sh tx_data one target, 5 minutes
#   FUZZ_TARGET_DIR=/tmp/fuzz-target      build elsewhere than fuzz/target
# Needs a nightly toolchain (libFuzzer's sanitizer flags); without one it skips, saying so.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export CARGO_TERM_COLOR=never
seconds="${FUZZ_SECONDS:-20}"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: no nightly toolchain (install one with: rustup toolchain install nightly)" >&2
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
# FUZZ_TARGET_DIR: where cargo-fuzz builds (default fuzz/target).
dir_args=()
[ -n "${FUZZ_TARGET_DIR:-}" ] && dir_args=(--target-dir "$FUZZ_TARGET_DIR")
cargo +nightly fuzz build "${dir_args[@]}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
total=0
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target" "corpus/$target"
  log="$scratch/$target.log"
  started=$(date +%s)
  if ! cargo +nightly fuzz run "${dir_args[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target FAILED: the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  total=$((total + ${runs:-0}))
  echo "fuzz: $target ok: ${runs:-?} executions in $(( $(date +%s) - started )) s"
done
echo "fuzz: every target ok: $total executions in total"
