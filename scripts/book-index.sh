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

# A rebuild after editing one page, with the embedding cache, against a clean build of the
# same edited copy: how long each takes, how many passages each embeds, and whether the two
# indexes have the same bytes.
copy=target/book-edited
rm -rf "$copy" target/book-cache.cemb && cp -rL "$book" "$copy"
"$cli" index --cache target/book-cache.cemb --model "$bundle" --site "$copy" --base-url /book/ \
  --out target/book-rebuild 2> /dev/null
page=$copy/ch16-03-shared-state.html
[ -f "$page" ] || page=$(grep -l '<p>' "$copy"/ch*.html | head -n 1)
python3 - "$page" <<'PY'
import re, sys
p = sys.argv[1]
html = open(p, encoding="utf-8").read()
# The first paragraph of the page's content (mdBook's sidebar and menus are left out by ingest).
at = html.find("<main")
at = html.find("<p>", at if at >= 0 else 0)
html = html[:at] + "<p>Edited for the rebuild benchmark. " + html[at + 3:]
open(p, "w", encoding="utf-8").write(html)
PY
timed() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); python3 -c "print(f'{$t1 - $t0:.1f}')"; }
rebuild_s=$(timed "$cli" index --cache target/book-cache.cemb --model "$bundle" --site "$copy" \
  --base-url /book/ --out target/book-rebuild 2> target/book-rebuild.log)
clean_s=$(timed "$cli" index --no-cache --model "$bundle" --site "$copy" --base-url /book/ \
  --out target/book-clean 2> target/book-clean.log)
rebuilt=$(sed -n 's/^embedding \([0-9]*\) of.*/\1/p' target/book-rebuild.log)
texts=$(sed -n 's/^embedding [0-9]* of \([0-9]*\) .*/\1/p' target/book-rebuild.log)
same=no
cmp -s target/book-rebuild/index.*.cidx target/book-clean/index.*.cidx && same=yes
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
  echo "A rebuild after editing one page ($(basename "$page"), one sentence added), with the embedding"
  echo "cache of the previous build, against a clean build (\`--no-cache\`) of the same edited copy:"
  echo
  echo "| build | texts embedded (a long section is embedded in parts) | time (s) |"
  echo "|---|---:|---:|"
  echo "| rebuild with the cache | $rebuilt of $texts | $rebuild_s |"
  echo "| clean build | $texts of $texts | $clean_s |"
  echo
  echo "Same index bytes: $same."
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
