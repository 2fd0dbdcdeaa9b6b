"""Contamination detection measured on the hard leak corpus (benchmarks/contamination_leaks.py), in one run:
recall per kind of leak (and per kind x benchmark, per variant), false positives on clean web documents,
and scan speed, for the `decontaminate` stage's matcher configured as a user would (the stage's
defaults, the registered benchmarks by name), beside a plain 8-gram and a 13-gram index over each
item's whole rendering (lm-evaluation-harness's words, every gram), built in the same run.

Clean documents: the shared extraction set's pages and the WARC responses, main text extracted with
resiliparse (as bench_contamination.py does), cut into --doc-words-word documents (200 gives 5,182).
Three more clean sets, reported beside them: AG News descriptions joined into documents of the same
length (English news), the harmless HH-RLHF dialogues (chat text, like instruction data), and up to
10,000 documents of Python source from the installed packages (code, where HumanEval's grams live).

Recall: the planted item is among the hits of its document (or chat row, its messages joined as the stage
joins them). Speed: clean documents scanned per CPU-second of this process, the
median of --repeats, on 500-word documents (the length bench_contamination.py and issue 17 use).

    python benchmarks/bench_contamination_leaks.py [--items 200] [--repeats 3] [--seed 0]

`--semantic MODEL` measures the stage's semantic pass instead (filters/contamination/semantic.py), on the
paraphrase kind: candidate recall (the planted item among a leak's candidates, over all paraphrase leaks
and over those the n-grams miss), candidates per clean document (what the judge would be asked), for a
few top_k and min_cosine, and the embedding throughput (windows, vectors and candidates per CPU-second).
`--build-model` first builds the best model this machine could make offline into the --semantic folder
and measures it: a static model whose word vectors are random and scaled by each word's IDF over the
clean web text, AG News, the HH-RLHF dialogues and the benchmarks' own text (`idf_weighted_model`), so a
cosine is the IDF-weighted share of words two texts have in common. fastText skipgram vectors trained on
the same texts did worse (2026-12-05: top_k 1 found 0.677 of the paraphrase leaks' items, and every
clean English document had a candidate at cosine 0.8): a corpus this small teaches them one shared
direction, not synonyms. `--judge TEACHER` also sends the
top candidate pairs to a vLLM CPU server it starts with that model, for the judge's requests per second.

    python benchmarks/bench_contamination_leaks.py --semantic DIR [--build-model] [--judge models/tiny-llama-seeds]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import glob
import gzip
import json
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import math  # noqa: E402
from collections import Counter  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from benchmarks.bench_contamination import DATA, documents, scan_all, timed, web_pages  # noqa: E402
from benchmarks.contamination_leaks import KINDS, Leak, corpus, load_sources, render, sample  # noqa: E402
from filters.contamination import NgramIndex, build_index  # noqa: E402
from filters.contamination.rows import RowText  # noqa: E402
from pipeline.records import row_texts  # noqa: E402
from stages.decontaminate import DecontaminateConfig  # noqa: E402
from tiny_models.embedder import WORD, build, vocabulary  # noqa: E402

BENCHMARKS = ("humaneval", "gsm8k", "mmlu")


def ours(names) -> NgramIndex:
    """The index the stage builds from `benchmarks: [names]` and every other option at its default."""
    c = DecontaminateConfig(benchmarks=list(names), benchmarks_dir=str(DATA / "benchmarks"))
    index, _ = build_index(c.benchmark_entries(), c.local_copies(), n=c.ngram, min_words=c.min_words,
                           min_words_answer=c.min_words_answer, max_item_frequency=c.max_item_frequency,
                           background=c.background)
    return index


class PlainNgrams:
    """The baseline: an n-gram index over each item's whole rendering (the verbatim kind's first format) with
    lm-evaluation-harness's rule (lower-case, punctuation deleted, split on whitespace), every n-gram, an
    item shorter than n words as one gram, none ignored. Written apart from ours, so our changes to the
    words or the grams cannot move it."""

    def __init__(self, sources, n: int):
        self.n = n
        self.grams: dict[int, set[tuple[str, str]]] = defaultdict(set)
        self.lengths = set()
        for s in sources:
            ws = self.words(render(s, 0))
            length = min(n, len(ws))
            self.lengths.add(length)
            for i in range(len(ws) - length + 1):
                self.grams[hash(" ".join(ws[i:i + length]))].add(s.key)

    @staticmethod
    def words(text: str) -> list[str]:
        return re.sub(r"[^\w\s]|_", "", text.lower()).split()

    def found(self, text: str) -> set[tuple[str, str]]:
        ws = self.words(text)
        out = set()
        for length in self.lengths:
            for i in range(len(ws) - length + 1):
                out |= self.grams.get(hash(" ".join(ws[i:i + length])), set())
        return out


def idf_weighted_model(out_dir, texts: list[str], vectors: dict[str, np.ndarray] | None = None, dim: int = 64) -> Path:
    """A static sentence-transformers model whose word vectors are scaled by the words' IDF over `texts` (as
    SIF embeddings weight them), so the common words every text shares ("the", "she") do not make every
    pair similar: `vectors` by word (trained word vectors; a word without one gets none), else random ones,
    whose cosines then measure the IDF-weighted words two texts share."""
    words = vocabulary(texts)
    df = Counter(w for t in texts for w in set(WORD.findall(t.lower())))
    idf = np.array([math.log(len(texts) / df[w]) for w in words], dtype=np.float32)
    if vectors is None:
        base = np.random.default_rng(0).standard_normal((len(words), dim))
    else:
        dim = len(next(iter(vectors.values())))
        base = np.array([vectors.get(w, np.zeros(dim)) for w in words])
    return build(out_dir, words, base * idf[:, None])


def leak_texts(leaks: list[Leak]) -> list[str]:
    """What the stage scans: a document's text, or an instruction row's messages joined as the stage joins them."""
    rows = [i for i, lk in enumerate(leaks) if lk.messages is not None]
    table = pa.table({"messages": [list(leaks[i].messages) for i in rows]})
    texts = [lk.text for lk in leaks]
    for i, row in zip(rows, row_texts(table, "text")):
        texts[i] = RowText.join(row).text
    return texts


def english_news(words: int) -> list[str]:
    with open(DATA / "classification" / "ag_news" / "train80.csv", newline="") as f:
        return documents([f"{r[1]}. {r[2]}" for r in csv.reader(f)], words)


def python_code(words: int, files: int = 3000) -> list[str]:
    """Python source of the installed packages (the venv's site-packages), cut into documents: code that
    holds no HumanEval solution, for the false positives HumanEval's code grams could give on code data."""
    paths = sorted(glob.glob(f"{sys.prefix}/lib/python3*/site-packages/*/**/*.py", recursive=True))
    random.Random(0).shuffle(paths)
    texts = []
    for path in paths[:files]:
        with contextlib.suppress(OSError, UnicodeDecodeError), open(path, encoding="utf-8") as f:
            texts.append(f.read())
    return documents(texts, words)[:10_000]


def dialogues() -> list[str]:
    with gzip.open(DATA / "preferences" / "hh_rlhf_harmless" / "pairs.jsonl.gz", "rt") as f:
        return [json.loads(line)["chosen"] for line in f]


def found_keys(matcher, texts: list[str]) -> list[set[tuple[str, str]]]:
    if isinstance(matcher, PlainNgrams):
        return [matcher.found(t) for t in texts]
    return [{(h.item.benchmark, h.item.item_id) for h in row} for row in scan_all(matcher, texts)]


def pct(part: int, whole: int) -> str:
    return f"{part / whole:.3f}" if whole else "-"


def semantic_main(args, index: NgramIndex, leaks, texts, found, clean) -> None:
    from filters.contamination.semantic import candidates, default_window, item_views, windows
    from filters.embeddings import Embedder

    if args.build_model:
        t = time.perf_counter()
        corpus_texts = clean + english_news(args.doc_words) + dialogues() + ["\n".join(i.parts) for i in index.items]
        idf_weighted_model(Path(args.semantic), corpus_texts)
        print(f"built {args.semantic}: random 64-dim word vectors scaled by IDF over {len(corpus_texts):,} texts, "
              f"in {time.perf_counter() - t:.0f}s")
    embedder = Embedder(args.semantic, "cpu")
    views, owner = item_views(index.items)
    t = time.perf_counter()
    item_vectors = embedder.encode(views)
    words = args.window_words or default_window(index.items)
    print(f"semantic: {args.semantic}; {len(views):,} item views embedded in {time.perf_counter() - t:.1f}s; windows of {words} words")
    position = {(it.benchmark, it.item_id): i for i, it in enumerate(index.items)}
    top = max(TOP_KS)

    def candidates_of(docs: list[str]):
        spans = [(d, span) for d, text in enumerate(docs) for span in windows(text, words)]
        vectors = embedder.encode([docs[d][a:b] for d, (a, b) in spans])
        return candidates(vectors, [d for d, _ in spans], item_vectors, owner, len(docs), top, -1.0, [sp for _, sp in spans])

    para = [i for i, lk in enumerate(leaks) if lk.kind == "paraphrase"]
    found_para = candidates_of([texts[i] for i in para])
    missed = [k for k, i in enumerate(para) if not found["ours"][i]]
    others = {"web (extraction + WARC)": clean, "English news (AG News)": english_news(args.doc_words)}
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    found_clean = {label: candidates_of(docs) for label, docs in others.items()}
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    n_clean = sum(len(d) for d in others.values())
    print(f"{len(para)} paraphrase leaks, {len(missed)} of them missed by the n-grams; "
          + ", ".join(f"{len(d):,} {label} documents" for label, d in others.items()))
    print(f"\n{'top_k':>5}{'min_cos':>8}{'recall':>8}{'of missed':>10}{'with n-grams':>13}"
          + "".join(f"{'cand/doc ' + label.split(' ')[0]:>18}" for label in others))
    for k in TOP_KS:
        for floor in MIN_COSINES:
            def hit(cands, key):
                return any(position[key] == c.item and c.cosine >= floor for c in cands[:k])
            got = [hit(found_para[j], leaks[i].source.key) for j, i in enumerate(para)]
            per_doc = [sum(c.cosine >= floor for row in rows for c in row[:k]) / len(rows) for rows in found_clean.values()]
            both = sum(g or found["ours"][i] for g, i in zip(got, para))
            print(f"{k:>5}{floor:>8.2f}{pct(sum(got), len(got)):>8}{pct(sum(got[j] for j in missed), len(missed)):>10}"
                  f"{pct(both, len(para)):>13}" + "".join(f"{v:>18.3f}" for v in per_doc))
    print(f"\nembedding throughput (windows, vectors, candidates): {n_clean / cpu:,.0f} clean {args.doc_words}-word docs per "
          f"CPU-second of this process ({n_clean / wall:,.0f} docs/s wall)")
    if args.judge:
        judge_rate(args, index, leaks, para, found_para, texts, position)


def judge_rate(args, index, leaks, para, found_para, texts, position) -> None:
    """The judge's requests per second on a vLLM CPU server this starts, over the top candidate of each
    paraphrase leak (as the stage sends them, top_k 1): its verdicts are counted, not scored."""
    from filters.contamination.semantic import SemanticOptions, item_text, judge_request, parse_verdict
    from generators.factory import make_client, parse_llm_config, server_process, worker_config

    options = SemanticOptions(model=args.semantic, judge="teacher")
    pairs = [(found_para[j][0], i) for j, i in enumerate(para) if found_para[j]][:args.judge_requests]
    requests = [judge_request(item_text(index.items[c.item]), texts[i][c.span[0]:c.span[1]], options, 0) for c, i in pairs]
    config = {"backend": "vllm_server", "model": args.judge, "cpu": True, "dtype": "float32", "max_model_len": 2048,
              "startup_timeout_s": 1200}
    with server_process(parse_llm_config(config)) as server:  # started here, stopped on leaving
        client = make_client(worker_config(config, server))
        client.generate(requests[:2])  # warm-up
        t = time.perf_counter()
        responses = client.generate(requests)
        wall = time.perf_counter() - t
        client.close()
    verdicts = [parse_verdict(r) for r in responses]
    true = [position[leaks[i].source.key] == c.item for c, i in pairs]
    print(f"judge {args.judge} on vLLM CPU: {len(requests)} requests in {wall:.1f}s = {len(requests) / wall:.2f} requests/s; "
          f"verdicts yes {sum(v.same is True for v in verdicts)}, no {sum(v.same is False for v in verdicts)}, "
          f"unparsed/failed {sum(v.same is None for v in verdicts)}; {sum(true)} of the pairs hold the true item "
          "(a tiny random-weight teacher: its verdicts measure nothing)")


TOP_KS = (1, 3, 5)
MIN_COSINES = (0.5, 0.6, 0.7, 0.8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200, help="items sampled per benchmark")
    ap.add_argument("--doc-words", type=int, default=200, help="words per clean document")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--semantic", metavar="MODEL", help="measure the semantic pass with this sentence-transformers model")
    ap.add_argument("--build-model", action="store_true", help="with --semantic DIR: build the offline word-vector model there first")
    ap.add_argument("--window-words", type=int, default=None, help="semantic: words per window (default: the stage's)")
    ap.add_argument("--judge", metavar="MODEL", help="semantic: also time the judge on a vLLM CPU server serving MODEL")
    ap.add_argument("--judge-requests", type=int, default=64, help="semantic: candidate pairs sent to the judge")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"bench_contamination_leaks {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"--items {args.items} --doc-words {args.doc_words} --seed {args.seed}")

    sources = load_sources(BENCHMARKS, DATA / "benchmarks")
    pages = web_pages()
    clean = documents(pages, args.doc_words)
    leaks = corpus(sample(sources, args.items, rng), clean, rng)
    t = time.perf_counter()
    matchers = {"ours": ours(BENCHMARKS)}
    build_s = time.perf_counter() - t
    matchers |= {"8-gram": PlainNgrams(sources, 8), "13-gram": PlainNgrams(sources, 13)}
    s = matchers["ours"].stats
    print(f"ours: stage defaults over {', '.join(BENCHMARKS)}: {s.items:,} items, {s.grams:,} grams, "
          f"{s.undetectable_items} undetectable, {s.confirmed_items} confirmed by their choices; built in {build_s:.1f}s")
    print(f"corpus: {len(leaks):,} leaks ({args.items} items per benchmark, half from the shortest quarter); "
          f"{len(clean):,} clean web documents of {args.doc_words} words from {len(pages):,} pages")

    texts = leak_texts(leaks)
    found = {}
    for name, matcher in matchers.items():
        found[name] = [lk.source.key in keys for lk, keys in zip(leaks, found_keys(matcher, texts))]
    if args.semantic:
        return semantic_main(args, matchers["ours"], leaks, texts, found, clean)

    names = list(matchers)
    print(f"\n{'kind':<13}{'leaks':>6}" + "".join(f"{n:>9}" for n in names) + "   ours per benchmark")
    for kind in KINDS:
        idx = [i for i, lk in enumerate(leaks) if lk.kind == kind]
        per = defaultdict(list)
        for i in idx:
            per[leaks[i].source.item.benchmark].append(found["ours"][i])
        print(f"{kind:<13}{len(idx):>6}" + "".join(f"{pct(sum(found[n][i] for i in idx), len(idx)):>9}" for n in names)
              + "   " + "  ".join(f"{b} {pct(sum(v), len(v))}" for b, v in sorted(per.items())))

    print(f"\nper kind x benchmark x variant ({' / '.join(names)})")
    groups = defaultdict(list)
    for i, lk in enumerate(leaks):
        groups[(lk.kind, lk.source.item.benchmark, lk.variant.split(":")[0] if lk.kind == "instruction" else lk.variant)].append(i)
    for (kind, bench, variant), idx in sorted(groups.items(), key=lambda kv: (KINDS.index(kv[0][0]), kv[0][1:])):
        print(f"  {kind:<12}{bench:<10}{variant:<18}{len(idx):>4}  "
              + " / ".join(pct(sum(found[n][i] for i in idx), len(idx)) for n in names))

    print("\nfalse positives (documents with any hit)")
    others = {"web (extraction + WARC)": clean, "English news (AG News)": english_news(args.doc_words),
              "chat dialogues (HH-RLHF)": dialogues(), "Python code (site-packages)": python_code(args.doc_words)}
    for label, docs in others.items():
        line = []
        for name, matcher in matchers.items():
            bad = sum(bool(keys) for keys in found_keys(matcher, docs))
            line.append(f"{name} {bad} = {100 * bad / len(docs):.3f}%")
        print(f"  {label}, {len(docs):,} docs: " + "; ".join(line))
        for d, h in [(d, h) for d, h in zip(docs, scan_all(matchers["ours"], docs)) if h][:5]:
            a, b = h[0].spans[0]
            print(f"    ours: {h[0].item.benchmark} {h[0].item.item_id}: {d[max(0, a - 60):b + 60]!r}")

    long_docs = documents(pages, 500)
    index = matchers["ours"]
    for label, docs in ((f"{len(long_docs):,} docs x 500 words", long_docs), (f"{len(clean):,} docs x {args.doc_words} words", clean)):
        wall, cpu = timed(lambda: scan_all(index, docs), args.repeats)
        print(f"\nscan speed, ours, {label}: {len(docs) / cpu:,.0f} docs per CPU-second "
              f"({len(docs) / wall:,.0f} docs/s wall, median of {args.repeats})", end="")
    print()


if __name__ == "__main__":
    main()
