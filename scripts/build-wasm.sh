#!/usr/bin/env bash
# Builds the browser engine: the library for wasm32 (SIMD128), wasm-bindgen's web bindings,
# wasm-opt from npm's binaryen (Debian's binaryen 108 corrupts wasm-bindgen output), and the
# UI layer beside them. Output: pkg/ (the npm package) and a copy in www/cairn/ for the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile wasm-release --target wasm32-unknown-unknown --lib --features gpu
wasm-bindgen --target web --out-dir pkg --out-name cairn \
  target/wasm32-unknown-unknown/wasm-release/cairn.wasm
node_modules/.bin/wasm-opt -O3 \
  --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  pkg/cairn_bg.wasm -o pkg/cairn_bg.wasm.opt
mv pkg/cairn_bg.wasm.opt pkg/cairn_bg.wasm
cp www/cairn/cairn-search.js www/cairn/cairn-worker.js pkg/
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
  "files": ["cairn.js", "cairn.d.ts", "cairn_bg.wasm", "cairn_bg.wasm.d.ts", "cairn-search.js", "cairn-worker.js", "README.md"],
  "exports": {
    ".": { "types": "./cairn.d.ts", "default": "./cairn.js" },
    "./element": "./cairn-search.js",
    "./worker": "./cairn-worker.js",
    "./cairn_bg.wasm": "./cairn_bg.wasm"
  },
  "sideEffects": ["./cairn-search.js"]
}
JSON
cat > pkg/README.md <<'MD'
# cairn-search

Semantic search that runs in the visitor's browser: the Cairn engine compiled to
WebAssembly (`cairn.js`, `cairn_bg.wasm`, TypeScript types in `cairn.d.ts`), its worker
(`cairn-worker.js`) and the `<cairn-search>` element (`cairn-search.js`).

Build an index folder with the `cairn` command line (`cairn index --site public --out
public/_cairn --ui <this folder>`), then add to any page:

```html
<script type="module" src="/_cairn/cairn-search.js"></script>
<cairn-search index="/_cairn/"></cairn-search>
```

Or drive the engine yourself: `import init, { Engine } from "cairn-search"`, then
`engine.loadIndex(bytes)`, `engine.loadModel(bytes)`, `engine.search(query, 10, "hybrid")`.
MD
mkdir -p www/cairn
cp pkg/cairn.js pkg/cairn_bg.wasm www/cairn/
ls -l pkg/cairn_bg.wasm
