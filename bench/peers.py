#!/usr/bin/env python3
"""The Python peers of `make bench` (run by bench/run-all.sh in bench/.venv).

On BEIR SciFact:
  * encodes every passage with sentence-transformers all-MiniLM-L6-v2 in f32 (PyTorch, CPU,
    `--threads` threads, batch size `--batch`, 256-token truncation, document = title + " " +
    text) and times the encoding alone (the indexing-throughput peer);
  * writes those vectors as JSON (`--vectors`), as in-browser demos ship them: the corpus the
    transformers.js side of the latency benchmark searches by brute force;
  * evaluates on the train qrels (BEIR nDCG@10: graded gains, log2 discount, ideal from the
    qrels; Recall@100): bm25s BM25 (k1 1.2, b 0.75, Snowball English stems via PyStemmer,
    English stop words), the f32 dense model, and their reciprocal rank fusion (k = 60 and
    k = 5) over the top 1,000 of each.

Writes every figure to `--out` (JSON); bench/report.py turns it into tables.

usage: peers.py --data DIR --model DIR --out FILE.json --vectors FILE.json [--threads 2] [--batch 32]
"""
import argparse
import json
import math
import os
import platform
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path):
    qrels = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0] in ("query-id", "query_id"):
                continue
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def ndcg_at(ranked, rels, k=10):
    """BEIR's nDCG@k: gain = relevance grade, discount log2(rank + 1), ideal from the qrels."""
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in rels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked, rels, k=100):
    relevant = {d for d, g in rels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def evaluate(runs, qrels):
    """runs: {qid: [doc ids, best first]} -> mean nDCG@10, Recall@100 over the qrels' queries."""
    qids = sorted(qrels)
    nd = [ndcg_at(runs.get(q, []), qrels[q]) for q in qids]
    rc = [recall_at(runs.get(q, []), qrels[q]) for q in qids]
    return {"ndcg@10": float(np.mean(nd)), "recall@100": float(np.mean(rc)), "queries": len(qids)}


def rrf(a, b, k, depth=1000):
    scores = {}
    for ranked in (a, b):
        for r, d in enumerate(ranked[:depth]):
            scores[d] = scores.get(d, 0.0) + 1.0 / (k + r + 1)
    return [d for d, _ in sorted(scores.items(), key=lambda x: (-x[1], x[0]))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vectors", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--depth", type=int, default=1000)
    args = ap.parse_args()

    import torch
    import bm25s
    import Stemmer
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    corpus = read_jsonl(os.path.join(args.data, "corpus.jsonl"))
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(os.path.join(args.data, "queries.jsonl"))}
    qrels = read_qrels(os.path.join(args.data, "qrels", "train.tsv"))
    qids = sorted(q for q in qrels if q in queries)
    doc_ids = [str(d["_id"]) for d in corpus]
    docs = [(d.get("title") or "") + " " + (d.get("text") or "") for d in corpus]
    qtexts = [queries[q] for q in qids]
    out = {
        "passages": len(docs),
        "queries": len(qids),
        "threads": args.threads,
        "batch": args.batch,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sentence-transformers": sentence_transformers.__version__,
            "bm25s": bm25s.__version__ if hasattr(bm25s, "__version__") else "?",
            "numpy": np.__version__,
        },
    }

    # Dense: sentence-transformers f32.
    t0 = time.perf_counter()
    model = SentenceTransformer(args.model, device="cpu")
    model.max_seq_length = 256
    out["st_load_s"] = time.perf_counter() - t0
    model.encode(docs[:64], batch_size=args.batch)  # warm-up (allocations, thread pool)
    print(f"encoding {len(docs)} passages with sentence-transformers ({args.threads} threads, batch {args.batch}) ...",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    dvec = model.encode(docs, batch_size=args.batch, normalize_embeddings=True, convert_to_numpy=True)
    secs = time.perf_counter() - t0
    out["st_encode_s"] = secs
    out["st_passages_per_s"] = len(docs) / secs
    print(f"  {secs:.1f} s, {len(docs) / secs:.1f} passages/s", file=sys.stderr, flush=True)
    dvec = dvec.astype(np.float32)

    # The vectors as a demo ships them: plain JSON arrays of the float32 values.
    os.makedirs(os.path.dirname(os.path.abspath(args.vectors)), exist_ok=True)
    with open(args.vectors + ".tmp", "w") as f:
        json.dump({"model": "sentence-transformers/all-MiniLM-L6-v2 (f32, normalized)", "dim": int(dvec.shape[1]),
                   "ids": doc_ids, "vectors": dvec.tolist()}, f)
    os.replace(args.vectors + ".tmp", args.vectors)
    out["vectors_json_bytes"] = os.path.getsize(args.vectors)

    qvec = model.encode(qtexts, batch_size=args.batch, normalize_embeddings=True, convert_to_numpy=True)
    sims = qvec.astype(np.float32) @ dvec.T
    depth = min(args.depth, len(docs))
    dense = {}
    for i, q in enumerate(qids):
        top = np.argpartition(-sims[i], depth - 1)[:depth]
        top = top[np.argsort(-sims[i][top], kind="stable")]
        dense[q] = [doc_ids[j] for j in top]

    # Lexical: bm25s (Lucene BM25), Snowball English, English stop words.
    stemmer = Stemmer.Stemmer("english")
    t0 = time.perf_counter()
    corpus_tokens = bm25s.tokenize(docs, lower=True, stopwords="en", stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    retriever.index(corpus_tokens, show_progress=False)
    out["bm25s_index_s"] = time.perf_counter() - t0
    q_tokens = bm25s.tokenize(qtexts, lower=True, stopwords="en", stemmer=stemmer, return_ids=False,
                              show_progress=False)
    lexical = {}
    for q, toks in zip(qids, q_tokens):
        toks = [t for t in toks if t in retriever.vocab_dict]
        if not toks:
            lexical[q] = []
            continue
        res, scores = retriever.retrieve([toks], k=depth, show_progress=False, n_threads=1)
        lexical[q] = [doc_ids[j] for j, s in zip(res[0], scores[0]) if s > 0]  # matching passages only

    out["quality"] = {
        "bm25s": evaluate(lexical, qrels),
        "st-dense": evaluate(dense, qrels),
        "rrf60": evaluate({q: rrf(lexical[q], dense[q], 60, depth) for q in qids}, qrels),
        "rrf5": evaluate({q: rrf(lexical[q], dense[q], 5, depth) for q in qids}, qrels),
    }
    for name, m in out["quality"].items():
        print(f"  {name}: nDCG@10 {m['ndcg@10']:.4f}, Recall@100 {m['recall@100']:.4f}", file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
