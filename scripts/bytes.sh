#!/usr/bin/env bash
# First-visit bytes of the demo and of any other index folder: raw and gzip -9 (what a
# server that compresses sends), per file the page fetches. Writes the `bytes` section.
# usage: scripts/bytes.sh [INDEX_DIR...] [--section NAME] [--write BENCHMARKS.md]
#        (default www/indexes/papers, section bytes)
set -euo pipefail
cd "$(dirname "$0")/.."
write=
section=bytes
dirs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --write) write=$2; shift 2 ;;
    --section) section=$2; shift 2 ;;
    *) dirs+=("$1"); shift ;;
  esac
done
[ ${#dirs[@]} -gt 0 ] || dirs=(www/indexes/papers)
ui=(www/cairn/cairn_bg.wasm www/cairn/cairn.js www/cairn/cairn-search.js www/cairn/cairn-worker.js)
size() { stat -c %s "$1"; }
gz() { gzip -9 -c "$1" | wc -c; }
mb() { python3 -c "print(f'{$1 / 1e6:.2f}')"; }
out=target/bytes.md
mkdir -p target
{
  echo "Measured $(date -u +%Y-%m-%d) with \`scripts/bytes.sh\`: every file a first visit fetches (the wasm engine, its JS, the element, the worker, the index and the model named by cairn-entry.json), raw and gzip -9."
  echo
  echo "| index | wasm raw / gz (MB) | JS raw / gz | index raw / gz | model raw / gz | total raw (MB) | total gzip (MB) |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for d in "${dirs[@]}"; do
    idx=$d/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["index"])' "$d/cairn-entry.json")
    model=$d/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"])' "$d/cairn-entry.json")
    js_raw=0; js_gz=0
    for f in "${ui[@]:1}"; do js_raw=$((js_raw + $(size "$f"))); js_gz=$((js_gz + $(gz "$f"))); done
    w_raw=$(size "${ui[0]}"); w_gz=$(gz "${ui[0]}")
    i_raw=$(size "$idx"); i_gz=$(gz "$idx")
    m_raw=$(size "$model"); m_gz=$(gz "$model")
    echo "| $d | $(mb "$w_raw") / $(mb "$w_gz") | $(mb "$js_raw") / $(mb "$js_gz") | $(mb "$i_raw") / $(mb "$i_gz") | $(mb "$m_raw") / $(mb "$m_gz") | $(mb $((w_raw + js_raw + i_raw + m_raw))) | $(mb $((w_gz + js_gz + i_gz + m_gz))) |"
  done
} > "$out"
cat "$out"
[ -z "$write" ] || scripts/bench_section.py "$write" "$section" < "$out"
