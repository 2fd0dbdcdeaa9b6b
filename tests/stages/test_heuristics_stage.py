"""The heuristics stage through the engine: documents, instruction records, languages, accounting,
config errors."""

from __future__ import annotations

import gzip
import json

import pytest
from pydantic import ValidationError

from filters.html_extract import extract_trafilatura, triage
from pipeline.config import build_stage
from pipeline.records import DROP_REASON
from stages.heuristics import SKIPPED, HeuristicsConfig
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
        ({"lang": "German"}, "lang"),
        ({"gopher_quality": {"stop_words": ["der", "und"]}}, "stop words per language"),
    ],
)
def test_config_errors_name_the_key(options, message):
    with pytest.raises(ValidationError, match=message):
        HeuristicsConfig.model_validate(options)


# Pages of trafilatura's evaluation set, with the language lid.176 finds in them. Judged with
# English stop words, the German ones were dropped; the Japanese and Chinese ones, a few
# whitespace "words" each, failed the word count.
MIXED_PAGES = {
    "threatpost.com.android.html": "en",
    "vice.com.amazon.html": "en",
    "theverge.com.ios13.html": "en",
    "bmjv.de.konsum.html": "de",
    "kulinariaathome.com.mandelplätzchen.html": "de",
    "demokratiewebstatt.at.luft.html": "de",
    "toralin.de.schmierfett.html": "de",
    "nhk.or.jp.k100.html": "ja",
    "xinhuanet.com.c_1125597921.html": "zh",
    "banyuetan.org.1000200033136171577956287380194268_1.html": "zh",
}
# What a language written without spaces skips: every rule built on whitespace words.
UNSPACED_SKIPS = {
    *(f"gopher_repetition.{r}" for r in ("top_2gram", "top_3gram", "top_4gram", *(f"dup_{n}gram" for n in range(5, 11)))),
    *(f"gopher_quality.{r}" for r in ("word_count", "mean_word_length", "symbol_word_ratio", "alpha_words", "stop_words")),
    "c4.line_long_word",
    "c4.line_min_words",
    "fineweb.short_lines",
    "fineweb.newline_word_ratio",
}


@pytest.fixture(scope="module")
def mixed_pages(shared_data) -> list[dict]:
    """The MIXED_PAGES extracted as the extract stage does, as document rows with ids p<i>."""
    folder = shared_data / "extraction" / "trafilatura_eval"
    url_of = {entry["file"]: url for url, entry in json.loads((folder / "evaldata.json").read_text()).items()}
    rows = []
    for i, name in enumerate(MIXED_PAGES):
        raw = gzip.decompress((folder / "html" / (name + ".gz")).read_bytes())
        html, _ = triage(raw, None, len(raw))
        rows.append({**doc(i, extract_trafilatura(html, url_of[name])[0]), "id": f"p{i}"})
    return rows


def test_rows_are_judged_in_the_language_the_language_stage_found(run_stage, mixed_pages, tmp_path):
    identified, _ = run_stage("language", {"keep": ["en", "de", "ja", "zh"]}, mixed_pages)
    assert {r["id"]: r["lang"] for r in identified} == {f"p{i}": lang for i, lang in enumerate(MIXED_PAGES.values())}

    kept, dropped = run_stage("heuristics", {}, identified)
    assert dropped == [] and len(kept) == len(MIXED_PAGES)
    for row in kept:
        expected = UNSPACED_SKIPS if row["lang"] in ("ja", "zh") else None
        assert (set(row[SKIPPED]) if row[SKIPPED] else None) == expected, row["lang"]

    stage = build_stage("heuristics", {}, index=1, output_dir=tmp_path)
    metrics = stage.summarize(ray_dataset(kept + dropped))
    assert metrics["skipped_rules"] == {rule: {"ja": 1, "zh": 2} for rule in sorted(UNSPACED_SKIPS)}


def test_rows_without_a_language_are_judged_as_english_or_in_the_stage_lang(run_stage, mixed_pages, tmp_path):
    german = [r for r, lang in zip(mixed_pages, MIXED_PAGES.values()) if lang == "de"]
    kept, dropped = run_stage("heuristics", {}, german)
    assert kept == [] and [r[DROP_REASON] for r in dropped] == ["gopher_quality.stop_words"] * len(german)

    kept, dropped = run_stage("heuristics", {"lang": "de"}, german)
    assert dropped == [] and sorted(r["id"] for r in kept) == sorted(r["id"] for r in german)
    # a row's own language wins over the option; a row without one takes it
    rows = [{**german[0], "lang": "en"}, {**german[1], "lang": None}]
    kept, dropped = run_stage("heuristics", {"lang": "de"}, rows)
    assert [r["id"] for r in kept] == [german[1]["id"]] and dropped[0][DROP_REASON] == "gopher_quality.stop_words"
    stage = build_stage("heuristics", {"lang": "de"}, index=1, output_dir=tmp_path)
    assert stage.summarize(ray_dataset(kept + dropped)) == {"skipped_rules": {}}


def ray_dataset(rows: list[dict]):
    import ray.data

    return ray.data.from_items(rows)
