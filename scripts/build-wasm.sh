#!/usr/bin/env bash
# Builds the browser engine: the library for wasm32 (SIMD128), wasm-bindgen's web bindings,
# wasm-opt from npm's binaryen (Debian's binaryen 108 corrupts wasm-bindgen output), and the
# UI layer beside them. Output: pkg/ (the npm package) and a copy in www/cairn/ for the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two builds of one engine: SIMD128 (every browser with wasm SIMD), and SIMD128 + relaxed
# SIMD (Chrome 114+, Firefox 146+), whose int8 kernel uses the relaxed dot product. Their
# JavaScript glue is the same; the worker picks the wasm file the browser validates.
# The relaxed build has its own target folder, so each keeps its incremental cache.
cargo build --profile wasm-release --target wasm32-unknown-unknown --lib --features gpu
RUSTFLAGS='-C target-feature=+simd128,+relaxed-simd --cfg getrandom_backend="wasm_js"' \
  cargo build --profile wasm-release --target wasm32-unknown-unknown --lib --features gpu \
  --target-dir target/relaxed
# The keyword engine: the same library without the encoder (no candle, tokenizers or wgpu),
# so a sharded index's first answers need only this small module; the worker loads the full
# engine beside it and hands the index over once the model is in. Built for size (profile
# wasm-keyword, wasm-opt -Oz), in its own target folder.
cargo build --profile wasm-keyword --target wasm32-unknown-unknown --lib --no-default-features \
  --target-dir target/keyword
wasm-bindgen --target web --out-dir pkg --out-name cairn \
  target/wasm32-unknown-unknown/wasm-release/cairn.wasm
wasm-bindgen --target web --out-dir pkg --out-name cairn_keyword \
  target/keyword/wasm32-unknown-unknown/wasm-keyword/cairn.wasm
# The ingest module: the keyword build plus the CLI's file readers and index writer (feature
# `ingest`, no encoder), which only a page that indexes the visitor's own files loads
# (www/own.html; the worker embeds with the full engine). Same target folder as the keyword
# engine, so the two share their dependencies; built after the keyword engine's bindings,
# since both link to the same file name.
cargo build --profile wasm-keyword --target wasm32-unknown-unknown --lib --no-default-features \
  --features ingest --target-dir target/keyword
wasm-bindgen --target web --out-dir pkg --out-name cairn_ingest \
  target/keyword/wasm32-unknown-unknown/wasm-keyword/cairn.wasm
rm -rf target/relaxed/bindgen
wasm-bindgen --target web --out-dir target/relaxed/bindgen --out-name cairn \
  target/relaxed/wasm32-unknown-unknown/wasm-release/cairn.wasm
if ! cmp -s pkg/cairn.js target/relaxed/bindgen/cairn.js; then
  echo "the two builds' JavaScript glue differs; one cairn.js cannot load both" >&2
  diff pkg/cairn.js target/relaxed/bindgen/cairn.js | head -20 >&2
  exit 1
fi
features=(--enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue)
node_modules/.bin/wasm-opt -O3 "${features[@]}" pkg/cairn_bg.wasm -o pkg/cairn_bg.wasm.opt
mv pkg/cairn_bg.wasm.opt pkg/cairn_bg.wasm
node_modules/.bin/wasm-opt -O3 "${features[@]}" --enable-relaxed-simd \
  target/relaxed/bindgen/cairn_bg.wasm -o pkg/cairn_relaxed_bg.wasm
