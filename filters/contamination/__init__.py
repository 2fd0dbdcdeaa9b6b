"""Benchmark contamination: which benchmark items appear in training text, where, and how much."""

from filters.contamination.benchmarks import REGISTRY, BenchmarkItem, BenchmarkNotFound, BenchmarkSpec, load_items, resolve
from filters.contamination.build import build_index
from filters.contamination.index import Hit, IndexStats, NgramIndex
from filters.contamination.normalize import normalize, words, words_with_offsets

__all__ = [
    "REGISTRY", "BenchmarkItem", "BenchmarkNotFound", "BenchmarkSpec", "Hit", "build_index", "IndexStats", "NgramIndex",
    "load_items", "normalize", "resolve", "words", "words_with_offsets",
]
