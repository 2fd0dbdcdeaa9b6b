"""Lines (or paragraphs) repeated across many documents: navigation, cookie banners, footers.

Counting is by document, not by occurrence: a line that one page repeats 100 times is the
page's problem (Gopher's repetition rules), a line that 10,000 pages share is boilerplate.
Units are compared after stripping surrounding whitespace; hashes are xxh3-64.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import xxhash

_SPLIT = {"line": re.compile(r"\n"), "paragraph": re.compile(r"\n\s*\n")}
_JOIN = {"line": "\n", "paragraph": "\n\n"}


def units(text: str, unit: str) -> list[str]:
    return _SPLIT[unit].split(text or "")


def _hash(piece: str) -> int:
    return xxhash.xxh3_64_intdigest(piece.strip().encode("utf-8"))


def unit_hashes(texts: Sequence[str], unit: str, min_chars: int) -> np.ndarray:
    """The distinct unit hashes of each text, concatenated: one count per document and unit."""
    out: list[int] = []
    for text in texts:
        out.extend({_hash(p) for p in units(text, unit) if len(p.strip()) >= min_chars})
    return np.array(out, dtype=np.uint64)


def remove_units(texts: Sequence[str], unit: str, min_chars: int, repeated: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Texts without their repeated units (`repeated`: sorted uint64 hashes), and how many each lost."""
    cleaned, removed = [], np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        kept = []
        for p in units(text, unit):
            stripped = p.strip()
            if len(stripped) >= min_chars and len(repeated):
                h = np.uint64(_hash(p))
                j = np.searchsorted(repeated, h)
                if j < len(repeated) and repeated[j] == h:
                    removed[i] += 1
                    continue
            kept.append(p)
        cleaned.append(_JOIN[unit].join(kept).strip() if removed[i] else text)
    return cleaned, removed


def repeated_hashes(hashes: np.ndarray, max_docs: int) -> np.ndarray:
    """Hashes seen in more than `max_docs` documents, sorted."""
    values, counts = np.unique(hashes, return_counts=True)
    return values[counts > max_docs]
