"""Dedup benchmark: precision/recall on planted near-duplicates, speed against datasketch and
DataTrove, and scaling to 1M documents.

Corpus: real text from ../shared/data (GSM8K questions and answers, MMLU questions, AG News
descriptions, HH-RLHF dialogues), plus near-duplicate copies planted at target word-shingle
Jaccard 0.5 .. 1.0 by replacing words. Ground truth is exact: every pair with Jaccard >= 0.8 is
found by prefix-filtered all-pairs search on the shingle strings (no sampling, no MinHash).

    python benchmarks/bench_dedup.py quality             # P/R + docs/s vs datasketch (+ DataTrove)
    python benchmarks/bench_dedup.py chains              # a corpus made to chain (benchmarks/dedup_chains.py)
    python benchmarks/bench_dedup.py e2e --docs 100000   # `pipeline run` with dedup alone vs rensa (its process) and datasketch
    python benchmarks/bench_dedup.py scale --docs 10000 100000 1000000

A pair is "found" when both rows end in the same cluster; a removed row is correct when its
true Jaccard with the row it was removed for (`dup_of`) is >= 0.8.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))

from filters.dedup.shingles import normalize  # noqa: E402

THRESHOLD = 0.8
FILLERS = "river stone market garden signal paper window engine silver morning".split()


# ---------- corpus ----------

def real_texts() -> list[str]:
    texts = []
    with open(DATA / "benchmarks/gsm8k/test.jsonl") as f:
        for line in f:
            r = json.loads(line)
            texts += [r["question"], r["answer"]]
    for path in sorted((DATA / "benchmarks/mmlu/test").glob("*.csv")):
        with open(path, newline="") as f:
            for row in csv.reader(f):
                if row and row[0] != "question":
                    texts.append(" ".join(row[:5]))
    with open(DATA / "classification/ag_news/train80.csv", newline="") as f:
        texts += [f"{r[1]}. {r[2]}" for r in csv.reader(f)]
    with gzip.open(DATA / "preferences/hh_rlhf_harmless/pairs.jsonl.gz", "rt") as f:
        texts += [json.loads(line)["chosen"] for line in f]
    return [t for t in texts if len(t.split()) >= 12]


def shingle_set(words: list[str], n: int = 5) -> set[tuple[str, ...]]:
    """Word 5-gram set of already normalised words (the whole text when shorter), as our stage defines it."""
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def shingle_sets(texts: list[str]) -> list[set]:
    return [shingle_set(t.split()) for t in normalize(texts).to_pylist()]


def jaccard_sets(sa: set, sb: set) -> float:
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def jaccard_strings(a: str, b: str) -> float:
    return jaccard_sets(*shingle_sets([a, b]))


def plant(text: str, target: float, rng: random.Random) -> tuple[str, float]:
    """Replace random words until the shingle Jaccard drops to the target; return copy and true J."""
    orig = normalize([text])[0].as_py().split()
    words, ref = list(orig), shingle_set(orig)
    best = (text, 1.0)
    for _ in range(len(words)):
        if best[1] <= target + 0.01:
            break
        words[rng.randrange(len(words))] = rng.choice(FILLERS)
        best = (" ".join(words), jaccard_sets(ref, shingle_set(words)))
    return best


def quality_corpus(n_base: int, n_planted: int, seed: int = 0):
    rng = random.Random(seed)
    base = real_texts()
    rng.shuffle(base)
    base = base[:n_base]
    docs = [{"id": f"r{i:06d}", "text": t} for i, t in enumerate(base)]
    for k in range(n_planted):
        i = rng.randrange(len(base))
        target = rng.choice([0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0])
        text, _ = plant(base[i], target, rng)
        docs.append({"id": f"p{k:06d}", "text": text})
    return docs


def true_pairs(docs: list[dict], t: float = THRESHOLD) -> dict[tuple[str, str], float]:
    """All pairs with Jaccard >= t, exactly: prefix filtering (a pair this similar must share one
    of the rarest |x| - ceil(t|x|) + 1 shingles of each side), then exact Jaccard."""
    sets = shingle_sets([d["text"] for d in docs])
    df: dict[str, int] = defaultdict(int)
    for s in sets:
        for g in s:
            df[g] += 1
    index: dict[str, list[int]] = defaultdict(list)
    pairs = {}
    for i, s in enumerate(sets):
        if not s:
            continue
        ordered = sorted(s, key=lambda g: (df[g], g))
        prefix = ordered[: len(s) - int(np.ceil(t * len(s))) + 1]
        cands = {j for g in prefix for j in index[g]}
        for j in cands:
            inter = len(s & sets[j])
            jac = inter / (len(s) + len(sets[j]) - inter)
            if jac >= t:
                pairs[tuple(sorted((docs[i]["id"], docs[j]["id"])))] = jac
        for g in prefix:
            index[g].append(i)
    return pairs


def score(docs, clusters: dict[str, str], dup_of: dict[str, str], truth) -> dict:
    by_id = {d["id"]: d["text"] for d in docs}
    recall = sum(clusters.get(a, a) == clusters.get(b, b) for a, b in truth) / max(1, len(truth))
    correct = sum(
        1 for d, s in dup_of.items() if tuple(sorted((d, s))) in truth or jaccard_strings(by_id[d], by_id[s]) >= THRESHOLD
    )
    precision = correct / max(1, len(dup_of))
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "removed": len(dup_of)}


# ---------- runners ----------

def init_ray():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 object_store_memory=4_000_000_000)
        ray.data.DataContext.get_current().enable_progress_bars = False


def run_ours(docs_table, config: dict, workdir: Path):
    """The dedup stage through the engine's run_stage, on a materialised dataset."""
    import ray.data

    from pipeline.config import build_stage
    from pipeline.execute import run_stage
    from pipeline.records import DROP_REASON

    init_ray()
    stage = build_stage("dedup", config, index=1, output_dir=workdir)
    stage.prepare()
    ds = ray.data.from_arrow(docs_table).repartition(8).materialize()
    t0 = time.perf_counter()
    out = run_stage(stage, ds).select_columns(["id", "dup_cluster", "dup_of", DROP_REASON]).materialize()
    elapsed = time.perf_counter() - t0
    clusters, dup_of = {}, {}
    for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
        for i, c, d in zip(batch.column("id").to_pylist(), batch.column("dup_cluster").to_pylist(), batch.column("dup_of").to_pylist()):
            clusters[i] = c
            if d is not None:
                dup_of[i] = d
    return elapsed, clusters, dup_of


