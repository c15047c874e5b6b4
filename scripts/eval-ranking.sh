#!/usr/bin/env bash
# The keyword ranking before and after field weights, on the sets it was tuned on (SciFact's
# train qrels, bench/rust-book-questions.json) and the held-out one (bench/rust-book-holdout.json):
# every mode, searched once with the settings of before (every field weighing 1, b = 0.75,
# RRF k = 5: plain BM25 and the old fusion, the same arithmetic an index without field bytes
# gets) and once with the defaults. Writes the `ranking` section of BENCHMARKS.md. Slow-ish
# (SciFact's queries are embedded per run): not part of `make test`.
#
# usage: scripts/eval-ranking.sh [SCIFACT_INDEX] [BOOK_DIR] [CLI]
#   defaults: target/scifact/q8_0 (`make eval-scifact` builds it), rustup's copy of the Rust
#   Book, target/release/cairn. The Rust Book index is built into target/ranking/book
#   (q4_mix, the embedding cache makes a rebuild quick).
set -euo pipefail
cd "$(dirname "$0")/.."
scifact_index=${1:-target/scifact/q8_0}
book=${2:-$(rustc --print sysroot)/share/doc/rust/html/book}
cli=${3:-target/release/cairn}
data=../shared/data/scifact
[ -f "$scifact_index/cairn-entry.json" ] || { echo "no $scifact_index: run make eval-scifact first"; exit 1; }
[ -f "$book/index.html" ] || { echo "no Rust Book at $book (rustup component add rust-docs)"; exit 1; }
mkdir -p target/ranking
$cli index --model models/all-minilm-l6-v2-q4_mix.gguf --site "$book" --base-url /book/ \
  --out target/ranking/book --no-ui 2> target/ranking/book.log
before=(--title-weight 1 --heading-weight 1 --page-length 0.75 --rrf-k 5)
rows=()
for mode in lexical dense hybrid; do
  for when in before after; do
    extra=()
    [ "$when" = before ] && extra=("${before[@]}")
    sf=$($cli eval --json --index "$scifact_index" --queries "$data/queries.jsonl" \
      --qrels "$data/qrels/train.tsv" --mode $mode "${extra[@]}")
    bk=$($cli eval --json --index target/ranking/book --questions bench/rust-book-questions.json --mode $mode "${extra[@]}")
    ho=$($cli eval --json --index target/ranking/book --questions bench/rust-book-holdout.json --mode $mode "${extra[@]}")
    echo "$mode $when: $sf $bk $ho"
    rows+=("$mode|$when|$sf|$bk|$ho")
  done
done
python3 - "$scifact_index" "${rows[@]}" > target/ranking/ranking.md <<'PY'
import json, sys, datetime, os
index, rows = sys.argv[1], [r.split("|") for r in sys.argv[2:]]
cpu = "unknown CPU"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
print(f"Measured {datetime.date.today()} on {cpu}, {os.cpu_count()} cores, by `scripts/eval-ranking.sh` "
      f"(`cairn eval`): SciFact train ({index}, q8_0; nDCG@10 over the 809 queries), the Rust Book "
      "(rustup's copy, q4_mix; MRR of the first result on the expected page, first 20 pages, a page counted "
      "once) on the 20 questions of `bench/rust-book-questions.json` (tuned on, with SciFact) and the 36 of "
      "`bench/rust-book-holdout.json` (held out). *Before*: every field weighing 1, b = 0.75, RRF k = 5, "
      "which is the ranking before field weights (the same arithmetic); *after*: the defaults (title 2.5, "
      "heading 1.5, b = 0.4, RRF k = 2).\n")
print("| mode | SciFact nDCG@10 before | after | Rust Book MRR before | after | hits@1 before / after | held-out MRR before | after | hits@1 before / after |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
by = {(m, w): (json.loads(a), json.loads(b), json.loads(c)) for m, w, a, b, c in rows}
for mode in ("lexical", "dense", "hybrid"):
    (s0, b0, h0), (s1, b1, h1) = by[(mode, "before")], by[(mode, "after")]
    print(f"| {mode} | {s0['ndcg@10']:.4f} | {s1['ndcg@10']:.4f} | {b0['mrr']:.3f} | {b1['mrr']:.3f} "
          f"| {b0['hits@1']} / {b1['hits@1']} | {h0['mrr']:.3f} | {h1['mrr']:.3f} | {h0['hits@1']} / {h1['hits@1']} |")
PY
cat target/ranking/ranking.md
scripts/bench_section.py BENCHMARKS.md ranking < target/ranking/ranking.md
