"""The semantic pass for paraphrased leaks, as LMSYS's llm-decontaminator does it: embeddings find
candidate pairs, an LLM judge decides.

n-grams find an item only where a run of its words survives; a reworded item keeps its meaning and
loses its words. So a row the n-gram index found clean is cut into windows about an item's length
(a long document holds the reworded item somewhere inside, and its vector averaged with the rest of
the document would match nothing), every window is embedded, and the `top_k` items most similar to
any window of the row, at `min_cosine` or above, are candidates. Similar is not the same: a question
on the same topic is close too. The judge reads each candidate pair (the item, the window) and says
whether the window holds the item reworded, with a one-line reason; only a yes is a hit.

Ray-free: vectors in, candidates out; requests out, verdicts in. The stage (`decontaminate`) runs
the model and the client.
"""

from __future__ import annotations

import dataclasses
import re
from statistics import median
from typing import Sequence

import numpy as np
from pydantic import Field

from filters.contamination.benchmarks import BenchmarkItem
from filters.embeddings import Device
from generators.client import Request, Response, SamplingParams
from generators.prompts import Prompt
from generators.structured import StructuredOption
from pipeline import storage

JUDGE = Prompt(
    "contamination.judge",
    1,
    "You check training data for leaked benchmark items. Below are a test item from a benchmark and a "
    "passage of training text. Does the passage contain this test item, copied or reworded? It does if it "
    "asks the same question (or sets the same task) with the same facts, even with other words, another "
    "word order, numbers written differently, the options in another order, or with or without the answer. "
    "It does not if it only shares the topic or asks a different question.\n\n"
    "Test item:\n$item\n\nPassage:\n$passage\n\n"
    "Answer in two lines:\nVerdict: yes or no\nReason: one sentence",
)
# The format `parse_verdict` reads, for guided decoding (`structured`).
VERDICT_FORMAT = r"Verdict: (yes|no)\nReason: [^\n]{1,300}"
_VERDICT = re.compile(r"verdict\s*[:=\-]?\s*\**\s*(yes|no|true|false)\b", re.IGNORECASE)
_REASON = re.compile(r"reason\s*[:=\-]\s*\**\s*([^\n]*)", re.IGNORECASE)
_WORD = re.compile(r"\S+")
MIN_WINDOW_WORDS, MAX_WINDOW_WORDS = 16, 256  # bounds of the default window (the items' median length)


class SemanticOptions(StructuredOption):
    """The `semantic:` section of the decontaminate stage; absent, the pass does not run."""

    model: str = Field(description="sentence-transformers model that embeds items and windows: a local folder or a Hub id",
                       json_schema_extra=storage.READ_ON_EVERY_NODE)
    judge: str = Field(description="LLM under `llms:` that decides whether a candidate window holds the item reworded")
    top_k: int = Field(default=1, ge=1, le=50, description="most similar items per row sent to the judge")
    min_cosine: float = Field(default=0.6, ge=-1, le=1, description="an item less similar than this to every window of a row is no candidate")
    window_words: int | None = Field(
        default=None, ge=4, le=4096,
        description="words per window (windows overlap by half); default: the benchmark items' median length, "
                    f"within {MIN_WINDOW_WORDS}-{MAX_WINDOW_WORDS}")
    device: Device = Field(default="auto", description="auto: cuda when the worker has a GPU (resources: {num_gpus: 1}), else cpu")
    batch_size: int = Field(default=64, ge=1, description="texts per forward pass of the embedding model")
    max_tokens: int = Field(default=96, ge=8, description="tokens of the judge's answer (a verdict and a one-line reason)")
    max_item_chars: int = Field(default=2000, ge=100, description="an item or window longer than this is cut in the judge's prompt")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """An item similar to a window of a row: what the judge is asked about."""

    row: int
    item: int  # index into the items the vectors were made from
    cosine: float
    span: tuple[int, int]  # the window's [start, end) characters in the row's text


@dataclasses.dataclass(frozen=True)
class Verdict:
    same: bool | None  # None: the judge failed or gave no verdict (`error` says which)
    reason: str
    error: str | None = None


def item_text(item: BenchmarkItem) -> str:
    """An item as the judge is shown it: its parts, one per line."""
    return "\n".join(p.strip() for p in item.parts)


