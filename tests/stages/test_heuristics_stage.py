"""The heuristics stage through the engine: documents, instruction records, accounting, config errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.records import DROP_REASON
from stages.heuristics import HeuristicsConfig
from text_samples import extracted_pages, sentence_lines, unique_words

GOOD = "\n".join(sentence_lines(12))
NAV = "Home\nProducts\nLogin"


def doc(i, text):
    return {"id": f"d{i}", "text": text, "url": f"https://example.com/{i}", "source": "test"}


def test_documents_are_judged_cleaned_and_accounted_for(run_stage, shared_data):
    real = extracted_pages(shared_data, 12)
    rows = [
        doc(0, GOOD),
        doc(1, NAV + "\n" + GOOD),  # C4 removes the navigation lines
        doc(2, " ".join(unique_words(20))),  # too short
        doc(3, GOOD + "\nLorem ipsum dolor sit amet, consectetur."),
        doc(4, ""),
        doc(5, None),
        *(doc(10 + i, text) for i, text in enumerate(real)),
    ]
    kept, dropped = run_stage("heuristics", {}, rows)
    assert len(kept) + len(dropped) == len(rows)
    by_id = {r["id"]: r for r in kept + dropped}
    assert by_id["d0"]["text"] == GOOD and by_id["d0"].get(DROP_REASON) is None
    assert by_id["d1"]["text"] == GOOD and by_id["d1"].get(DROP_REASON) is None
    assert by_id["d2"][DROP_REASON] == "gopher_quality.word_count"
    assert by_id["d3"][DROP_REASON] == "c4.lorem_ipsum"
    assert by_id["d4"][DROP_REASON] == by_id["d5"][DROP_REASON] == "heuristics.empty_text"
    assert all("." in r[DROP_REASON] for r in dropped)
    originals = {r["id"]: r["text"] for r in rows}
    assert all(r["text"] == originals[r["id"]] for r in dropped), "a dropped row keeps its original text"


def test_reordered_families_and_switches(run_stage):
    rows = [doc(0, NAV)]
    _, dropped = run_stage("heuristics", {"rules": ["fineweb", "c4"]}, rows)
    assert dropped[0][DROP_REASON] == "fineweb.punct_lines"
    _, dropped = run_stage("heuristics", {"rules": ["fineweb", "c4"], "disable": ["fineweb.punct_lines", "fineweb.short_lines", "fineweb.newline_word_ratio"]}, rows)
    assert dropped[0][DROP_REASON] == "c4.min_sentences"
    kept, _ = run_stage("heuristics", {"rules": ["c4"], "c4": {"min_sentences": 0}, "disable": ["c4.line_terminal_punct", "c4.line_min_words"]}, rows)
    assert [r["text"] for r in kept] == [NAV]


def chat(i, user, assistant):
    return {
        "id": f"i{i}",
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
        "source": "test",
        "generated_by": "human",
    }


def test_instruction_records_use_the_instruction_profile(run_stage):
    rows = [
        chat(0, "What is the capital of France?", "The capital of France is Paris."),
        chat(1, "Add 12 and 7.", "12 + 7 = 19"),
        chat(2, "Tell me a story.", "Once upon a time there was a cat. " * 20),
        chat(3, "Fill this page.", "Lorem ipsum dolor sit amet."),
    ]
    kept, dropped = run_stage("heuristics", {}, rows)
    assert sorted(r["id"] for r in kept) == ["i0", "i1"]
    assert [r["messages"] for r in kept] == [rows[0]["messages"], rows[1]["messages"]]
    reasons = {r["id"]: r[DROP_REASON] for r in dropped}
    assert reasons["i2"].startswith("gopher_repetition.") and reasons["i3"] == "c4.lorem_ipsum"
    _, dropped = run_stage("heuristics", {"profile": "document"}, rows)
    assert len(dropped) == len(rows)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"rules": ["gopher"]}, "rules"),
        ({"gopher_quality": {"min_word": 3}}, "min_word"),
        ({"disable": ["c4.lorem"]}, "c4 has no rule 'lorem'"),
        ({"profile": "chat"}, "profile"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_config_errors_name_the_key(options, message):
    with pytest.raises(ValidationError, match=message):
        HeuristicsConfig.model_validate(options)
