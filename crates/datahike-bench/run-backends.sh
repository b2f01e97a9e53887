#!/usr/bin/env bash
# The README's backend table ("Choosing a backend"): the same workload on every backend, one
# after another, against the test services of .ci/services.sh (started first).
#
#   bash .ci/services.sh start
#   cargo build --release -p datahike-bench --all-features
#   python3 ../shared/bench/gen/generate.py --n 20000 --out /tmp/bdata
#   bash crates/datahike-bench/run-backends.sh /tmp/bdata > /tmp/backends.jsonl
#   python3 crates/datahike-bench/backend-table.py /tmp/backends.jsonl
set -uo pipefail
data="${1:?usage: run-backends.sh DATA_DIR}"
cd "$(dirname "$0")/../.."
eval "$(bash .ci/services.sh env)"
bench="${DATAHIKE_BENCH:-target/release/datahike-bench}"
ops=load-bulk,tx-small,q1,q2,q4,lookup-email,readers-1,readers-2,readers-4
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
keys=':access-key-id "testing" :secret-access-key "testing"'
stores=(
  "sqlite={:backend :jdbc :dbtype \"sqlite\" :dbname \"$dir/db.sqlite\"}"
  "lmdb={:backend :lmdb :path \"$dir/lmdb\"}"
  "postgres={:backend :jdbc :dbtype \"postgresql\" :host \"127.0.0.1\" :port 55432 :user \"datahike\" :password \"dthk-test-secret\" :dbname \"datahike\" :table \"bench\"}"
  "redis={:backend :redis :uri \"$DATAHIKE_TEST_REDIS\" :prefix \"bench\"}"
  "s3-seaweedfs={:backend :s3 :bucket \"dthk-bench\" :prefix \"b\" :region \"us-east-1\" :endpoint \"$DATAHIKE_TEST_SEAWEED_ENDPOINT\" $keys}"
  "s3-moto={:backend :s3 :bucket \"dthk-bench\" :prefix \"b\" :region \"us-east-1\" :endpoint \"$DATAHIKE_TEST_S3_ENDPOINT\" $keys}"
  "gcs-emulator={:backend :gcs :bucket \"dthk-bench\" :prefix \"b\" :endpoint \"$DATAHIKE_TEST_GCS_ENDPOINT\" :project-id \"test\"}"
  "dynamodb-moto={:backend :dynamodb :table \"dthk-bench\" :region \"us-east-1\" :endpoint \"$DATAHIKE_TEST_DYNAMODB_ENDPOINT\" $keys}"
  "tiered-mem-over-s3={:backend :tiered :frontend-config {:backend :memory :id \"front\"} :backend-config {:backend :s3 :bucket \"dthk-bench\" :prefix \"t\" :region \"us-east-1\" :endpoint \"$DATAHIKE_TEST_SEAWEED_ENDPOINT\" $keys}}"
)
common=(--data "$data" --ops "$ops" --dir "$dir" --cold 5 --load-samples 1)
echo "== file" >&2
"$bench" "${common[@]}" --backend file || echo "FAILED: file" >&2
for store in "${stores[@]}"; do
  echo "== ${store%%=*}" >&2
  "$bench" "${common[@]}" --store "$store" || echo "FAILED: ${store%%=*}" >&2
done
