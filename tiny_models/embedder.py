"""A sentence-transformers model built on this machine: a static (bag-of-words) embedding.

No embedding model can be downloaded here, and the embedding paths must still run a real
`SentenceTransformer` end to end. A `StaticEmbedding` (a word-level tokenizer and one vector per
word, mean-pooled) is the smallest real one: saved as a folder, loaded by path like any Hub model.
With random vectors (the tests' model) two texts' cosine grows with the words they share, so
reordered or slightly edited copies are near 1 and unrelated texts near 0; the benchmark builds
one with trained word vectors instead (benchmarks/semdedup_model.py).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

UNKNOWN = "[UNK]"
WORD = re.compile(r"\w+")


def vocabulary(texts: Iterable[str], min_count: int = 1) -> list[str]:
    """The lower-cased words of `texts`, most frequent first (ties by the word, so it is deterministic)."""
    counts = Counter(w for t in texts for w in WORD.findall(t.lower()))
    return sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))


def build(out_dir: str | Path, words: Sequence[str], vectors: np.ndarray | None = None, dim: int = 32, seed: int = 0) -> Path:
    """Save a StaticEmbedding model over `words` (row i of `vectors` is word i's vector; random if None)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    vocab = {UNKNOWN: 0, **{w: i + 1 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNKNOWN))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("removed")])
    if vectors is None:
        vectors = np.random.default_rng(seed).standard_normal((len(words), dim))
    weights = np.vstack([np.zeros((1, vectors.shape[1])), vectors]).astype(np.float32)  # unknown words add nothing
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights)], device="cpu")
    out = Path(out_dir)
    model.save(str(out))
    return out