def run_core(docs):
    """Our filters in one process without Ray: signatures, band keys, star edges, components.

    The algorithmic part of the stage on one core, to compare with datasketch's kernel apart from
    Ray's scheduling and shuffle overhead (which the `ours` rows include)."""
    from filters.dedup.clusters import key_components
    from filters.dedup.lsh import band_keys, star_edges
    from filters.dedup.minhash import signatures
    from filters.dedup.shingles import shingles

    t0 = time.perf_counter()
    keys = []
    for lo in range(0, len(docs), 1024):
        sig = signatures(shingles([d["text"] for d in docs[lo : lo + 1024]]), 112, 1)  # the stage's default scheme
        keys.append(band_keys(sig, 14, 8))
    buckets = np.concatenate(keys)
    nodes = np.repeat(np.arange(len(docs), dtype=np.uint64), 14)
    a, b = star_edges(buckets.reshape(-1), nodes)
    key_components(a, b)
    return time.perf_counter() - t0


def run_datasketch(docs, shingled=None):
    """datasketch the plain way: MinHash.update per shingle, MinHashLSH query then insert.

    Shingling is done before the clock starts (in one batch), so datasketch is timed on MinHash
    and LSH alone: the comparison favours it."""
    from datasketch import MinHash, MinHashLSH

    shingled = shingled or [[" ".join(g).encode("utf-8") for g in s] for s in shingle_sets([d["text"] for d in docs])]
    t0 = time.perf_counter()
    lsh = MinHashLSH(num_perm=112, params=(14, 8))
    clusters, dup_of = {}, {}
    for d, grams in zip(docs, shingled):
        m = MinHash(num_perm=112, seed=1)
        for g in grams:
            m.update(g)
        hits = lsh.query(m)
        if hits:
            first = min(hits)
            dup_of[d["id"]] = first
            clusters[d["id"]] = clusters.get(first, first)
        else:
            lsh.insert(d["id"], m)
            clusters[d["id"]] = d["id"]
    return time.perf_counter() - t0, clusters, dup_of


