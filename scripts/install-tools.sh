#!/usr/bin/env bash
# Installs the build tools Cairn needs beside cargo, skipping what is already there:
# the wasm32 target, wasm-bindgen-cli at the exact version of the wasm-bindgen crate, and the
# npm packages (binaryen's wasm-opt, playwright-core). Used by `make demo`/`make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
wb_version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wb_version\$"; then
  echo "installing wasm-bindgen-cli $wb_version (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$wb_version"
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
