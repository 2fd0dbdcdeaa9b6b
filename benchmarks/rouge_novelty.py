"""Self-Instruct's novelty check against a 50k-instruction pool: our index vs a loop over rouge_score.

The pool is real instruction-like text from ../shared/data (Self-Instruct seeds, GSM8K questions
and answer sentences, MMLU questions and answer choices, AG News titles and description sentences,
HH-RLHF human turns and answer sentences), de-duplicated, at least 4 words each. Queries are held-out texts and near-copies of pooled ones (a few words
changed), which exercise both the pruning and the exact LCS. The plain loop is what the released
Self-Instruct code does per proposal (`scorer.score` over the whole pool); it is timed on a
subsample of the pool and extrapolated to the full pool (it takes seconds per query). The same
run checks that both give the same maximum F on a few queries over the full pool.

    python benchmarks/rouge_novelty.py [--pool 50000] [--queries 300]
"""

from __future__ import annotations

import argparse
import csv
import glob
import gzip
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generators.rouge import NoveltyIndex  # noqa: E402

DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.?!])\s+", text) if len(s.split()) >= 4]


def instruction_texts() -> list[str]:
    texts = [json.loads(l)["instruction"] for l in open(DATA / "seeds/self_instruct/seed_tasks.jsonl")]
    for line in open(DATA / "benchmarks/gsm8k/test.jsonl"):
        row = json.loads(line)
        texts.append(row["question"])
        texts += sentences(re.sub(r"<<.*?>>", "", row["answer"].split("####")[0]))
    for path in sorted(glob.glob(str(DATA / "benchmarks/mmlu/*/*.csv"))):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                texts += [r["question"]] + [r[f"choice{i}"] for i in range(4)]
    with open(DATA / "classification/ag_news/train80.csv", newline="") as f:
        for row in csv.reader(f):
            texts.append(row[1])
            texts += sentences(row[2])
    with gzip.open(DATA / "preferences/hh_rlhf_harmless/pairs.jsonl.gz", "rt") as f:
        for line in f:
            for turn in json.loads(line)["chosen"].split("\n\nHuman:")[1:]:
                human, _, assistant = turn.partition("\n\nAssistant:")
                texts += [human.strip()] + sentences(assistant)
    seen, out = set(), []
    for t in texts:
        t = " ".join(t.split())
        if len(t.split()) >= 4 and t not in seen:
            seen.add(t)
            out.append(t)
    return out


def perturb(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(words))
        if rng.random() < 0.5 and len(words) > 4:
            del words[i]
        else:
            words.insert(i, rng.choice(["please", "briefly", "now", "exactly", "the"]))
    return " ".join(words)


def median_ms(fn, queries) -> float:
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pool", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--loop-sample", type=int, default=2_000, help="pool items the plain loop is timed on")
    parser.add_argument("--verify", type=int, default=3, help="queries whose max F is checked over the full pool")
    args = parser.parse_args()
    from rouge_score import rouge_scorer

    rng = random.Random(0)
    texts = instruction_texts()
    rng.shuffle(texts)
    if len(texts) < args.pool + args.queries:
        sys.exit(f"only {len(texts)} distinct texts for a pool of {args.pool} plus {args.queries} held-out queries")
    pool, held_out = texts[: args.pool], texts[args.pool : args.pool + args.queries // 2]
    near = [perturb(rng.choice(pool), rng) for _ in range(args.queries - len(held_out))]

    t = time.perf_counter()
    index = NoveltyIndex(pool)
    build_s = time.perf_counter() - t
    for q in held_out[:20]:  # warm-up
        index.best_match(q)
    ours_held = median_ms(index.best_match, held_out)
    ours_near = median_ms(index.best_match, near)
    ours_all = median_ms(index.best_match, held_out + near)
    similar = sum(index.best_match(q)[1] is not None for q in held_out + near)

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    sample = rng.sample(pool, args.loop_sample)
    loop_queries = rng.sample(held_out, 3) + rng.sample(near, 2)
    per_pair = []
    for q in loop_queries:
        t = time.perf_counter()
        max(scorer.score(q, p)["rougeL"].fmeasure for p in sample)
        per_pair.append((time.perf_counter() - t) / len(sample))
    loop_ms = statistics.median(per_pair) * len(pool) * 1e3

    mismatches = 0
    for q in rng.sample(near, args.verify):
        best = max(scorer.score(q, p)["rougeL"].fmeasure for p in pool)
        f, i = index.best_match(q, 0.7)
        mismatches += (f != best) if best > 0.7 else (i is not None)

    print(f"pool: {len(pool)} real instruction-like texts; index built in {build_s:.2f} s")
    print(f"queries: {len(held_out)} held-out + {len(near)} near-copies; {similar} found a pooled text with ROUGE-L F > 0.7")
    print(f"ours, median per query: {ours_all:.3f} ms (held-out {ours_held:.3f} ms, near-copies {ours_near:.3f} ms)")
    print(f"rouge_score loop, per query (timed on {args.loop_sample} pool items x {len(loop_queries)} queries, extrapolated to {len(pool)}): {loop_ms:.0f} ms")
    print(f"speed-up: {loop_ms / ours_all:.0f}x")
    print(f"exactness: max F over the full pool equal to rouge_score on {args.verify - mismatches}/{args.verify} near-copy queries")


if __name__ == "__main__":
    main()
