#!/usr/bin/env bash
# Runs cargo-fuzz targets for a set time each and prints the executions each ran.
# usage: scripts/fuzz.sh SECONDS TARGET...   (see fuzz/README.md; `make fuzz` calls it)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=$1
shift
command -v cargo-fuzz >/dev/null || { echo "cargo install cargo-fuzz first" >&2; exit 1; }
mkdir -p logs
for t in "$@"; do
  mkdir -p "corpus/$t"
  echo "== $t for ${secs}s"
  # -rss_limit_mb: the bundle target loads whole models; -max_len: room for a small bundle.
  cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=4096 -max_len=200000 -print_final_stats=1 \
    2> "logs/$t.log" || { tail -n 40 "logs/$t.log"; echo "$t: CRASH (input in fuzz/artifacts/$t/)"; exit 1; }
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "logs/$t.log" | tail -n 1)
  echo "$t: ${execs:-?} executions in ${secs}s, $cov, no crash"
done
