"""The annotation algorithm's rules, pinned with a scripted LLM: how a rating is read, which rows a seeded
sample picks, what a failed rating says, and which options are refused when the config loads."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError
from synthetic_fakes import FakeClient, prompt_text

from generators.annotate import (EDUCATIONAL_VALUE, AnnotateConfig, AnnotateOptions, annotate, count_threshold,
                                 parse_annotation, sample_key, score_format, share_threshold)


@pytest.mark.parametrize("text, expected", [
    ("It explains photosynthesis step by step.\nScore: 4", (4.0, "It explains photosynthesis step by step.")),
    ("A product page with prices.\nScore: 0", (0.0, "A product page with prices.")),  # zero is a score
    ("Useful.\n**Score: 3**\n", (3.0, "Useful.")),
    ("First I thought Score: 2, but on reflection\nScore: 5", (5.0, "First I thought Score: 2, but on reflection")),  # the last wins
    ("Score: 4", (4.0, None)),  # no rationale
    ("Great text.\nScore: 7", (None, None)),  # outside 0-5
    ("Great text, I would say high.", (None, None)),
    ("", (None, None)),
])  # fmt: skip
def test_a_rating_is_the_last_score_line_within_the_scale_and_the_rationale_what_precedes_it(text, expected):
    assert parse_annotation(text, 0, 5) == expected


def test_the_guided_format_is_what_the_rules_read():
    fmt = score_format(0, 5)
    assert re.fullmatch(fmt, "It explains fractions.\nScore: 5")
    assert not re.fullmatch(fmt, "It explains fractions.\nScore: 6")
    assert parse_annotation("It explains fractions.\nScore: 5", 0, 5) == (5.0, "It explains fractions.")


def test_a_count_samples_exactly_that_many_rows_and_a_share_about_that_share():
    ids = [f"doc-{i}" for i in range(2000)]
    keys = [sample_key(7, i) for i in ids]
    assert sum(k < count_threshold(keys, 37) for k in keys) == 37
    assert sum(k < count_threshold(keys, 5000) for k in keys) == 2000  # more than there are: all
    assert 150 < sum(k < share_threshold(0.1) for k in keys) < 250
    assert sum(k < share_threshold(1.0) for k in keys) == 2000


def test_the_sample_depends_on_the_seed_and_the_row_not_on_the_batch():
    ids = [f"doc-{i}" for i in range(500)]
    first = {i for i in ids if sample_key(1, i) < share_threshold(0.2)}
    assert first == {i for i in reversed(ids) if sample_key(1, i) < share_threshold(0.2)}
    assert first != {i for i in ids if sample_key(2, i) < share_threshold(0.2)}


def _rater(request):
    doc = prompt_text(request).split("[Extract]\n")[1].split("\n\n")[0]
    if doc.startswith("fail"):
        return RuntimeError("HTTP 500")
    if doc.startswith("long"):
        return ("It rambles on and on", "length")
    if doc.startswith("vague"):
        return "It is fine, I think."
    return f"It has {len(doc.split())} words.\nScore: {len(doc.split()) % 6}"


def test_annotate_rates_each_document_and_says_why_one_has_no_rating():
    client = FakeClient(_rater)
    docs = ["one two three", "fail here", "long text", "vague text", "x " * 5000]
    results = annotate(client, docs, AnnotateConfig(seed=3, max_chars=200))
    assert [(a.score, a.reason) for a in results] == [(3.0, None), (None, "llm_error"), (None, "truncated"),
                                                       (None, "unparsed"), (100.0 % 6, None)]
    assert results[0].rationale == "It has 3 words." and results[0].model == "fake-model"
    assert "x " * 100 in client.requests[4].messages[0]["content"] and "x " * 101 not in client.requests[4].messages[0]["content"]
    guide = client.requests[0].params.guide
    assert guide.regex == score_format(0, 5) and not guide.required and client.requests[0].params.seed == 3


def test_structured_off_sends_no_guide_and_a_custom_prompt_is_used_as_written():
    client = FakeClient(lambda r: "Score: 2")
    prompt = "Rate how technical this is, 1 to 3.\n$document\nEnd with 'Score: N'. It costs $$5."
    config = AnnotateConfig(structured="off", prompt=prompt, prompt_version=4, scale=(1, 3))
    assert [a.score for a in annotate(client, ["kernels and drivers"], config)] == [2.0]
    assert client.requests[0].params.guide is None
    assert client.requests[0].messages[0]["content"] == "Rate how technical this is, 1 to 3.\nkernels and drivers\nEnd with 'Score: N'. It costs $5."
    assert config.template.id == "annotate.custom@4" and AnnotateConfig().template.id == EDUCATIONAL_VALUE.id


@pytest.mark.parametrize("options, message", [
    ({"sample": 0}, "at least 1"),
    ({"sample": 1.5}, "share must be in"),
    ({"sample": 0.0}, "share must be in"),
    ({"scale": [5, 0]}, "lowest score must be below"),
    ({"prompt": "Rate this."}, "must contain \\$document"),
    ({"prompt": "Rate $document for $audience"}, "only placeholder"),
    ({"samples": 10}, "Extra inputs"),
])  # fmt: skip
def test_bad_options_are_refused_when_the_config_loads(options, message):
    with pytest.raises(ValidationError, match=message):
        AnnotateOptions(**options)
