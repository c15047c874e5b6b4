#!/usr/bin/env bash
# Builds SciFact indexes with the q8_0 and 4-bit bundles and evaluates lexical, dense and
# hybrid search on the train qrels (the development set); prints a table and writes it into
# the `quality` section of BENCHMARKS.md. Slow (minutes of embedding): not part of `make test`.
#
# usage: [REUSE=1] [QUANTS="q8_0 q4_mix q4_0"] [MODEL=all-minilm-l6-v2] [SECTION=quality]
#        scripts/eval-scifact.sh [SCIFACT_DIR] [CLI]   (defaults ../shared/data/scifact, target/release/cairn)
# `make eval-scifact-bge` runs it for bge-small-en-v1.5 (MODEL=bge-small-en-v1.5, section
# quality-bge); its indexes go to target/scifact/bge-small-en-v1.5-<quant>.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/scifact}
cli=${2:-target/release/cairn}
for f in corpus.jsonl queries.jsonl qrels/train.tsv; do
  [ -f "$data/$f" ] || { echo "missing $data/$f (BEIR SciFact)"; exit 1; }
done
mkdir -p target/scifact
model=${MODEL:-all-minilm-l6-v2}
export MODEL=$model
rows=()
for quant in ${QUANTS:-q8_0 q4_mix q4_0}; do
  # MiniLM's indexes keep their short names (bench-browser and bench-gpu read them).
  tag=$quant
  [ "$model" = all-minilm-l6-v2 ] || tag=$model-$quant
  out=target/scifact/$tag
  bundle=models/$model-$quant.gguf
  # REUSE=1 keeps an index already built with this very bundle (same fingerprint) and the
  # build time recorded when it was built.
  want=$($cli model info "$bundle" | sed -n 's/^fingerprint: //p')
  have=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model_fingerprint"])' "$out/cairn-entry.json" 2>/dev/null || true)
  if [ "${REUSE:-0}" = 1 ] && [ -n "$want" ] && [ "$want" = "$have" ] && [ -f "target/scifact/$tag.build.secs" ]; then
    secs="$(cat "target/scifact/$tag.build.secs") (an earlier run)"
    echo "build $quant: reused, built with this bundle in $secs"
  else
    start=$(date +%s.%N)
    $cli index --no-cache --model "$bundle" --jsonl "$data/corpus.jsonl" --out "$out" 2> "target/scifact/$tag.build.log"
    end=$(date +%s.%N)
    secs=$(python3 -c "print(f'{$end - $start:.0f}')")
    echo "$secs" > "target/scifact/$tag.build.secs"
    echo "build $quant: $secs s"
  fi
  tail -n 16 "target/scifact/$tag.build.log"
  for mode in lexical dense hybrid; do
    line=$($cli eval --index "$out" --queries "$data/queries.jsonl" --qrels "$data/qrels/train.tsv" --mode $mode --json)
    echo "$quant $mode: $line"
    rows+=("$tag|$mode|$secs|$line")
  done
done
maxlen=$($cli model info "$bundle" | python3 -c 'import json,sys; t=sys.stdin.read(); print(json.loads(t[t.index("{"):])["max_seq_length"])')
export MAXLEN=$maxlen
section=${SECTION:-quality}
python3 - "${rows[@]}" > "target/scifact/$section.md" <<'PY'
import json, re, subprocess, sys, datetime, platform, os
rows = [r.split("|", 3) for r in sys.argv[1:]]
cpu = "unknown CPU"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
model, maxlen = os.environ["MODEL"], os.environ["MAXLEN"]
target = "eval-scifact" if model == "all-minilm-l6-v2" else "eval-scifact-bge"
print(f"Measured {datetime.date.today()} on {cpu}, {os.cpu_count()} cores, with `make {target}` "
      f"(model {model}; BEIR SciFact, 5,183 abstracts, the 809 queries of the train qrels; "
      f"document = title + text, {maxlen}-token truncation; nDCG@10 with graded gains, Recall@100).\n")
print("| bundle | mode | nDCG@10 | Recall@100 | queries |")
print("|---|---|---:|---:|---:|")
for quant, mode, secs, line in rows:
    j = json.loads(line)
    print(f"| {quant} | {mode} | {j['ndcg@10']:.4f} | {j['recall@100']:.4f} | {j['queries']} |")
print("\nPeers on the same qrels (bm25s, sentence-transformers f32, their RRF) are measured by "
      "`make bench`: see the peers-quality section.\n")
print(f"Index size and build time (native release build, 2 threads; load average {open('/proc/loadavg').read().split()[0]} at the end):\n")
print("| bundle | build (s) | index bytes | bytes per passage | of which: passages | terms + postings | binary codes | int8 rows + scales |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
seen = set()
for quant, mode, secs, line in rows:
    if quant in seen:
        continue
    seen.add(quant)
    log = open(f"target/scifact/{quant}.build.log").read()
    sizes = dict((m.group(1).strip(), int(m.group(2))) for m in re.finditer(r"^([a-z0-9 ]+?)\s+(\d+)\s+[\d.]+$", log, re.M))
    n = int(re.search(r"indexed (\d+) passages", log).group(1))
    total = sizes["index total"]
    lex = sum(sizes.get(k, 0) for k in ("terms", "term offsets", "posting docs", "posting offsets", "posting tfs", "posting fields", "doc lengths"))
    dense = sizes.get("int8 rows", 0) + sizes.get("row scales", 0)
    print(f"| {quant} | {secs} | {total:,} | {total / n:.0f} | {sizes['passages'] / n:.0f} | {lex / n:.0f} | {sizes.get('binary codes', 0) / n:.0f} | {dense / n:.0f} |")
PY
cat "target/scifact/$section.md"
scripts/bench_section.py BENCHMARKS.md "$section" < "target/scifact/$section.md"
