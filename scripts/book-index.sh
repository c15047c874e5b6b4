#!/usr/bin/env bash
# Indexes the Rust Book that ships with rustup's docs and serves it with the demo:
# www/book -> the book's HTML, www/indexes/book -> its Cairn index (see www/book.html).
# Prints the build numbers and the top results of two questions a reader would ask, and with
# --write FILE puts them in the `rust-book` section of that Markdown file.
# usage: scripts/book-index.sh BUNDLE [CLI] [--write BENCHMARKS.md]
set -euo pipefail
cd "$(dirname "$0")/.."
write=
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --write) write=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
bundle=${args[0]:?usage: book-index.sh BUNDLE [CLI] [--write FILE]}
cli=${args[1]:-target/debug/cairn}
rustup component add rust-docs >/dev/null 2>&1 || true
book="$(dirname "$(rustup doc --path)")/book"
[ -f "$book/index.html" ] || { echo "no Rust Book at $book (rustup component add rust-docs)"; exit 1; }
ln -sfn "$book" www/book
mkdir -p target
start=$(date +%s.%N)
"$cli" index --no-cache --model "$bundle" --site "$book" --base-url /book/ --out www/indexes/book 2> target/book-index.log
end=$(date +%s.%N)
cat target/book-index.log
report=target/book-index.md
{
  echo "Measured $(date -u +%Y-%m-%d) with \`make book-index\` ($cli, bundle $(basename "$bundle"), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end): the Rust Book from $(rustc --version | cut -d' ' -f1-2)'s rust-docs."
  echo
  echo "| HTML files | passages | build (s) | index bytes | model bytes |"
  echo "|---:|---:|---:|---:|---:|"
  pages=$(find "$book" -name '*.html' | wc -l)
  passages=$(sed -n 's/^indexed \([0-9]*\) passages.*/\1/p' target/book-index.log)
  ibytes=$(sed -n 's/^index total *\([0-9]*\).*/\1/p' target/book-index.log)
  mbytes=$(sed -n 's/^model *\([0-9]*\).*/\1/p' target/book-index.log)
  printf '| %s | %s | %.0f | %s | %s |\n' "$pages" "$passages" "$(python3 -c "print($end - $start)")" "$ibytes" "$mbytes"
  echo
  for q in "how do I share data between threads" "Box smart pointer"; do
    echo "Top 3 (hybrid) for \"$q\":"
    echo
    "$cli" search --index www/indexes/book -k 3 "$q" \
      | awk '/^ *[0-9]+\. /{sub(/^ */, ""); t=$0; getline; sub(/^ */, ""); print "    " t "  (" $0 ")"}'
    echo
  done
} > "$report"
cat "$report"
[ -z "$write" ] || scripts/bench_section.py "$write" rust-book < "$report"
