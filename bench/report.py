#!/usr/bin/env python3
"""Tables of the native peer benchmarks, from the figures bench/run-all.sh left in bench/out/:

  quality   peers-quality: Cairn (cairn-eval.jsonl) against bm25s, sentence-transformers and
            their RRF fusion (peers.json), on the SciFact train qrels
  indexing  peers-indexing: `cairn index` (cairn-index-<quant>.log, .wall) against
            sentence-transformers encoding the same passages (peers.json)

Prints the table and, with --write FILE, replaces the section through scripts/bench_section.py.
usage: report.py quality|indexing [--write BENCHMARKS.md]
"""
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def cairn_version():
    v = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
    except OSError:
        rev = ""
    return f"{v.group(1) if v else '?'}" + (f" ({rev})" if rev else "")


def load(name):
    p = OUT / name
    return p.read_text().split("load average:")[-1].strip().replace(", ", " / ") if p.exists() else "?"


def header(what, peers):
    v = peers["versions"]
    return (f"Measured {datetime.date.today()} on {cpu()}, {os.cpu_count()} cores, by `make bench` ({what}): "
            f"Cairn {cairn_version()} (`target/release/cairn`), Python {v['python']}, torch {v['torch']} (CPU), "
            f"sentence-transformers {v['sentence-transformers']}, bm25s {v['bm25s']}, numpy {v['numpy']}.")


def quality():
    peers = json.loads((OUT / "peers.json").read_text())
    cairn = [json.loads(line) for line in (OUT / "cairn-eval.jsonl").read_text().splitlines() if line.strip()]
    q = peers["quality"]
    md = header("bench/peers.py and `cairn eval`", peers) + "\n\n"
    md += (f"BEIR SciFact, {peers['passages']:,} abstracts, the {peers['queries']} queries of the train qrels; "
           "nDCG@10 (graded gains, log2 discount, ideal from the qrels) and Recall@100. Document = title + \" \" + text, "
           "256-token truncation for both encoders. Peers: bm25s BM25 (Lucene, k1 1.2, b 0.75, Snowball English stems via "
           "PyStemmer, bm25s's English stop words); sentence-transformers all-MiniLM-L6-v2 in f32 (the same model Cairn "
           "quantizes), exact dot product; reciprocal rank fusion of the two over the top 1,000 of each, with k = 60 (the "
           "usual constant) and k = 5 (Cairn's tuned default). Cairn: `cairn eval --mode M --json` on "
           "`target/scifact/<bundle>` (BM25 with NLTK stop words and Snowball stems; int8 vectors with binary candidates; "
           "RRF k = 5).\n\n")
    md += "| system | mode | nDCG@10 | Recall@100 | compared with | Δ nDCG@10 | Δ Recall@100 | winner (nDCG@10) |\n"
    md += "|---|---|---:|---:|---|---:|---:|---|\n"
    peer_of = {"lexical": ("bm25s BM25", q["bm25s"]), "dense": ("sentence-transformers f32", q["st-dense"]),
               "hybrid": ("RRF k=5 of the two", q["rrf5"])}
    losses = []
    for r in cairn:
        name, ref = peer_of[r["mode"]]
        dn = r["ndcg@10"] - ref["ndcg@10"]
        dr = r["recall@100"] - ref["recall@100"]
        win = "Cairn" if dn > 0 else ("tie" if dn == 0 else f"**{name}**")
        if dn < 0:
            losses.append(f"Cairn {r['bundle']} {r['mode']} is {-dn:.4f} nDCG@10 below {name} "
                          f"({r['ndcg@10']:.4f} vs {ref['ndcg@10']:.4f})")
        md += (f"| Cairn {r['bundle']} | {r['mode']} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {name} "
               f"| {dn:+.4f} | {dr:+.4f} | {win} |\n")
    rows = [("bm25s BM25", "lexical", q["bm25s"]), ("sentence-transformers f32", "dense", q["st-dense"]),
            ("RRF k=60 (bm25s + sentence-transformers)", "hybrid", q["rrf60"]),
            ("RRF k=5 (bm25s + sentence-transformers)", "hybrid", q["rrf5"])]
    for name, mode, m in rows:
        md += f"| {name} | {mode} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | | | | |\n"
    best_cairn = max(cairn, key=lambda r: r["ndcg@10"])
    best_peer = max((m["ndcg@10"], n) for n, _, m in rows)
    md += (f"\nBest Cairn: {best_cairn['bundle']} {best_cairn['mode']}, {best_cairn['ndcg@10']:.4f}; best peer: "
           f"{best_peer[1]}, {best_peer[0]:.4f} ({best_cairn['ndcg@10'] - best_peer[0]:+.4f}).\n")
    if losses:
        md += "\nWhere Cairn loses: " + "; ".join(losses) + ".\n"
    return md


