"""Semantic dedup benchmark: pair precision and recall on planted paraphrases, and throughput.

Corpus: AG News (../shared/data/classification/ag_news, 6,067 news items on four topics, exact
repeats removed). `--originals` of them get one paraphrase each, made deterministically from the
text: content words replaced by their nearest neighbours in the embedding model's own fastText
vectors (a share of 15-35%), and, half the time each, the sentences reordered and a sentence
dropped. Every other item stays as a hard negative: an unrelated story on the same topic.

The model (benchmarks/semdedup_model.py) is the best one this machine can build offline: SIF-weighted
skipgram vectors trained on the shared English text, as a sentence-transformers StaticEmbedding.
A pair (original, paraphrase) is found when one of them is removed (`score`); a removed row is
correct when the row it was removed for (`semdup_of`) is its planted partner. Both are read
from the `semdedup` stage's output, run through the engine's run_stage on Ray; the same stage's
verdicts at other thresholds come from filters/semdedup.resolve on the same vectors and clusters.
The MinHash `dedup` stage runs on the same corpus, for what word overlap finds.

    python benchmarks/bench_semdedup.py --originals 1000 [--model models/embedder] [--threshold 0.9]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from semdedup_model import DATA, build_model  # noqa: E402

STOP = set("the a an and or of to in on for with by at from as is are was were be been has have had it its this that "
           "these those their his her they he she we you i not but after before over into than about said says new".split())
SENTENCE = re.compile(r"(?<=[.!?])\s+")
THRESHOLDS = (0.8, 0.85, 0.9, 0.95)


def news() -> list[tuple[str, str]]:
    """(topic, text) of every AG News item, exact repeats removed, in file order."""
    seen, out = set(), []
    with open(DATA / "classification/ag_news/train80.csv", newline="", encoding="utf-8") as f:
        for topic, title, desc in csv.reader(f):
            text = f"{title.strip()}. {desc.strip()}"
            if text.lower() not in seen:
                seen.add(text.lower())
                out.append((topic, text))
    return out


class Paraphraser:
    """Word substitutions from the model's neighbours, reordering, sentence drops; one seeded rng."""

    def __init__(self, ft, seed: int):
        self.ft, self.rng, self.cache = ft, random.Random(seed), {}

    def neighbour(self, word: str) -> str | None:
        lower = word.lower()
        if lower not in self.cache:
            found = [w for _, w in self.ft.get_nearest_neighbors(lower, k=10)
                     if w.isalpha() and len(w) >= 3 and w != lower and not (w.startswith(lower[:4]) or lower.startswith(w[:4]))]
            self.cache[lower] = found[0] if found else None
        n = self.cache[lower]
        return n.capitalize() if n and word[:1].isupper() else n

    def __call__(self, text: str) -> tuple[str, list[str]]:
        rng, ops = self.rng, []
        words = text.split()
        content = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 4 and w.lower() not in STOP]
        share = rng.uniform(0.15, 0.35)
        for i in rng.sample(content, max(1, round(share * len(content)))) if content else []:
            if (n := self.neighbour(words[i])) is not None:
                words[i] = n
        ops.append(f"substitute {share:.2f}")
        sentences = SENTENCE.split(" ".join(words))
        if len(sentences) >= 3 and rng.random() < 0.5:
            del sentences[rng.randrange(1, len(sentences))]
            ops.append("drop")
        if len(sentences) >= 2 and rng.random() < 0.5:
            sentences = sentences[1:] + sentences[:1]
            ops.append("reorder")
        return " ".join(sentences), ops


def corpus(ft, originals: int, seed: int = 0) -> tuple[list[dict], dict[str, str]]:
    items = news()
    rng = random.Random(seed)
    order = rng.sample(range(len(items)), len(items))
    docs = [{"id": f"n{i:05d}", "text": items[i][1], "topic": items[i][0]} for i in order]
    para = Paraphraser(ft, seed)
    planted = {}
    for d in docs[:originals]:
        text, ops = para(d["text"])
        pid = "p" + d["id"][1:]
        docs.append({"id": pid, "text": text, "topic": d["topic"], "ops": ",".join(ops)})
        planted[pid] = d["id"]
    return docs, planted


def score(dup_of: dict[str, str], planted: dict[str, str]) -> dict:
    """Pair recall: planted pairs of which one row is removed (a reader no longer sees both), as
    `bench_dedup.py chains` counts it. Pair precision: removed rows whose kept row is their planted
    partner; AG News's own near-repeats (one story from two wires) count against it."""
    pairs = {frozenset(p) for p in planted.items()}
    correct = sum(frozenset(p) in pairs for p in dup_of.items())
    precision = correct / max(1, len(dup_of))
    recall = sum(a in dup_of or b in dup_of for a, b in planted.items()) / max(1, len(pairs))
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / max(1e-9, precision + recall), 4), "removed": len(dup_of)}


