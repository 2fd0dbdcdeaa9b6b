"""Text builders shared by the heuristics tests: crafted texts with exact statistics, and real pages."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import string
from pathlib import Path


def unique_words(n: int, length: int = 5, offset: int = 0) -> list[str]:
    """n distinct lower-case words of one length, so character shares are easy to compute."""
    combos = itertools.islice(itertools.product(string.ascii_lowercase, repeat=length), offset, offset + n)
    return ["".join(c) for c in combos]


def sentence_lines(n: int, offset: int = 0) -> list[str]:
    """n distinct clean English sentences, one per line, with no repeated n-gram beyond stop words."""
    w = iter(unique_words(n * 5, length=6, offset=offset))
    return [f"The {next(w)} {next(w)} and {next(w)} {next(w)} {next(w)}." for _ in range(n)]


def extracted_pages(shared_data: Path, limit: int) -> list[str]:
    """Main text of the first `limit` pages of the trafilatura evaluation set, extracted with trafilatura."""
    import trafilatura

    folder = shared_data / "extraction" / "trafilatura_eval"
    entries = json.loads((folder / "evaldata.json").read_text())
    texts = []
    for entry in list(entries.values())[:limit]:
        html = gzip.decompress((folder / "html" / (entry["file"] + ".gz")).read_bytes()).decode("utf-8", "replace")
        texts.append(trafilatura.extract(html) or "")
    return texts


def ag_news_stories(shared_data: Path, n: int) -> list[str]:
    """The first n AG News stories (title. description) whose description has at least 25 words."""
    with open(shared_data / "classification" / "ag_news" / "train80.csv", newline="") as f:
        rows = list(csv.reader(f))
    return [f"{title}. {desc}" for _, title, desc in rows if len(desc.split()) >= 25][:n]
