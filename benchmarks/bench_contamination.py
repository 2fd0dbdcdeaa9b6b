"""Contamination detection on real web text: recall per kind of planted leak, false positives on
clean documents, and scan throughput, next to lm-evaluation-harness's Janitor (13-gram, python mode).

Corpus: main text of the shared web pages (extraction/trafilatura_eval HTML and the WARC response
records, extracted with resiliparse), cut into 500-word documents. Benchmarks: the shared HumanEval,
GSM8K and MMLU (test) copies, all three in one index. For --items sampled items per benchmark, one
document per kind of leak is made by inserting the item into a clean document at a sentence boundary:

- verbatim: the whole item as it would be printed (MMLU with "A. ..." option lines and "Answer: X")
- case / punctuation / whitespace: the whole item upper-cased / with punctuation changed / re-spaced
- changed_number: one number of the question changed (items with a number only)
- reordered_options: MMLU choices shuffled (MMLU only)
- partial: the question (or the HumanEval prompt) without choices, answer or solution

Recall: the planted item is among the hits of its document. False positives: clean documents with
any hit. Throughput: clean documents per second, single process (median of --repeats), then through
Ray Data (an actor pool of --ray-cpus workers).

    python benchmarks/bench_contamination.py [--items 200] [--repeats 5] [--ray-cpus 2]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import gzip
import io
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.contamination import REGISTRY, BenchmarkItem, NgramIndex, load_items  # noqa: E402

DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data"))
DOC_WORDS = 500
LIGHT_EDITS = ("case", "punctuation", "whitespace", "changed_number", "reordered_options")
KINDS = ("verbatim",) + LIGHT_EDITS + ("partial",)


def web_pages() -> list[str]:
    from resiliparse.extract.html2text import extract_plain_text
    from warcio.archiveiterator import ArchiveIterator

    htmls = [gzip.open(p).read().decode("utf-8", "replace")
             for p in sorted(glob.glob(str(DATA / "extraction" / "trafilatura_eval" / "html" / "*.gz")))]
    for path in sorted(glob.glob(str(DATA / "warc" / "*.warc.gz"))):
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type == "response" and "html" in (rec.http_headers.get_header("Content-Type") or ""):
                    htmls.append(rec.content_stream().read().decode("utf-8", "replace"))
    texts = (extract_plain_text(h, main_content=True) for h in htmls)
    return [t for t in texts if len(t.split()) >= 50]


def documents(pages: list[str], words: int = DOC_WORDS) -> list[str]:
    """Pages cut into documents of `words` words, short pages joined to the next ones."""
    docs, carry = [], []
    for page in pages:
        carry.extend(page.split(" "))
        while len(carry) >= words:
            docs.append(" ".join(carry[:words]))
            carry = carry[words:]
    return docs


def printed(item: BenchmarkItem, choices_order=None) -> str:
    if item.benchmark == "mmlu":
        question, choices = item.parts[0], list(item.parts[1:])
        order = choices_order or range(len(choices))
        lines = [question] + [f"{'ABCD'[k]}. {choices[i]}" for k, i in enumerate(order)]
        return "\n".join(lines + [f"Answer: {'ABCD'[0]}"])
    return "\n".join(item.parts)


def question_of(item: BenchmarkItem) -> str:
    return item.parts[0]


_NUMBER = re.compile(r"\b\d+\b")


def leak(item: BenchmarkItem, kind: str, rng: random.Random) -> str | None:
    """The text of one planted leak, or None when the kind does not apply to the item."""
    text = printed(item)
    if kind == "verbatim":
        return text
    if kind == "case":
        return text.upper() if rng.random() < 0.5 else text.title()
    if kind == "punctuation":
        return re.sub(r"[,.;:!?]", lambda m: rng.choice(["", " ,", " -", "!", m.group()]), text).replace("'", "’")
    if kind == "whitespace":
        return re.sub(r"\s+", lambda m: rng.choice([" ", "  ", "\n", "\t", " \n "]), text)
    if kind == "changed_number":
        numbers = list(_NUMBER.finditer(question_of(item)))
        if not numbers:
            return None
        m = rng.choice(numbers)
        q = question_of(item)
        changed = q[:m.start()] + str(int(m.group()) + rng.randint(1, 9)) + q[m.end():]
        return text.replace(q, changed, 1)
    if kind == "reordered_options":
        if item.benchmark != "mmlu":
            return None
        order = list(range(len(item.parts) - 1))
        while order == sorted(order):
            rng.shuffle(order)
        return printed(item, order)
    if kind == "partial":
        return question_of(item)
    raise ValueError(kind)


def plant(host: str, text: str, rng: random.Random) -> str:
    cuts = [m.end() for m in re.finditer(r"[.!?]\s", host)] or [len(host)]
    at = rng.choice(cuts)
    return host[:at] + "\n" + text + "\n" + host[at:]


class Janitor:
    """lm-evaluation-harness's Janitor (pip install --no-deps lm-eval): the peer, in its python mode."""

    def __init__(self, items: list[BenchmarkItem]):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from lm_eval.decontamination.janitor import Janitor as LmEvalJanitor
        self.janitor = LmEvalJanitor()
        for item in items:
            for part in item.parts:
                self.janitor.register_contaminant_python(part)

    def contaminated(self, text: str) -> bool:
        from lm_eval.decontamination.janitor import word_ngrams_indices

        dirt = self.janitor.dirt_ngrams
        return any(self.janitor.normalize_string(g) in dirt for g, _ in word_ngrams_indices(text, self.janitor.ngram_n))


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of this process (the machine may be shared)."""
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def scan_all(index: NgramIndex, docs: list[str], batch: int = 512) -> list:
    return [h for i in range(0, len(docs), batch) for h in index.scan(docs[i:i + batch])]


class _RayScan:
    """A worker that scans and reports the CPU seconds it spent, so per-core speed survives a busy machine."""

    def __init__(self, index):
        self.index = index

    def __call__(self, batch):
        import pyarrow as pa

        c = time.process_time()
        hits = self.index.scan(batch.column("text").to_pylist())
        cpu = time.process_time() - c
        return pa.table({"hits": pa.array([len(h) for h in hits], pa.int64()),
                         "cpu_s": pa.array([cpu] + [0.0] * (len(hits) - 1), pa.float64())})


def ray_throughput(index: NgramIndex, docs: list[str], cpus: int, repeats: int) -> tuple[float, float]:
    """(docs per wall second, docs per worker CPU second) of a Ray Data scan with `cpus` actors."""
    import ray
    import ray.data

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        data = ray.data.from_items([{"text": d} for d in docs], override_num_blocks=cpus * 4).materialize()
        results = []
        for _ in range(repeats + 1):  # the first run warms up: actors start, the index travels once
            t = time.perf_counter()
            out = data.map_batches(_RayScan, fn_constructor_args=(index,), batch_format="pyarrow", batch_size=512,
                                   compute=ray.data.ActorPoolStrategy(size=cpus)).sum("cpu_s")
            results.append((time.perf_counter() - t, out))
        wall = statistics.median(w for w, _ in results[1:])
        cpu = statistics.median(c for _, c in results[1:])
        return len(docs) / wall, len(docs) / cpu
    finally:
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200, help="items sampled per benchmark")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ray-cpus", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-words", type=int, default=6, help="shortest question indexed whole")
    ap.add_argument("--min-words-answer", type=int, default=8, help="shortest choice/answer indexed whole")
    ap.add_argument("--no-peer", action="store_true", help="skip lm-evaluation-harness's Janitor")
    args = ap.parse_args()
    rng = random.Random(args.seed)

    t = time.perf_counter()
    items = [it for name in ("humaneval", "gsm8k", "mmlu") for it in load_items(REGISTRY[name], DATA / "benchmarks")]
    index = NgramIndex.build(items, min_words=args.min_words, min_words_answer=args.min_words_answer)
    build_s = time.perf_counter() - t
    pages = web_pages()
    clean = documents(pages)
    print(f"index: {len(items):,} items, {index.stats.grams:,} n-grams, {index.stats.ignored_common} common ignored, "
          f"{index.stats.undetectable_items} items undetectable (too short), {index.stats.confirmed_items} short items "
          f"confirmed by their choices; built in {build_s:.1f}s")
    print(f"corpus: {len(pages):,} web pages -> {len(clean):,} clean documents of {DOC_WORDS} words")

    peer = None
    try:
        peer = None if args.no_peer else Janitor(items)
    except ImportError:
        print("peer: lm_eval not installed (pip install --no-deps lm-eval), Janitor columns skipped")

    by_bench: dict[str, list[BenchmarkItem]] = {}
    for it in items:
        by_bench.setdefault(it.benchmark, []).append(it)
    sample = [it for name, its in by_bench.items() for it in rng.sample(its, min(args.items, len(its)))]
    undetectable = {id(it) for it, g in zip(index.items, index.item_grams) if g == 0}
    planted: list[tuple[str, BenchmarkItem, str]] = []
    for it in sample:
        for kind in KINDS:
            text = leak(it, kind, rng)
            if text is not None:
                planted.append((kind, it, plant(rng.choice(clean), text, rng)))

    hits = scan_all(index, [doc for _, _, doc in planted])
    print(f"\nrecall per kind ({len(sample)} items: {args.items} per benchmark)")
    print(f"{'kind':<18}{'docs':>6}{'ours':>9}{'ours*':>9}{'janitor':>9}   per benchmark (ours)")
    for kind in KINDS:
        rows = [(it, doc, h) for (k, it, doc), h in zip(planted, hits) if k == kind]
        found = [any(x.item.benchmark == it.benchmark and x.item.item_id == it.item_id for x in h) for it, _, h in rows]
        detectable = [f for (it, _, _), f in zip(rows, found) if id(it) not in undetectable]
        peer_found = [peer.contaminated(doc) for _, doc, _ in rows] if peer else []
        per = {b: [f for (it, _, _), f in zip(rows, found) if it.benchmark == b] for b in by_bench}
        per_s = "  ".join(f"{b} {100 * sum(v) / len(v):.1f}%" for b, v in per.items() if v)
        peer_s = f"{100 * sum(peer_found) / len(peer_found):8.1f}%" if peer_found else "       -"
        print(f"{kind:<18}{len(rows):>6}{100 * sum(found) / len(found):8.1f}%{100 * sum(detectable) / max(1, len(detectable)):8.1f}%"
              f"{peer_s}   {per_s}")
    print("(ours* = over items with at least one indexed n-gram)")

    clean_hits = scan_all(index, clean)
    fp = [(d, h) for d, h in zip(clean, clean_hits) if h]
    peer_fp = sum(peer.contaminated(d) for d in clean) if peer else None
    print(f"\nfalse positives on clean documents: {len(fp)} / {len(clean)} = {100 * len(fp) / len(clean):.3f}%"
          + (f"   (janitor: {peer_fp} = {100 * peer_fp / len(clean):.3f}%)" if peer else ""))
    for d, h in fp[:5]:
        x = h[0]
        a, b = x.spans[0]
        print(f"  {x.item.benchmark} {x.item.item_id} coverage {x.coverage:.3f}: {d[a:b][:150]!r}")

    wall, cpu = timed(lambda: scan_all(index, clean), args.repeats)
    print(f"\nthroughput, single process, {len(clean)} docs x {DOC_WORDS} words, 3 benchmarks: "
          f"{len(clean) / cpu:,.0f} docs per CPU-second ({len(clean) / wall:,.0f} docs/s wall)")
    if peer:
        subset = clean[: max(50, len(clean) // 10)]
        peer_wall, peer_cpu = timed(lambda: [peer.contaminated(d) for d in subset], max(1, args.repeats // 2))
        print(f"janitor (python mode): {len(subset) / peer_cpu:,.0f} docs per CPU-second "
              f"-> ours / janitor = {(len(clean) / cpu) / (len(subset) / peer_cpu):.1f}x")
    docs_ray = (clean * max(1, 10_000 // len(clean) + 1))[:10_000]
    wall_rate, cpu_rate = ray_throughput(index, docs_ray, args.ray_cpus, max(1, args.repeats // 2))
    print(f"through Ray Data, {args.ray_cpus} actors, {len(docs_ray):,} docs: {cpu_rate:,.0f} docs per worker "
          f"CPU-second; {wall_rate:,.0f} docs/s wall")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
