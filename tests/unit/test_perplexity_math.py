"""The perplexity filter's rules, without Ray: the score from token log-probs, the first-N-token cut,
the thresholds (per language, keep a share), KenLM's scoring, and the stage's options."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from filters.perplexity import (KenLMScorer, above_limit, cut_perplexity, first_tokens, keep_share_cut, kenlm_lines,
                                limit_for, perplexity, prefix_end, share_histogram, share_score)


def test_perplexity_is_exp_of_the_mean_negative_logprob_of_scored_tokens():
    # the first position (no token before it) has no log-prob and is not a scored token
    assert perplexity([None, math.log(0.5), math.log(0.125)]) == pytest.approx(4.0)
    assert perplexity([None, -1.0, -2.0, -100.0], max_tokens=2) == pytest.approx(math.exp(1.5))
    assert perplexity([None]) is None and perplexity([]) is None


def test_prefix_end_covers_exactly_the_first_n_tokens():
    offsets = [(0, 0), (0, 3), (3, 7), (7, 8), (9, 12)]  # a special token first, then four tokens
    assert prefix_end(offsets, 2) == 7
    assert prefix_end(offsets, 10) == 12
    assert prefix_end(offsets, 0) == 0


def test_first_tokens_cuts_a_long_text_at_the_nth_token(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "Write a short story about a robot who learns to paint. " * 400
    head = first_tokens(text, tokenizer, 50)
    assert text.startswith(head) and len(head) < len(text)
    assert len(tokenizer(head, add_special_tokens=False).input_ids) == 50
    assert first_tokens("Name three colors.", tokenizer, 50) == "Name three colors."


def test_limit_per_language_with_a_default():
    limits = {"en": 100.0, "de": 300.0, "default": 1000.0}
    assert limit_for("en", limits) == 100.0 and limit_for("de", limits) == 300.0
    assert limit_for("fr", limits) == 1000.0 and limit_for(None, limits) == 1000.0
    assert limit_for("fr", {"en": 100.0}) is None  # a language the map does not name is not limited
    assert limit_for("fr", 50.0) == 50.0
    assert above_limit(150.0, 100.0) and not above_limit(100.0, 100.0)
    assert not above_limit(None, 100.0) and not above_limit(1e9, None)


def test_keep_share_keeps_the_lowest_perplexities():
    scores = [10.0 * (i + 1) for i in range(100)]  # 10 .. 1000
    cut = keep_share_cut(share_histogram(scores), 0.8)
    kept = [s for s in scores if share_score(s) >= cut]
    assert kept == scores[:80]  # each perplexity in a bin of its own, so exactly 80%
    assert 800.0 <= cut_perplexity(cut) < 810.0
    assert keep_share_cut(share_histogram(scores), 1.0) == 0.0  # keep everything
    assert share_score(0.5) == 1.0 and share_score(1e12) == 0.0  # clipped into [0, 1]


def test_kenlm_lines_normalise_as_ccnet_and_stop_at_max_words():
    text = "The 3 Cats sat.\n\n  Then 42 dogs came!\nlast line"
    assert kenlm_lines(text, 100) == ["the 0 cats sat .", "then 00 dogs came !", "last line"]
    assert kenlm_lines(text, 6) == ["the 0 cats sat .", "then"]
    assert kenlm_lines(" \n ", 10) == []


ARPA = """\\data\\
ngram 1=5
ngram 2=2

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.5
-0.5\t</s>\t0
-0.3\ta\t-0.2
-0.6\tb\t0

\\2-grams:
-0.1\t<s> a
-0.2\ta b

\\end\\
"""


def test_kenlm_perplexity_follows_the_model_file(tmp_path):
    """A hand-written bigram model: 'a b' scores log10 p(a|<s>) + p(b|a) + backoff(b) + p(</s>),
    over three units (two words and the line's end)."""
    pytest.importorskip("kenlm")
    path = tmp_path / "lm.arpa"
    path.write_text(ARPA)
    scorer = KenLMScorer(str(path))
    log10 = -0.1 + -0.2 + (0 + -0.5)  # </s> after b backs off with b's weight 0
    assert scorer.perplexity("A B", 100) == pytest.approx(10 ** (-log10 / 3), rel=1e-5)
    assert scorer.perplexity("A B\nA B", 100) == pytest.approx(10 ** (-log10 / 3), rel=1e-5)
    assert scorer.perplexity("", 100) is None


def test_options_are_checked_when_the_config_loads():
    from stages.perplexity import DEFAULT_KEEP_SHARE, PerplexityConfig

    assert PerplexityConfig(llm="scorer").share == DEFAULT_KEEP_SHARE
    assert PerplexityConfig(kenlm_model="m.arpa", max_perplexity={"en": 300, "default": 900}).share is None
    for bad in ({}, {"llm": "a", "kenlm_model": "m"}, {"llm": "a", "max_perplexity": 100, "keep_share": 0.5},
                {"llm": "a", "max_perplexity": -1}, {"llm": "a", "max_perplexity": {"en": 0}},
                {"llm": "a", "keep_share": 1.5}, {"llm": "a", "max_tokens": 0},
                {"kenlm_model": "m", "tokenizer": "t"}, {"llm": "a", "max_perplexty": 3}):
        with pytest.raises(ValidationError):
            PerplexityConfig(**bad)


def test_vllm_prompt_logprobs_request_and_reply():
    """The body asks vLLM for the prompt token's own log-prob at each position, scoring without generating;
    the reply (the shape vLLM 0.32 sends, recorded) becomes floats, the echoed prompt no text."""
    from generators.backends.vllm_server import parse_response, request_body
    from generators.client import Request, SamplingParams

    request = Request(prompt="Is there", params=SamplingParams(temperature=0.0, max_tokens=0, prompt_logprobs=True))
    body = request_body("m", request)
    assert body["prompt_logprobs"] == 0 and body["max_tokens"] == 0 and body["echo"] is True
    reply = {"model": "m", "usage": {"prompt_tokens": 2, "completion_tokens": 0}, "choices": [{
        "index": 0, "text": "Is there", "logprobs": None, "finish_reason": "length",
        "prompt_logprobs": [None, {"465": {"logprob": -7.45, "rank": 298, "decoded_token": " there"}}]}]}
    choice = parse_response("completion", reply, echoed=True).choices[0]
    assert choice.prompt_logprobs == [None, -7.45] and choice.text == ""
    assert "prompt_logprobs" not in request_body("m", Request(prompt="x"))
