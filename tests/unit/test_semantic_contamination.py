"""The semantic pass's rules (filters/contamination/semantic.py): windows, candidates, the judge's prompt and parse."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from filters.contamination.benchmarks import BenchmarkItem
from filters.contamination.semantic import (JUDGE, VERDICT_FORMAT, SemanticOptions, candidates, default_window, item_text, item_views,
                                            judge_request, parse_verdict, windows)
from generators.client import Choice, Response


def words_of(text, spans):
    return [text[a:b].split() for a, b in spans]


def test_windows_overlap_by_half_and_cover_the_last_word():
    text = " ".join(f"w{i}" for i in range(25))
    spans = windows(text, 10)
    got = words_of(text, spans)
    assert [ws[0] for ws in got] == ["w0", "w5", "w10", "w15"]
    assert all(len(ws) == 10 for ws in got)
    assert got[-1][-1] == "w24"  # the last window ends at the text's last word, none runs past it


def test_windows_of_short_and_empty_texts():
    assert windows("  one two\nthree ", 10) == [(2, 15)]  # one window, from the first to the last word
    assert windows(" \n ", 10) == []
    text = " ".join(f"w{i}" for i in range(12))
    assert [ws[-1] for ws in words_of(text, windows(text, 10))] == ["w9", "w11"]  # a tail window for the 2 left


def test_default_window_is_the_items_median_length_within_bounds():
    items = [BenchmarkItem("b", str(i), ("word " * n,)) for i, n in enumerate([30, 40, 50])]
    assert default_window(items) == 40
    assert default_window([BenchmarkItem("b", "0", ("a b",))]) == 16
    assert default_window([BenchmarkItem("b", "0", ("a " * 1000,))]) == 256


def unit(*rows):
    v = np.array(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_candidates_take_the_top_k_items_by_best_window_at_min_cosine():
    items = unit([1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0])
    # row 0: two windows, one close to item 0, the other to item 2; row 1: one window near nothing
    win = unit([1, 0.1, 0], [0, 0.2, 1], [-1, -1, -1])
    spans = [(0, 10), (5, 15), (0, 7)]
    one = np.arange(4)  # one vector per item
    got = candidates(win, np.array([0, 0, 1]), items, one, 2, top_k=2, min_cosine=0.5, window_spans=spans)
    assert [(c.item, c.span) for c in got[0]] == [(0, (0, 10)), (2, (5, 15))]  # most similar first, each at its window
    assert got[0][0].cosine == pytest.approx(float(win[0] @ items[0]), abs=1e-6)
    assert got[1] == []  # below min_cosine: no candidate
    top1 = candidates(win, np.array([0, 0, 1]), items, one, 2, top_k=1, min_cosine=0.5, window_spans=spans)
    assert [c.item for c in top1[0]] == [0]
    # min_cosine is a floor: at 0.99 only the nearly identical pair is left
    assert [[c.item for c in r] for r in candidates(win, np.array([0, 0, 1]), items, one, 2, 3, 0.99, spans)] == [[0], []]


def test_candidates_are_exact_across_chunks_and_an_item_is_counted_once_per_row():
    rng = np.random.default_rng(0)
    items = unit(*rng.standard_normal((50, 8)))
    win = unit(*rng.standard_normal((40, 8)))
    rows = np.repeat(np.arange(8), 5)
    spans = [(i, i + 1) for i in range(40)]
    owner = np.arange(50) // 2  # 25 items of two views each
    small = candidates(win, rows, items, owner, 8, 3, -1.0, spans, chunk=7)
    whole = candidates(win, rows, items, owner, 8, 3, -1.0, spans)
    sims = win @ items.T
    for r in range(8):
        best = sims[r * 5:(r + 1) * 5].max(axis=0).reshape(25, 2).max(axis=1)  # an item's best view
        assert [c.item for c in whole[r]] == list(np.argsort(-best)[:3])
        assert len({c.item for c in whole[r]}) == 3
    assert small == whole


def test_judge_request_shows_both_texts_and_asks_for_the_parsed_format():
    options = SemanticOptions(model="m", judge="teacher")
    request = judge_request("What is 2+2?\n4", "Tell me the sum of two and two.", options, seed=3)
    text = request.messages[0]["content"]
    assert "What is 2+2?\n4" in text and "Tell me the sum of two and two." in text
    assert JUDGE.id == "contamination.judge@1"
    p = request.params
    assert (p.temperature, p.seed, p.guide.regex, p.guide.required) == (0.0, 3, VERDICT_FORMAT, False)
    assert judge_request("q", "p", SemanticOptions(model="m", judge="t", structured="off")).params.guide is None
    long = judge_request("x" * 5000, "y" * 5000, SemanticOptions(model="m", judge="t", max_item_chars=100))
    assert "x" * 100 in long.messages[0]["content"] and "x" * 101 not in long.messages[0]["content"]


def answer(text: str) -> Response:
    return Response([Choice(text, "stop")], "judge-model")


@pytest.mark.parametrize("text, same, reason", [
    ("Verdict: yes\nReason: the same question with other words", True, "the same question with other words"),
    ("verdict: NO\nreason: a different question about fractions.", False, "a different question about fractions."),
    ("**Verdict:** Yes\n**Reason:** same facts, numbers as words", True, "same facts, numbers as words"),
    ("Reason: it asks the same thing\nVerdict: true", True, "it asks the same thing"),
    ("Verdict: no", False, ""),
])
def test_parse_verdict(text, same, reason):
    v = parse_verdict(answer(text))
    assert (v.same, v.reason, v.error) == (same, reason, None)


def test_parse_verdict_never_reads_a_failure_or_a_non_answer_as_clean():
    failed = parse_verdict(Response.failed("judge-model", "HTTP 500: boom\nline two"))
    assert failed.same is None and failed.error == "judge failed: HTTP 500: boom line two"
    rambling = parse_verdict(answer("I think these might be related, hard to say"))
    assert rambling.same is None and rambling.error.startswith("judge gave no verdict: 'I think")
    assert parse_verdict(answer("Verdict: maybe")).same is None


def test_item_text_is_its_parts_one_per_line_and_its_question_is_a_view_of_its_own():
    mc, single = BenchmarkItem("mmlu", "x/1", ("Q? ", "a", " b")), BenchmarkItem("ifeval", "7", ("Write a poem.",))
    assert item_text(mc) == "Q?\na\nb"
    texts, owner = item_views([mc, single])
    assert texts == ["Q?\na\nb", "Q?", "Write a poem."] and owner.tolist() == [0, 0, 1]


@pytest.mark.parametrize("bad", [{"top_k": 0}, {"min_cosine": 1.5}, {"window_words": 2}, {"device": "tpu"},
                                 {"structured": "maybe"}, {"modle": "x"}])
def test_options_are_checked(bad):
    with pytest.raises(ValidationError):
        SemanticOptions(**{"model": "m", "judge": "t", **bad})
