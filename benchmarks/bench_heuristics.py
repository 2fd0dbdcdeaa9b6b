"""Issue 3 benchmark: heuristic rules, PII redaction and URL block lists, next to DataTrove's equivalents.

Corpus: the main text of the 990 real pages of the trafilatura evaluation set (shared data),
extracted with resiliparse. On it, in one process and one run:
- docs/s of each rule family and of the whole chain (Gopher repetition -> Gopher quality -> C4
  -> FineWeb), ours against DataTrove's GopherRepetitionFilter, GopherQualityFilter,
  C4QualityFilter and FineWebQualityFilter (their English word tokenizer is spaCy's blank
  model, which needs no download), medians over interleaved repeats, plus how often both
  decide the same (keep or drop) per family;
- docs/s of PII redaction, ours (e-mail, phone, IP, card) against DataTrove's PIIFormatter
  (e-mail and IP only: it does less);
- URL block lists: load time of a generated 1,000,000-domain + 100,000-substring list, and of
  the real UT1 adult list DataTrove ships (4.5M domains, 20k URLs) against DataTrove's
  URLFilter loading the same files; URL checks/s on real URLs with blocked ones mixed in;
  the two Aho-Corasick libraries (ahocorasick-rs, ours; pyahocorasick, DataTrove's) on 100k substrings.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/bench_heuristics.py [--repeats 5] [--pages 990] [--parts heuristics,pii,urls]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import string
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.heuristics import Heuristics  # noqa: E402
from filters.pii import PiiRedactor  # noqa: E402
from filters.urls import UrlBlocklist  # noqa: E402

SHARED = Path(os.environ.get("PIPELINE_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()
PAGES = SHARED / "extraction" / "trafilatura_eval"
FAMILIES = ("gopher_repetition", "gopher_quality", "c4", "fineweb")


def load_corpus(limit: int) -> tuple[list[str], list[str]]:
    """(main texts, URLs) of the evaluation pages."""
    from resiliparse.extract.html2text import extract_plain_text

    entries = list(json.loads((PAGES / "evaldata.json").read_text()).items())[:limit]
    texts, urls = [], []
    for url, entry in entries:
        html = gzip.decompress((PAGES / "html" / (entry["file"] + ".gz")).read_bytes()).decode("utf-8", "replace")
        text = extract_plain_text(html, main_content=True)
        if text.strip():
            texts.append(text)
        urls.append(url)
    return texts, urls


def timed(fn, items) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = [fn(x) for x in items]
    return time.perf_counter() - t0, out


def compare(name: str, ours, theirs, items, repeats: int) -> tuple[list, list]:
    """Interleaved repeats of two callables over the items; prints items/s of both and the ratio."""
    times_ours, times_theirs = [], []
    for _ in range(repeats):
        t, out_ours = timed(ours, items)
        times_ours.append(t)
        t, out_theirs = timed(theirs, items)
        times_theirs.append(t)
    a, b = statistics.median(times_ours), statistics.median(times_theirs)
    print(f"  {name:<22} ours {len(items) / a:9.0f}/s   DataTrove {len(items) / b:9.0f}/s   ratio {b / a:5.2f}x")
    return out_ours, out_theirs


def datatrove_filters() -> dict:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return {
        "gopher_repetition": GopherRepetitionFilter(),
        "gopher_quality": GopherQualityFilter(),
        "c4": C4QualityFilter(),
        "fineweb": FineWebQualityFilter(),
    }


def datatrove_check(filters):
    from datatrove.data import Document

    def check(text: str) -> str | None:
        doc = Document(text=text, id="0")
        for name, f in filters:
            verdict = f.filter(doc)
            if verdict is not True and (verdict is False or not verdict[0]):
                return f"{name}.{verdict[1] if isinstance(verdict, tuple) else 'dropped'}"
        return None

    return check


def bench_heuristics(texts: list[str], repeats: int) -> None:
    print(f"\nHeuristics on {len(texts)} pages ({sum(map(len, texts)) / len(texts):.0f} characters on average)")
    theirs = datatrove_filters()
    for family in FAMILIES:
        ours_chain = Heuristics.build([family])
        ours, dt = compare(
            family, lambda t: ours_chain.check(t)[0], datatrove_check([(family, theirs[family])]), texts, repeats
        )
        same = sum((a is None) == (b is None) for a, b in zip(ours, dt)) / len(texts)
        kept_ours, kept_dt = sum(a is None for a in ours), sum(b is None for b in dt)
        print(f"  {'':<22} kept: ours {kept_ours}, DataTrove {kept_dt}; same decision on {same:.1%} of pages")
        differ = Counter((a or "kept", b or "kept") for a, b in zip(ours, dt) if (a is None) != (b is None))
        if differ:
            print(f"  {'':<22} where they differ (ours / DataTrove): " + ", ".join(f"{a} / {b} x{n}" for (a, b), n in differ.most_common(3)))
    chain = Heuristics.build(FAMILIES)
    ours, dt = compare(
        "whole chain", lambda t: chain.check(t)[0], datatrove_check([(f, theirs[f]) for f in FAMILIES]), texts, repeats
    )
    same = sum((a is None) == (b is None) for a, b in zip(ours, dt)) / len(texts)
    print(f"  {'':<22} kept: ours {sum(a is None for a in ours)}, DataTrove {sum(b is None for b in dt)}; same decision on {same:.1%}")
    print("  our reasons:", ", ".join(f"{r or 'kept'} {n}" for r, n in Counter(ours).most_common(8)))


def bench_pii(texts: list[str], repeats: int) -> None:
    from datatrove.pipeline.formatters import PIIFormatter

    print(f"\nPII redaction on the same {len(texts)} pages")
    ours, theirs = PiiRedactor(), PIIFormatter()
    found, _ = compare("pii", ours.redact, theirs.format, texts, repeats)
    totals = Counter()
    for _, counts in found:
        totals.update(counts)
    print(f"  {'':<22} ours replaced: {dict(totals)}")


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench_urls(urls: list[str], repeats: int, tmp: Path) -> None:
    print("\nURL block lists")
    rng = random.Random(0)
    letters = string.ascii_lowercase
    names = ["".join(rng.choices(letters, k=rng.randint(6, 14))) + rng.choice([".com", ".net", ".org", ".de"]) for _ in range(1_000_000)]
    domain_file, substring_file = tmp / "domains.txt", tmp / "substrings.txt"
    domain_file.write_text("\n".join(names) + "\n")
    generated_substrings = {"".join(rng.choices(letters, k=rng.randint(6, 16))) for _ in range(100_000)}
    substring_file.write_text("".join(f"/{s}\n" for s in generated_substrings))
    t, _ = median_time(lambda: UrlBlocklist.load([domain_file], [substring_file]), repeats)
    print(f"  generated 1,000,000 domains + 100,000 substrings: ours loads in {t:.2f} s (median of {repeats})")

    import datatrove

    archive = Path(datatrove.__file__).parent / "assets" / "url_filterblacklistsv0_3_0.tar.gz"
    with tarfile.open(archive) as tar:
        tar.extractall(tmp / "ut1", filter="data")
    ut1_domains, ut1_urls = tmp / "ut1" / "domains", tmp / "ut1" / "urls"
    t_ours, ut1 = median_time(lambda: UrlBlocklist.load([ut1_domains], [ut1_urls]), repeats)

    def datatrove_load():
        from datatrove.pipeline.filters.url_filter import URLFilter
        from tldextract import TLDExtract

        f = URLFilter()
        f.tldextractor = TLDExtract(suffix_list_urls=(), cache_dir=str(tmp / "tld"))  # offline: bundled suffix list
        f.download_data()
        return f

    t_dt, dt_filter = median_time(datatrove_load, repeats)
    print(
        f"  UT1 list ({len(ut1.domains):,} domains, {ut1.substring_count:,} URL substrings): "
        f"ours {t_ours:.2f} s, DataTrove URLFilter {t_dt:.2f} s (medians of {repeats})"
    )

    blocked = rng.sample(sorted(ut1.domains), 200)
    sample = [*urls, *(f"https://www.{d}/page" for d in blocked), *(f"https://x.org/{s}/a" for s in sorted(generated_substrings)[:100])] * 20
    rng.shuffle(sample)
    from datatrove.data import Document

    docs = [Document(text="", id="0", metadata={"url": u}) for u in sample]
    times_ours, times_dt = [], []
    for _ in range(repeats):
        t, ours = timed(ut1.reason, sample)
        times_ours.append(t)
        t, theirs = timed(dt_filter.filter, docs)
        times_dt.append(t)
    a, b = statistics.median(times_ours), statistics.median(times_dt)
    print(f"  {len(sample):,} URL checks: ours {len(sample) / a:,.0f}/s, DataTrove {len(sample) / b:,.0f}/s, ratio {b / a:.2f}x")
    print(f"  blocked: ours {sum(r is not None for r in ours):,}, DataTrove {sum(v is not True for v in theirs):,} "
          f"(of {len(sample):,}; {20 * len(blocked):,} are subdomains of listed domains)")
    bench_automata([f"/{line}" for line in sorted(generated_substrings)], sample, repeats)


def bench_automata(patterns: list[str], urls: list[str], repeats: int) -> None:
    """The two Aho-Corasick libraries on the same substrings: build time and URL scans."""
    import ahocorasick
    import ahocorasick_rs

    def build_py():
        automaton = ahocorasick.Automaton()
        for i, p in enumerate(patterns):
            automaton.add_word(p, i)
        automaton.make_automaton()
        return automaton

    t_rs, rs = median_time(lambda: ahocorasick_rs.AhoCorasick(patterns, store_patterns=False), repeats)
    t_py, py = median_time(build_py, repeats)
    s_rs, hits_rs = median_time(lambda: sum(bool(rs.find_matches_as_indexes(u)) for u in urls), repeats)
    s_py, hits_py = median_time(lambda: sum(next(py.iter(u), None) is not None for u in urls), repeats)
    assert hits_rs == hits_py
    print(f"  Aho-Corasick, {len(patterns):,} substrings: build ahocorasick-rs {t_rs:.2f} s, pyahocorasick {t_py:.2f} s; "
          f"{len(urls):,} URL scans {s_rs:.3f} s vs {s_py:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pages", type=int, default=990)
    parser.add_argument("--parts", default="heuristics,pii,urls")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    texts, urls = load_corpus(args.pages)
    if "heuristics" in parts:
        bench_heuristics(texts, args.repeats)
    if "pii" in parts:
        bench_pii(texts, args.repeats)
    if "urls" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            bench_urls(urls, max(1, args.repeats // 2), Path(tmp))


if __name__ == "__main__":
    main()