def cairn_index(quant):
    log = (OUT / f"cairn-index-{quant}.log").read_text()
    m = re.search(r"indexed (\d+) passages in ([\d.]+) s \(([\d.]+) (?:passages|texts)/s embedding", log)
    k = re.search(r"int8 kernel ([\w-]+)", log)
    wall = float((OUT / f"cairn-index-{quant}.wall").read_text())
    n, secs, rate = int(m.group(1)), float(m.group(2)), float(m.group(3))
    return {"passages": n, "embed_s": n / rate if rate else secs, "reported_s": secs, "rate": rate, "wall": wall,
            "kernel": k.group(1) if k else "not reported"}


def indexing():
    peers = json.loads((OUT / "peers.json").read_text())
    st_rate = peers["st_passages_per_s"]
    md = header("bench/peers.py and `cairn index`", peers) + "\n\n"
    md += (f"Embedding every SciFact passage ({peers['passages']:,} abstracts, title + text, 256-token truncation) natively "
           f"on this machine with all-MiniLM-L6-v2, batches of {peers['batch']}, both cores: `target/release/cairn index "
           "--jsonl` (Cairn's int8 kernels; the kernel each run used is in its row; its own count of passages per second of embedding, printed on stderr) against "
           f"sentence-transformers f32 on PyTorch (`torch.set_num_threads({peers['threads']})`, `encode(batch_size="
           f"{peers['batch']})` timed alone after a warm-up batch). One run each, one after the other.\n\n")
    md += "| system | load average at the start | passages | embedding (s) | passages/s (embedding) | whole command (s) | passages/s ÷ sentence-transformers' | winner |\n"
    md += "|---|---|---:|---:|---:|---:|---:|---|\n"
    losses = []
    for quant in ("q8_0", "q4_0"):
        if not (OUT / f"cairn-index-{quant}.log").exists():
            continue
        c = cairn_index(quant)
        r = c["rate"] / st_rate
        win = "Cairn" if r > 1 else "**sentence-transformers**"
        if r < 1:
            losses.append(f"`cairn index` with the {quant} bundle embeds at {r:.2f}× the passages per second of "
                          f"sentence-transformers f32 ({c['rate']:.1f} vs {st_rate:.1f})")
        md += (f"| `cairn index`, {quant} bundle ({c['kernel']}) | {load(f'cairn-index-{quant}.load')} | {c['passages']:,} | {c['embed_s']:.1f} "
               f"| {c['rate']:.1f} | {c['wall']:.1f} | {r:.2f} | {win} |\n")
    md += (f"| sentence-transformers f32 (PyTorch {peers['versions']['torch']}) | {load('peers.load')} | {peers['passages']:,} "
           f"| {peers['st_encode_s']:.1f} | {st_rate:.1f} | | 1.00 | |\n")
    md += ("\nThe whole command of `cairn index` also reads and splits the corpus, builds the BM25 postings and the "
           "binary and int8 vectors, and writes the folder. The load average is the machine's (other work included) "
           "when the step started: on a shared two-core machine figures move with it.\n")
    if losses:
        md += "\nWhere Cairn loses: " + "; ".join(losses) + ".\n"
    return md


def main():
    what = sys.argv[1]
    md = {"quality": quality, "indexing": indexing}[what]()
    print(md)
    if "--write" in sys.argv:
        target = sys.argv[sys.argv.index("--write") + 1]
        name = {"quality": "peers-quality", "indexing": "peers-indexing"}[what]
        subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_section.py"), target, name], input=md,
                       text=True, check=True)


if __name__ == "__main__":
    main()
