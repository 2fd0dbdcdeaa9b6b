"""Loading fastText models, and the text preparation both language ID and classifiers need.

fastText reads one line per example and splits on whitespace, so a document's newlines must go
and, for classifiers, punctuation must be split off words the same way at training and at
inference time; both sides of this project call `prepare_text`, so they cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

_PUNCT = re.compile(r"([^\w\s])")
_SPACE = re.compile(r"\s+")


def load(path: str | Path):
    """A fastText model, loaded quietly (the library prints a deprecation note on every load)."""
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None
    return fasttext.load_model(str(path))


def one_line(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def prepare_text(text: str) -> str:
    """Lower-cased, punctuation split off words, one line: the token stream a classifier sees."""
    return one_line(_PUNCT.sub(r" \1 ", text.lower()))


def strip_label(label: str) -> str:
    return label.removeprefix("__label__")