node_modules/.bin/wasm-opt -Oz "${features[@]}" pkg/cairn_keyword_bg.wasm -o pkg/cairn_keyword_bg.wasm.opt
mv pkg/cairn_keyword_bg.wasm.opt pkg/cairn_keyword_bg.wasm
node_modules/.bin/wasm-opt -Oz "${features[@]}" pkg/cairn_ingest_bg.wasm -o pkg/cairn_ingest_bg.wasm.opt
mv pkg/cairn_ingest_bg.wasm.opt pkg/cairn_ingest_bg.wasm
cp www/cairn/cairn-search.js www/cairn/cairn-worker.js www/cairn/cairn-sw.js pkg/
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
cat > pkg/package.json <<JSON
{
  "name": "cairn-search",
  "version": "$version",
  "description": "In-browser semantic search: a quantized sentence encoder and a hybrid index in WebAssembly, with the <cairn-search> element",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "cairn.js",
  "module": "cairn.js",
  "types": "cairn.d.ts",
  "files": ["cairn.js", "cairn.d.ts", "cairn_bg.wasm", "cairn_relaxed_bg.wasm", "cairn_bg.wasm.d.ts", "cairn_keyword.js", "cairn_keyword.d.ts", "cairn_keyword_bg.wasm", "cairn_keyword_bg.wasm.d.ts", "cairn_ingest.js", "cairn_ingest.d.ts", "cairn_ingest_bg.wasm", "cairn_ingest_bg.wasm.d.ts", "cairn-search.js", "cairn-worker.js", "cairn-sw.js", "README.md"],
  "exports": {
    ".": { "types": "./cairn.d.ts", "default": "./cairn.js" },
    "./element": "./cairn-search.js",
    "./keyword": { "types": "./cairn_keyword.d.ts", "default": "./cairn_keyword.js" },
    "./ingest": { "types": "./cairn_ingest.d.ts", "default": "./cairn_ingest.js" },
    "./worker": "./cairn-worker.js",
    "./sw": "./cairn-sw.js",
    "./cairn_bg.wasm": "./cairn_bg.wasm",
    "./cairn_relaxed_bg.wasm": "./cairn_relaxed_bg.wasm",
    "./cairn_keyword_bg.wasm": "./cairn_keyword_bg.wasm",
    "./cairn_ingest_bg.wasm": "./cairn_ingest_bg.wasm"
  },
  "sideEffects": ["./cairn-search.js"]
}
JSON
cat > pkg/README.md <<'MD'
# cairn-search

Semantic search that runs in the visitor's browser: the Cairn engine compiled to
WebAssembly (`cairn.js`, `cairn_bg.wasm`, and `cairn_relaxed_bg.wasm` built with relaxed
SIMD for the browsers that have it; TypeScript types in `cairn.d.ts`), the small keyword
engine (`cairn_keyword.js`, `cairn_keyword_bg.wasm`: the index, keyword and vector ranking,
no encoder; the worker answers with it first on a sharded index), its worker
(`cairn-worker.js`), the `<cairn-search>` element (`cairn-search.js`) and an optional
service worker for offline visits (`cairn-sw.js`; see the element's `service-worker`
attribute). The ingest module (`cairn_ingest.js`, `cairn_ingest_bg.wasm`: Cairn's file
readers and index writer) is loaded only by an element with the `own` attribute, which
indexes the visitor's own files in the browser (`element.ingest(files)`).

Build an index folder with the `cairn` command line (`cairn index --site public --out
public/_cairn --ui <this folder>`), then add to any page:

```html
<script type="module" src="/_cairn/cairn-search.js"></script>
<cairn-search index="/_cairn/"></cairn-search>
```

Or drive the engine yourself: `import init, { Engine } from "cairn-search"`, then
`engine.loadIndex(bytes)`, `engine.loadModel(bytes)`, then
`await engine.search(query, { k: 10, mode: "hybrid" })` (add `filters: { section: "Guide" }`
or `sort: { date: "desc" }` for an index built from pages with `data-cairn-filter` or
`data-cairn-sort`; `engine.filters` lists the index's filter values with their counts; add
`ranking: { titleWeight: 4, headingWeight: 2, termSaturation: 1.2, pageLength: 0.75 }` to
weigh the keyword ranking otherwise than the index does).
MD
mkdir -p www/cairn
cp pkg/cairn.js pkg/cairn_bg.wasm pkg/cairn_relaxed_bg.wasm pkg/cairn_keyword.js \
  pkg/cairn_keyword_bg.wasm pkg/cairn_ingest.js pkg/cairn_ingest_bg.wasm www/cairn/
ls -l pkg/cairn_bg.wasm pkg/cairn_relaxed_bg.wasm pkg/cairn_keyword_bg.wasm pkg/cairn_ingest_bg.wasm
