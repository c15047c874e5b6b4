#!/usr/bin/env python3
"""Gives each record of the demo corpus (www/data/papers.jsonl) a `topic` filter.

The abstracts carry no category, so the topic is derived from their words: each topic has a
list of cue words, a record's title counts three times and its abstract once, and the topic
with the most cues wins (ties in the order below; no cue at all: "Other"). The rule is crude
on purpose and stable: rerunning it on the same file changes nothing.

    python3 scripts/paper-topics.py www/data/papers.jsonl
"""
import json
import re
import sys

TOPICS = [
    ("Vision", ["image", "images", "video", "visual", "vision", "pixel", "segmentation", "3d", "camera", "diffusion"]),
    ("Language", ["language", "llm", "llms", "text", "nlp", "translation", "token", "tokens", "question", "reasoning", "prompt"]),
    ("Speech & audio", ["speech", "audio", "acoustic", "music", "speaker", "sound"]),
    ("Reinforcement learning", ["reinforcement", "reward", "policy", "agent", "agents", "rl"]),
]


def topic(record):
    title = re.findall(r"[a-z0-9]+", record.get("title", "").lower())
    text = re.findall(r"[a-z0-9]+", record.get("text", "").lower())
    best, best_score = "Other", 0
    for name, cues in TOPICS:
        cues = set(cues)
        score = 3 * sum(w in cues for w in title) + sum(w in cues for w in text)
        if score > best_score:
            best, best_score = name, score
    return best


def main(path):
    records = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    for r in records:
        r.setdefault("filters", {})["topic"] = topic(r)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts = {}
    for r in records:
        counts[r["filters"]["topic"]] = counts.get(r["filters"]["topic"], 0) + 1
    print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "www/data/papers.jsonl")
