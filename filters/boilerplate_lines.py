"""Which lines at the edges of a fast extractor's text are boilerplate: a logistic model of the line's shape.

resiliparse's main-content text starts and ends, on many pages, with what surrounds the article:
navigation crumbs, bylines, share and follow lines, teasers, footers. A fixed rule ("short and no
sentence end") cut some of it and some headings with it. Here each line is scored from its shape and
its neighbourhood (length, sentence end, where it stands in the text, how long the run of short lines
around it is, digits and capitals, separators such as "|" and "©"), and the runs of boilerplate lines
at the two edges are cut; a line inside the text stays, since that is where the article's own headings
and list items are.

The weights (`boilerplate_lines.json`) were fitted by `scripts/train_boilerplate_lines.py` on the lines
of resiliparse's text of the 990 pages of the shared extraction set whose gold snippets label them (a line
holding a `without` snippet is boilerplate, one holding a `with` snippet is not), the regularisation and
the threshold chosen by five-fold cross-validation over those pages (docs/curation.md). Scoring a page is
a few vector operations: about 0.15 ms, against resiliparse's 1.2 to 2.3 ms.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("boilerplate_lines.json")
SENTENCE_ENDS = '.!?:;"“”»«)…'
INTRODUCING_ENDS = ":?"  # a line ending so introduces what follows: "Read more:", "Schon gelesen?"
SEPARATORS = "|©•»›@#"  # menus, footers, handles and tags
SHORT_LINE_CHARS = 80  # a run of lines shorter than this is how menus and link lists look
FEATURES = (
    "log_chars", "log_words", "ends_sentence", "position_in_text", "edge_share", "log_edge_distance",
    "log_short_run", "log_previous_chars", "log_next_chars", "previous_ends_sentence", "next_ends_sentence",
    "log_text_chars", "log_text_lines", "chars_per_word", "digit_share", "capital_share", "ends_colon_or_question",
    "has_separator",
)


def _short_runs(short: np.ndarray) -> np.ndarray:
    """For each line, the length of the run of short lines it belongs to (0 for a long line)."""
    starts = np.flatnonzero(np.concatenate(([True], short[1:] != short[:-1])))
    lengths = np.diff(np.append(starts, len(short)))
    return np.repeat(np.where(short[starts], lengths, 0), lengths)


def _previous(values: np.ndarray, fill: float) -> np.ndarray:
    return np.concatenate(([fill], values[:-1]))


def _next(values: np.ndarray, fill: float) -> np.ndarray:
    return np.concatenate((values[1:], [fill]))


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), np.uint32)


def _lookup(characters: str):
    """A membership test over code points, by table (numpy's isin sorts, which cost more than the rest)."""
    table = np.zeros(max(map(ord, characters)) + 2, bool)
    table[[ord(c) for c in characters]] = True
    return lambda points: table[np.minimum(points, len(table) - 1)]


_ends_sentence, _introduces, _separator = _lookup(SENTENCE_ENDS), _lookup(INTRODUCING_ENDS), _lookup(SEPARATORS)


def line_features(lines: list[str]) -> list:
    """The FEATURES of each line (non-empty, stripped), as columns: an array over the lines, or one number
    where the feature is the text's (its length, its line count). Every per-character count is taken over
    the code points of all lines at once, and the model sums the columns without stacking them: a loop per
    line, or a matrix, cost more than the rest together."""
    n = len(lines)
    joined = "\n".join(lines)
    points = _code_points(joined)
    chars = np.fromiter(map(len, lines), np.intp, n)
    starts = np.concatenate(([0], np.cumsum(chars[:-1] + 1)))
    last = points[starts + chars - 1]
    lowered = joined.lower()
    if len(lowered) == len(joined):
        capitals = points != _code_points(lowered)
    else:  # a character whose lower case is longer (İ): counted one character at a time
        capitals = np.fromiter((c.isupper() for c in joined), bool, len(joined))

    def per_line(mask: np.ndarray) -> np.ndarray:
        return np.add.reduceat(mask, starts)

    chars = chars.astype(float)
    words = per_line(points == 32) + 1.0
    ends = _ends_sentence(last).astype(float)
    total = chars.sum()
    index = np.arange(n)
    edge = np.minimum(index, n - 1 - index)
    log_chars = np.log1p(chars)
    return [
        log_chars, np.log1p(words), ends, (np.cumsum(chars) - chars / 2) / total, edge / n, np.log1p(edge),
        np.log1p(_short_runs(chars < SHORT_LINE_CHARS)), _previous(log_chars, 0.0), _next(log_chars, 0.0),
        _previous(ends, 1.0), _next(ends, 1.0), np.log1p(total), np.log1p(n),
        chars / words, per_line((points >= 48) & (points <= 57)) / chars, per_line(capitals) / chars,
        _introduces(last).astype(float), (per_line(_separator(points)) > 0).astype(float),
    ]


def feature_matrix(lines: list[str]) -> np.ndarray:
    """line_features as one row per line (for fitting)."""
    return np.column_stack([np.broadcast_to(column, len(lines)) for column in line_features(lines)])


class LineModel:
    """The fitted weights: standardisation, logistic coefficients, and the probability above which a
    line is boilerplate."""

    def __init__(self, mean, scale, coef, intercept: float, threshold: float):
        self.mean, self.scale, self.coef = (np.asarray(v, float) for v in (mean, scale, coef))
        self.intercept, self.threshold = intercept, threshold
        # standardising folded into the weights, and the threshold moved to the logits: a sum and a compare
        self._weights = (self.coef / self.scale).tolist()
        self._bias = intercept - float(self.coef @ (self.mean / self.scale))
        self._logit_threshold = float(np.log(threshold / (1 - threshold)))

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> "LineModel":
        w = json.loads(path.read_text())
        if w["features"] != list(FEATURES):
            raise ValueError(f"{path}: fitted on features {w['features']}, this code computes {list(FEATURES)}")
        return cls(w["mean"], w["scale"], w["coef"], w["intercept"], w["threshold"])

    def boilerplate(self, columns: list) -> np.ndarray:
        """Whether each line is boilerplate, given its `line_features`."""
        logits = self._bias
        for weight, column in zip(self._weights, columns):
            logits = logits + weight * column
        return logits > self._logit_threshold


@functools.cache
def default_model() -> LineModel:
    return LineModel.load()


def content_lines(lines: list[str]) -> tuple[list[str], list[int]]:
    """Of a text's lines, those the model scores (non-blank, stripped) and where each stands: one rule for
    fitting and for cutting."""
    where = [i for i, line in enumerate(lines) if line.strip()]
    return [lines[i].strip() for i in where], where


def trim_boilerplate(text: str, model: LineModel | None = None) -> str:
    """The text without the runs of boilerplate lines at its two edges; the blank lines between the
    lines kept stay where they were."""
    lines = text.split("\n")
    scored, where = content_lines(lines)
    if not scored:
        return ""
    drop = (model or default_model()).boilerplate(line_features(scored))
    start, end = 0, len(scored)
    while start < end and drop[start]:
        start += 1
    while end > start and drop[end - 1]:
        end -= 1
    return "\n".join(lines[where[start]:where[end - 1] + 1]).strip() if start < end else ""
