#!/usr/bin/env bash
# MiniLM against bge-small-en-v1.5 on the Rust Book (rustup's copy): each model's q8_0 bundle
# indexes the book (the same passages: sections split at the model's token budget), then
# `cairn eval` gives every mode's MRR on the 20 questions of bench/rust-book-questions.json and
# the 36 of bench/rust-book-holdout.json. Writes the `models-rustbook` section of
# BENCHMARKS.md; SciFact's numbers are in the `quality` and `quality-bge` sections.
# Not part of `make test` (about two minutes).
#
# usage: scripts/eval-models.sh [BOOK_DIR] [CLI]
set -euo pipefail
cd "$(dirname "$0")/.."
book=${1:-$(rustc --print sysroot)/share/doc/rust/html/book}
cli=${2:-target/release/cairn}
[ -f "$book/index.html" ] || { echo "no Rust Book at $book (rustup component add rust-docs)"; exit 1; }
mkdir -p target/models
rows=()
for model in all-minilm-l6-v2 bge-small-en-v1.5; do
  bundle=models/$model-q8_0.gguf
  [ -f "$bundle" ] || { echo "no $bundle: run make model"; exit 1; }
  start=$(date +%s.%N)
  $cli index --no-cache --model "$bundle" --site "$book" --base-url /book/ \
    --out "target/models/book-$model" --no-ui 2> "target/models/book-$model.log"
  secs=$(python3 -c "print(f'{$(date +%s.%N) - $start:.0f}')")
  for mode in lexical dense hybrid; do
    bk=$($cli eval --json --index "target/models/book-$model" --questions bench/rust-book-questions.json --mode $mode)
    ho=$($cli eval --json --index "target/models/book-$model" --questions bench/rust-book-holdout.json --mode $mode)
    echo "$model $mode: $bk $ho"
    rows+=("$model|$secs|$mode|$bk|$ho")
  done
done
python3 - "${rows[@]}" > target/models/models-rustbook.md <<'PY'
import json, sys, datetime, os
rows = [r.split("|") for r in sys.argv[1:]]
cpu = "unknown CPU"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
print(f"Measured {datetime.date.today()} on {cpu}, {os.cpu_count()} cores, by `scripts/eval-models.sh` "
      "(q8_0 bundles; MRR of the first result on the expected page, first 20 pages; hits@1 and hits@5 "
      f"out of the questions; load average {open('/proc/loadavg').read().split()[0]} at the end).\n")
print("| model | build (s) | mode | 20 questions: MRR | hits@1 / @5 | held-out 36: MRR | hits@1 / @5 |")
print("|---|---:|---|---:|---:|---:|---:|")
for model, secs, mode, bk, ho in rows:
    b, h = json.loads(bk), json.loads(ho)
    print(f"| {model} | {secs} | {mode} | {b['mrr']:.3f} | {b['hits@1']} / {b['hits@5']} "
          f"| {h['mrr']:.3f} | {h['hits@1']} / {h['hits@5']} |")
PY
cat target/models/models-rustbook.md
scripts/bench_section.py BENCHMARKS.md models-rustbook < target/models/models-rustbook.md