def run_rensa(docs, shingled=None):
    """rensa the plain way, as its README: RMinHash.update with a document's shingles, then
    RMinHashLSH query and insert (14 bands of 112 permutations, as ours). Shingles are made
    before the clock starts, as for datasketch."""
    from rensa import RMinHash, RMinHashLSH

    shingled = shingled or [[" ".join(g).encode("utf-8") for g in s] for s in shingle_sets([d["text"] for d in docs])]
    t0 = time.perf_counter()
    lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=112, num_bands=14)
    dup_of = {}
    for k, (d, grams) in enumerate(zip(docs, shingled)):
        m = RMinHash(num_perm=112, seed=1)
        m.update(grams)
        hits = lsh.query(m)
        if hits:
            dup_of[d["id"]] = docs[min(hits)]["id"]
        else:
            lsh.insert(k, m)
    return time.perf_counter() - t0, dup_of


def run_datatrove(docs, workdir: Path):
    """DataTrove's four MinHash steps with its local executor (1 task, as in its examples)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    src = workdir / "dt_in"
    src.mkdir(parents=True)
    with open(src / "docs.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    # its xxhash path passes str to xxhash 4, which refuses it; sha1 is its other hash
    cfg = MinhashConfig(hash_config=HashConfig(precision=64, hash_fc="sha1"), num_buckets=14, hashes_per_bucket=8, n_grams=5)
    reader = lambda: JsonlReader(str(src), id_key="id")  # noqa: E731
    t0 = time.perf_counter()
    LocalPipelineExecutor([reader(), MinhashDedupSignature(str(workdir / "sigs"), config=cfg)], tasks=1,
                          logging_dir=str(workdir / "l1")).run()
    LocalPipelineExecutor([MinhashDedupBuckets(str(workdir / "sigs"), str(workdir / "buckets"), config=cfg)],
                          tasks=cfg.num_buckets, workers=2, logging_dir=str(workdir / "l2")).run()
    LocalPipelineExecutor([MinhashDedupCluster(str(workdir / "buckets"), str(workdir / "remove"), config=cfg,
                                               save_cluster_id=True)], tasks=1, logging_dir=str(workdir / "l3")).run()
    LocalPipelineExecutor([reader(), MinhashDedupFilter(str(workdir / "remove"), load_cluster_ids=True,
                                                        exclusion_writer=JsonlWriter(str(workdir / "removed"))),
                           JsonlWriter(str(workdir / "kept"))], tasks=1, logging_dir=str(workdir / "l4")).run()
    elapsed = time.perf_counter() - t0
    clusters, removed = {}, []
    for part in ("kept", "removed"):
        for path in (workdir / part).glob("*.jsonl.gz"):
            with gzip.open(path, "rt") as f:
                for line in f:
                    r = json.loads(line)
                    cid = r["metadata"].get("minhash_cluster_id", -1)
                    clusters[r["id"]] = f"c{cid}" if cid != -1 else r["id"]
                    if part == "removed":
                        removed.append(r["id"])
    members = defaultdict(list)
    for i, c in clusters.items():
        members[c].append(i)
    kept_of = {c: next((m for m in ms if m not in set(removed)), ms[0]) for c, ms in members.items()}
    dup_of = {r: kept_of[clusters[r]] for r in removed}
    return elapsed, clusters, dup_of


# ---------- commands ----------

def cmd_quality(args):
    import pyarrow as pa

    docs = quality_corpus(args.base, args.planted)
    t0 = time.perf_counter()
    truth = true_pairs(docs)
    print(f"corpus: {len(docs)} docs, {len(truth)} true pairs at J>={THRESHOLD} (exact search {time.perf_counter()-t0:.1f}s)")
    table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs]})
    results = defaultdict(list)

    def record(name, elapsed, found=None):
        results[name].append((elapsed, score(docs, *found, truth) if found else None))
        print(f"  run: {name}: {elapsed:.2f} s {results[name][-1][1] or ''}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            el, cl, do = run_datasketch(docs)
            record("datasketch MinHashLSH", el, (cl, do))
            record("ours, core in-process (no verify)", run_core(docs))
            if not args.no_datatrove:
                try:
                    el, cl, do = run_datatrove(docs, Path(tmp) / f"dt{rep}")
                except Exception as e:  # the peer is optional: say why it is missing, keep our numbers
                    print(f"datatrove failed: {type(e).__name__}: {e}", flush=True)
                    args.no_datatrove = True
                else:
                    record("datatrove minhash", el, (cl, do))
        warm_up(args.warmup)
        configs = [("ours, Ray stage (verify)", {})] + ([] if args.no_unverified else [("ours, Ray stage (no verify)", {"verify": False})])
        for name, cfg in configs:
            for rep in range(args.stage_repeats):
                el, cl, do = run_ours(table, {**cfg, "scheme": args.scheme, "index": False}, Path(tmp) / f"o{rep}{name}")
                record(name, el, (cl, do))
    base = statistics.median(e for e, _ in results["datasketch MinHashLSH"])
    print(f"{'system':34} {'runs':>4} {'median s':>9} {'docs/s':>9} {'vs datasketch':>13} {'precision':>9} {'recall':>7} {'F1':>6} {'removed':>8}")
    for name, runs in results.items():
        med = statistics.median(e for e, _ in runs)
        s = runs[0][1]
        quality = f"{s['precision']:9.4f} {s['recall']:7.4f} {s['f1']:6.4f} {s['removed']:8d}" if s else f"{'-':>9} {'-':>7} {'-':>6} {'-':>8}"
        print(f"{name:34} {len(runs):4d} {med:9.2f} {len(docs)/med:9.0f} {base/med:12.1f}x {quality}", flush=True)


def cmd_chains(args):
    """Removal precision, pair recall and pair precision of our stage on families that chain."""
    import pyarrow as pa

    from dedup_chains import chain_corpus, chain_scores

    docs, chains = chain_corpus(real_texts(), args.families, args.unique)
    truth = true_pairs(docs)
    ends = sum(1 for c in chains for k in range(2, len(c)) if tuple(sorted((c[0], c[k]))) not in truth)
    print(f"corpus: {len(docs)} docs, {len(chains)} families, {len(truth)} true pairs at J>={THRESHOLD}, "
          f"{ends} family ends below it", flush=True)
    table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs]})
    with tempfile.TemporaryDirectory() as tmp:
        for scheme in args.schemes:
            for name, cfg in [("verify", {}), ("no verify", {"verify": False})]:
                _, clusters, dup_of = run_ours(table, {**cfg, "scheme": scheme, "index": False},
                                               Path(tmp) / f"{scheme}-{name.replace(' ', '')}")
                scores = chain_scores(docs, clusters, dup_of, truth, jaccard_strings, THRESHOLD)
                print(f"  ours ({scheme}, {name}): {scores}", flush=True)


def scale_corpus(n: int, seed: int = 0):
    """n short documents, 10% of them a copy of another document with one word changed, with the
    same duplicate structure at every size.

    A document is 2-5 real sentences (at most 80 words) with its words shuffled: real words,
    lengths and punctuation, but no 5-word shingle shared by chance. With the sentences left in
    order, every sentence of the pool (86k) is reused by about 40 documents at 1M, so partial
    overlaps, candidate pairs and cluster sizes grew with the corpus (largest cluster: 25 rows at
    10k, 3,898 at 1M): the scaling figures measured the corpus, not the stage.
    """
    import re

    import pyarrow as pa

    rng = np.random.default_rng(seed)
    sentences = [x.split() for t in real_texts() for x in re.split(r"(?<=[.!?])\s+", t) if len(x.split()) >= 5]
    picks = rng.integers(0, len(sentences), size=(n, 5))
    counts = rng.integers(2, 6, n)
    texts = []
    for row, k in zip(picks.tolist(), counts.tolist()):
        words = [w for j in row[:k] for w in sentences[j]]
        texts.append(" ".join(words[i] for i in rng.permutation(len(words))[:80]))
    for i in rng.choice(n, n // 10, replace=False).tolist():
        src = texts[int(rng.integers(0, n))].split()
        src[int(rng.integers(0, len(src)))] = "changed"
        texts[i] = " ".join(src)
    return pa.table({"id": [f"s{i:08d}" for i in range(n)], "text": texts})


def e2e_corpus(n: int, words: int = 300, seed: int = 0) -> list[dict]:
    """n documents of `words` real words each (drawn from the words of real_texts, so no 5-gram is
    shared by chance), 10% of them a copy of another with 1 to 10 words replaced."""
    rng = np.random.default_rng(seed)
    vocab = [w for t in real_texts()[:20000] for w in t.split()] + ["changed"]
    picks = rng.integers(0, len(vocab) - 1, size=(n, words), dtype=np.int32)
    for i in rng.choice(n, n // 10, replace=False).tolist():
        picks[i] = picks[int(rng.integers(0, n))]
        picks[i, rng.integers(0, words, int(rng.integers(1, 11)))] = len(vocab) - 1
    return [{"id": f"e{i:07d}", "text": " ".join([vocab[k] for k in row.tolist()])} for i, row in enumerate(picks)]


def cmd_e2e(args):
    """`pipeline run` with only `dedup` on a JSONL file, process start to exit, against rensa's whole
    process as its user writes it (rensa_dedup.py: JSONL in, kept JSONL out), and against the plain
    MinHash + LSH loops of datasketch and rensa on the same documents (shingled before their clock)."""
    import subprocess

    docs = e2e_corpus(args.docs)
    with tempfile.TemporaryDirectory() as tmp:
        corpus, config = Path(tmp) / "corpus.jsonl", Path(tmp) / "dedup.yaml"
        with open(corpus, "w") as f:
            f.writelines(json.dumps(d) + "\n" for d in docs)
        loops = args.kernel_repeats or args.datasketch_repeats  # the peers' loops, timed in this process
        if not loops:
            del docs  # only the processes are timed: the runs get the memory a million documents hold here
        config.write_text(f"input: {{format: jsonl, paths: ['{corpus}']}}\noutput: {{path: '{tmp}/out'}}\n"
                          f"stages:\n  - dedup: {{method: minhash}}\n")
        times: dict[str, list[float]] = defaultdict(list)
        removed = {}
        checkouts = [("ours", ROOT)] + ([("base", Path(args.base).resolve())] if args.base else [])
        for rep in range(args.repeats):
            for name, checkout in checkouts:  # alternating, so both see the same load
                shutil.rmtree(Path(tmp) / "out", ignore_errors=True)  # a finished output would only be resumed
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--quiet", str(config)], check=True,
                               capture_output=True, cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)})
                times[name].append(time.perf_counter() - t0)
                stats = json.loads((Path(tmp) / "out" / "stats.json").read_text())
                stage = next(s for s in stats["stages"] if s.get("name") == "dedup")
                removed[name] = stage.get("dropped")
                print(f"  run {rep}: {name} pipeline run {times[name][-1]:.2f} s (dedup stage {stage['wall_s']} s, "
                      f"first stage at {stats['time_to_first_stage_s']} s, dropped {stage.get('dropped')}), "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
            t0 = time.perf_counter()  # the peer's whole process as its user writes it, in the same round
            done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rensa_dedup.py"), str(corpus),
                                   str(Path(tmp) / "rensa_kept.jsonl")], check=True, capture_output=True, text=True)
            times["rensa process"].append(time.perf_counter() - t0)
            removed["rensa process"] = done.stdout.split()[-1]
            print(f"  run {rep}: rensa process {times['rensa process'][-1]:.2f} s, load {os.getloadavg()[0]:.1f}", flush=True)
        if loops:
            t0 = time.perf_counter()
            shingled = [[" ".join(g).encode("utf-8") for g in s] for s in shingle_sets([d["text"] for d in docs])]
            print(f"  shingling for the peers (before their clock, in Python): {time.perf_counter() - t0:.2f} s", flush=True)
        for rep in range(args.kernel_repeats):
            el, dup_of = run_rensa(docs, shingled)
            times["rensa kernel"].append(el)
            removed["rensa kernel"] = len(dup_of)
            print(f"  run {rep}: rensa kernel {el:.2f} s, load {os.getloadavg()[0]:.1f}", flush=True)
        for rep in range(args.datasketch_repeats):
            el, _, dup_of = run_datasketch(docs, shingled)
            times["datasketch"].append(el)
            removed["datasketch"] = len(dup_of)
            print(f"  run {rep}: datasketch {el:.2f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k in med:
        ratios = ", ".join(f"{peer} / this {med[peer] / med[k]:.2f}x" for peer in ("datasketch", "rensa kernel", "rensa process") if peer in med)
        print(f"{k:14} median {med[k]:7.2f} s of {len(times[k])} ({' '.join(f'{t:.2f}' for t in times[k])}), "
              f"removed {removed[k]}; {ratios}")


class ProcessTree:
    """Peak resident memory and CPU seconds of this process and every process it started (Ray's
    workers), and the machine's load average: on a shared machine the wall time alone says little."""

    def __init__(self):
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self._cpu: dict[int, float] = {}

    def _sample(self):
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
                t = p.cpu_times()
                self._cpu[p.pid] = t.user + t.system
            except Exception:
                pass
        self.peak = max(self.peak, total)

    def cpu_seconds(self) -> float:
        return sum(self._cpu.values()) - sum(self._cpu0.values())

    def __enter__(self):
        self._sample()
        self._cpu0 = dict(self._cpu)
        self.load = os.getloadavg()[0]

        def loop():
            while not self._stop.is_set():
                self._sample()
                time.sleep(0.5)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()
        self._sample()
        self.load = max(self.load, os.getloadavg()[0])