def item_views(items: Sequence[BenchmarkItem]) -> tuple[list[str], np.ndarray]:
    """The texts embedded for the items, and the item each belongs to: every item whole and, when it has
    more parts, its first part (the question) alone. A leak is often the question without its answer
    (or a GSM8K question beside an answer much longer than itself), and the question's vector is
    closer to it than the whole item's."""
    texts, owner = [], []
    for i, item in enumerate(items):
        texts.append(item_text(item))
        owner.append(i)
        if len(item.parts) > 1:
            texts.append(item.parts[0].strip())
            owner.append(i)
    return texts, np.array(owner, dtype=np.int64)


def default_window(items: Sequence[BenchmarkItem]) -> int:
    """The items' median length in words, within MIN_WINDOW_WORDS..MAX_WINDOW_WORDS: a window about as
    long as what it should hold, so the item is most of a window and not diluted by the text around it."""
    if not items:
        return MIN_WINDOW_WORDS
    return int(min(MAX_WINDOW_WORDS, max(MIN_WINDOW_WORDS, median(len(item_text(i).split()) for i in items))))


def windows(text: str, words: int) -> list[tuple[int, int]]:
    """[start, end) character spans of windows of `words` words, each starting half a window after the
    last, so an item of up to half a window lies whole in one and a longer one fills one at least half;
    the last window ends at the text's last word. A text of `words` words or fewer is one window; a text
    without words, none."""
    spans = [m.span() for m in _WORD.finditer(text)]
    if not spans:
        return []
    step = max(1, words // 2)
    starts = list(range(0, max(1, len(spans) - words + 1), step))
    if starts[-1] + words < len(spans):
        starts.append(len(spans) - words)
    return [(spans[a][0], spans[min(a + words, len(spans)) - 1][1]) for a in starts]


def candidates(window_vectors: np.ndarray, window_rows: Sequence[int], item_vectors: np.ndarray, item_of: np.ndarray,
               rows: int, top_k: int, min_cosine: float, window_spans: Sequence[tuple[int, int]],
               chunk: int = 1024) -> list[list[Candidate]]:
    """Per row, its `top_k` items by their best cosine (over the item's views, `item_of` naming each vector's
    item) to any of the row's windows, at `min_cosine` or above, most similar first, each with the window
    where it was closest. Vectors are unit rows, so a dot product is the cosine. An item among a row's top_k
    is among the top_k items of its best window, whose views are among that window's top `top_k * views`
    vectors, so those are enough, and the windows x vectors matrix is never held whole (`chunk` windows at
    a time)."""
    best: list[dict[int, tuple[float, int]]] = [{} for _ in range(rows)]  # item -> (cosine, window)
    views = int(np.bincount(item_of).max()) if len(item_of) else 0
    k = min(top_k * views, len(item_vectors))
    for a in range(0, len(window_vectors), chunk) if k else ():
        sims = window_vectors[a:a + chunk] @ item_vectors.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else np.tile(np.arange(sims.shape[1]), (len(sims), 1))
        for w, (vecs, values) in enumerate(zip(top, np.take_along_axis(sims, top, axis=1))):
            row = best[int(window_rows[a + w])]
            for item, cos in zip(item_of[vecs].tolist(), values.tolist()):
                if cos >= min_cosine and cos > row.get(item, (-2.0, 0))[0]:
                    row[item] = (cos, a + w)
    out = []
    for r, found in enumerate(best):
        ranked = sorted(found.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top_k]
        out.append([Candidate(r, item, round(float(cos), 6), tuple(window_spans[w])) for item, (cos, w) in ranked])
    return out


def judge_request(item: str, passage: str, options: SemanticOptions, seed: int | None = None) -> Request:
    """One candidate pair as a chat request (greedy: the same pair always gets the same verdict)."""
    cut = options.max_item_chars
    text = JUDGE.render(item=item[:cut], passage=passage[:cut])
    params = SamplingParams(temperature=0.0, max_tokens=options.max_tokens, seed=seed, guide=options.guide(VERDICT_FORMAT))
    return Request(messages=({"role": "user", "content": text},), params=params)


def parse_verdict(response: Response) -> Verdict:
    """The judge's first `Verdict:` (yes/true or no/false) and the rest of its first `Reason:` line. A failed
    request, or an answer with no verdict, is a Verdict with `same` None and the error: a row is never
    called clean because its judge could not say."""
    if response.error:
        return Verdict(None, "", f"judge failed: {' '.join(response.error.split())[:300]}")
    text = response.text or ""
    found = _VERDICT.search(text)
    if not found:
        return Verdict(None, "", f"judge gave no verdict: {' '.join(text.split())[:200]!r}")
    reason = _REASON.search(text, found.end()) or _REASON.search(text)
    return Verdict(found.group(1).lower() in ("yes", "true"), " ".join(reason.group(1).split()).strip("*") if reason else "")
