"""How far can `auto` go by falling back to trafilatura on more pages? An upper bound.

For every page of trafilatura's evaluation set, the snippets found and leaked by `auto` and by our
trafilatura engine; then pages are moved to trafilatura greedily, each time the one that raises the
set's F1 most, as a perfect predictor of "the fast text is wrong here" would. Printed: F1 by fallback
share, the share that keeps `auto` at 8x trafilatura's pages per CPU-second at the given speeds, and
where in the fast text the boilerplate snippets it keeps lie.

    python benchmarks/extract_fallback_oracle.py [--fast-rate 480.6] [--slow-rate 48.2] [--peer-rate 39.2]

(rates: pages per CPU-second of resiliparse, our trafilatura engine and trafilatura's defaults, from
bench_extract.py on the same machine)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_extract import f1, load_pages, snippet_counts  # noqa: E402

from filters.extract_auto import SLOW, extract_auto  # noqa: E402
from filters.html_extract import extract_resiliparse, extract_trafilatura, triage  # noqa: E402


def leak_places(text: str, without: list[str]) -> list[tuple[float, str]]:
    """(relative position in the text, its line) of each boilerplate snippet the text keeps."""
    lines = text.split("\n")
    return [(text.index(s) / len(text), next(line for line in lines if s in line).strip()) for s in without if s in text]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fast-rate", type=float, default=480.6)
    ap.add_argument("--slow-rate", type=float, default=48.2)
    ap.add_argument("--peer-rate", type=float, default=39.2)
    ap.add_argument("--max-extra", type=int, default=60, help="pages moved to trafilatura at most")
    args = ap.parse_args()

    pages, wanted, leaks = [], 0, []
    for url, raw, with_, without in load_pages():
        html = triage(raw, None, 10_000_000)[0] or ""
        text, _, engine = extract_auto(html, url, extract_resiliparse, extract_trafilatura)
        if engine != SLOW:
            leaks += leak_places(text, without)
        slow_text = extract_trafilatura(html, url)[0]
        pages.append((engine == SLOW, snippet_counts(text, with_, without), snippet_counts(slow_text, with_, without)))
        wanted += len(with_)
    slow = [fell_back for fell_back, _, _ in pages]
    found = sum((t if s else a)[0] for s, (_, a, t) in zip(slow, pages))
    leaked = sum((t if s else a)[1] for s, (_, a, t) in zip(slow, pages))
    budget = (1 / (8 * args.peer_rate) - 1 / args.fast_rate) * args.slow_rate  # CPU-seconds per page at 8x the peer
    print(f"{len(pages)} pages; trafilatura everywhere: F1 {f1(sum(t[0] for *_, t in pages), sum(t[1] for *_, t in pages), wanted):.4f}")
    print(f"fallback share that keeps 8x the peer's speed: {budget:.1%}\n")
    print(f"boilerplate snippets in the fast text: {len(leaks)}; in its last fifth {sum(p >= 0.8 for p, _ in leaks)}, "
          f"its first tenth {sum(p < 0.1 for p, _ in leaks)}; on a line under 60 characters ending in ? or : "
          f"{sum(len(line) < 60 and line.endswith(('?', ':')) for _, line in leaks)}\n")
    print("| fallback share | F1 (greedy oracle) |\n|---|---|")
    print(f"| {sum(slow) / len(pages):.1%} (auto's rule) | {f1(found, leaked, wanted):.4f} |")
    for step in range(1, args.max_extra + 1):
        gains = [(f1(found - a[0] + t[0], leaked - a[1] + t[1], wanted), i) for i, (s, (_, a, t)) in enumerate(zip(slow, pages)) if not s]
        best, i = max(gains)
        _, a, t = pages[i]
        slow[i], found, leaked = True, found - a[0] + t[0], leaked - a[1] + t[1]
        if step % 10 == 0:
            print(f"| {sum(slow) / len(pages):.1%} | {best:.4f} |")


if __name__ == "__main__":
    main()