def warm_up(n: int) -> None:
    """An untimed run of our stage: Ray's workers start and import our modules (scipy,
    pyarrow.parquet, ...) once per session, not once per corpus; the distributed path puts every
    worker to work."""
    if n:
        _timed_run(scale_corpus(n, seed=1))


def cmd_scale(args):
    """Median wall time per size, and the same beyond the stage's fixed cost.

    The fixed cost is the median time of the stage on 100 documents in the same session: the Ray
    Data execution that consumes the output and the round trips of each pass, paid once per run
    whatever its size. Time per document beyond it is the stage's marginal cost."""
    import statistics

    init_ray()
    warm_up(args.warmup)
    small = scale_corpus(100, seed=2)
    fixed = statistics.median(_timed_run(small) for _ in range(5))
    print(f"fixed cost (100 documents, median of 5): {fixed:.3f} s", flush=True)
    for n in args.docs:
        table = scale_corpus(n)
        times, trees = [], []
        for _ in range(args.repeats):
            with ProcessTree() as tree:
                times.append(_timed_run(table))
            trees.append(tree)
        el = statistics.median(times)
        cpu = sum(t.cpu_seconds() for t in trees) / len(trees)
        print(f"{n:>9} docs  {el:8.2f} s  {el / n * 1e6:6.1f} us/doc  beyond fixed cost {(el - fixed) / n * 1e6:6.1f} us/doc  "
              f"{n / el:8.0f} docs/s  runs {' '.join(f'{t:.2f}' for t in times)}  "
              f"peak RSS (driver + Ray) first run {trees[0].peak / 2**30:.2f} GiB, any run {max(t.peak for t in trees) / 2**30:.2f} GiB  "
              f"CPU {cpu / n * 1e6:.1f} us/doc  load avg {max(t.load for t in trees):.1f}", flush=True)


