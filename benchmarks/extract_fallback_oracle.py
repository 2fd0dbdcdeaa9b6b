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
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_extract import f1, load_pages, snippet_counts  # noqa: E402

from filters.extract_auto import SLOW, extract_auto  # noqa: E402
from filters.html_extract import extract_resiliparse, extract_trafilatura, triage  # noqa: E402


def leak_places(text: str, without: list[str]) -> list[tuple[float, str]]:
    """(relative position in the text, its line) of each boilerplate snippet the text keeps."""
    lines = text.split("\n")
    return [(text.index(s) / len(text), next(line for line in lines if s in line).strip()) for s in without if s in text]


def fallback_room(peer_rate: float, fast_rate: float, slow_rate: float, speedup: float = 8) -> float:
    """The share of pages that may fall back to the slow engine while the whole stays `speedup` times the
    peer's pages per CPU-second (rates: pages per CPU-second)."""
    return (1 / (speedup * peer_rate) - 1 / fast_rate) * slow_rate


def greedy_fallbacks(fast: list, slow: list, score: Callable[[list], float], moved: set[int] = frozenset()
                     ) -> Iterator[tuple[int, float]]:
    """Pages handed from their fast result to their slow one, each time the one that raises `score` of all
    pages' results most, as a perfect "this fast text is wrong" rule would: (pages moved, score) after each.
    `moved`: pages that start on their slow result (and are never moved again)."""
    current = [slow[i] if i in moved else r for i, r in enumerate(fast)]
    moved = set(moved)
    while len(moved) < len(current):
        best, i = max((score(current[:i] + [slow[i]] + current[i + 1:]), i) for i in range(len(current)) if i not in moved)
        current[i] = slow[i]
        moved.add(i)
        yield len(moved), best


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
    fell_back = {i for i, (s, _, _) in enumerate(pages) if s}
    fast, slow = [a for _, a, _ in pages], [t for _, _, t in pages]
    current = [slow[i] if i in fell_back else a for i, a in enumerate(fast)]
    budget = fallback_room(args.peer_rate, args.fast_rate, args.slow_rate)

    def score(counts: list[tuple[int, int]]) -> float:
        return f1(sum(c[0] for c in counts), sum(c[1] for c in counts), wanted)

    print(f"{len(pages)} pages; trafilatura everywhere: F1 {score(slow):.4f}")
    print(f"fallback share that keeps 8x the peer's speed: {budget:.1%}\n")
    print(f"boilerplate snippets in the fast text: {len(leaks)}; in its last fifth {sum(p >= 0.8 for p, _ in leaks)}, "
          f"its first tenth {sum(p < 0.1 for p, _ in leaks)}; on a line under 60 characters ending in ? or : "
          f"{sum(len(line) < 60 and line.endswith(('?', ':')) for _, line in leaks)}\n")
    print("| fallback share | F1 (greedy oracle) |\n|---|---|")
    print(f"| {len(fell_back) / len(pages):.1%} (auto's rule) | {score(current):.4f} |")
    for step, (moved, best) in enumerate(greedy_fallbacks(fast, slow, score, fell_back), 1):
        if step % 10 == 0:
            print(f"| {moved / len(pages):.1%} | {best:.4f} |")
        if step == args.max_extra:
            break


if __name__ == "__main__":
    main()