def run_stage(name: str, config: dict, docs: list[dict], workdir: Path):
    import pyarrow as pa
    import ray
    import ray.data

    from pipeline.config import build_stage
    from pipeline.execute import run_stage as execute
    from pipeline.records import DROP_REASON

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
    stage = build_stage(name, config, index=1, output_dir=workdir)
    stage.prepare()
    table = pa.Table.from_pylist([{"id": d["id"], "text": d["text"]} for d in docs])
    ds = ray.data.from_arrow(table).repartition(8).materialize()
    start = time.perf_counter()
    out = execute(stage, ds).materialize()
    elapsed = time.perf_counter() - start
    rows = out.drop_columns([c for c in out.schema().names if c == "text"]).take_all()
    dup_col = "semdup_of" if name == "semdedup" else "dup_of"
    dup_of = {r["id"]: r[dup_col] for r in rows if r.get(DROP_REASON) is not None and r.get(dup_col)}
    return stage, elapsed, rows, dup_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--originals", type=int, default=1000)
    ap.add_argument("--model", help="model folder (default: a temporary one); its skipgram.bin is reused when there")
    ap.add_argument("--threshold", type=float, default=None, help="the stage's threshold (default: the stage's default)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_semdedup_"))
    start = time.perf_counter()
    model_dir, ft = build_model(args.model or work / "model")
    print(f"model: {model_dir} ({len(ft.words)} words, dim {ft.get_dimension()}), built in {time.perf_counter() - start:.0f} s")
    docs, planted = corpus(ft, args.originals)
    print(f"corpus: {len(docs)} documents, {len(planted)} planted paraphrases, {len(docs) - 2 * len(planted)} hard negatives")

    config = {"model": str(model_dir)} | ({"threshold": args.threshold} if args.threshold else {})
    stage, elapsed, rows, dup_of = run_stage("semdedup", config, docs, work / "out")
    s = score(dup_of, planted)
    secs = stage.seconds
    print(f"\nsemdedup (threshold {stage.config.threshold}, {stage.clusters_used} clusters): {elapsed:.2f} s, "
          f"{len(docs) / elapsed:,.0f} docs/s; embed {secs['embed']:.2f} s, k-means {secs['kmeans']:.2f} s, "
          f"pairs {secs['pairs']:.2f} s, mark and accounting {elapsed - sum(secs.values()):.2f} s")
    print(f"  precision {s['precision']}  recall {s['recall']}  F1 {s['f1']}  removed {s['removed']}")
    by_ops: dict[str, list[int]] = {}
    ops_of = {d["id"]: d.get("ops", "") for d in docs}
    for pid, orig in planted.items():
        key = "+".join(o for o in ("drop", "reorder") if o in ops_of[pid]) or "substitute only"
        hit = pid in dup_of or orig in dup_of
        by_ops.setdefault(key, []).append(hit)
    for key, hits in sorted(by_ops.items()):
        print(f"  recall, {key:16} {np.mean(hits):.4f} ({len(hits)} pairs)")

    # other thresholds: the same rule on the same vectors and clusters, without Ray
    from filters.embeddings import Embedder
    from filters.semdedup import assign, fit_centroids, resolve

    vectors = Embedder(str(model_dir), "cpu").encode([d["text"] for d in docs])
    centroids = fit_centroids(vectors, stage.clusters_used, 0)
    clusters = assign(vectors, centroids)
    ids = [d["id"] for d in docs]
    length = np.array([len(d["text"]) for d in docs])
    print("\nthreshold  precision  recall  F1      removed")
    sweep = {}
    for t in THRESHOLDS:
        v = resolve(ids, vectors, clusters, np.full(len(ids), np.nan), length, stage.config.survivor, t).to_pylist()
        sweep[t] = score({r["id"]: r["semdup_of"] for r in v}, planted)
        print(f"{t:9}  {sweep[t]['precision']:9}  {sweep[t]['recall']:6}  {sweep[t]['f1']:6}  {sweep[t]['removed']}")

    _, m_elapsed, _, m_dup_of = run_stage("dedup", {"method": "minhash"}, docs, work / "out_minhash")
    m = score(m_dup_of, planted)
    print(f"\nMinHash dedup (J >= 0.8) on the same corpus: {m_elapsed:.2f} s, precision {m['precision']} recall {m['recall']} "
          f"removed {m['removed']}")
    print(json.dumps({"docs": len(docs), "semdedup": s | {"seconds": round(elapsed, 2), **{k: round(v, 2) for k, v in secs.items()}},
                      "sweep": sweep, "minhash": m | {"seconds": round(m_elapsed, 2)}}))


if __name__ == "__main__":
    main()
