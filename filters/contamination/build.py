"""From a list of benchmark names/files to a ready index: the one entry point the stage and the report share."""

from __future__ import annotations

from itertools import chain
from pathlib import Path
from typing import Iterable

from filters.contamination.benchmarks import load_items, read_texts, resolve
from filters.contamination.index import NgramIndex


def build_index(benchmarks: Iterable[str | dict], benchmarks_dir: str | Path | None = None, *, fields: Iterable[str] = (),
                n: int = 13, min_words: int = 6, min_words_answer: int = 8, max_item_frequency: int = 10,
                background: Iterable[str | Path] = ()) -> tuple[NgramIndex, dict[str, int]]:
    """The index over every item of the benchmarks, and each benchmark's item count.

    Raises BenchmarkNotFound (a user error) for an unknown name, a missing file or an unreachable Hub.
    """
    items = []
    sizes: dict[str, int] = {}
    for spec in resolve(benchmarks, fields):
        loaded = load_items(spec, benchmarks_dir)
        sizes[spec.name] = len(loaded)
        items.extend(loaded)
    texts = chain.from_iterable(read_texts(p) for p in background)
    index = NgramIndex.build(items, n=n, min_words=min_words, min_words_answer=min_words_answer,
                             max_item_frequency=max_item_frequency, background=texts)
    return index, sizes
