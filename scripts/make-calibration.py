#!/usr/bin/env python3
"""Builds src/model/calibration.txt: the text `cairn model convert` runs the f32 model over
to measure activation statistics (GPTQ-style 4-bit rounding).

Varied on purpose and kept apart from every evaluation set (not SciFact, not the Rust Book,
not the parity fixture): hand-written prose and queries (scripts/calibration-seed.txt and,
last, scripts/calibration-tail.txt),
every 12th abstract of the demo corpus and the other titles
(short inputs, like the queries a browser encodes), and paragraphs of the Cargo Book, the Rustonomicon
and Rust by Example as installed by `rustup component add rust-docs` (MIT/Apache-2.0).

usage: scripts/make-calibration.py > src/model/calibration.txt
"""
import html.parser
import json
import pathlib
import subprocess

root = pathlib.Path(__file__).resolve().parent.parent


class Paragraphs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.depth_main = 0
        self.cur = None
        self.out = []

    def handle_starttag(self, tag, attrs):
        if tag == "main":
            self.depth_main += 1
        if self.depth_main and tag in ("p", "pre", "li"):
            self.cur = []

    def handle_endtag(self, tag):
        if tag == "main":
            self.depth_main -= 1
        if self.cur is not None and tag in ("p", "pre", "li"):
            text = " ".join("".join(self.cur).split())
            if len(text) > 120:
                self.out.append(text)
            self.cur = None

    def handle_data(self, data):
        if self.cur is not None:
            self.cur.append(data)


def book_paragraphs(folder, every):
    paras = []
    for page in sorted(folder.rglob("*.html")):
        if page.name in ("print.html", "404.html", "toc.html"):
            continue
        p = Paragraphs()
        p.feed(page.read_text(errors="replace"))
        paras.extend(p.out)
    return paras[::every]


docs = pathlib.Path(
    subprocess.run(["rustup", "doc", "--path"], capture_output=True, text=True).stdout.strip()
).parent
blocks = [b.strip() for b in (root / "scripts/calibration-seed.txt").read_text().split("\n\n")]
papers = [json.loads(l) for l in (root / "www/data/papers.jsonl").read_text().splitlines() if l]
blocks += [f"{p['title']} {p['text']}" for p in papers[::12]]
# Browsers mostly encode short queries: titles alone stand in for them.
blocks += [p["title"] for i, p in enumerate(papers) if i % 12 != 0]
for name, every in (("cargo", 30), ("nomicon", 20), ("rust-by-example", 60)):
    blocks += book_paragraphs(docs / name, every)
# Last, what the first 4-bit measurements showed was missing: other scripts and languages,
# repetitive text, and one-word queries (scripts/calibration-tail.txt).
blocks += [b.strip() for b in (root / "scripts/calibration-tail.txt").read_text().split("\n\n")]
print("\n\n".join(b for b in blocks if b))
