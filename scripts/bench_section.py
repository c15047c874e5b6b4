#!/usr/bin/env python3
"""Replaces the text between <!-- bench:NAME --> and <!-- /bench:NAME --> in a Markdown file
with standard input (appending the section when absent), as `cairn bench encode --write`
does. usage: bench_section.py FILE NAME < body.md"""
import pathlib
import sys

path, name = pathlib.Path(sys.argv[1]), sys.argv[2]
body = sys.stdin.read()
start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
old = path.read_text() if path.exists() else "# Benchmarks\n"
block = f"{start}\n{body}{end}"
s, e = old.find(start), old.find(end)
new = old[:s] + block + old[e + len(end):] if 0 <= s < e else old.rstrip() + "\n\n" + block + "\n"
path.write_text(new)
print(f"updated the `{name}` section of {path}", file=sys.stderr)