def _timed_run(table) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return run_ours(table, {"index": False}, Path(tmp))[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--base", type=int, default=20000)
    q.add_argument("--planted", type=int, default=4000)
    q.add_argument("--repeats", type=int, default=3)
    q.add_argument("--stage-repeats", type=int, default=3, help="runs of our Ray stage (slow to start on a busy machine)")
    q.add_argument("--no-unverified", action="store_true", help="skip the run of our stage without verification")
    q.add_argument("--no-datatrove", action="store_true")
    q.add_argument("--warmup", type=int, default=2000, help="documents of an untimed first run of our stage (0: none)")
    q.add_argument("--scheme", default="rensa", help="the MinHash scheme of our stage's runs")
    c = sub.add_parser("chains")
    c.add_argument("--families", type=int, default=1000)
    c.add_argument("--unique", type=int, default=2000)
    c.add_argument("--schemes", nargs="+", default=["rensa", "affine32"], help="MinHash schemes to run the stage with")
    e = sub.add_parser("e2e")
    e.add_argument("--docs", type=int, default=100_000)
    e.add_argument("--repeats", type=int, default=3, help="runs of ours and of rensa; the medians are compared")
    e.add_argument("--datasketch-repeats", type=int, default=1, help="datasketch's loop takes minutes at 100k")
    e.add_argument("--kernel-repeats", type=int, default=3,
                   help="runs of rensa's loop alone on shingles made before its clock (0 with --datasketch-repeats 0: "
                        "no shingling, whose lists of a million documents do not fit in memory)")
    e.add_argument("--base", help="another checkout (the code before a change), run alternately with ours")
    s = sub.add_parser("scale")
    s.add_argument("--docs", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    s.add_argument("--warmup", type=int, default=2000, help="documents of an untimed first run (0: none)")
    s.add_argument("--repeats", type=int, default=3, help="runs per size; the median is reported")
    args = p.parse_args()
    {"quality": cmd_quality, "chains": cmd_chains, "e2e": cmd_e2e, "scale": cmd_scale}[args.cmd](args)


if __name__ == "__main__":
    main()
