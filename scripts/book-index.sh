#!/usr/bin/env bash
# Indexes the Rust Book that ships with rustup's docs and serves it with the demo:
# www/book -> the book's HTML, www/indexes/book -> its Cairn index (see www/book.html).
# usage: scripts/book-index.sh BUNDLE [CLI]
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:?usage: book-index.sh BUNDLE [CLI]}
cli=${2:-target/debug/cairn}
rustup component add rust-docs >/dev/null 2>&1 || true
book="$(dirname "$(rustup doc --path)")/book"
[ -f "$book/index.html" ] || { echo "no Rust Book at $book (rustup component add rust-docs)"; exit 1; }
ln -sfn "$book" www/book
"$cli" index --model "$bundle" --site "$book" --base-url /book/ --out www/indexes/book
