"""Perplexity of a text under a language model, and the rules that turn it into keep or drop.

Perplexity is what CCNet and DCLM filter web text by: a model trained on clean text finds
shuffled words, machine-garbled text and keyword or list spam surprising, token after token,
where length and character heuristics see ordinary words. It is `exp` of the mean negative
log-prob of the scored tokens, from a causal LM's prompt log-probs (any `LLMClient` whose
backend returns them) or from a KenLM n-gram model (`KenLMScorer`).

Only the first `max_tokens` tokens of a text are scored: a document's quality shows in its
first few hundred tokens, a long one would cost time linear in its length (quadratic attention
inside a model's context) for no better verdict, and a text longer than the model's context
could not be scored at all. The cut is made on the text, at the end of the N-th token of the
model's own tokenizer, so every backend scores the same tokens.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping, Sequence

import numpy as np

from filters.fasttext_classifier import score_histogram, top_fraction_threshold

# A token is never this many characters long, so the first N tokens of a text lie in its first
# N * MAX_TOKEN_CHARS characters: a long document is cut there before it is tokenized at all.
MAX_TOKEN_CHARS = 32

# keep_share ranks texts by log-perplexity mapped onto [0, 1] (`share_score`), so the cut is found
# from summed per-batch histograms as the quality stage finds its top_fraction cut; perplexities
# above exp(LOG_PPL_CEILING) share the last bin (no clean text comes near it).
LOG_PPL_CEILING = math.log(1e6)


def perplexity(logprobs: Iterable[float | None], max_tokens: int | None = None) -> float | None:
    """exp(-mean log-prob) of the first `max_tokens` scored tokens (natural logs), or None if none is.

    Positions without a log-prob (the first token, which nothing precedes) are not tokens scored.
    """
    scored = [lp for lp in logprobs if lp is not None]
    if max_tokens is not None:
        scored = scored[:max_tokens]
    if not scored:
        return None
    return math.exp(-math.fsum(scored) / len(scored))


def prefix_end(offsets: Sequence[tuple[int, int]], n: int) -> int:
    """Where the text that holds the first `n` tokens ends, given the tokens' (start, end) character
    offsets (a fast tokenizer's offset mapping); special tokens, at (0, 0), hold no text."""
    ends = [end for start, end in offsets if end > start][:n]
    return max(ends, default=0)


def first_tokens(text: str, tokenizer, n: int) -> str:
    """The beginning of `text` that holds its first `n` tokens under a Hugging Face fast tokenizer."""
    head = text[: n * MAX_TOKEN_CHARS]
    offsets = tokenizer(head, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return head[: prefix_end(offsets, n)]


def limit_for(language: str | None, max_perplexity: float | Mapping[str, float]) -> float | None:
    """The highest perplexity a text of `language` may have: one number for every language, or a map by
    language whose `default` entry covers the languages it does not name (None: those are not limited)."""
    if not isinstance(max_perplexity, Mapping):
        return float(max_perplexity)
    if language in max_perplexity:
        return float(max_perplexity[language])
    return float(max_perplexity["default"]) if "default" in max_perplexity else None


def above_limit(ppl: float | None, limit: float | None) -> bool:
    return ppl is not None and limit is not None and ppl > limit


def share_score(ppl: float) -> float:
    """A perplexity as a score in [0, 1], higher for lower perplexity, monotone in log-perplexity."""
    return 1.0 - min(max(math.log(ppl), 0.0), LOG_PPL_CEILING) / LOG_PPL_CEILING


def share_histogram(perplexities: Iterable[float]) -> list[int]:
    """Counts of `share_score`s in the quality stage's histogram bins: summable across batches."""
    return score_histogram([share_score(p) for p in perplexities]).tolist()


def keep_share_cut(histogram: Sequence[int], share: float) -> float:
    """The `share_score` at or above which a text is kept, so that at least `share` of the texts are;
    texts tied within one bin (0.14% in perplexity) are kept or dropped together."""
    return top_fraction_threshold(np.asarray(histogram, dtype=np.int64), share)


def cut_perplexity(cut: float) -> float:
    """The perplexity a `keep_share_cut` corresponds to: the highest a kept text can have (to one bin)."""
    return math.exp((1.0 - cut) * LOG_PPL_CEILING)


# KenLM: CCNet's normalisation (lower case, digits as 0) and whitespace-and-punctuation words, the
# units an n-gram model estimated with `lmplz` on text normalised the same way counts.
_WORD = re.compile(r"\w+|[^\w\s]")


def kenlm_lines(text: str, max_words: int) -> list[str]:
    """The text's non-empty lines as normalised words joined by spaces, up to `max_words` words in all."""
    lines, left = [], max_words
    for line in text.splitlines():
        words = _WORD.findall(re.sub(r"\d", "0", line.lower()))[:left]
        if words:
            lines.append(" ".join(words))
            left -= len(words)
        if left <= 0:
            break
    return lines


class KenLMScorer:
    """Perplexity under a KenLM model (ARPA or binary), CCNet's way: each line scored with sentence
    boundaries, the document's perplexity 10^(-sum of log10 probs / (words + one end per line))."""

    def __init__(self, path: str):
        import kenlm

        self.model = kenlm.Model(path)

    def perplexity(self, text: str, max_words: int) -> float | None:
        lines = kenlm_lines(text, max_words)
        if not lines:
            return None
        log10 = sum(self.model.score(line, bos=True, eos=True) for line in lines)
        length = sum(line.count(" ") + 2 for line in lines)  # the words and the end of the line
        return 10.0 ** (-log10 / length)


def estimate_arpa(texts: Iterable[str], path: str, discount: float = 0.75) -> None:
    """Write a bigram ARPA model of `texts` (normalised as `KenLMScorer` reads them) to `path`.

    For machines without KenLM's `lmplz` (the pip package builds only the query side): interpolated
    absolute discounting, written in ARPA's back-off form, so KenLM's scores are the interpolated
    model's. `lmplz -o 5` on the same text gives a better model; this one is enough to separate
    clean text from word salad and spam.
    """
    from collections import Counter, defaultdict

    unigrams: Counter[str] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    for text in texts:
        for line in kenlm_lines(text, max_words=10**9):
            words = ["<s>", *line.split(), "</s>"]
            unigrams.update(words[1:])
            bigrams.update(zip(words, words[1:]))
    total = sum(unigrams.values()) + 1  # one count for <unk>
    p1 = {w: c / total for w, c in unigrams.items()}
    p1["<unk>"] = 1 / total
    followers: defaultdict[str, dict[str, int]] = defaultdict(dict)
    for (h, w), c in bigrams.items():
        followers[h][w] = c
    p2, backoff = {}, {}
    for h, ws in followers.items():
        n = sum(ws.values())
        spare = discount * len(ws) / n  # the mass discounting frees, spread by the unigram model
        for w, c in ws.items():
            p2[h, w] = (c - discount) / n + spare * p1[w]
        seen = sum(p1[w] for w in ws)
        backoff[h] = (1 - sum(p2[h, w] for w in ws)) / (1 - seen) if seen < 1 else 1.0
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"\\data\\\nngram 1={len(p1) + 1}\nngram 2={len(p2)}\n\n\\1-grams:\n")
        out.write(f"-99\t<s>\t{math.log10(backoff.get('<s>', 1.0)):.6f}\n")
        for w, p in p1.items():
            out.write(f"{math.log10(p):.6f}\t{w}\t{math.log10(backoff.get(w, 1.0)):.6f}\n")
        out.write("\n\\2-grams:\n")
        for (h, w), p in p2.items():
            out.write(f"{math.log10(p):.6f}\t{h} {w}\n")
        out.write("\n\\end\\\n")
